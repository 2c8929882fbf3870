/** One jest run covers unit tests (test/*.test.ts) and the real-system suites in their folders. */
module.exports = {
    testEnvironment: "node",
    transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
    testMatch: ["<rootDir>/test/**/*.test.ts"],
    // One suite at a time: the namespace harness and guest-ns.sh share this machine's process
    // table, so a suite that ends a project worker's processes (by uid, as cc-sandbox-project does
    // when a folder is mounted anew) ended another suite's worker of the same name meanwhile. The
    // end-to-end suites still run side by side (npm run test:e2e: --maxWorkers=2).
    maxWorkers: 1,
    testTimeout: 120000,
};
