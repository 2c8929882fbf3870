// The harness's "internet": TCP servers on ports 22, 80, 443 and 8080 and UDP servers on 443 and
// 9999, listening on every address of the internet namespace (UDP: the addresses present at start),
// so that several names on one address behave like sites on a CDN's shared address.
//   - 22 and 8080: a banner naming the address and port reached ("ok 198.51.100.10 8080"), then an
//     echo of every line, so a test knows which host it reached and can keep a connection open.
//   - 443: TLS for any server name, with the certificate given by --tls DIR (DIR/server.key and
//     DIR/server.crt, from the test's own CA). A client that negotiates ALPN http/1.1 (curl) gets
//     HTTP, as on port 80; any other gets the banner ("ok 198.51.100.10 443 sni=NAME") and the echo.
//   - 80: HTTP for any Host (keep-alive: every request answered), each answer naming the address,
//     the port and the Host it was asked for ("ok 198.51.100.10 80 host=NAME"). A client that sends
//     nothing within 300 ms gets the banner and the echo instead.
//   - Over HTTP on either port, GET /bytes/N answers N bytes (zeros), for throughput benchmarks;
//     GET /delay/N answers after N seconds (a long poll).
// Prints "ready" once every server listens.
"use strict";
const dgram = require("dgram");
const fs = require("fs");
const http = require("http");
const net = require("net");
const os = require("os");
const path = require("path");
const tls = require("tls");

const tlsDir = process.argv[process.argv.indexOf("--tls") + 1];
if (!process.argv.includes("--tls") || !tlsDir) {
    console.error("usage: servers.js --tls DIR (DIR/server.key, DIR/server.crt)");
    process.exit(64);
}
const clean = (s) => String(s ?? "").replace(/[^\x21-\x7e]/g, "?");
const addressOf = (sock) => (sock.localAddress ?? "").replace(/^::ffff:/, "");

const tcpPorts = [22, 80, 443, 8080];
const udpPorts = [443, 9999];
let pending = tcpPorts.length + udpPorts.length;
const ready = () => {
    if (--pending === 0) process.stdout.write("ready\n");
};

function banner(sock, port, extra = "") {
    sock.write(`ok ${addressOf(sock)} ${port}${extra}\n`);
    sock.pipe(sock);
}

/** HTTP for any Host: the answer names the address, the port, the Host and (over TLS) the server name. */
function httpServer(port) {
    const chunk = Buffer.alloc(1 << 16);
    const server = http.createServer((req, res) => {
        const sock = req.socket;
        const delay = /^\/delay\/(\d{1,3})$/.exec(req.url ?? "");
        if (delay) {
            const timer = setTimeout(() => res.end(`late ${addressOf(sock)} ${port} host=${clean(req.headers.host)}\n`), Number(delay[1]) * 1000);
            res.on("close", () => clearTimeout(timer));
            return;
        }
        const bulk = /^\/bytes\/(\d{1,12})$/.exec(req.url ?? "");
        if (bulk) {
            let left = Number(bulk[1]);
            res.writeHead(200, { "content-type": "application/octet-stream", "content-length": left });
            const more = () => {
                while (left > 0) {
                    const n = Math.min(left, chunk.length);
                    left -= n;
                    if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once("drain", more);
                }
                res.end();
            };
            return more();
        }
        const sni = sock.servername === undefined ? "" : ` sni=${clean(sock.servername || "-")}`;
        const body = `ok ${addressOf(sock)} ${port} host=${clean(req.headers.host)}${sni}\n`;
        res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
        res.end(body);
    });
    server.on("clientError", (_err, sock) => sock.destroy());
    return server;
}

for (const port of [22, 8080]) {
    net.createServer((sock) => {
        sock.on("error", () => {});
        banner(sock, port);
    }).listen({ port, host: "::", ipv6Only: false }, ready);
}

const http80 = httpServer(80);
net.createServer((sock) => {
    sock.on("error", () => {});
    const timer = setTimeout(() => banner(sock, 80), 300);
    sock.once("data", (data) => {
        clearTimeout(timer);
        sock.pause();
        sock.unshift(data);
        http80.emit("connection", sock);
        sock.resume();
    });
}).listen({ port: 80, host: "::", ipv6Only: false }, ready);

const http443 = httpServer(443);
const key = fs.readFileSync(path.join(tlsDir, "server.key"));
const cert = fs.readFileSync(path.join(tlsDir, "server.crt"));
tls.createServer({ key, cert, ALPNProtocols: ["http/1.1"] }, (sock) => {
    sock.on("error", () => {});
    if (sock.alpnProtocol === "http/1.1") http443.emit("connection", sock);
    else banner(sock, 443, ` sni=${clean(sock.servername || "-")}`);
})
    .on("tlsClientError", () => {})
    .listen({ port: 443, host: "::", ipv6Only: false }, ready);

// One UDP socket per address present at start, so that replies come from the address the client
// sent to (a socket on 0.0.0.0 would answer from the veth's address, which a connected client drops).
const addresses = Object.values(os.networkInterfaces()).flat().filter((a) => a && a.family === "IPv4").map((a) => a.address);
pending += udpPorts.length * (addresses.length - 1);
for (const port of udpPorts) {
    for (const address of addresses) {
        const s = dgram.createSocket({ type: "udp4" });
        s.on("message", (msg, rinfo) => s.send(`ok udp ${port} ${msg.toString().trim()}\n`, rinfo.port, rinfo.address));
        s.bind(port, address, ready);
    }
}
