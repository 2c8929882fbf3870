#!/usr/bin/env bash
# share.sh attach|detach URI DOMAIN TAG SOURCE: a project's shared folder, a virtiofs device of the
# domain, added to (or taken from) both the running domain and its definition. Each is done once: a
# run again finds the device where it should be and does nothing. Detaching waits for the guest to
# let go of the device (it acknowledges an unplug in its own time); the guest unmounts it first.
# A domain that is gone has nothing to detach. libvirt matches a filesystem by its target (TAG).
set -euo pipefail

action=$1 uri=$2 domain=$3 tag=$4 source=$5
[[ $tag =~ ^p-[a-z][a-z0-9-]*$ ]] || { echo "share.sh: not a project's tag: $tag" >&2; exit 2; }

virsh_() { virsh --quiet --connect "$uri" "$@"; }
xml_text() {
  local s=$1
  # Quoted replacements: an unquoted & stands for the match in bash 5.2.
  s=${s//&/"&amp;"} s=${s//</"&lt;"} s=${s//>/"&gt;"} s=${s//\'/"&apos;"} s=${s//\"/"&quot;"}
  printf '%s' "$s"
}
device() {
  printf "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='%s'/><target dir='%s'/></filesystem>\n" \
    "$(xml_text "$source")" "$tag"
}
# holds live|inactive: that definition of the domain has the device.
holds() {
  local xml which=()
  [[ $1 == live ]] || which=(--inactive)
  xml=$(virsh_ dumpxml "${which[@]}" "$domain" 2>/dev/null) || return 1
  grep -qF "<target dir='$tag'/>" <<<"$xml"
}
running() { [[ $(virsh_ domstate "$domain" 2>/dev/null) == running ]]; }

flags=()
case $action in
  attach)
    holds inactive || flags+=(--config)
    if running && ! holds live; then flags+=(--live); fi
    [[ ${#flags[@]} -gt 0 ]] || exit 0
    device | virsh_ attach-device "$domain" /dev/stdin "${flags[@]}" >/dev/null
    ;;
  detach)
    ! holds inactive || flags+=(--config)
    if running && holds live; then flags+=(--live); fi
    [[ ${#flags[@]} -gt 0 ]] || exit 0
    device | virsh_ detach-device "$domain" /dev/stdin "${flags[@]}" >/dev/null
    [[ " ${flags[*]} " == *" --live "* ]] || exit 0
    for _ in $(seq 1 60); do
      holds live || exit 0
      sleep 1
    done
    echo "share.sh: $tag is still attached to $domain 60 s after it was detached" >&2
    exit 1
    ;;
  *) echo "usage: share.sh attach|detach URI DOMAIN TAG SOURCE" >&2; exit 2 ;;
esac
