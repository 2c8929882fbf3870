/** Writing a rendered guest to a directory: user-data, meta-data and files/<absolute guest path>. */
import * as fs from "fs";
import * as path from "path";
import { RenderedGuest } from "../render";

export function writeRendered(rendered: RenderedGuest, dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    for (const old of ["files", "user-data", "meta-data"]) fs.rmSync(path.join(dir, old), { recursive: true, force: true });
    fs.writeFileSync(path.join(dir, "user-data"), rendered.userData);
    fs.writeFileSync(path.join(dir, "meta-data"), rendered.metaData);
    for (const f of rendered.files) {
        const target = path.join(dir, "files", f.path);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.writeFileSync(target, f.content, { mode: parseInt(f.mode, 8) });
        fs.chmodSync(target, parseInt(f.mode, 8));
    }
}
