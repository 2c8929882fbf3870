/**
 * The end-to-end tests' steps: they build on each other and run in order, so after one fails the
 * rest fail at once instead of waiting on a VM that is not there; each timed part's duration is
 * printed and kept for the results file.
 */
import * as fs from "fs";
import * as path from "path";
import type { Run } from "./world";

export function steps(label: string, diagnose: () => string) {
    const durations: { step: string; seconds: number }[] = [];
    let broken = "";
    const tail = (s: string, n = 60) => s.split("\n").slice(-n).join("\n");
    return {
        step(name: string, fn: () => Promise<void>): void {
            test(name, async () => {
                if (broken) throw new Error(`not run: step "${broken}" failed`);
                try {
                    await fn();
                } catch (err) {
                    broken = name;
                    throw err;
                }
            });
        },

        async timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
            const started = Date.now();
            try {
                return await fn();
            } finally {
                const seconds = Math.round((Date.now() - started) / 100) / 10;
                durations.push({ step: what, seconds });
                process.stdout.write(`${label}: ${what}: ${seconds} s\n`);
            }
        },

        /**
         * A failed command's error leads with its error lines (a CI summary keeps only part of a
         * long message), then what the hypervisor says of the VM, then the output's tail.
         */
        ok(r: Run, what: string): Run {
            if (r.code === 0) return r;
            const errors = `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /error/i.test(l) && !/^\s+at /.test(l)).slice(0, 20);
            throw new Error(`${what} failed (exit ${r.code}):\n${errors.join("\n")}\n--- hypervisor ---\n${diagnose()}\n--- output ---\n${tail(r.stdout)}\n${tail(r.stderr)}`);
        },

        /** Writes the durations to FILE. */
        save(file: string): void {
            fs.mkdirSync(path.dirname(file), { recursive: true });
            fs.writeFileSync(file, JSON.stringify({ when: new Date().toISOString(), steps: durations }, null, 2) + "\n");
            process.stdout.write(`${label}: durations in ${file}\n`);
        },
    };
}
