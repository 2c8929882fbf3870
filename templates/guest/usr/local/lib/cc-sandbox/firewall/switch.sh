# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# Switching: the one path both `up` and `apply` take, lockdown, and the self-check.
# Sourced by /usr/local/sbin/cc-sandbox-firewall, never run: its constants and log() are in scope.

# ---------------------------------------------------------------------------------------------
# Switching: the one path both `up` and `apply` take.

# The background jobs switch_to started (lockdown waits for them).
switch_jobs=()

# switch_to ALLOWLIST_FILE: validate, build everything, test it, then swap in. Any failure before
# the swap leaves the live state as it was.
switch_to() {
  local file=$1 parsed=${2:-} conf=$work/dnsmasq.conf.new rules=$work/rules.v4.new rules6=$work/rules.v6 set_file=$work/sets.new
  # With live rules to protect (a reload), everything is built under temporary names and tested
  # first; from a clean state (boot, after down) the new state is loaded directly.
  local protect=0
  [[ ! -s $expected_rules ]] || protect=1
  ((protect)) || [[ -n $parsed ]] || conf=$resolver_conf
  if [[ -z $parsed ]]; then
    find_upstreams
    load_plan "$file" "$conf" || return 2
  fi
  local resolver="" proxy=""
  if ((protect == 0)); then
    # From a clean state the proxy starts first, while everything else is built (it takes tens of
    # milliseconds to start; until the rules redirect to it, nothing reaches it).
    write_proxy_lists "$proxy_dir"
    write_proxy_conf
    launch_proxy
    proxy=$PROXY_STARTING
  fi
  write_rules "$rules"
  # IPv6's rules change only with the sandbox's users: load them alongside the rest (two cores).
  write_rules_v6 "$rules6"
  ip6tables-legacy-restore -w 5 <"$rules6" &
  local v6=$!
  switch_jobs+=("$v6")
  if ((protect)); then
    ensure_base_sets || { log "building the base sets failed"; return 1; }
    dnsmasq --test --conf-file="$conf" >/dev/null 2>&1 ||
      { dnsmasq --test --conf-file="$conf" || true; log "resolver config rejected"; return 1; }
    # The old resolver stops before the live addresses are carried over: an answer it gave during
    # the switch would otherwise put a removed name's address into the new sets. Until the new
    # one starts, lookups fail; nothing is opened.
    stop_resolver
    # undo: a failure before the swap leaves the old state, with its resolver running again.
    undo() { list_sets; destroy_temp_sets; start_resolver || log "the previous resolver did not start again"; }
    list_sets
    destroy_temp_sets
    write_set_restore temp >"$set_file"
    ipset restore <"$set_file" || { undo; log "building the new sets failed"; return 1; }
    ensure_github_set || { undo; return 1; }
    write_rules "$work/rules.v4.test" temp
    iptables-legacy-restore -w 5 --test <"$work/rules.v4.test" ||
      { undo; log "new rules rejected by iptables-legacy-restore --test"; return 1; }
    # From here on, each step only narrows or switches: rules reference final set names.
    swap_sets | ipset restore
  else
    live_sets=' '
    # The fixed sets and the policy's, in one restore.
    link_nets
    if ! { base_set_cmds && write_set_restore; } >"$set_file" || ! ipset -exist restore <"$set_file"; then
      ipset destroy "$link_tmp_set" 2>/dev/null
      log "building the sets failed"
      return 1
    fi
    loaded_link_nets=$LINK_NETS
    ensure_github_set || return 1
    # Nothing to protect: the resolver can start while the rules load (its sets exist).
    [[ $conf == "$resolver_conf" ]] && { start_resolver & resolver=$!; switch_jobs+=("$resolver"); }
  fi
  # Once the new rules load (after a swap, the old state is gone; from a clean state, the rules
  # are live), a failure is a half-made switch (3): `apply` locks down as `up` does.
  local after=3
  iptables-legacy-restore -w 5 <"$rules" || { log "loading the new rules failed"; return "$after"; }
  wait "$v6" || { log "loading IPv6 rules failed"; return "$after"; }
  fallbacks_off || { log "the nftables LOCKDOWN table could not be removed"; return "$after"; }
  ((protect == 0)) || destroy_unused_sets
  # The tables and the fixed sets are final from here: they are read back (the state ON is checked
  # against) and the policy is hashed (the host can compute the same) while the resolver and the
  # proxy start or take the new policy (two cores).
  { live_tables >"$work/tables.new" 9>&-; } &
  local reading=$!
  { sha256sum <"$file" >"$work/policy.sum" 9>&-; } &
  local hashing=$!
  switch_jobs+=("$reading" "$hashing")
  [[ $conf == "$resolver_conf" ]] || mv -f "$conf" "$resolver_conf"
  # Every lookup to the filtering resolver, already while it starts (until then, lookups fail).
  point_resolv_conf
  if [[ -n $resolver ]]; then
    wait "$resolver" || { wait "$reading" "$hashing" || true; log "the resolver did not start: names will not resolve (still closed)"; return "$after"; }
  else
    start_resolver || { wait "$reading" "$hashing" || true; log "the resolver did not start: names will not resolve (still closed)"; return "$after"; }
  fi
  # The proxy takes the new lists in place (a restart would cut every open connection), then
  # closes the connections they no longer allow. Not running: it starts with them.
  local listening=check
  if [[ -n $proxy ]]; then
    await_proxy || { wait "$reading" "$hashing" || true; log "the proxy did not start: TLS and HTTP ports are closed"; return "$after"; }
    listening='proxy-listening'
  elif write_proxy_lists "$proxy_dir" && proxy_running && update_proxy_lists; then
    cut_sessions || log "warning: could not close the connections the new allowlist no longer allows"
  else
    # A new proxy process: every connection the old one carried is gone with it.
    : >"$work/proxy.clients"
    write_proxy_conf
    start_proxy || { wait "$reading" "$hashing" || true; log "the proxy did not start: TLS and HTTP ports are closed"; return "$after"; }
    listening='proxy-listening'
  fi
  # Then the connections that went straight to an address (raw ports, root's own).
  ((protect == 0)) || cut_connections
  # The state ON is checked against must be whole; a policy hash that could not be taken is only
  # missing from `status`.
  local tables='' sum
  if wait "$reading"; then IFS= read -rd '' tables <"$work/tables.new" || true; fi
  if [[ -z $tables ]]; then
    wait "$hashing" || true
    log "the live state could not be read back"
    return "$after"
  fi
  { printf '%s' "$tables"; live_daemons "$listening"; } >"$expected_rules" ||
    { wait "$hashing" || true; log "the live state could not be recorded"; return "$after"; }
  if wait "$hashing" && read -r sum _ <"$work/policy.sum"; then
    printf '%s\n' "${sum:0:16}" >"$work/policy"
  else
    rm -f "$work/policy"
    log "warning: the policy's hash could not be taken"
  fi
}

# lockdown: loopback, SSH in and DHCP only. Fails (1) only when no rules could be loaded at all.
lockdown() {
  local rules=$work/rules.v4.lockdown rules6=$work/rules.v6
  # What a failed switch left running in the background (loads, the resolver's start, read-backs)
  # finishes first. (Not every child: a proxy it launched is one, until stop_proxy below.)
  local job
  for job in "${switch_jobs[@]}"; do wait "$job" 2>/dev/null || true; done
  stop_launched_proxy
  write_rules_v6 "$rules6"
  local loaded=0
  if ensure_base_sets; then
    write_rules_lockdown "$rules"
  else
    log "the firewall's sets cannot be built: locking down without them (SSH in from anywhere)"
    write_rules_lockdown_without_sets "$rules"
  fi
  if iptables-legacy-restore -w 5 <"$rules" && ip6tables-legacy-restore -w 5 <"$rules6"; then
    loaded=1
    fallbacks_off || log "warning: the nftables LOCKDOWN table could not be removed (it stays, closed)"
  elif nft_lockdown; then
    log "LOCKDOWN rules did not load in iptables' legacy tables: LOCKDOWN by nftables instead (loopback, SSH in and DHCP; loopback is not held between users)"
    [[ ! -e $route_lock_mark ]] || route_lockdown_off
  elif route_lockdown; then
    log "LOCKDOWN rules did not load, in iptables' legacy tables or nftables: LOCKDOWN by routing instead, a last resort (routes refused but for SSH's replies and DHCP; a socket bound to the interface still reaches the VM's own network)"
  else
    log "LOCKDOWN rules did not load, nor LOCKDOWN by routing; policies may still be whatever they were"
  fi
  stop_resolver
  stop_proxy
  point_resolv_conf
  # No allowlist's policy is in force (status says so, and apply of the same one switches again).
  rm -f "$work/policy"
  if ((loaded)); then live_state >"$expected_rules"; else rm -f "$expected_rules"; fi
  ((loaded)) || return 1
  log "LOCKDOWN: only loopback, SSH in and DHCP are allowed until the allowlist is fixed and 'up' runs again"
}

# nft_lockdown: when iptables' legacy tables load nothing (a kernel built without them, their lock
# held past its wait), LOCKDOWN as a table of its own in nftables, replaced whole in one transaction:
# loopback, SSH in (and its replies, from the root-only port 22, also for sessions conntrack does
# not know), DHCP; IPv6 nothing but loopback. Its hooks see what the VM's sockets send, whatever
# route or device a socket chose. Coarser than LOCKDOWN's own rules: loopback is not held between
# users, SSH in is taken from anywhere. The mark is written before the table is loaded (a table
# never stands without it: what removes the fallbacks looks at the mark alone) and holds what the
# table reads once loaded: the watcher loads it again when it reads otherwise.
nft_lockdown() {
  command -v nft >/dev/null || return 1
  [[ -e $nft_lock_mark ]] || : >"$nft_lock_mark" || return 1
  nft -f - <<EOF || { [[ -s $nft_lock_mark ]] || rm -f "$nft_lock_mark"; return 1; }
table inet $nft_lock_table
delete table inet $nft_lock_table
table inet $nft_lock_table {
  chain input {
    type filter hook input priority -10; policy drop;
    iif "lo" tcp dport 22 reject with tcp reset
    iif "lo" accept
    meta nfproto ipv4 ct state established,related accept
    meta nfproto ipv4 tcp dport 22 accept
    meta nfproto ipv4 udp sport 67 udp dport 68 accept
  }
  chain forward {
    type filter hook forward priority -10; policy drop;
  }
  chain output {
    type filter hook output priority -10; policy drop;
    oif "lo" accept
    meta nfproto ipv4 ct state established,related accept
    meta nfproto ipv4 tcp sport 22 tcp flags & (fin|syn|rst|ack) != syn meta skuid 0 accept
    meta nfproto ipv4 udp sport 68 udp dport 67 accept
  }
}
EOF
  nft list table inet "$nft_lock_table" >"$nft_lock_mark.new" && mv -f "$nft_lock_mark.new" "$nft_lock_mark"
}

# nft_lockdown_held: the table reads as it did when loaded.
nft_lockdown_held() {
  local live kept
  live=$(nft list table inet "$nft_lock_table" 2>/dev/null) && kept=$(<"$nft_lock_mark") && [[ $live == "$kept" ]]
}

nft_lockdown_off() {
  if nft list table inet "$nft_lock_table" >/dev/null 2>&1; then nft delete table inet "$nft_lock_table" || return 1; fi
  rm -f "$nft_lock_mark"
}

# fallbacks_off: the LOCKDOWN fallbacks removed, once rules in the legacy tables hold. Fails (1)
# when the nftables table stays.
fallbacks_off() {
  [[ ! -e $route_lock_mark ]] || route_lockdown_off
  [[ ! -e $nft_lock_mark ]] || nft_lockdown_off
}

# route_lockdown: when no rules load at all (a kernel without iptables' legacy tables), policy
# routing rules refuse a route to every user, root too, but for SSH's replies (source port 22,
# which only root can bind) and the DHCP client's: loopback and the VM's own addresses are in the
# local table, whose rule comes first. By socket, as the kernel stamps them: IPv4 and IPv6. A last
# resort that leaks (README): a socket bound to the interface skips the refusal and reaches the VM's
# own network, broadcast and IPv6 multicast go out, loopback between users is not held, and
# systemd-networkd deletes foreign rules when it configures a link. Put back by the watcher,
# removed once rules load (or by down).
route_lockdown() {
  local v ok=0 dhcp
  : >"$route_lock_mark" || return 1
  for v in -4 -6; do
    if [[ -z $(ip "$v" rule show priority "$((route_lock_priority + 1))" 2>/dev/null) ]]; then
      while ip "$v" rule del priority "$route_lock_priority" 2>/dev/null; do :; done
      if [[ $v == -4 ]]; then dhcp='sport 68 dport 67'; else dhcp='sport 546 dport 547'; fi
      # shellcheck disable=SC2086 # the ports' words
      if ! { ip "$v" rule add priority "$route_lock_priority" ipproto tcp sport 22 lookup main &&
        ip "$v" rule add priority "$route_lock_priority" ipproto udp $dhcp lookup main &&
        ip "$v" rule add priority "$((route_lock_priority + 1))" uidrange 0-4294967294 prohibit; }; then
        continue
      fi
    fi
    [[ $v == -6 ]] || ok=1
  done
  # IPv6 may be off in the kernel (nothing to route then); IPv4 must be held.
  ((ok))
}

route_lockdown_off() {
  local v p
  for v in -4 -6; do
    for p in "$((route_lock_priority + 1))" "$route_lock_priority"; do
      while ip "$v" rule del priority "$p" 2>/dev/null; do :; done
    done
  done
  rm -f "$route_lock_mark"
}

# selfcheck: the resolver is listening and refuses a name outside the allowlist; another user
# cannot reach an upstream DNS server directly.
selfcheck() {
  local ok=1
  local line listening=0
  while read -r _ line _; do [[ $line != 0100007F:0035 ]] || listening=1; done </proc/net/udp
  if ! resolver_running || ((listening == 0)); then
    log "self-check: the resolver is not listening on 127.0.0.1:53"; ok=0
  fi
  if getent ahostsv4 "$selfcheck_name" >/dev/null; then
    log "self-check: $selfcheck_name resolved: names outside the allowlist are not refused"; ok=0
  fi
  ((ok))
}
