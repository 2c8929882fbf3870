/** One jest run covers unit tests (test/*.test.ts) and the real-system suites in their folders. */
module.exports = {
    testEnvironment: "node",
    transform: { "^.+\\.ts$": ["ts-jest", { diagnostics: false }] },
    testMatch: ["<rootDir>/test/**/*.test.ts"],
    maxWorkers: 2,
    testTimeout: 120000,
};
