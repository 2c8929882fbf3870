#!/usr/bin/env bash
# A remote libvirt host's storage, through libvirt's own API (virsh over the stack's URI): nothing
# is run on the host but libvirtd, and nothing is written to this workstation's libvirt.
#   host-storage.sh pool   URI DIR                    a running pool whose target is DIR; prints its name
#   host-storage.sh image  URI DIR file PATH          uploads PATH (a file here) once; prints the volume's path there
#   host-storage.sh image  URI DIR fetch SCRIPT ARGS… downloads and verifies (SCRIPT: fetch-image.sh, with ARGS), then as file
#   host-storage.sh seed   URI DIR NAME FILE…          the NoCloud seed of FILEs (user-data, meta-data) as NAME-seed.iso, made anew
#   host-storage.sh remove URI DIR NAME               a VM's leftover volumes, then every base image no volume is backed by
# - The pool: the one whose target path is DIR, whatever its name (an administrator's own), else
#   cc-sandbox-<hash of DIR>, defined, then started (building its directory) and marked autostart
#   whenever it is not running. `remove` never defines one.
# - A base image is kept as cc-sandbox-base-<sha256>.qcow2: uploaded to a .part-<pid>-<n> volume of
#   its own, then cloned to that name, so a volume by that name is whole; one already there is used
#   as it is. An image with a backing file of its own is refused.
# - A seed is uploaded whole each create (it holds that VM's first-boot data) and is one of the VM's
#   disks, so a reboot keeps it and `undefine --remove-all-storage` removes it. NAME.qcow2 or
#   NAME-seed.iso that is a disk of some domain (a renamed VM) is never replaced nor removed.
# - A base image goes when no volume in the pool is backed by it any more; a part when no upload has
#   written it for an hour. Anything that cannot be read makes remove keep what it might concern.
#   A destroy racing another stack's create of the same image on the same pool can make that create
#   fail once; its next run uploads the image again.
set -euo pipefail
# virsh's labels and states, in English whatever the user's locale.
export LC_ALL=C

log() { printf 'host-storage: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
v() { virsh --quiet --connect "$uri" "$@"; }

# find_pool: sets pool to the name of the pool whose target path is $dir, or to "".
find_pool() {
  local name at
  pool=
  while read -r name; do
    [[ -n $name ]] || continue
    # A pool's only <path> element is its target's (a source's paths are attributes).
    at=$(v pool-dumpxml "$name" | sed -n 's:^ *<path>\(.*\)</path> *$:\1:p' | head -n 1)
    at=${at%/}
    if [[ $at == "${dir%/}" ]]; then
      pool=$name
      return 0
    fi
  done < <(v pool-list --all --name)
}

ensure_pool() {
  find_pool
  if [[ -z $pool ]]; then
    pool=cc-sandbox-$(printf '%s' "${dir%/}" | sha256sum | cut -c1-8)
    log "defining storage pool $pool at $dir on the host"
    v pool-define-as "$pool" dir --target "$dir" >/dev/null
  fi
  if [[ $(v pool-info "$pool" | awk '$1 == "State:" { print $2 }') != running ]]; then
    # --build makes the directory if it is not there (a run cut short after the definition).
    v pool-start --build "$pool" >/dev/null
    if [[ $pool == cc-sandbox-* ]]; then v pool-autostart "$pool" >/dev/null; fi
  fi
  # Files made on the host since libvirt last looked become volumes.
  v pool-refresh "$pool" >/dev/null
}

# attached: every disk of every domain on the host, one path a line (whatever pool it is in).
attached() {
  local dom
  while read -r dom; do
    [[ -n $dom ]] || continue
    v domblklist "$dom" --details | awk '$1 == "file" && $2 == "disk" || $1 == "file" && $2 == "cdrom" { print $4 }'
  done < <(v list --all --name)
}

# refuse_taken NAME: the VM's volumes, if they are there, must be no domain's disk: another domain
# (a renamed VM, say) may still use them, and the seed step and a failed create would replace them.
refuse_taken() {
  local name=$1 used vol
  used=$(attached) || die "cannot list the host's domains' disks"
  for vol in "$name.qcow2" "$name-seed.iso"; do
    if grep -qxF "${dir%/}/$vol" <<<"$used"; then
      die "${dir%/}/$vol is a disk of another domain on the host: choose another cc-sandbox:vm.name, or remove that domain"
    fi
  done
}

has_vol() { v vol-info --pool "$pool" "$1" >/dev/null 2>&1; }

# check_image FILE: a file here that may be uploaded; checked before the host is asked anything.
check_image() {
  [[ -f $1 && -r $1 ]] || die "$1 is not a readable file on this workstation"
  # An image backed by another file would, once uploaded, point the VM's disk at a path of the host's.
  if qemu-img info --output=json "$1" | grep -q '"backing-filename"'; then
    die "$1 has a backing file of its own: upload a standalone image (qemu-img convert -O qcow2)"
  fi
}

upload_image() { # local file, checked
  local file=$1 sum vol part
  sum=$(sha256sum <"$file" | cut -c1-64)
  vol=cc-sandbox-base-$sum.qcow2
  # A part of this upload's own: another stack uploading the same image meanwhile has its own.
  part=$vol.part-$$-$RANDOM
  if has_vol "$vol"; then
    log "base image $vol is already in pool $pool"
  else
    log "uploading $file to pool $pool as $vol"
    # -L: the size of the image a link names, not of the link.
    v vol-create-as "$pool" "$part" "$(stat -L -c %s "$file")" --format raw >/dev/null
    drop_part=$part
    trap 'v vol-delete --pool "$pool" "$drop_part" >/dev/null 2>&1 || true' EXIT
    v vol-upload --pool "$pool" "$part" "$file"
    # The clone fails when another upload of the same image got there first: that one is as good.
    v vol-clone --pool "$pool" "$part" "$vol" >/dev/null || has_vol "$vol" || die "could not make $vol in pool $pool"
    v vol-delete --pool "$pool" "$part" >/dev/null
    trap - EXIT
  fi
  v vol-path --pool "$pool" "$vol"
}

make_seed() { # name files...
  local name=$1 vol=$1-seed.iso
  shift
  refuse_taken "$name"
  seed_tmp=$(mktemp -d)
  trap 'rm -rf "$seed_tmp"' EXIT
  local tmp=$seed_tmp
  genisoimage -quiet -output "$tmp/seed.iso" -volid cidata -joliet -rock "$@"
  # A seed left by a create that failed before its VM was defined.
  if has_vol "$vol"; then v vol-delete --pool "$pool" "$vol" >/dev/null; fi
  v vol-create-as "$pool" "$vol" "$(stat -c %s "$tmp/seed.iso")" --format raw >/dev/null
  v vol-upload --pool "$pool" "$vol" "$tmp/seed.iso"
}

# age VOLUME: seconds since it was last written, from its <mtime> (seconds since the epoch).
age() {
  local mtime
  mtime=$(v vol-dumpxml --pool "$pool" "$1" | sed -n 's:^ *<mtime>\([0-9]*\).*</mtime> *$:\1:p' | head -n 1)
  [[ -n $mtime ]] || { echo 0; return; }
  echo $(($(date +%s) - mtime))
}

remove() { # name
  local name=$1 vol base used path
  find_pool
  [[ -n $pool ]] || { log "no storage pool at $dir on the host: nothing to remove"; return 0; }
  if [[ $(v pool-info "$pool" | awk '$1 == "State:" { print $2 }') != running ]]; then v pool-start "$pool" >/dev/null; fi
  v pool-refresh "$pool" >/dev/null
  # Volumes another domain uses stay, whatever their name.
  used=$(attached) || die "cannot list the host's domains' disks: nothing removed"
  for vol in "$name.qcow2" "$name-seed.iso"; do
    if has_vol "$vol" && ! grep -qxF "${dir%/}/$vol" <<<"$used"; then
      log "removing volume $vol"
      v vol-delete --pool "$pool" "$vol" >/dev/null
    fi
  done
  local -a vols=()
  mapfile -t vols < <(v vol-list --pool "$pool" | awk 'NF { print $1 }')
  local -A used_by=()
  for vol in "${vols[@]}"; do
    [[ $vol == cc-sandbox-base-* ]] && continue
    # A volume whose backing cannot be read might be backed by any base: keep them all.
    path=$(v vol-dumpxml --pool "$pool" "$vol") || { log "cannot read $vol: no base image removed"; return 0; }
    path=$(sed -n '/<backingStore>/,/<\/backingStore>/s:^ *<path>\(.*\)</path> *$:\1:p' <<<"$path" | head -n 1)
    [[ -n $path ]] && used_by[${path##*/}]=$vol
  done
  for base in "${vols[@]}"; do
    [[ $base =~ ^cc-sandbox-base-[0-9a-f]{64}\.qcow2(\.part(-[0-9]+)*)?$ ]] || continue
    [[ -z ${used_by[$base]:-} ]] || continue
    # A part is another upload's while it is being written: only one untouched for an hour is left over.
    if [[ $base == *.part* ]] && (($(age "$base") < 3600)); then continue; fi
    log "removing base image $base (no volume is backed by it)"
    v vol-delete --pool "$pool" "$base" >/dev/null
  done
}

(($# >= 3)) || die "usage: host-storage.sh pool|image|seed|remove URI DIR ..."
action=$1 uri=$2 dir=$3
shift 3
[[ $dir == /* ]] || die "'$dir' is not an absolute path"
case $action in
  pool)
    ensure_pool
    printf '%s\n' "$pool"
    ;;
  image)
    case ${1:-} in
      file)
        (($# == 2)) || die "usage: image URI DIR file PATH"
        check_image "$2"
        ensure_pool
        upload_image "$2"
        ;;
      fetch)
        (($# >= 3)) || die "usage: image URI DIR fetch SCRIPT ARGS..."
        script=$2
        shift 2
        local_file=$(bash -c "$script" fetch-image "$@")
        check_image "$local_file"
        ensure_pool
        upload_image "$local_file"
        ;;
      *) die "image: 'file' or 'fetch', not '${1:-}'" ;;
    esac
    ;;
  seed)
    (($# >= 2)) || die "usage: seed URI DIR NAME FILE..."
    ensure_pool
    make_seed "$@"
    ;;
  remove)
    (($# == 1)) || die "usage: remove URI DIR NAME"
    remove "$1"
    ;;
  *) die "unknown action '$action'" ;;
esac
