#!/usr/bin/env bash
# Build a small Debian 12 cloud guest that stands in for the Ubuntu 24.04 cloud
# image in the real end-to-end test (libvirt under TCG, no internet).
#
# Usage: scripts/build-image.sh            -> prints the image directory
# Output (cached, reused while this script is unchanged):
#   .cache/image/<hash>/disk.qcow2   ext4 filesystem without a partition table, LABEL=ccsbx-root
#   .cache/image/<hash>/vmlinuz      kernel, booted directly (the disk has no bootloader)
#   .cache/image/<hash>/initrd.img
#   .cache/image/<hash>/cmdline      kernel arguments to pass with the kernel
#   .cache/image/<hash>/packages.txt installed packages and versions
# Boot it with a qcow2 overlay on disk.qcow2 and `virt-install --boot
# kernel=vmlinuz,initrd=initrd.img,kernel_args="$(cat cmdline)"`; the full
# working command line is in scripts/libvirt-netns.sh. Old <hash> directories
# are not pruned: an overlay may still use one as its backing file.
#
# Facts this image is shaped by:
# - linux-image-amd64 (not -cloud-amd64): its initramfs and modules can read a
#   seed cdrom on any bus (virt-install --cloud-init attaches a SATA cdrom on
#   q35, which the cloud kernel cannot see) and it has 9p and virtiofs.
# - The disk is a bare ext4 filesystem made with `mkfs.ext4 -d`, so no loop
#   devices or partitioning tools are needed; root is found by label and
#   cloud-init's resizefs grows it to the size of the overlay.
# - cloud-init's locale module needs update-locale (package locales); the
#   image defaults to C.UTF-8 so no locale has to be generated.
# - mmdebstrap copies the host's resolv.conf and the packages generate SSH host
#   keys and a machine-id: all three are emptied so every VM gets its own.
# - dnsmasq-base (the binary, no service), as the cloud-config asks for on
#   Ubuntu: nothing takes port 53 before the firewall layer starts its resolver.
# - Every package the rendered cloud-config's `packages` names is preinstalled.
# - Differences from Ubuntu 24.04 that tests may meet: cloud-init 22.4 (not
#   24.x), default user "debian", ifupdown instead of netplan, kernel 6.1 with
#   AppArmor enabled but Debian's older parser (abi 3.0).
set -euo pipefail

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

readonly SUITE=bookworm
readonly MIRROR=http://deb.debian.org/debian
readonly SECURITY_MIRROR=http://deb.debian.org/debian-security
readonly ROOT_LABEL=ccsbx-root
readonly DISK_SIZE=3G
readonly CMDLINE="root=LABEL=${ROOT_LABEL} rw console=ttyS0,115200n8"

readonly PACKAGES=(
  systemd-sysv udev dbus kmod
  linux-image-amd64 initramfs-tools
  cloud-init python3 locales
  openssh-server
  ifupdown isc-dhcp-client iproute2 netbase
  iptables ipset dnsmasq-base
  sudo bubblewrap socat bash-builtins util-linux apparmor
  curl netcat-openbsd iputils-ping ca-certificates
  git jq e2fsprogs procps less
)

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
cache_root=${CCSBX_IMAGE_CACHE:-$repo_dir/.cache/image}
# The package list lives in this file, so hashing the file covers both.
hash=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
image_dir=$cache_root/$hash

[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap root mode, mkfs -d keeps ownership)"
for tool in mmdebstrap mkfs.ext4 qemu-img systemctl flock findmnt; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install mmdebstrap qemu-utils e2fsprogs)"
done

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9

if [[ -f $image_dir/.complete ]]; then
  log "cached: $image_dir"
  printf '%s\n' "$image_dir"
  exit 0
fi

# Tools run in the rootfs (systemctl --root, through update-rc.d) may leave /proc mounted there:
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
mkdir -p "$out"

log "mmdebstrap $SUITE (${#PACKAGES[@]} packages) into $rootfs"
start=$SECONDS
# Mirrors are passed explicitly: without them mmdebstrap reads sources from a
# non-terminal stdin.
mmdebstrap --variant=minbase --mode=root \
  --include="$(IFS=,; echo "${PACKAGES[*]}")" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  "$SUITE" "$rootfs" \
  "deb $MIRROR $SUITE main" \
  "deb $MIRROR $SUITE-updates main" \
  "deb $SECURITY_MIRROR $SUITE-security main" \
  </dev/null >&2
log "mmdebstrap done in $((SECONDS - start)) s"

log "configuring the guest"
# The guest is offline: no apt sources, so cloud-init's package step (everything it names is
# preinstalled) has nothing to fetch and succeeds.
: >"$rootfs/etc/apt/sources.list"
rm -f "$rootfs"/etc/apt/sources.list.d/*
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id" "$rootfs"/etc/ssh/ssh_host_*
echo localhost >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
printf 'LABEL=%s\t/\text4\terrors=remount-ro\t0\t1\n' "$ROOT_LABEL" >"$rootfs/etc/fstab"
echo 'LANG=C.UTF-8' >"$rootfs/etc/default/locale"

# ifupdown only reads what cloud-init renders if interfaces sources the dir.
cat >"$rootfs/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*
EOF

# Only NoCloud (seed ISO labelled cidata) is probed: no waiting on metadata
# services that do not exist offline.
# An RSA host key takes about 40 s to generate under TCG; user-data may still
# ask for it with its own ssh_genkeytypes.
cat >"$rootfs/etc/cloud/cloud.cfg.d/90_ccsbx.cfg" <<'EOF'
datasource_list: [ NoCloud, None ]
locale: C.UTF-8
ssh_genkeytypes: [ ed25519, ecdsa ]
EOF

# The serial console is where boot progress is read under TCG.
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

touch "$out/.complete"
rm -rf "$image_dir"
mv "$out" "$image_dir"
log "built $image_dir in $((SECONDS - start)) s ($(du -sh "$image_dir" | cut -f1))"
printf '%s\n' "$image_dir"
