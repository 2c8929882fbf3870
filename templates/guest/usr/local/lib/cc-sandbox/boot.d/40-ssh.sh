#!/bin/bash
# Puts the SSH hardening (/etc/ssh/sshd_config.d/10-cc-sandbox.conf) into effect: checks the whole
# configuration first, so a bad file stops the boot here instead of locking everyone out at the
# next sshd restart, then reloads sshd if it runs.
set -euo pipefail

readonly dropin=/etc/ssh/sshd_config.d/10-cc-sandbox.conf

log() { printf '40-ssh: %s\n' "$*" >&2; }

[[ -f $dropin ]] || { log "error: $dropin is missing"; exit 1; }
command -v sshd >/dev/null || { log "error: sshd (openssh-server) is not installed"; exit 1; }
grep -Eq '^[[:space:]]*Include[[:space:]]+/etc/ssh/sshd_config\.d/\*\.conf' /etc/ssh/sshd_config ||
  { log "error: /etc/ssh/sshd_config does not include sshd_config.d/*.conf"; exit 1; }

mkdir -p /run/sshd
# What sshd will enforce, as it resolves it (first value wins across the included files); -T checks
# the whole configuration as -t does, and fails as it does. Compared with bash's own matching: a
# process costs tens of milliseconds on an emulated VM.
settings=$(sshd -T -C user=agent,host=localhost,addr=127.0.0.1) || { log "error: sshd rejects its configuration"; exit 1; }
for want in 'passwordauthentication no' 'kbdinteractiveauthentication no' 'permitrootlogin no' \
  'pubkeyauthentication yes' 'x11forwarding no' 'allowusers agent' 'allowusers ubuntu'; do
  [[ $'\n'$settings$'\n' == *$'\n'"$want"$'\n'* ]] || { log "error: sshd resolves a different value for: $want"; exit 1; }
done

# sshd reads its configuration and host keys when it starts: one that started after every such
# file was last written (on a baked image, where the drop-in was there from the start) has them,
# and a reload (a second on an emulated VM) is skipped.
stale=0
if [[ -e /run/sshd.pid ]]; then
  for f in /etc/ssh/sshd_config /etc/ssh/sshd_config.d/* /etc/ssh/ssh_host_*; do
    [[ ! $f -nt /run/sshd.pid ]] || stale=1
  done
else
  stale=1
fi
if ((stale == 0)); then
  log "sshd started after its configuration was written: nothing to reload"
elif [[ -d /run/systemd/system ]]; then
  # Ubuntu 24.04 starts sshd through ssh.socket: a daemon that is not running reads the file when
  # it starts.
  systemctl try-reload-or-restart ssh.service
elif [[ -s /run/sshd.pid ]] && kill -0 "$(<'/run/sshd.pid')" 2>/dev/null; then
  kill -HUP "$(<'/run/sshd.pid')"
fi
log "sshd: keys only, no root login, users agent and ubuntu"
