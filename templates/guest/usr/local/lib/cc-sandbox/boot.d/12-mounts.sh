#!/bin/bash
# First boot: the stack's shared folders (libvirt's virtiofs or 9p), whose /etc/fstab lines the
# cloud-config appended, mounted now; later boots mount them from fstab. Not cloud-init's mounts
# module: to mount them it has systemd reload every unit, 3-7 s on an emulated VM. After
# 10-users.sh: its chown of root's files in the agent's home stays on the home's file system, but
# would take a mount point itself, the host's folder, with it. A shared folder that does not mount
# stops first boot: the agent would otherwise work in an empty folder the host never sees.
# Multipass shares folders from the host after first boot: no fstab line names them.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/cc-sandbox/sandbox.env

log() { printf '12-mounts: %s\n' "$*" >&2; }

read -ra shares <<<"${CC_MOUNTS:-}"
declare -A listed=()
while read -r spec file vfstype _; do
  [[ -n $spec && $spec != '#'* ]] || continue
  listed[$file]="$spec ($vfstype)"
done </etc/fstab
for share in "${shares[@]}"; do
  share=${share%/}
  [[ -n ${listed[$share]:-} ]] || continue
  if mountpoint -q "$share"; then
    log "$share is mounted"
    continue
  fi
  mkdir -p "$share"
  mount "$share" || { log "error: the shared folder ${listed[$share]} did not mount on $share"; exit 1; }
  log "mounted ${listed[$share]} on $share"
done
