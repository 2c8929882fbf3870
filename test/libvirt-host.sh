#!/usr/bin/env bash
# A remote libvirt host for tests, and a workstation that reaches it only over SSH.
#   test/libvirt-host.sh up STATE      the host: libvirtd, virtlogd and an sshd in a network namespace
#                                      and a mount namespace of their own (private /run, /etc/libvirt,
#                                      /var/lib/libvirt, /var/log/libvirt, /var/cache/libvirt), with an
#                                      isolated network; the workstation: a network namespace joined
#                                      to the host by one veth pair, nothing else
#   test/libvirt-host.sh ws STATE CMD… CMD on the workstation: its network namespace, HOME and /root
#                                      the state's home (a key the host trusts, the host's key known),
#                                      and no libvirt of its own (/run/libvirt empty)
#   test/libvirt-host.sh host STATE CMD…  CMD on the host, in its namespaces
#   test/libvirt-host.sh down STATE    stops everything and deletes both namespaces (STATE stays)
# The host is HOST_ADDR (198.18.9.2), SSH as root with STATE/home/.ssh/id_ed25519. No route out of
# either namespace; the host's network forwards nothing. Needs root, libvirt, QEMU and OpenSSH.
set -euo pipefail

readonly WS_ADDR=198.18.9.1 HOST_ADDR=198.18.9.2
readonly HOST_NET=ccsbx-remote HOST_BRIDGE=ccsbxr0 HOST_SUBNET=198.18.10

log() { printf 'libvirt-host: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs in the host's namespaces as its first process: private mounts, the daemons, then it waits.
host_init() {
  local st=$1 d
  echo $$ >"$st/host.nspid"
  mount -t tmpfs -o mode=0755 cc-host-run /run
  mkdir -p /run/libvirt /run/sshd /run/lock
  for d in /var/lib/libvirt /var/log/libvirt /var/cache/libvirt; do
    mkdir -p "$d"
    mount -t tmpfs -o mode=0755 cc-host "$d"
  done
  mkdir -p /var/lib/libvirt/qemu /var/lib/libvirt/dnsmasq /var/lib/libvirt/images /var/log/libvirt/qemu
  # The daemons' configuration as installed, without the definitions of this machine's own libvirt.
  rm -rf "$st/etc-libvirt"
  cp -a /etc/libvirt "$st/etc-libvirt"
  find "$st/etc-libvirt" -name '*.xml' -path '*/qemu/*' -delete
  rm -rf "$st/etc-libvirt/storage" "$st/etc-libvirt/qemu/networks/autostart"
  mount --bind "$st/etc-libvirt" /etc/libvirt
  # libvirt's dnsmasq forwards what it cannot answer to resolv.conf's servers: none here.
  printf 'nameserver 127.0.0.1\n' >"$st/resolv.conf"
  mount --bind "$st/resolv.conf" /etc/resolv.conf
  # Without udev /dev/kvm is root's only, and libvirt re-probes QEMU on every call (scripts/libvirt-netns.sh).
  if [[ -c /dev/kvm ]] && ! runuser -u libvirt-qemu -- test -r /dev/kvm -a -w /dev/kvm; then
    mknod -m 0660 /run/kvm c "$((16#$(stat -c %t /dev/kvm)))" "$((16#$(stat -c %T /dev/kvm)))"
    chgrp kvm /run/kvm
    mount --bind /run/kvm /dev/kvm
  fi
  virtlogd -d
  LIBVIRT_LOG_OUTPUTS="3:file:$st/libvirtd.log" libvirtd -d
  /usr/sbin/sshd -f /dev/null -E "$st/sshd.log" -o "PidFile=/run/sshd.pid" -o "HostKey=$st/host_key" \
    -o "ListenAddress=$HOST_ADDR:22" -o "AuthorizedKeysFile=$st/authorized_keys" -o "PermitRootLogin=prohibit-password" \
    -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o UsePAM=no -o StrictModes=no -o AllowTcpForwarding=yes
  for _ in $(seq 1 60); do
    virsh -q -c qemu:///system version >/dev/null 2>&1 && break
    sleep 0.5
  done
  virsh -q -c qemu:///system net-define /dev/stdin >/dev/null <<EOF
<network>
  <name>$HOST_NET</name>
  <bridge name='$HOST_BRIDGE' stp='off' delay='0'/>
  <ip address='$HOST_SUBNET.1' netmask='255.255.255.0'>
    <dhcp><range start='$HOST_SUBNET.100' end='$HOST_SUBNET.199'/></dhcp>
  </ip>
</network>
EOF
  virsh -q -c qemu:///system net-start "$HOST_NET" >/dev/null
  touch "$st/host.ready"
  exec sleep infinity
}

host_pid() { cat "$1/host.pid"; }
up() {
  local st=$1
  mkdir -p "$st/home/.ssh"
  chmod 0700 "$st/home" "$st/home/.ssh"
  rm -f "$st/host.ready"
  [[ -f $st/host_key ]] || ssh-keygen -q -t ed25519 -N '' -C cc-test-host -f "$st/host_key"
  [[ -f $st/home/.ssh/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C cc-test-ws -f "$st/home/.ssh/id_ed25519"
  cp "$st/home/.ssh/id_ed25519.pub" "$st/authorized_keys"
  printf '%s %s\n' "$HOST_ADDR" "$(cut -d' ' -f1,2 "$st/host_key.pub")" >"$st/home/.ssh/known_hosts"

  ip netns add "$HOST_NS"
  ip netns add "$WS_NS"
  ip link add "$VETH_WS" type veth peer name "$VETH_HOST"
  ip link set "$VETH_WS" netns "$WS_NS"
  ip link set "$VETH_HOST" netns "$HOST_NS"
  ip -n "$WS_NS" addr add "$WS_ADDR/24" dev "$VETH_WS"
  ip -n "$HOST_NS" addr add "$HOST_ADDR/24" dev "$VETH_HOST"
  for ns in "$WS_NS" "$HOST_NS"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0
  done
  ip -n "$WS_NS" link set "$VETH_WS" up
  ip -n "$HOST_NS" link set "$VETH_HOST" up

  # setsid: the host outlives the shell that started it, until down.
  setsid ip netns exec "$HOST_NS" unshare --mount --propagation private -- \
    bash -c "$(declare -f host_init); HOST_ADDR=$HOST_ADDR HOST_NET=$HOST_NET HOST_BRIDGE=$HOST_BRIDGE HOST_SUBNET=$HOST_SUBNET host_init \"\$1\"" \
    host-init "$st" >"$st/host.out" 2>&1 </dev/null &
  echo $! >"$st/host.pid"
  for _ in $(seq 1 120); do
    [[ -f $st/host.ready ]] && break
    kill -0 "$(host_pid "$st")" 2>/dev/null || die "the host did not start: $(cat "$st/host.out")"
    sleep 0.5
  done
  [[ -f $st/host.ready ]] || die "the host was not ready within 60 s: $(cat "$st/host.out")"
  [[ -z $(ip -n "$WS_NS" route show default) && -z $(ip -n "$HOST_NS" route show default) ]] || die "a namespace has a default route"
  log "up: host $HOST_ADDR ($HOST_NS), workstation $WS_ADDR ($WS_NS)"
}

on_host() {
  local st=$1
  shift
  nsenter -t "$(cat "$st/host.nspid")" -m -n -- "$@"
}

on_ws() {
  local st=$1
  shift
  # shellcheck disable=SC2016 # expanded by the inner shell
  ip netns exec "$WS_NS" unshare --mount --propagation private -- \
    bash -c 'mount --bind "$1/home" /root && { [[ ! -d /run/libvirt ]] || mount -t tmpfs -o mode=0755 cc-ws-libvirt /run/libvirt; } && shift && exec env HOME=/root "$@"' \
    ws "$st" "$@"
}

down() {
  local st=$1 pid
  if [[ -f $st/host.pid ]]; then
    pid=$(host_pid "$st")
    kill "$pid" 2>/dev/null || true
  fi
  for ns in "$HOST_NS" "$WS_NS"; do
    [[ -e /run/netns/$ns ]] || continue
    for pid in $(ip netns pids "$ns"); do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns"
  done
  rm -f "$st/host.pid" "$st/host.nspid" "$st/host.ready"
  log "down"
}

(($# >= 2)) || die "usage: $0 up|down STATE | ws|host STATE CMD..."
[[ $(id -u) -eq 0 ]] || die "must run as root"
action=$1 state=$2
shift 2
# Names of this state's own, so that two runs on one machine (CI and a developer) never meet.
tag=$(printf '%s' "$(realpath -m -- "$state")" | sha256sum | cut -c1-6)
readonly HOST_NS=ccsbx-rh-$tag WS_NS=ccsbx-rw-$tag VETH_WS=crw$tag VETH_HOST=crh$tag
case $action in
  up) up "$state" ;;
  down) down "$state" ;;
  ws) on_ws "$state" "$@" ;;
  host) on_host "$state" "$@" ;;
  *) die "unknown action $action" ;;
esac
