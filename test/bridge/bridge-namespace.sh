#!/bin/bash
# Builds the secure-ops bridge for real inside the private mount + network + PID namespaces that
# bridge.test.ts starts, then holds them open. /etc, /usr/local and /var are overlays whose changes
# vanish with the namespace; /home, /opt, /tmp and /dev are fresh tmpfs. The host's files, users and
# network are never changed.
#   bridge-namespace.sh STAGE WORK
# STAGE holds the rendered guest files (files/<guest path>, manifest of "MODE PATH" lines) and
# deploy-token; WORK holds the overlays' upper layers. Prints READY when the bridge is up.
set -euo pipefail

stage=$1
work=$2

ip link set lo up
# shellcheck source-path=SCRIPTDIR source=../guest-root.sh
. "$(dirname "$0")/../guest-root.sh"
guest_overlays "$work" /etc /usr/local /var
while read -r mode path; do
  install -D -m "$mode" -o root -g root "$stage/files$path" "$path"
done <"$stage/manifest"
token=$(cat "$stage/deploy-token")
conf=$(cat "$stage/secure-ops.conf")
# STAGE and WORK live under /tmp: from here on they are hidden.
mount -t tmpfs -o mode=0755 tmpfs /home
mount -t tmpfs -o mode=0755 tmpfs /opt
mount -t tmpfs -o mode=1777 tmpfs /tmp
# A /dev of its own, so nothing done to the host's device nodes meanwhile affects the test.
mount -t tmpfs -o mode=0755,nosuid tmpfs /dev
for node in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name major minor <<<"$node"
  mknod -m 0666 "/dev/$name" c "$major" "$minor"
done
mkdir /dev/pts /dev/shm
chmod 1777 /dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
ln -s /proc/self/fd /dev/fd

# What cloud-init does before the boot steps: its users (/home is a fresh tmpfs by now).
guest_users

/usr/local/lib/cc-sandbox/boot.d/15-proc.sh
/usr/local/lib/cc-sandbox/boot.d/60-secure-ops.sh

# The scripts the stack allows, as a developer would install them: root-owned, in root-owned dirs.
install -d -m 0755 /opt/ops
write_script() { # PATH MODE, body on stdin
  cat >"$1"
  chmod "$2" "$1"
}
write_script /opt/ops/token-digest.sh 0755 <<'EOF'
#!/bin/bash
set -euo pipefail
printf 'sha256=%s\n' "$(sha256sum <"$CC_SECRETS_DIR/deploy-token" | cut -d' ' -f1)"
EOF
write_script /opt/ops/deploy.sh 0755 <<'EOF'
#!/bin/bash
set -euo pipefail
printf 'deploying to %s with token sha256=%s\n' "$1" "$(sha256sum <"$CC_SECRETS_DIR/deploy-token" | cut -d' ' -f1)"
EOF
write_script /opt/ops/echo-args.sh 0755 <<'EOF'
#!/bin/bash
set -euo pipefail
printf 'argc=%d\n' "$#"
printf 'arg=%s\n' "$@"
EOF
# Holds the secret in its environment and open on a descriptor while it runs.
write_script /opt/ops/hold-secret.sh 0755 <<'EOF'
#!/bin/bash
set -euo pipefail
exec 3<"$CC_SECRETS_DIR/deploy-token"
DEPLOY_TOKEN=$(cat "$CC_SECRETS_DIR/deploy-token")
export DEPLOY_TOKEN
echo holding
exec sleep 4
EOF
# Passes the secret on a command line, as `curl -H "Authorization: Bearer ..."` would.
write_script /opt/ops/token-arg.sh 0755 <<'EOF'
#!/bin/bash
set -euo pipefail
exec bash -c 'echo holding; exec sleep 4' token-arg "--token=$(cat "$CC_SECRETS_DIR/deploy-token")"
EOF
write_script /opt/ops/loose.sh 0777 <<'EOF'
#!/bin/bash
echo loose
EOF
ln -s /opt/ops/token-digest.sh /opt/ops/link.sh
# A directory the agent owns: whatever sits in it is the agent's to swap.
install -d -m 0755 -o agent -g agent /opt/agent-ops
write_script /opt/agent-ops/run.sh 0755 <<'EOF'
#!/bin/bash
echo run
EOF

printf '%s' "$token" | cc-sandbox-secure-ops install-secret deploy-token
printf '%s\n' "$conf" | cc-sandbox-secure-ops apply -

# What cc-sandbox-secure-ops.service runs, with the one capability it gives (no systemd here; the
# unit logs to the journal).
install -m 0600 -o ccsecrets -g ccsecrets /dev/null /var/log/cc-sandbox/secure-ops-sshd.log
setpriv --reuid=ccsecrets --regid=ccsecrets --init-groups --inh-caps=+net_bind_service --ambient-caps=+net_bind_service -- /usr/sbin/sshd -D -E /var/log/cc-sandbox/secure-ops-sshd.log \
  -f /etc/cc-sandbox/secure-ops-sshd_config &
cc-sandbox-secure-ops check
echo READY
wait
