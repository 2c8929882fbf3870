#!/bin/bash
# First boot: the shared folders' repositories get their git configuration and hooks pinned
# read-only now (12-mounts.sh has mounted the folders), by the service that keeps doing so for
# repositories that appear later, enabled for this and every later boot.
set -euo pipefail

log() { printf '70-shares: %s\n' "$*" >&2; }

if [[ -d /run/systemd/system ]]; then
  # The boot runner has had systemd load the unit. Starting it protects (its ExecStartPre): a pass
  # of its own here would walk every share twice, seconds on a slow VM.
  systemctl enable --no-reload --now cc-sandbox-shares.service
else
  cc-sandbox-shares protect
  log "systemd is not running; keep later repositories protected with: cc-sandbox-shares watch"
fi
cc-sandbox-shares status >&2 || { log "error: a shared repository is still open to the agent"; exit 1; }
