# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# The firewall's rules and sets: iptables tables written whole, ipsets built under temporary
# names and swapped in, the VM's own networks, GitHub's published networks.
# Sourced by /usr/local/sbin/cc-sandbox-firewall, never run: its constants and log() are in scope.

# ---------------------------------------------------------------------------------------------
# Building the new state: set names, set contents, rules and the resolver's config.

# write_rules FILE [temp]: the complete IPv4 filter table for iptables-legacy-restore; with "temp", sets
# are referred to by their temporary names (to test the rules before the sets are swapped in).
write_rules() {
  local use_tmp=${2:-}
  local up s
  # Where SSH may come from and DHCP go: the VM's own networks, or anywhere when the sets could not
  # be built (lockdown without ipset: no allow set exists then either).
  local from_link=" -m set --match-set $link_set dst"
  [[ -z ${without_sets:-} ]] || from_link=
  local -a cidr_sets=() dns_sets=()
  # The proxy's user, when it exists (lockdown needs none): the only one besides root that may
  # connect to a name's address on a TLS or HTTP port.
  user_ids
  local proxy_uid=$PROXY_UID
  # set_rules CHAIN SET MODES TARGET...: a rule per 15 of the set's ports whose mode is one of MODES
  # (words of raw, tls, http; "*" for all), 15 being multiport's limit; under its temporary name
  # with "temp". A worker's set (ccfw-UID-…) matches that worker's connections alone, but where
  # it sends them on to ccfw-via (only root and the proxy pass there).
  set_rules() {
    local chain=$1 set=$2 name=$2 modes=$3 t chunk owner=
    shift 3
    local -a ports=() tokens
    [[ -z $use_tmp ]] || name=${tmp_of[$set]}
    [[ ! $set =~ ^ccfw-([0-9]+)- || $1 == ccfw-via ]] || owner=" -m owner --uid-owner ${BASH_REMATCH[1]}"
    IFS=, read -ra tokens <<<"${set_ports[$set]}"
    for t in "${tokens[@]}"; do
      [[ $modes != '*' && " $modes " != *" ${t#*/} "* ]] || ports+=("${t%/*}")
    done
    while ((${#ports[@]} > 0)); do
      chunk=$(IFS=,; printf '%s' "${ports[*]:0:15}")
      ports=("${ports[@]:15}")
      printf -- '-A %s -p tcp%s -m set --match-set %s dst -m multiport --dports %s -j %s\n' "$chain" "$owner" "$name" "$chunk" "$*"
    done
  }
  # The stack's sets, and the project workers' own (ccfw-UID-…: those of workers with network none
  # apart); the workers with network none.
  local -a user_cidr_sets=() user_dns_sets=() none_dns_sets=() none_uids=()
  for s in "${!plan_users[@]}"; do [[ ${plan_users[$s]} != none ]] || none_uids+=("$s"); done
  for s in "${!set_ports[@]}"; do
    case $s in
      ccfw-n-*) cidr_sets+=("$s") ;;
      ccfw-d-*) dns_sets+=("$s") ;;
      ccfw-*-n-*) user_cidr_sets+=("$s") ;;
      *)
        local owner=${s#ccfw-}
        if [[ ${plan_users[${owner%%-*}]:-} == none ]]; then none_dns_sets+=("$s"); else user_dns_sets+=("$s"); fi
        ;;
    esac
  done
  {
    printf '%s\n' '*filter' ':INPUT DROP [0:0]' ':FORWARD DROP [0:0]' ':OUTPUT DROP [0:0]' \
      ':ccfw-in - [0:0]' ':ccfw-out - [0:0]' ':ccfw-deny - [0:0]' ':ccfw-via - [0:0]' ':ccfw-workers - [0:0]'
    write_lo_chains
    # The proxy tells the workers apart by the source address their redirected connections are
    # given on the way (127.77.x.y, below): nobody may send from one of those addresses itself.
    printf '%s\n' '-A INPUT -j ccfw-in' '-A OUTPUT -j ccfw-out' "-A ccfw-out -s $worker_net -j ccfw-deny" \
      '-A ccfw-in -i lo -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset' \
      '-A ccfw-in -i lo -j ACCEPT' \
      '-A ccfw-in -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT' \
      '-A ccfw-in -m conntrack --ctstate INVALID -j DROP' \
      "-A ccfw-in -p tcp -m tcp --dport 22${from_link/dst/src} -j ACCEPT" \
      '-A ccfw-in -p udp -m udp --sport 67 --dport 68 -j ACCEPT'
    # SSH in comes only from the VM's own network (the hypervisor's side of it), never over
    # loopback: a key the agent planted, or a shell opened that way, would skip the login's own
    # wrapping. SSH sessions that were open before the first `up` (cloud-init's first boot) are not
    # in conntrack: when sshd writes first, its packet is NEW. Only root can bind port 22, and a
    # packet without SYN opens no connection.
    # DNS on loopback only to our resolver: a stub such as systemd-resolved's 127.0.0.53 would
    # forward any name. DHCP goes only to the VM's own network or as a broadcast.
    # Past loopback: a SYN that conntrack takes into an entry it already holds (the other side
    # reset it a moment ago, and another user's socket binds the same port to the same place)
    # would inherit that entry's verdicts and its nat (the proxy would take it for the first
    # user): refused. A project worker the plan names no egress for (ccfw-workers) has none.
    printf '%s\n' '-A ccfw-out ! -d 127.0.0.1/32 -o lo -p udp -m udp --dport 53 -j ccfw-deny' \
      '-A ccfw-out ! -d 127.0.0.1/32 -o lo -p tcp -m tcp --dport 53 -j ccfw-deny' \
      '-A ccfw-out -o lo -j ccfw-lo' '-A ccfw-out -o lo -j ACCEPT' \
      '-A ccfw-out -p tcp -m tcp --syn -m conntrack --ctstate ESTABLISHED --ctdir ORIGINAL -j ccfw-deny' \
      "-A ccfw-out -m owner --uid-owner $worker_uid_min-$worker_uid_max -j ccfw-workers" \
      "-A ccfw-out -d 127.0.0.1/32 -p tcp -m multiport --dports $proxy_tls_port,$proxy_http_port -m conntrack --ctstate DNAT -j ACCEPT" \
      '-A ccfw-out -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT' \
      '-A ccfw-out -m conntrack --ctstate INVALID -j DROP' \
      "-A ccfw-out -p tcp -m tcp --sport 22 ! --syn${from_link} -j ACCEPT" \
      '-A ccfw-out -d 255.255.255.255/32 -p udp -m udp --sport 68 --dport 67 -j ACCEPT' \
      "-A ccfw-out -p udp -m udp --sport 68 --dport 67${from_link} -j ACCEPT"
    for up in "${upstreams[@]}"; do
      printf -- '-A ccfw-out -d %s/32 -p %s -m %s --dport 53 -m owner --uid-owner %s -j ACCEPT\n' \
        "$up" udp udp "$resolver_user" "$up" tcp tcp "$resolver_user"
    done
    # Explicit CIDR entries first (a worker's own, then the stack's, which a worker with network
    # none never gets): reaching a private network on purpose takes one. Then no address a DNS
    # answer named may be private, loopback, link-local, multicast or the VM's own network,
    # whatever the answer put into the sets (rebinding).
    for s in "${user_cidr_sets[@]}"; do set_rules ccfw-out "$s" '*' ACCEPT; done
    for s in "${none_uids[@]}"; do printf -- '-A ccfw-out -m owner --uid-owner %s -j ccfw-deny\n' "$s"; done
    for s in "${cidr_sets[@]}"; do set_rules ccfw-out "$s" '*' ACCEPT; done
    [[ -z $from_link ]] || printf -- '-A ccfw-out -m set --match-set %s dst -j ccfw-deny\n' "$never_set" "$link_set"
    # A name's address: raw ports for anyone (a worker's set: for that worker); TLS and HTTP ports
    # only through the proxy (every other user's connection there was redirected to it before
    # this table saw it).
    for s in "${dns_sets[@]}" "${user_dns_sets[@]}" "${none_dns_sets[@]}"; do
      set_rules ccfw-out "$s" raw ACCEPT
      set_rules ccfw-out "$s" 'tls http' ccfw-via
    done
    if [[ $CC_FIREWALL_GITHUB_META == 1 ]]; then
      printf -- '-A ccfw-out -p tcp -m set --match-set %s dst -m multiport --dports %s -j ACCEPT\n' "$github_set" "$github_ports"
    fi
    for s in "${!plan_users[@]}"; do printf -- '-A ccfw-workers -m owner --uid-owner %s -j RETURN\n' "$s"; done
    printf '%s\n' '-A ccfw-workers -j ccfw-deny'
    printf '%s\n' '-A ccfw-out -j ccfw-deny' '-A ccfw-via -m owner --uid-owner 0 -j ACCEPT'
    [[ -z $proxy_uid ]] || printf -- '-A ccfw-via -m owner --uid-owner %s -j ACCEPT\n' "$proxy_uid"
    printf '%s\n' '-A ccfw-via -j ccfw-deny'
    if [[ $CC_FIREWALL_LOG_DENIED == 1 ]]; then
      printf -- '-A ccfw-deny -m limit --limit 20/min --limit-burst 40 -j LOG --log-prefix "%s" --log-uid\n' "$deny_prefix"
    fi
    printf '%s\n' '-A ccfw-deny -p tcp -j REJECT --reject-with tcp-reset' \
      '-A ccfw-deny -j REJECT --reject-with icmp-admin-prohibited' COMMIT
    # Connections by any user but root and the proxy's to a name's address on a TLS or HTTP port go
    # to the proxy, which checks the name they ask for. Raw ports, CIDR entries and GitHub's
    # networks are reached by address, and come first: an address in one of them is not redirected.
    # A worker's own sets send its connections to the proxy as the stack's do; a worker with
    # network none goes no further (what it did not match is refused by the filter).
    printf '%s\n' '*nat' ':PREROUTING ACCEPT [0:0]' ':INPUT ACCEPT [0:0]' ':OUTPUT ACCEPT [0:0]' ':POSTROUTING ACCEPT [0:0]' \
      ':ccfw-nat - [0:0]' ':ccfw-snat - [0:0]' '-A OUTPUT -p tcp -j ccfw-nat' '-A POSTROUTING -p tcp -j ccfw-snat' \
      '-A ccfw-nat -m owner --uid-owner 0 -j RETURN'
    [[ -z $proxy_uid ]] || printf -- '-A ccfw-nat -m owner --uid-owner %s -j RETURN\n' "$proxy_uid"
    redirect_rules() {
      local set=$1
      set_rules ccfw-nat "$set" tls REDIRECT --to-ports "$proxy_tls_port"
      set_rules ccfw-nat "$set" http REDIRECT --to-ports "$proxy_http_port"
    }
    for s in "${user_cidr_sets[@]}"; do set_rules ccfw-nat "$s" '*' RETURN; done
    for s in "${user_dns_sets[@]}"; do set_rules ccfw-nat "$s" raw RETURN; done
    for s in "${none_dns_sets[@]}"; do redirect_rules "$s"; done
    for s in "${none_uids[@]}"; do printf -- '-A ccfw-nat -m owner --uid-owner %s -j RETURN\n' "$s"; done
    for s in "${cidr_sets[@]}"; do set_rules ccfw-nat "$s" '*' RETURN; done
    if [[ $CC_FIREWALL_GITHUB_META == 1 ]]; then
      printf -- '-A ccfw-nat -p tcp -m set --match-set %s dst -m multiport --dports %s -j RETURN\n' "$github_set" "$github_ports"
    fi
    for s in "${dns_sets[@]}"; do set_rules ccfw-nat "$s" raw RETURN; done
    for s in "${user_dns_sets[@]}"; do redirect_rules "$s"; done
    for s in "${dns_sets[@]}"; do redirect_rules "$s"; done
    # Each worker's connection to the proxy leaves with a source address that names it
    # (127.77.H.L, its uid's two bytes), by which the proxy applies that worker's own names.
    local address
    for s in "${!plan_users[@]}"; do
      worker_address address "$s"
      printf -- '-A ccfw-snat -d 127.0.0.1/32 -p tcp -m multiport --dports %s,%s -m conntrack --ctstate DNAT -m owner --uid-owner %s -j SNAT --to-source %s\n' \
        "$proxy_tls_port" "$proxy_http_port" "$s" "$address"
    done
    printf '%s\n' COMMIT
  } >"$1"
}

# IPv6 is fully blocked: loopback only (between users as over IPv4), and local programs are
# refused at once rather than left waiting on a drop.
write_rules_v6() {
  {
    printf '%s\n' '*filter' ':INPUT DROP [0:0]' ':FORWARD DROP [0:0]' ':OUTPUT DROP [0:0]'
    write_lo_chains
    printf '%s\n' '-A INPUT -i lo -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset' \
      '-A INPUT -i lo -j ACCEPT' '-A OUTPUT -o lo -j ccfw-lo' '-A OUTPUT -o lo -j ACCEPT' \
      '-A OUTPUT -j REJECT --reject-with icmp6-adm-prohibited' COMMIT
  } >"$1"
}

# ---------------------------------------------------------------------------------------------
# Loopback between the sandbox's users. The agent and each project's worker are "confined": a
# service one of them listens with on loopback (a dev server, a debugger, a database) answers that
# user alone, and root, the admin and the system's daemons, never another confined user. The
# kernel does not say whose socket a connection reaches until that socket answers, so every
# loopback connection is stamped (conntrack mark) with the uid of the first confined user whose
# socket sends in it; a packet another confined user's socket sends in it is dropped and the
# connection flagged, and the opener's next SYN in it is refused with a reset (connect() fails
# after about a second). Stamped on any packet while unstamped, not only on a new connection: a SYN
# that conntrack takes into an old entry (one closed by a reset moments ago) is stamped all the
# same. A SYN-ACK sent with no socket (a SYN cookie, when a listener's queue is full) in a stamped
# connection is dropped too: it would complete a handshake no socket of the server's answered.
# Only while the firewall is up. Not covered: a UDP datagram reaches another's socket (its answers
# are dropped); Unix sockets are the file system's (and the abstract ones nobody's) business; a
# root-run relay a confined user can drive (a secureOps script that fetches a URL it is given).
# The proxy (unconfined, and reached by everyone) opens no loopback connection but its lookups: a
# name whose answer is 127.0.0.x cannot make it a relay to someone's loopback service.

readonly lo_uid_mask=0x7fff lo_cross_mark=0x8000

# confined_uids: CONFINED set to the agent's uid and every project worker's (the projects'
# registry, root's own), each below 32768 (the mark's width). Read once a run: apply writes its
# rules three times.
confined_uids() {
  [[ -z ${CONFINED_DONE:-} ]] || return 0
  CONFINED_DONE=1
  CONFINED=()
  local u f line
  user_ids
  u=$AGENT_UID
  if [[ $u =~ ^[1-9][0-9]{0,4}$ ]] && ((u < 32768)); then
    CONFINED+=("$u")
  else
    log "warning: the agent user ${CC_AGENT_USER:-agent} has no uid below 32768: its loopback services are not confined"
  fi
  for f in "$projects_registry"/*; do
    [[ -f $f ]] || continue
    while IFS= read -r line; do
      if [[ $line =~ ^uid=([1-9][0-9]{0,4})$ ]] && ((BASH_REMATCH[1] < 32768)); then CONFINED+=("${BASH_REMATCH[1]}"); fi
    done <"$f"
  done
}

# write_lo_chains: the loopback chains' declarations and rules, for iptables and ip6tables alike.
write_lo_chains() {
  local u unstamped="-m connmark --mark 0/$lo_uid_mask"
  user_ids
  confined_uids
  printf '%s\n' ':ccfw-lo - [0:0]' ':ccfw-lo-cross - [0:0]' \
    '-A ccfw-lo -p tcp -m tcp --tcp-flags RST RST -j RETURN' \
    "-A ccfw-lo -p tcp -m connmark --mark $lo_cross_mark/$lo_cross_mark -j REJECT --reject-with tcp-reset" \
    "-A ccfw-lo -m connmark --mark $lo_cross_mark/$lo_cross_mark -j DROP"
  [[ -z $PROXY_UID ]] || printf -- '-A ccfw-lo -p tcp -m tcp --syn -m owner --uid-owner %s -j REJECT --reject-with tcp-reset\n' "$PROXY_UID"
  for u in "${CONFINED[@]}"; do
    printf -- '-A ccfw-lo %s -m owner --uid-owner %s -j CONNMARK --set-xmark %s/%s\n' "$unstamped" "$u" "$u" "$lo_uid_mask"
  done
  printf -- "-A ccfw-lo -p tcp -m tcp --tcp-flags SYN,ACK SYN,ACK -m conntrack --ctdir REPLY -m connmark ! --mark 0/%s -m owner ! --socket-exists -j ccfw-lo-cross\n" "$lo_uid_mask"
  for u in "${CONFINED[@]}"; do
    printf -- '-A ccfw-lo -m owner --uid-owner %s -m connmark ! --mark 0/%s -m connmark ! --mark %s/%s -j ccfw-lo-cross\n' "$u" "$lo_uid_mask" "$u" "$lo_uid_mask"
  done
  printf '%s\n' "-A ccfw-lo-cross -j CONNMARK --or-mark $lo_cross_mark" '-A ccfw-lo-cross -j DROP'
}

# worker_address VAR UID: VAR set to the source address the proxy knows a project worker's
# connections by (in $worker_net).
worker_address() {
  printf -v "$1" '127.77.%d.%d' $(($2 >> 8)) $(($2 & 255))
}

# Lockdown: what stays when the config cannot be used. Loopback, SSH in and DHCP only.
write_rules_lockdown() {
  declare -gA set_ports=() plan_users=()
  upstreams=()
  CC_FIREWALL_GITHUB_META=0
  write_rules "$1"
}

# The same without any set, for when the sets themselves cannot be built (no ip_set module).
write_rules_lockdown_without_sets() {
  local without_sets=1
  write_rules_lockdown "$1"
}

# ---------------------------------------------------------------------------------------------
# Sets: built under temporary names with one `ipset restore`, then swapped in.

# list_sets: every set name, space-separated with spaces around, in live_sets.
list_sets() {
  local -a names=()
  mapfile -t names < <(ipset list -n 2>/dev/null)
  live_sets=" ${names[*]} "
}

# write_set_restore [temp]: the sets (under temporary names tmp_of[set] with "temp"), with the CIDRs and, for an
# update in place, every current DNS address whose allowlist domain is still there, taken into the
# sets of that domain's entries now (established work goes on; a removed name's addresses go).
write_set_restore() {
  local temp=${1:-} s i=0
  declare -gA tmp_of=()
  for s in "${!set_ports[@]}"; do
    if [[ -n $temp ]]; then tmp_of[$s]="ccfw-tmp-$i"; i=$((i + 1)); else tmp_of[$s]=$s; fi
  done
  local maps='' prog f
  for s in "${!tmp_of[@]}"; do maps+="map $s ${tmp_of[$s]}"$'\n'; done
  # (an awk program: its $ are awk's)
  # shellcheck disable=SC2016
  prog='
    BEGIN {
      while ((getline line < domains) > 0) { split(line, f, " "); sets_of[f[1]] = f[2] }
      while ((getline line < cidrs) > 0) { split(line, f, " "); cidr_in[++n_cidrs] = f[1] " " f[2] }
    }
    $1 == "map" { tmp[$2] = $3; next }
    # Every domain an address came from (several names share a CDN address): it stays while any
    # of them is still allowlisted.
    $1 == "from" { if (index(domains_of[$2] " ", " " $3 " ") == 0) domains_of[$2] = domains_of[$2] " " $3; next }
    $1 == "live" && !($2 in seen) { seen[$2] = 1; live[++n] = $2 }
    END {
      for (s in tmp) {
        printf "create %s %s family inet hashsize 1024 maxelem 65536\n", tmp[s], (s ~ /^ccfw-([0-9]+-)?d-/ ? "hash:ip" : "hash:net")
        if (tmp[s] == s) printf "flush %s\n", s # loaded under its final name (-exist): start empty
      }
      for (c = 1; c <= n_cidrs; c++) { split(cidr_in[c], f, " "); printf "add %s %s\n", tmp[f[1]], f[2] }
      for (i = 1; i <= n; i++) {
        split("", added)
        nd = split(domains_of[live[i]], ds, " ")
        for (m = 1; m <= nd; m++) {
          # the name asked for, or the allowlist domain above it (a name under a wildcard)
          d = ds[m]
          while (!(d in sets_of) && d ~ /\./) sub(/^[^.]*\./, "", d)
          if (!(d in sets_of)) continue
          k = split(sets_of[d], t, ",")
          for (j = 1; j <= k; j++) if (!(t[j] in added)) { added[t[j]] = 1; printf "add %s %s\n", tmp[t[j]], live[i] }
        }
      }
    }'
  if [[ $live_sets =~ \ ccfw-([0-9]+-)?d- ]]; then
    {
      printf '%s' "$maps"
      # Which allowlist domain each address last came from: the resolver logs every set insertion.
      for f in "$resolver_log.1" "$resolver_log"; do
        [[ ! -r $f ]] || awk '$5 == "ipset" && $6 == "add" { print "from", $8, $9 }' "$f"
      done
      ipset save 2>/dev/null | awk '$1 == "add" && $2 ~ /^ccfw-([0-9]+-)?d-/ { print "live", $3 }'
    } | awk -v domains="$work/plan.domains" -v cidrs="$work/plan.cidrs" "$prog"
  else
    # No address to carry over (from a clean state): the maps alone, without a pipe's process.
    awk -v domains="$work/plan.domains" -v cidrs="$work/plan.cidrs" "$prog" <<<"$maps"
  fi
}

destroy_temp_sets() {
  local s cmds=
  for s in $live_sets; do [[ $s != ccfw-tmp-* ]] || cmds+="destroy $s"$'\n'; done
  [[ -z $cmds ]] || ipset restore <<<"$cmds" 2>/dev/null || true
}

# swap_sets: the `ipset restore` commands by which each temporary set takes its final name
# (swapping with the live one if it exists).
swap_sets() {
  local s cmds=
  for s in "${!tmp_of[@]}"; do
    if [[ $live_sets == *" $s "* ]]; then
      cmds+="swap ${tmp_of[$s]} $s"$'\n'"destroy ${tmp_of[$s]}"$'\n'
    else
      cmds+="rename ${tmp_of[$s]} $s"$'\n'
    fi
  done
  printf '%s' "$cmds"
}

# destroy_unused_sets: after the new rules are in, sets no rule refers to any more.
destroy_unused_sets() {
  local s cmds=
  for s in $live_sets; do
    [[ $s =~ ^ccfw-([0-9]+-)?[dn]- && -z ${set_ports[$s]:-} ]] && cmds+="destroy $s"$'\n'
  done
  [[ -z $cmds ]] || ipset restore <<<"$cmds" 2>/dev/null || log "warning: could not remove unused sets"
}

ensure_github_set() {
  [[ $CC_FIREWALL_GITHUB_META == 1 ]] || return 0
  [[ $live_sets == *" $github_set "* ]] || ipset create -exist "$github_set" hash:net family inet hashsize 1024 maxelem 65536
  if [[ -s $github_cidrs ]] && [[ $(ipset list "$github_set" | awk '/^Number of entries:/ { print $4 }') == 0 ]]; then
    load_github_cidrs "$github_cidrs" || log "warning: stored GitHub CIDRs not loaded"
  fi
}

# hex_ip VAR HEX: VAR set to the dotted quad of an address as /proc/net/route prints it (host
# byte order). Into a variable, not printed: a command substitution would fork on every route.
hex_ip() {
  local h=$2
  printf -v "$1" '%d.%d.%d.%d' "0x${h:6:2}" "0x${h:4:2}" "0x${h:2:2}" "0x${h:0:2}"
}

# mask_len VAR HEX: VAR set to the prefix length of a netmask as /proc/net/route prints it.
mask_len() {
  local m=$((0x$2)) n=0
  while ((m & 1)); do n=$((n + 1)); m=$((m >> 1)); done
  printf -v "$1" '%d' "$n"
}

# link_nets: the VM's directly connected IPv4 networks and its gateways (no loopback), one a line,
# read from /proc/net/route without starting a process. Sets LINK_NETS.
link_nets() {
  local iface dest gw flags _ mask net addr len
  local -A seen=()
  LINK_NETS=
  while read -r iface dest gw flags _ _ _ mask _; do
    [[ $iface != Iface && $iface != lo && $dest =~ ^[0-9A-F]{8}$ && $gw =~ ^[0-9A-F]{8}$ ]] || continue
    ((0x$flags & 1)) || continue # RTF_UP
    if [[ $gw != 00000000 ]]; then
      hex_ip addr "$gw"
      net=$addr/32
    elif [[ $dest != 00000000 ]]; then
      hex_ip addr "$dest"
      mask_len len "$mask"
      net=$addr/$len
    else
      continue # a default route without a gateway names no network
    fi
    [[ -n ${seen[$net]:-} ]] || { seen[$net]=1; LINK_NETS+="$net"$'\n'; }
  done </proc/net/route
}

# base_set_cmds: the `ipset restore` commands that make the fixed sets and load the VM's own
# networks into theirs (LINK_NETS: the caller reads them with link_nets first), by one swap: never
# an empty moment.
base_set_cmds() {
  local n
  printf 'create %s hash:net family inet hashsize 64 maxelem 256\n' "$never_set" "$link_set"
  for n in $never_nets; do printf 'add %s %s\n' "$never_set" "$n"; done
  printf 'create %s hash:net family inet hashsize 64 maxelem 256\nflush %s\n' "$link_tmp_set" "$link_tmp_set"
  for n in $LINK_NETS; do printf 'add %s %s\n' "$link_tmp_set" "$n"; done
  printf 'swap %s %s\ndestroy %s\n' "$link_tmp_set" "$link_set" "$link_tmp_set"
}

# load_base_sets: builds the sets every rule set refers to, lockdown's too, with the VM's own
# networks as LINK_NETS holds them.
load_base_sets() {
  if ! base_set_cmds >"$work/base.sets" || ! ipset -exist restore <"$work/base.sets"; then
    ipset destroy "$link_tmp_set" 2>/dev/null
    return 1
  fi
  loaded_link_nets=$LINK_NETS
}

# ensure_base_sets: the same, with the VM's own networks as they are now.
ensure_base_sets() {
  link_nets
  load_base_sets
}

# refresh_link_set: reloads the VM's own networks into their set when they changed (read once).
refresh_link_set() {
  link_nets
  [[ $LINK_NETS != "${loaded_link_nets-}" ]] || return 0
  load_base_sets
}


# load_github_cidrs FILE: IPv4 CIDRs one a line; all must be valid and the list non-empty.
load_github_cidrs() {
  local bad n tmp=ccfw-tmp-gh
  local -a cidrs=()
  if ! bad=$(awk "$awk_rules"' NF && (NF != 1 || !valid_cidr($1, 8)) { print; exit 1 }' "$1"); then
    log "GitHub CIDR '$bad' is invalid; keeping the current set"
    return 1
  fi
  mapfile -t cidrs < <(awk NF "$1")
  n=${#cidrs[@]}
  ((n > 0)) || { log "no GitHub CIDRs found; keeping the current set"; return 1; }
  ipset destroy "$tmp" 2>/dev/null || true
  { printf 'create %s hash:net family inet hashsize 1024 maxelem 65536\n' "$tmp"
    printf "add $tmp %s\n" "${cidrs[@]}"; } | ipset restore -exist || { ipset destroy "$tmp" 2>/dev/null; return 1; }
  ipset create -exist "$github_set" hash:net family inet hashsize 1024 maxelem 65536
  ipset swap "$tmp" "$github_set"
  ipset destroy "$tmp"
  log "loaded $n GitHub CIDRs"
}

# cmd_github_meta [FILE]: GitHub's /meta JSON (fetched through the firewall when no FILE): the
# IPv4 networks of its web, api and git services.
cmd_github_meta() {
  need_root github-meta
  load_env
  [[ $CC_FIREWALL_GITHUB_META == 1 ]] || die "CC_FIREWALL_GITHUB_META is not 1 in $env_file"
  prepare_dirs
  local json=$work/github-meta.json list=$work/github-meta.cidrs
  if [[ $# -gt 0 ]]; then
    cp -- "$1" "$json"
  else
    curl -fsS --max-time 15 -o "$json" https://api.github.com/meta || die "could not fetch https://api.github.com/meta (is api.github.com allowlisted?)"
  fi
  python3 -c '
import ipaddress, json, sys
meta = json.load(open(sys.argv[1]))
for key in ("web", "api", "git"):
    for c in meta.get(key, []):
        if ":" not in c:
            print(c)
' "$json" | sort -u >"$list" || die "GitHub meta JSON could not be read"
  exec 9>"$firewall_lock"
  flock -w 30 9 || die "another cc-sandbox-firewall is running"
  load_github_cidrs "$list" || die "GitHub CIDRs rejected"
  mv -f "$list" "$github_cidrs"
}
