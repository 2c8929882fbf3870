/**
 * What a base image on this machine holds, from the image.json beside it (scripts/build-image.sh,
 * `npm run bake`). Read where the program starts, like the templates; rendering stays pure.
 */
import * as path from "path";
import { BaseImage } from "./index";

/**
 * IMAGE: the image file on this machine (the driver's `localImage`), or undefined. Without an
 * image.json beside it, or one that names no guest files, the image is taken as stock.
 */
export function readBaseImage(image: string | undefined, readFile: (file: string) => string): BaseImage {
    if (image === undefined) return {};
    let info: unknown;
    try {
        info = JSON.parse(readFile(path.join(path.dirname(image), "image.json")));
    } catch {
        return {};
    }
    const id = (info as { guestFiles?: unknown } | null)?.guestFiles;
    return typeof id === "string" && /^[0-9a-f]{64}$/.test(id) ? { bakedFiles: id } : {};
}
