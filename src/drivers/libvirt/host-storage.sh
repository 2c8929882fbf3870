#!/usr/bin/env bash
# A remote libvirt host's storage, through libvirt's own API (virsh over the stack's URI): nothing
# is run on the host but libvirtd, and nothing is written to this workstation's libvirt.
#   host-storage.sh pool   URI DIR                    a running pool whose target is DIR; prints its name
#   host-storage.sh image  URI DIR file PATH          uploads PATH (a file here) once; prints the volume's path there
#   host-storage.sh image  URI DIR fetch SCRIPT ARGS… downloads and verifies (SCRIPT: fetch-image.sh, with ARGS), then as file
#   host-storage.sh seed   URI DIR VOLUME FILE…        the NoCloud seed of FILEs (user-data, meta-data) as VOLUME, made anew
#   host-storage.sh remove URI DIR NAME               a VM's leftover volumes, then every base image no volume is backed by
# - The pool: the one whose target path is DIR, whatever its name (an administrator's own), else
#   cc-sandbox-<hash of DIR>, defined, built, started and marked autostart. `remove` never defines one.
# - A base image is kept as cc-sandbox-base-<sha256>.qcow2: uploaded to a .part volume, then cloned
#   to that name, so a volume by that name is always whole; one already there is used as it is.
# - A seed is uploaded whole each create (it holds that VM's first-boot data) and is one of the VM's
#   disks, so a reboot keeps it and `undefine --remove-all-storage` removes it.
# - A base image goes when no volume in the pool is backed by it any more (another VM's disk keeps it).
set -euo pipefail

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
    v pool-build "$pool" >/dev/null
    v pool-autostart "$pool" >/dev/null
  fi
  if [[ $(v pool-info "$pool" | awk '$1 == "State:" { print $2 }') != running ]]; then
    v pool-start "$pool" >/dev/null
  fi
  # Files made on the host since libvirt last looked become volumes.
  v pool-refresh "$pool" >/dev/null
}

has_vol() { v vol-info --pool "$pool" "$1" >/dev/null 2>&1; }

upload_image() { # local file
  local file=$1 sum vol part
  [[ -f $file && -r $file ]] || die "$file is not a readable file on this workstation"
  sum=$(sha256sum <"$file" | cut -c1-64)
  vol=cc-sandbox-base-$sum.qcow2
  part=$vol.part
  if has_vol "$vol"; then
    log "base image $vol is already in pool $pool"
  else
    log "uploading $file to pool $pool as $vol"
    if has_vol "$part"; then v vol-delete --pool "$pool" "$part" >/dev/null; fi
    v vol-create-as "$pool" "$part" "$(stat -c %s "$file")" --format raw >/dev/null
    # shellcheck disable=SC2064 # the names are fixed now
    trap "virsh --quiet --connect '$uri' vol-delete --pool '$pool' '$part' >/dev/null 2>&1 || true" EXIT
    v vol-upload --pool "$pool" "$part" "$file"
    v vol-clone --pool "$pool" "$part" "$vol" >/dev/null
    v vol-delete --pool "$pool" "$part" >/dev/null
    trap - EXIT
  fi
  v vol-path --pool "$pool" "$vol"
}

make_seed() { # volume files...
  local vol=$1 tmp
  shift
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # the name is fixed now
  trap "rm -rf '$tmp'" EXIT
  genisoimage -quiet -output "$tmp/seed.iso" -volid cidata -joliet -rock "$@"
  # A seed left by a create that failed before its VM was defined.
  if has_vol "$vol"; then v vol-delete --pool "$pool" "$vol" >/dev/null; fi
  v vol-create-as "$pool" "$vol" "$(stat -c %s "$tmp/seed.iso")" --format raw >/dev/null
  v vol-upload --pool "$pool" "$vol" "$tmp/seed.iso"
}

# backing VOLUME: the path of the file VOLUME is backed by, if any.
backing() { v vol-dumpxml --pool "$pool" "$1" | sed -n '/<backingStore>/,/<\/backingStore>/s:^ *<path>\(.*\)</path> *$:\1:p' | head -n 1; }

remove() { # name
  local name=$1 vol base used
  find_pool
  [[ -n $pool ]] || { log "no storage pool at $dir on the host: nothing to remove"; return 0; }
  v pool-refresh "$pool" >/dev/null
  for vol in "$name.qcow2" "$name-seed.iso"; do
    if has_vol "$vol"; then
      log "removing volume $vol"
      v vol-delete --pool "$pool" "$vol" >/dev/null
    fi
  done
  local -a vols=()
  mapfile -t vols < <(v vol-list --pool "$pool" | awk 'NF { print $1 }')
  local -A used_by=()
  for vol in "${vols[@]}"; do
    [[ $vol == cc-sandbox-base-* ]] && continue
    used=$(backing "$vol") || used=
    [[ -n $used ]] && used_by[$used]=$vol
  done
  for base in "${vols[@]}"; do
    [[ $base =~ ^cc-sandbox-base-[0-9a-f]{64}\.qcow2(\.part)?$ ]] || continue
    if [[ -n ${used_by[$(v vol-path --pool "$pool" "$base")]:-} ]]; then continue; fi
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
    ensure_pool
    case ${1:-} in
      file) (($# == 2)) || die "usage: image URI DIR file PATH"; upload_image "$2" ;;
      fetch)
        (($# >= 3)) || die "usage: image URI DIR fetch SCRIPT ARGS..."
        script=$2
        shift 2
        local_file=$(bash -c "$script" fetch-image "$@")
        upload_image "$local_file"
        ;;
      *) die "image: 'file' or 'fetch', not '${1:-}'" ;;
    esac
    ;;
  seed)
    (($# >= 2)) || die "usage: seed URI DIR VOLUME FILE..."
    ensure_pool
    make_seed "$@"
    ;;
  remove)
    (($# == 1)) || die "usage: remove URI DIR NAME"
    remove "$1"
    ;;
  *) die "unknown action '$action'" ;;
esac
