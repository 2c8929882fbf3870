#!/usr/bin/env bash
# share.sh attach|detach URI DOMAIN TAG SOURCE: a project's shared folder, a virtiofs device of the
# domain, added to (or taken from) both the running domain and its definition. Each is done once: a
# run again finds the device where it should be and does nothing. Detaching waits for the guest to
# let go of the device (it acknowledges an unplug in its own time); the guest unmounts it first.
# A domain that is gone has nothing to detach. libvirt matches a filesystem by its target (TAG); a
# TAG already attached from another folder is refused, never taken for this one. attach prints
# `attached` when it added the device to the running domain (the runner takes it away again when
# the worker could not be added).
set -euo pipefail

action=$1 uri=$2 domain=$3 tag=$4 source=$5
[[ $tag =~ ^p-[a-z][a-z0-9-]*$ ]] || { echo "share.sh: not a project's tag: $tag" >&2; exit 2; }

virsh_() { virsh --quiet --connect "$uri" "$@"; }
xml_text() {
  local s=$1
  # Quoted replacements: an unquoted & stands for the match in bash 5.2.
  s=${s//&/"&amp;"} s=${s//</"&lt;"} s=${s//>/"&gt;"} s=${s//\'/"&apos;"} s=${s//\"/"&quot;"} s=${s//$'\t'/"&#9;"}
  printf '%s' "$s"
}
device() {
  printf "<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='%s'/><target dir='%s'/></filesystem>\n" \
    "$(xml_text "$source")" "$tag"
}
# holds live|inactive: that definition of the domain has a filesystem with TAG; its source (as the
# XML writes it) in held_from.
holds() {
  local xml which=()
  [[ $1 == live ]] || which=(--inactive)
  held_from=
  xml=$(virsh_ dumpxml "${which[@]}" "$domain" 2>/dev/null) || return 1
  grep -qF "<target dir='$tag'/>" <<<"$xml" || return 1
  held_from=$(awk -v t="<target dir='$tag'/>" -v q="'" 'BEGIN { RS = "</filesystem>" }
    index($0, t) && match($0, "<source dir=" q "[^" q "]*" q) { print substr($0, RSTART + 13, RLENGTH - 14) }' <<<"$xml")
}
# same_source: the device held is this folder's.
same_source() {
  [[ $held_from == "$(xml_text "$source")" ]] || {
    echo "share.sh: $tag of $domain shares '$held_from', not '$source': remove the project (pulumi up without it), then add it again" >&2
    exit 3
  }
}
running() { [[ $(virsh_ domstate "$domain" 2>/dev/null) == running ]]; }

flags=()
case $action in
  attach)
    if holds inactive; then same_source; else flags+=(--config); fi
    if running; then
      if holds live; then same_source; else flags+=(--live); fi
    fi
    [[ ${#flags[@]} -gt 0 ]] || exit 0
    device | virsh_ attach-device "$domain" /dev/stdin "${flags[@]}" >/dev/null
    [[ " ${flags[*]} " != *" --live "* ]] || echo attached
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
