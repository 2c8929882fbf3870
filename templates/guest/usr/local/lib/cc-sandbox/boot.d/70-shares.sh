#!/bin/bash
# First boot: the shared folders' repositories get their git configuration and hooks pinned
# read-only now (12-mounts.sh has mounted the folders), and the service that keeps doing
# so for repositories that appear later is enabled for this and every later boot.
set -euo pipefail

log() { printf '70-shares: %s\n' "$*" >&2; }

cc-sandbox-shares protect
if [[ -d /run/systemd/system ]]; then
  # The boot runner has had systemd load the unit.
  systemctl enable --no-reload --now cc-sandbox-shares.service
else
  log "systemd is not running; keep later repositories protected with: cc-sandbox-shares watch"
fi
cc-sandbox-shares status >&2 || { log "error: a shared repository is still open to the agent"; exit 1; }
