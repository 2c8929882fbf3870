#!/usr/bin/env bash
# Run libvirt inside a network namespace with one isolated network, so the
# real end-to-end test's VMs can reach each other and the host-side test only
# through that namespace, and never the outside world.
#
# Usage: scripts/libvirt-netns.sh up NS     create NS, start virtlogd + libvirtd in it, start network
#        scripts/libvirt-netns.sh down NS   remove the domains, pools and network made since up,
#                                           stop the daemons, delete NS
# Environment (defaults): CCSBX_NET=ccsbx CCSBX_BRIDGE=ccsbx0 CCSBX_SUBNET=198.18.0 (a /24 of the
# benchmarking range, which no real network uses) CCSBX_SUBNET6=fd00:ccf2:: (a /64 announced to guests,
# so that their IPv6 is real and the guest firewall has something to block) CCSBX_ROUTES= (networks,
# space-separated, that guests route through the bridge's address: where the test's hosts live)
#
# How it stays closed:
# - libvirtd and virtlogd are started with `ip netns exec NS`, so the bridge,
#   libvirt's dnsmasq and every QEMU process live in NS. virsh outside NS still
#   reaches the daemon through its unix socket (qemu:///system).
# - NS has only lo and the bridge, ip_forward=0, and the network has no
#   <forward> element: there is no route out.
# - Names: libvirt's dnsmasq answers only the records added to the network
#   (`virsh net-update NET add dns-host ...`); NS gets a resolv.conf of its own
#   (/etc/netns/NS/resolv.conf, naming NS's loopback, where nothing listens) so
#   it never forwards a query to the host's resolvers.
# - PID 1 is not systemd on the CI machine, so the daemons are started by hand;
#   the script refuses to run if a libvirtd is already running outside NS.
#
# Booting a guest from scripts/build-image.sh in it (libvirt 9.0, virtinst
# 4.1, QEMU 7.2, TCG; these are the flags that worked):
#   qemu-img create -f qcow2 -F qcow2 -b IMG/disk.qcow2 /var/lib/libvirt/images/VM.qcow2 20G
#   cloud-localds /var/lib/libvirt/images/VM-seed.iso user-data meta-data
#   virt-install --connect qemu:///system --import --name VM --memory 2048 --vcpus 2 \
#     --disk path=/var/lib/libvirt/images/VM.qcow2,format=qcow2,bus=virtio \
#     --disk path=/var/lib/libvirt/images/VM-seed.iso,device=disk,bus=virtio,readonly=on \
#     --boot uefi \
#     --network network=ccsbx,model=virtio \
#     --memorybacking source.type=memfd,access.mode=shared \
#     --filesystem type=mount,source.dir=HOSTDIR,target.dir=code,driver.type=virtiofs \
#     --osinfo ubuntu22.04 --virt-type qemu --graphics none --noautoconsole
#   (or, without firmware: --boot kernel=IMG/vmlinuz,initrd=IMG/initrd.img,kernel_args="$(cat IMG/cmdline)")
#   address: virsh domifaddr VM --source lease   (filter on the VM's MAC; leases
#            of removed VMs stay listed until they expire or the network stops)
#   remove:  virsh destroy VM; virsh undefine VM --remove-all-storage --nvram
#            (the seed too, as it is one of the VM's disks, and UEFI's variable
#            store); the backing image is kept.
# - --boot uefi needs OVMF (package ovmf) and its firmware descriptors; on the
#   pc machine type libvirt picks the one without Secure Boot.
# - The seed as a cdrom: behind UEFI on the pc machine, Linux found no device on
#   the IDE bus it was attached to; as a virtio disk it is found by its label.
# - `--cloud-init user-data=F,meta-data=F` works as well, but virt-install
#   leaves that seed out of the persistent definition: once the domain is shut
#   down and started again, the guest has no datasource. A seed attached as a
#   disk stays.
# - virtiofs: libvirt runs QEMU's /usr/lib/qemu/virtiofsd (qemu-system-common)
#   as root; files the guest creates get the guest user's uid/gid on the host.
#   Guest: mount -t virtiofs code /path. 9p also works
#   (--filesystem source=DIR,target=code,accessmode=mapped; guest: mount -t 9p
#   -o trans=virtio,version=9p2000.L code /path), but QEMU writes as
#   libvirt-qemu, so the host sees guest-created files as libvirt-qemu 0600 and
#   DIR must be writable by libvirt-qemu.
# - osinfo-db has no ubuntu24.04: --osinfo ubuntu22.04. No KVM: --virt-type qemu.
# - libvirt chowns the backing image to libvirt-qemu and leaves it so.
# - virt-install registers the pools "images" and "boot" for the directories it
#   uses; down removes those definitions (the files stay).
set -euo pipefail

log() { printf 'libvirt-netns: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

readonly NET=${CCSBX_NET:-ccsbx}
readonly BRIDGE=${CCSBX_BRIDGE:-ccsbx0}
readonly SUBNET=${CCSBX_SUBNET:-198.18.0}
readonly ROUTES=${CCSBX_ROUTES:-}
readonly SUBNET6=${CCSBX_SUBNET6:-fd00:ccf2::}
readonly URI=qemu:///system
readonly LIBVIRTD_PIDFILE=/run/libvirtd.pid
readonly VIRTLOGD_PIDFILE=/run/virtlogd.pid
readonly LOG_DIR=/var/log/libvirt
readonly STATE_DIR=/run/ccsbx-libvirt-netns

usage() { die "usage: $0 up|down NS"; }

virsh_() { virsh --quiet -c "$URI" "$@"; }

# Prints the pid in PIDFILE if that process is alive.
live_pid() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  printf '%s\n' "$pid"
}

in_ns() { # pid ns
  [[ $(stat -Lc %i "/proc/$1/ns/net") == "$(stat -Lc %i "/run/netns/$2")" ]]
}

wait_for_daemon() {
  for _ in $(seq 1 60); do
    virsh_ version >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  die "libvirtd did not answer on $URI within 30 s (see $LOG_DIR/libvirtd.log)"
}

# Routes the guests get by DHCP (option 121, classless static routes), each through the bridge's
# address: the test's "internet" lives on addresses of NS itself outside the guests' own subnet, so
# reaching it is local delivery in NS, never forwarding.
network_xml() {
  local route opt=
  for route in $ROUTES; do opt+=",$route,$SUBNET.1"; done
  cat <<EOF
<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>$NET</name>
  <bridge name='$BRIDGE' stp='off' delay='0'/>
  <ip address='$SUBNET.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='$SUBNET.100' end='$SUBNET.199'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='${SUBNET6}1' prefix='64'/>
EOF
  [[ -z $opt ]] || printf "  <dnsmasq:options>\n    <dnsmasq:option value='dhcp-option=option:classless-static-route%s'/>\n  </dnsmasq:options>\n" "$opt"
  echo '</network>'
}

start_daemon() { # name pidfile args...
  local name=$1 pidfile=$2 pid
  shift 2
  if pid=$(live_pid "$pidfile"); then
    in_ns "$pid" "$ns" || die "$name (pid $pid) is already running outside $ns; stop it first"
    log "$name already running in $ns (pid $pid)"
    return 0
  fi
  log "starting $name in $ns"
  ip netns exec "$ns" "$@"
}

up() {
  if [[ ! -e /run/netns/$ns ]]; then
    log "creating namespace $ns"
    ip netns add "$ns"
  fi
  ip -n "$ns" link set lo up
  # Read by `ip netns exec` in place of /etc/resolv.conf, so before the daemons start.
  mkdir -p "/etc/netns/$ns"
  printf 'nameserver 127.0.0.1\n' >"/etc/netns/$ns/resolv.conf"
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0

  mkdir -p "$LOG_DIR" "$STATE_DIR"
  # Without udev, /dev/kvm stays root-only 0600. libvirt's probe of QEMU then
  # reports KVM enabled while its cache check finds /dev/kvm unusable for
  # libvirt-qemu ("KVM was enabled when probing ..., but it is not available
  # now"), so it re-probes QEMU on every API call and virt-install never gets
  # past "Starting install". Give libvirtd (only: `ip netns exec` runs it in its
  # own mount namespace) a node with the permissions udev would set. Guests
  # still run under TCG (--virt-type qemu).
  local -a kvm_node_fix=()
  if [[ -c /dev/kvm ]] && ! runuser -u libvirt-qemu -- test -r /dev/kvm -a -w /dev/kvm; then
    local node=$STATE_DIR/$ns.kvm
    rm -f "$node"
    mknod -m 0660 "$node" c "$((16#$(stat -c %t /dev/kvm)))" "$((16#$(stat -c %T /dev/kvm)))"
    chgrp kvm "$node"
    # shellcheck disable=SC2016 # expanded by the inner shell
    kvm_node_fix=(sh -c 'mount --bind "$0" /dev/kvm && exec "$@"' "$node")
  fi
  # `ip netns exec` mounts a sysfs of NS's own over /sys, without the cgroup file systems: libvirtd
  # then puts no domain in a cgroup of its own, and libvirt 9.0 dereferences that missing cgroup
  # when it adds a virtiofs share to a running domain (libvirtd segfaults in
  # qemuVirtioFSSetupCgroup). A host with systemd, or any cgroup file system, gives every domain
  # one; so does a cgroup v2 hierarchy of libvirtd's own here.
  # shellcheck disable=SC2016 # expanded by the inner shell
  local -a cgroup_fix=(sh -c 'mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup; exec "$@"' cgroup-fix)
  start_daemon virtlogd "$VIRTLOGD_PIDFILE" virtlogd -d -p "$VIRTLOGD_PIDFILE"
  # libvirtd logs to syslog by default; there is none here.
  start_daemon libvirtd "$LIBVIRTD_PIDFILE" "${cgroup_fix[@]}" "${kvm_node_fix[@]}" \
    env LIBVIRT_LOG_OUTPUTS="3:file:$LOG_DIR/libvirtd.log" libvirtd -d -p "$LIBVIRTD_PIDFILE"
  wait_for_daemon
  # Remember what existed before, so down removes only what came after.
  if [[ ! -f $STATE_DIR/$ns.before ]]; then
    { virsh_ list --all --name | sed 's/^/domain /'
      virsh_ pool-list --all --name | sed 's/^/pool /'
    } >"$STATE_DIR/$ns.before"
  fi

  if ! virsh_ net-info "$NET" >/dev/null 2>&1; then
    log "defining network $NET ($SUBNET.0/24 on $BRIDGE, no forwarding)"
    virsh_ net-define <(network_xml) >/dev/null
  fi
  if [[ $(virsh_ net-info "$NET" | awk '$1 == "Active:" {print $2}') != yes ]]; then
    virsh_ net-start "$NET" >/dev/null
  fi
  # Self-check: the daemon is in NS and NS has no way out.
  local pid
  pid=$(live_pid "$LIBVIRTD_PIDFILE")
  in_ns "$pid" "$ns" || die "libvirtd (pid $pid) is not in $ns"
  [[ -z $(ip -n "$ns" route show default) ]] || die "$ns has a default route"
  [[ $(ip netns exec "$ns" sysctl -n net.ipv4.ip_forward) == 0 ]] || die "$ns forwards IPv4"
  if virsh_ net-dumpxml "$NET" | grep -q '<forward'; then die "network $NET forwards"; fi
  ip -n "$ns" -br addr show "$BRIDGE" >&2
  log "up: network $NET, gateway $SUBNET.1, DHCP $SUBNET.100-199"
}

existed_before() { # kind name
  grep -qxF "$1 $2" "$STATE_DIR/$ns.before" 2>/dev/null
}

down() {
  local pid dom pool
  if [[ ! -e /run/netns/$ns ]]; then
    log "no namespace $ns: nothing to take down"
    return 0
  fi
  if virsh_ version >/dev/null 2>&1; then
    pid=$(live_pid "$LIBVIRTD_PIDFILE") || true
    if [[ -n ${pid:-} ]] && ! in_ns "$pid" "$ns"; then
      die "libvirtd (pid $pid) is not in $ns; not touching it"
    fi
    while read -r dom; do
      if [[ -z $dom ]] || existed_before domain "$dom"; then continue; fi
      log "removing domain $dom"
      virsh_ destroy "$dom" >/dev/null 2>&1 || true
      virsh_ undefine "$dom" --remove-all-storage >/dev/null 2>&1 ||
        virsh_ undefine "$dom" >/dev/null 2>&1 || true
    done < <(virsh_ list --all --name)
    if virsh_ net-info "$NET" >/dev/null 2>&1; then
      log "removing network $NET"
      virsh_ net-destroy "$NET" >/dev/null 2>&1 || true
      virsh_ net-undefine "$NET" >/dev/null
    fi
    # virt-install registers pools for the directories it touches.
    while read -r pool; do
      if [[ -z $pool ]] || existed_before pool "$pool"; then continue; fi
      log "removing pool definition $pool (files are kept)"
      virsh_ pool-destroy "$pool" >/dev/null 2>&1 || true
      virsh_ pool-undefine "$pool" >/dev/null 2>&1 || true
    done < <(virsh_ pool-list --all --name)
  fi

  stop_pidfile libvirtd "$LIBVIRTD_PIDFILE"
  stop_pidfile virtlogd "$VIRTLOGD_PIDFILE"
  # libvirt leaves the network's runtime files behind when its daemon stops.
  rm -rf "/run/libvirt/network/$NET" "/run/libvirt/network/$NET".* \
    "/var/lib/libvirt/dnsmasq/$NET".* "/var/lib/libvirt/dnsmasq/$BRIDGE".*

  # Anything still in the namespace was started by the daemons above.
  for pid in $(ip netns pids "$ns"); do
    log "stopping leftover pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo gone))"
    kill "$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns del "$ns"
  rm -rf "/etc/netns/$ns"
  log "deleted namespace $ns"
  rm -f "$STATE_DIR/$ns.before" "$STATE_DIR/$ns.kvm"
}

stop_pidfile() { # name pidfile
  local pid
  pid=$(live_pid "$2") || return 0
  if ! in_ns "$pid" "$ns"; then
    die "$1 (pid $pid) is not in $ns; not stopping it"
  fi
  log "stopping $1 (pid $pid)"
  kill "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -9 "$pid" 2>/dev/null || true
}

[[ $# -eq 2 ]] || usage
readonly action=$1 ns=$2
[[ $ns =~ ^[A-Za-z0-9_-]{1,32}$ ]] || die "bad namespace name: $ns"
[[ $SUBNET =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || die "CCSBX_SUBNET must be three octets, got $SUBNET"
[[ $SUBNET6 =~ ^[0-9a-f:]+::$ ]] || die "CCSBX_SUBNET6 must be a /64 prefix ending in ::, got $SUBNET6"
[[ $(id -u) -eq 0 ]] || die "must run as root"
for tool in ip virsh libvirtd virtlogd dnsmasq iptables; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install libvirt-daemon-system libvirt-daemon-system-sysv libvirt-clients dnsmasq-base)"
done

case $action in
  up) up ;;
  down) down ;;
  *) usage ;;
esac
