// Run in the harness's guest by scripts/bench-proxy.mjs, as the user being measured.
//   node tls-bench-client.cjs handshakes ADDRESS NAME N   one TCP connect + TLS handshake at a time,
//                                                        N times: prints each one's milliseconds
//   node tls-bench-client.cjs hold ADDRESS NAME N SECONDS N TLS connections open at once, held for
//                                                        SECONDS: prints "open N" once all are up
// Certificates are checked against the system's trust store, as a real client would.
"use strict";
const fs = require("fs");
const tls = require("tls");

const [mode, address, name, count, seconds] = process.argv.slice(2);
const ca = fs.readFileSync("/etc/ssl/certs/ca-certificates.crt");
const connect = () =>
    new Promise((resolve, reject) => {
        const s = tls.connect({ host: address, port: 443, servername: name, ca }, () => resolve(s));
        s.on("error", reject);
    });

async function main() {
    if (mode === "handshakes") {
        const out = [];
        for (let i = 0; i < Number(count); i++) {
            const start = process.hrtime.bigint();
            const s = await connect();
            out.push(Number(process.hrtime.bigint() - start) / 1e6);
            s.destroy();
        }
        process.stdout.write(out.map((ms) => ms.toFixed(3)).join(" ") + "\n");
    } else if (mode === "hold") {
        const socks = await Promise.all(Array.from({ length: Number(count) }, connect));
        process.stdout.write(`open ${socks.length}\n`);
        await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
        socks.forEach((s) => s.destroy());
    } else {
        throw new Error("usage: tls-bench-client.cjs handshakes|hold ADDRESS NAME N [SECONDS]");
    }
}

main().catch((err) => {
    console.error(`tls-bench-client: ${err.message}`);
    process.exit(1);
});
