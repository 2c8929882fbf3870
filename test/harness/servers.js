// The harness's "internet": TCP servers on ports 22, 80, 443 and 8080 and UDP servers on 443 and
// 9999, listening on every address of the internet namespace (UDP: the addresses present at start). Each answers with a banner naming the
// address and port it was reached on ("ok 198.51.100.10 443"), then echoes lines back, so a test
// knows which host it reached and can keep a connection open.
"use strict";
const net = require("net");
const dgram = require("dgram");
const os = require("os");

const tcpPorts = [22, 80, 443, 8080];
const udpPorts = [443, 9999];
let pending = tcpPorts.length + udpPorts.length;
const ready = () => {
    if (--pending === 0) process.stdout.write("ready\n");
};

for (const port of tcpPorts) {
    net.createServer((sock) => {
        sock.on("error", () => {});
        sock.write(`ok ${sock.localAddress.replace(/^::ffff:/, "")} ${port}\n`);
        sock.pipe(sock);
    }).listen({ port, host: "::", ipv6Only: false }, ready);
}
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
