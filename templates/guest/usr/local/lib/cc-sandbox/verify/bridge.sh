# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# cc-sandbox-verify's check of the credential bridge (bridge).
# Sourced by /usr/local/bin/cc-sandbox-verify, never run: ok/fail/skip and as_agent are in scope.

# The credential bridge: its sshd on loopback only, the dispatcher answering (and the secrets
# owner's only shell), refusing what is not listed, the secrets owner's files closed to the agent.
check_bridge() {
  if ! can_run_as_agent; then
    skip bridge "run as root or as $agent"
    return
  fi
  local common=/usr/local/lib/cc-sandbox/secure-ops-common.sh
  if [[ ! -x /usr/local/bin/secure_run || ! -r $common ]]; then
    fail bridge "secure_run or $common is not installed"
    return
  fi
  # The bridge's own names: user, port, dispatcher, secrets directory.
  # shellcheck source-path=SCRIPTDIR source=../secure-ops-common.sh
  . "$common"
  local _ local_addr state listening=0 beyond=0 f out shell port
  # /proc/net/tcp: the port in hex after the address (0100007F is 127.0.0.1); 0A is LISTEN.
  printf -v port '%04X' "$SECURE_OPS_PORT"
  for f in /proc/net/tcp /proc/net/tcp6; do
    while read -r _ local_addr _ state _; do
      [[ $state == 0A && $local_addr == *:$port ]] || continue
      if [[ $local_addr == 0100007F:$port ]]; then listening=1; else beyond=1; fi
    done <"$f"
  done
  if ((beyond)); then
    fail bridge-loopback "port $SECURE_OPS_PORT is bound beyond 127.0.0.1"
  elif ((listening)); then
    ok "bridge-loopback: sshd on 127.0.0.1:$SECURE_OPS_PORT only"
  else
    fail bridge-loopback "nothing listens on 127.0.0.1:$SECURE_OPS_PORT"
  fi
  shell=$(getent passwd "$SECURE_OPS_USER" | cut -d: -f7)
  if [[ $shell != "$SECURE_OPS_DISPATCH" ]]; then
    fail bridge-dispatcher "the secrets owner's login shell is ${shell:-missing}, not the dispatcher"
  elif out=$(as_agent /usr/local/bin/secure_run 2>&1) && [[ $out == *"Allowed scripts"* ]]; then
    ok "bridge-dispatcher: secure_run reaches the dispatcher, the secrets owner's only shell"
  else
    fail bridge-dispatcher "secure_run did not reach the dispatcher: ${out//$'\n'/ }"
  fi
  if as_agent /usr/local/bin/secure_run /bin/cat "$SECURE_OPS_CONF" >/dev/null 2>&1; then
    fail bridge-refuses "the dispatcher ran a script the stack does not list"
  else
    ok "bridge-refuses: a script the stack does not list is refused"
  fi
  if as_agent ls "$SECURE_OPS_SECRETS" >/dev/null 2>&1; then
    fail bridge-secrets "$agent can list the secrets owner's directory"
  else
    ok "bridge-secrets: $agent cannot list the secrets"
  fi
}
