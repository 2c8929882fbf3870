#!/bin/bash
# A container image's root filesystem made of this machine's own bash, cat, id, sleep and curl (where
# it has curl) and the libraries they load, as a tar stream on stdout: what the tests give `podman import`, since no
# registry is reachable from a test. Runs on the test host and in the test VM alike.
set -euo pipefail
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
mkdir -p "$root/bin" "$root/etc" "$root/root" "$root/tmp"
chmod 1777 "$root/tmp"
# copy FILE: FILE (the file a link leads to) at the same path in the image.
copy() { install -D -m 0755 "$(readlink -f "$1")" "$root$1"; }
for bin in bash cat id sleep curl; do
  path=$(command -v "$bin") || continue
  copy "$path"
  [[ $path == /bin/$bin ]] || ln -sf "$path" "$root/bin/$bin"
  for lib in $(ldd "$path" | grep -o '/[^ ]*'); do copy "$lib"; done
done
printf 'root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000:app:/home/app:/bin/bash\n' >"$root/etc/passwd"
printf 'root:x:0:\napp:x:1000:\n' >"$root/etc/group"
# As most images have: files of a user other than root (which a single-uid mapping cannot own).
install -d -o 1000 -g 1000 "$root/home/app"
echo app >"$root/home/app/owned"
chown 1000:1000 "$root/home/app/owned"
tar -C "$root" --numeric-owner -cf - .
