#!/bin/bash
# First boot: the egress firewall. Installs what it needs while the network is still open, keeps
# other resolvers off port 53, then enables and starts the firewall and its watcher. Later boots
# bring it up from systemd before the network.
set -euo pipefail

log() { printf '20-firewall: %s\n' "$*" >&2; }

# shellcheck source=/dev/null
. /etc/cc-sandbox/sandbox.env
if [[ ${CC_FIREWALL_ENABLED:-1} != 1 ]]; then
  log "CC_FIREWALL_ENABLED=0: the firewall is not enabled"
  exit 0
fi

missing=()
command -v iptables-legacy-restore >/dev/null || missing+=(iptables)
command -v ipset >/dev/null || missing+=(ipset)
command -v dnsmasq >/dev/null || missing+=(dnsmasq-base)
command -v haproxy >/dev/null || missing+=(haproxy)
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -q
  apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${missing[@]}"
fi
id dnsmasq >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dnsmasq

if [[ ! -d /run/systemd/system ]]; then
  # No systemd (a namespace that stands in for the guest): what the firewall's unit runs; the
  # caller runs the watcher's (cc-sandbox-firewall watch).
  cc-sandbox-firewall up
  log "systemd is not running; start the watcher with: cc-sandbox-firewall watch"
  exit 0
fi

# Only our resolver may own port 53: a distro dnsmasq service would bind every interface. The
# distro's haproxy service would run the package's own configuration: the firewall runs the proxy.
# Disabled only when enabled (an image cc-sandbox builds has it disabled already): `disable` runs
# the SysV script's update-rc.d, which has systemd reload, several seconds each, whatever it finds.
for unit in dnsmasq.service haproxy.service; do
  enabled=$(systemctl is-enabled "$unit" 2>/dev/null) || true
  if [[ $enabled == enabled || $enabled == enabled-runtime ]]; then
    systemctl disable --no-reload "$unit" 2>/dev/null || true
  fi
  if systemctl is-active --quiet "$unit"; then
    systemctl stop "$unit" || true
  fi
done
# resolved reads its drop-in (no stub listener) only when restarted: not waited for either
# (90-started.sh waits). The firewall finds the upstream servers in resolved's file, there while
# it restarts; if it finds none, its watcher reloads it when they appear.
# The marker tells 90-started.sh (and 50-claude-code.sh) to wait for it: mid-restart, resolved is
# briefly inactive, so its state cannot say.
if systemctl is-active --quiet systemd-resolved.service; then
  : >/run/cc-sandbox-boot.resolved
  systemctl restart --no-block systemd-resolved.service
fi

# The boot runner has had systemd load every unit first boot wrote (a reload takes seconds on a
# slow VM, and every `systemctl enable` would do one of its own without --no-reload).
# One transaction: the watcher starts after the firewall (its After=). Starting it runs `up`,
# which fails unless the firewall, the resolver and the proxy are all in place. Not waited for
# here: the next steps need no network and run while it comes up (seconds on a slow VM);
# 90-started.sh waits for it, and first boot fails if it did not start. A step that needs the
# network waits for it first (50-claude-code.sh).
systemctl enable --no-reload --now --no-block cc-sandbox-firewall.service cc-sandbox-firewall-watch.service
log "firewall starting (90-started.sh waits for it)"
