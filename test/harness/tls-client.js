// A TLS client for the harness's tests, run in the guest as the user under test: it prints the
// first line the server sends (the test servers' banner, "ok 198.51.100.10 443 sni=NAME") and exits
// 0, or prints why it failed on stderr and exits 1. The system's trusted CAs check the certificate.
//   node tls-client.js HOST [PORT] [--sni NAME | --no-sni] [--connect ADDRESS] [--insecure]
//                          [--hold FILE [--ready FILE]] [--timeout MS]
// HOST is resolved by the system resolver unless --connect gives the address to connect to. The
// server name sent is HOST when it is a name, none for an address, or --sni / --no-sni.
// --hold FILE keeps the connection open after the banner until FILE exists, then sends a line and
// prints the line echoed back ("echo:still-here", or "echo:" when the connection was cut); --ready
// FILE is created once the banner is in.
"use strict";
const fs = require("fs");
const net = require("net");
const tls = require("tls");

const args = process.argv.slice(2);
const opt = (name) => {
    const i = args.indexOf(name);
    if (i < 0) return undefined;
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
};
const flag = (name) => {
    const i = args.indexOf(name);
    if (i >= 0) args.splice(i, 1);
    return i >= 0;
};
const sni = opt("--sni");
const connect = opt("--connect");
const hold = opt("--hold");
const ready = opt("--ready");
const timeout = Number(opt("--timeout") ?? 5000);
const noSni = flag("--no-sni");
const insecure = flag("--insecure");
const [host, port = "443"] = args;
if (!host) {
    console.error("usage: tls-client.js HOST [PORT] [--sni NAME | --no-sni] [--connect ADDRESS] [--insecure] [--hold FILE]");
    process.exit(64);
}

const fail = (why) => {
    console.error(`tls-client: ${why}`);
    process.exit(1);
};
setTimeout(() => fail("timed out"), timeout).unref();

const servername = noSni ? undefined : sni ?? (net.isIP(host) ? undefined : host);
const sock = tls.connect({
    host: connect ?? host,
    port: Number(port),
    servername,
    rejectUnauthorized: !insecure,
    // The system's trust store, as curl and openssl use it (Node's own bundle would not have the test CA).
    ca: fs.readFileSync("/etc/ssl/certs/ca-certificates.crt"),
    // Verify against HOST (or --sni), whatever address was connected to.
    checkServerIdentity: (_h, cert) => tls.checkServerIdentity(servername ?? host, cert),
});
// Once the banner is in, a reset is a cut like a close.
sock.on("error", (err) => (state === "banner" ? fail(err.message) : cut()));
let buffered = "";
let state = "banner";
sock.on("data", (d) => {
    buffered += d;
    const nl = buffered.indexOf("\n");
    if (nl < 0) return;
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    if (state === "banner") {
        process.stdout.write(line + "\n");
        if (!hold) process.exit(0);
        state = "holding";
        if (ready) fs.writeFileSync(ready, "");
        const wait = setInterval(() => {
            if (!fs.existsSync(hold)) return;
            clearInterval(wait);
            state = "echo";
            sock.write("still-here\n");
        }, 100);
    } else if (state === "echo") {
        process.stdout.write(`echo:${line}\n`);
        process.exit(0);
    }
});
function cut() {
    process.stdout.write("echo:\n");
    process.exit(0);
}
sock.on("close", () => (state === "banner" ? fail("closed before a banner") : cut()));
