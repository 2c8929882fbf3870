#!/bin/bash
# Processes are private to their user: /proc is mounted with hidepid=invisible, so the agent sees
# neither the processes of other users nor their command lines and environments (a script the
# credential bridge runs as the secrets owner may pass a token as an argument). Root sees all.
# The option goes into /etc/fstab, which systemd-remount-fs applies to /proc at every boot, and is
# applied now with a remount.
set -euo pipefail

readonly fstab=/etc/fstab
readonly line='proc /proc proc defaults,hidepid=invisible 0 0'

log() { printf '15-proc: %s\n' "$*" >&2; }

if grep -Eq '^[[:space:]]*proc[[:space:]]+/proc[[:space:]]' "$fstab" 2>/dev/null; then
  grep -qxF "$line" "$fstab" || sed -i -E "s|^[[:space:]]*proc[[:space:]]+/proc[[:space:]].*$|$line|" "$fstab"
else
  printf '%s\n' "$line" >>"$fstab"
fi
mount -o remount,hidepid=invisible /proc
grep -Eq '^proc /proc proc [^ ]*hidepid=(invisible|2)' /proc/self/mounts ||
  { log "error: /proc is not mounted with hidepid=invisible after the remount"; exit 1; }
log "/proc: other users' processes are invisible"

# systemd would still tell any user every unit's processes with their command lines (read from /proc
# as root): /etc/dbus-1/system.d/cc-sandbox-processes.conf leaves that to root. The bus reads it
# again now, in case it started before the file was written.
if [[ -S /run/dbus/system_bus_socket ]] && command -v busctl >/dev/null; then
  busctl call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig >/dev/null ||
    log "warning: the system bus did not reload its policy"
fi
