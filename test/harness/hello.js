// Hand-made TLS ClientHellos for the proxy's tests, sent from the guest as the user under test:
// what a real client sends, and what an attacker could send instead.
//   node hello.js ADDRESS PORT [--sni NAME] [--ech] [--records N] [--segments N] [--garbage]
// --sni NAME     the server_name extension (none without it)
// --ech          an encrypted_client_hello extension (0xfe0d) as well: NAME is then the outer name
// --records N    the handshake message split across N TLS records (the name in a later one)
// --segments N   the bytes written in N pieces, 200 ms apart (one record across TCP segments)
// --garbage      bytes that are no TLS at all
// Prints "reply N first=0xHH" when the other end answered N bytes (a server's ServerHello or alert:
// the proxy let the hello through), or "closed" when the connection ended with no byte back.
"use strict";
const crypto = require("crypto");
const net = require("net");

const args = process.argv.slice(2);
const opt = (name) => {
    const i = args.indexOf(name);
    return i < 0 ? undefined : args[i + 1];
};
const [address, port] = args;
const sni = opt("--sni");
const records = Number(opt("--records") ?? 1);
const segments = Number(opt("--segments") ?? 1);

const u8 = (n) => Buffer.from([n]);
const u16 = (n) => Buffer.from([n >> 8, n & 255]);
const u24 = (n) => Buffer.from([n >> 16, (n >> 8) & 255, n & 255]);
const vec16 = (b) => Buffer.concat([u16(b.length), b]);
const ext = (type, body) => Buffer.concat([u16(type), vec16(body)]);

function clientHello() {
    const extensions = [];
    if (sni) {
        const name = Buffer.from(sni);
        extensions.push(ext(0x0000, vec16(Buffer.concat([u8(0), vec16(name)]))));
    }
    extensions.push(ext(0x000a, vec16(Buffer.concat([u16(0x001d), u16(0x0017)])))); // supported_groups
    extensions.push(ext(0x000d, vec16(Buffer.concat([u16(0x0403), u16(0x0804)])))); // signature_algorithms
    extensions.push(ext(0x002b, Buffer.concat([u8(2), u16(0x0304)]))); // supported_versions: TLS 1.3
    extensions.push(ext(0x0033, vec16(Buffer.concat([u16(0x001d), vec16(crypto.randomBytes(32))])))); // key_share
    if (args.includes("--ech")) {
        // outer ECH: type, cipher suite, config id, enc, payload (an inner hello nobody can read here)
        extensions.push(ext(0xfe0d, Buffer.concat([u8(0), u16(0x0001), u16(0x0001), u8(7), vec16(crypto.randomBytes(32)), vec16(crypto.randomBytes(200))])));
    }
    const body = Buffer.concat([
        u16(0x0303), crypto.randomBytes(32), u8(32), crypto.randomBytes(32),
        vec16(Buffer.concat([u16(0x1301), u16(0x1302), u16(0xc02f)])), u8(1), u8(0),
        vec16(Buffer.concat(extensions)),
    ]);
    return Buffer.concat([u8(1), u24(body.length), body]);
}

function wire() {
    if (args.includes("--garbage")) return Buffer.from("\x16\x03\x01\x00\x05hello, not a client hello\r\n");
    const hs = clientHello();
    const parts = [];
    const size = Math.ceil(hs.length / records);
    for (let i = 0; i < hs.length; i += size) {
        const chunk = hs.subarray(i, i + size);
        parts.push(Buffer.concat([u8(0x16), u16(0x0301), u16(chunk.length), chunk]));
    }
    return Buffer.concat(parts);
}

const data = wire();
const sock = net.connect({ host: address, port: Number(port) });
let got = Buffer.alloc(0);
const done = () => {
    process.stdout.write(got.length ? `reply ${got.length} first=0x${got[0].toString(16).padStart(2, "0")}\n` : "closed\n");
    process.exit(0);
};
setTimeout(done, 8000).unref();
sock.on("error", done);
sock.on("close", done);
sock.on("data", (d) => {
    got = Buffer.concat([got, d]);
    setTimeout(done, 200);
});
sock.on("connect", async () => {
    const size = Math.ceil(data.length / segments);
    for (let i = 0; i < data.length; i += size) {
        sock.write(data.subarray(i, i + size));
        if (i + size < data.length) await new Promise((r) => setTimeout(r, 200));
    }
});
