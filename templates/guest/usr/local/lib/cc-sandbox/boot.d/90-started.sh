#!/bin/bash
# First boot, last step: waits for the units earlier steps started or restarted without waiting
# for them (20-firewall.sh: the firewall, its watcher, and systemd-resolved without its stub), so
# first boot succeeds only if they run. A start of a unit whose start (or restart) is under way
# joins that job: it ends when the job does, and fails as it does.
set -euo pipefail

log() { printf '90-started: %s\n' "$*" >&2; }

# shellcheck source=/dev/null
. /etc/cc-sandbox/sandbox.env
if [[ ! -d /run/systemd/system || ${CC_FIREWALL_ENABLED:-1} != 1 ]]; then
  exit 0
fi
units=(cc-sandbox-firewall.service cc-sandbox-firewall-watch.service)
if ! systemctl start "${units[@]}"; then
  log "error: the firewall did not start:"
  systemctl status --no-pager --lines=20 "${units[@]}" >&2 || true
  exit 1
fi
# Where 20-firewall.sh restarted it (its marker).
if [[ -e /run/cc-sandbox-boot.resolved ]] && ! systemctl start systemd-resolved.service; then
  log "error: systemd-resolved did not start again without its stub listener"
  exit 1
fi
log "firewall and its watcher running"
