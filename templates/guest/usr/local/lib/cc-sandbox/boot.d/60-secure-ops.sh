#!/bin/bash
# First boot: the secure-ops bridge. Creates the secrets owner and its private home (secrets, sshd
# host key, authorized_keys), generates the agent's bridge key and authorizes it for the dispatcher
# only, pins the host key for secure_run, and starts the bridge's sshd. It needs only the users
# (10-users.sh), and the steps after it nothing of its own:
# boot: alongside
set -euo pipefail
export LC_ALL=C

# shellcheck source=/dev/null
. /etc/cc-sandbox/sandbox.env
# shellcheck source-path=SCRIPTDIR source=../secure-ops-common.sh
. /usr/local/lib/cc-sandbox/secure-ops-common.sh

log() { printf '60-secure-ops: %s\n' "$*" >&2; }

agent=$CC_AGENT_USER
owner=$SECURE_OPS_USER
entry=$(getent passwd "$agent") || { log "agent user $agent does not exist"; exit 1; }
IFS=: read -r _ _ _ _ _ agent_home _ <<<"$entry"

# The owner's login shell is the dispatcher itself (sshd runs it as `SHELL -c COMMAND`), so no
# request ever starts a general shell first, and nothing that logs the owner in gets one.
# '*' rather than '!': no password can ever match, yet sshd (without PAM) does not treat the
# account as locked, so the bridge can log it in with the agent's key.
if ! getent passwd "$owner" >/dev/null; then
  useradd --system --user-group --home-dir "$SECURE_OPS_HOME" --no-create-home \
    --shell "$SECURE_OPS_DISPATCH" --password '*' --comment "cc-sandbox secrets owner" "$owner"
  log "created $owner"
else
  usermod -p '*' -s "$SECURE_OPS_DISPATCH" "$owner"
fi
agent_groups=" $(id -nG "$agent") "
if [[ $agent_groups == *" $owner "* ]]; then
  log "$agent must not be in group $owner"
  exit 1
fi

install -d -o root -g root -m 0755 /var/lib/cc-sandbox /var/log/cc-sandbox
install -d -o "$owner" -g "$owner" -m 0700 "$SECURE_OPS_HOME" "$SECURE_OPS_SSH_DIR" "$SECURE_OPS_SECRETS"

host_key=$SECURE_OPS_SSH_DIR/host_ed25519_key
if [ ! -f "$host_key" ]; then
  runuser -u "$owner" -- ssh-keygen -q -t ed25519 -N '' -C "secure-ops@$(hostname)" -f "$host_key"
  log "generated the bridge's host key"
fi

# The configuration checked as the user the service runs as (it must read the host key, and
# root-only checks do not apply): by the unit's ExecStartPre under systemd, here otherwise.
check_config() { runuser -u "$owner" -- /usr/sbin/sshd -t -f "$SECURE_OPS_SSHD_CONFIG"; }
if [ -d /run/systemd/system ]; then
  # Started now, not waited for: sshd takes a second or more to listen on an emulated VM, while
  # the agent's key is made and authorized below (no key is accepted before that); the end of this
  # step waits for it. The boot runner has had systemd load the unit.
  systemctl enable --no-reload --now --no-block cc-sandbox-secure-ops.service
else
  check_config
fi

agent_key=$agent_home/.ssh/$SECURE_OPS_KEY_NAME
install -d -o "$agent" -g "$agent" -m 0700 "$agent_home/.ssh"
if [ ! -f "$agent_key" ]; then
  runuser -u "$agent" -- ssh-keygen -q -t ed25519 -N '' -C "$agent@secure-ops" -f "$agent_key"
  log "generated $agent's bridge key"
fi

# The agent's key is the only one accepted, and only ever runs the dispatcher.
read -r key_type key_blob _ <"$agent_key.pub"
[ "$key_type" = ssh-ed25519 ] || { log "unexpected key type in $agent_key.pub"; exit 1; }
keys=$SECURE_OPS_SSH_DIR/authorized_keys
printf 'restrict,from="127.0.0.1",command="%s" %s %s %s@secure-ops\n' \
  "$SECURE_OPS_DISPATCH" "$key_type" "$key_blob" "$agent" >"$keys.new"
chown "$owner:$owner" "$keys.new"
chmod 0600 "$keys.new"
mv -f "$keys.new" "$keys"

read -r host_type host_blob _ <"$host_key.pub"
printf '[127.0.0.1]:%s %s %s\n' "$SECURE_OPS_PORT" "$host_type" "$host_blob" >"$SECURE_OPS_KNOWN_HOSTS.new"
chmod 0644 "$SECURE_OPS_KNOWN_HOSTS.new"
mv -f "$SECURE_OPS_KNOWN_HOSTS.new" "$SECURE_OPS_KNOWN_HOSTS"

# The agent reads the operations log; only the secrets owner (the dispatcher) appends to it.
touch "$SECURE_OPS_LOG"
chown "$owner:$owner" "$SECURE_OPS_LOG"
chmod 0644 "$SECURE_OPS_LOG"

if [ -d /run/systemd/system ]; then
  # A start of a unit whose start is under way waits for it, and fails as it does.
  if ! systemctl start cc-sandbox-secure-ops.service; then
    log "error: the bridge did not start; its configuration says:"
    check_config || true
    exit 1
  fi
  /usr/local/sbin/cc-sandbox-secure-ops check
else
  log "systemd is not running; start the bridge with: runuser -u $owner -- /usr/sbin/sshd -D -e -f $SECURE_OPS_SSHD_CONFIG"
fi
log "secure-ops bridge ready on 127.0.0.1:$SECURE_OPS_PORT"
