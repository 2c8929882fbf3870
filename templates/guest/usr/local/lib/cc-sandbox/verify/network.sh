# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# cc-sandbox-verify's network checks: the egress firewall (firewall), the filtering resolver (dns)
# and IPv6 (ipv6), with the probes they use.
# Sourced by /usr/local/bin/cc-sandbox-verify, never run: its targets, ok/fail/skip and as_agent are
# in scope.

# shellcheck disable=SC2016 # $1 and $2 belong to the inner bash
tcp_connects() { timeout "$connect_timeout" bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null; }
resolves() { timeout "$connect_timeout" getent ahostsv4 "$1" >/dev/null 2>&1; }
# tls_answers HOST NAME: a TLS handshake as the agent with HOST:443 that asks for server NAME gets
# a server's certificate back (whoever signed it: reaching the server is what counts). As the
# agent: root's own connections do not go through the name-checking proxy.
tls_answers() {
  as_agent timeout "$connect_timeout" openssl s_client -connect "$1:443" -servername "$2" </dev/null 2>/dev/null |
    grep -q -- '-----BEGIN CERTIFICATE-----'
}

# A DNS query for example.com over UDP; succeeds if anything answers.
# shellcheck disable=SC2016 # $1 belongs to the inner bash
dns_answers() {
  timeout "$connect_timeout" bash -c '
    exec 3<>"/dev/udp/$1/53" || exit 1
    printf "\x43\x43\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01" >&3 || exit 1
    IFS= read -r -d "" -N 1 -t 3 _ <&3' _ "$1" 2>/dev/null
}

check_firewall() {
  if [[ ${CC_FIREWALL_ENABLED:-1} != 1 ]]; then
    skip firewall "the stack disables the firewall (CC_FIREWALL_ENABLED=0)"
    return
  fi
  local state='' stamp='' age
  if { read -r state stamp _ <"$state_file"; } 2>/dev/null || [[ -n $state ]]; then :; fi
  if [[ $state != ON || ! $stamp =~ ^[0-9]+$ ]]; then
    fail firewall-state "$state_file says '${state:-nothing}', not ON"
  else
    age=$((EPOCHSECONDS - stamp))
    if ((age > 10 || age < -2)); then
      fail firewall-state "$state_file is ${age}s old: the firewall watcher is not running"
    else
      ok "firewall-state: ON, ${age}s old"
    fi
  fi

  if tcp_connects "$blocked_ip" 443; then
    fail firewall-blocks-address "connected to $blocked_ip:443, which is not allowlisted"
  else
    ok "firewall-blocks-address: $blocked_ip:443 unreachable"
  fi

  local host='' port='' mode=tls kind a b c _ name_host='' name_sets='' first
  local -A first_port=()
  if [[ -n $allowed ]]; then
    host=${allowed%%:*} port=443
    [[ $allowed != *:* ]] || port=${allowed##*:}
  elif [[ -r $allowlist ]]; then
    # The allowlist is the host's plan: the first name the proxy lets through by its exact name,
    # on 443 with TLS where one is (then its server name is checked too); else the first name the
    # resolver answers, on the first port of its set.
    while read -r kind a b c _; do
      case $kind in
        set) first_port[$a]=${b%%,*} ;;
        proxy)
          [[ $b == exact && $c == *:* ]] || continue
          if [[ -z $host || (($port != 443 || $mode != tls) && $c == *:443 && $a == tls) ]]; then host=${c%:*} port=${c##*:} mode=$a; fi
          ;;
        name) [[ -n $name_host || $b == below ]] || name_host=$a name_sets=$c ;;
      esac
    done <"$allowlist"
    if [[ -z $host && -n $name_host ]]; then
      first=${first_port[${name_sets%%,*}]:-}
      [[ -z $first ]] || host=$name_host port=${first%/*} mode=${first#*/}
    fi
  fi
  if [[ -z $host ]]; then
    fail firewall-allows "no allowlisted name to try: pass --allowed NAME[:PORT]"
  elif ! resolves "$host"; then
    fail firewall-allows "allowlisted $host does not resolve"
  elif ! tcp_connects "$host" "$port"; then
    fail firewall-allows "allowlisted $host:$port is unreachable"
  else
    ok "firewall-allows: $host:$port reachable"
    if [[ $port != 443 || $mode != tls ]]; then
      :
    elif ! command -v openssl >/dev/null; then
      skip firewall-names "openssl is not installed"
    elif ! can_run_as_agent; then
      skip firewall-names "run as root or as $agent"
    elif ! tls_answers "$host" "$host"; then
      fail firewall-names "no TLS server answered for $host on $host:443 (through the name-checking proxy)"
    elif tls_answers "$host" cc-sandbox-selfcheck.invalid; then
      fail firewall-names "$host:443 answered a TLS handshake for cc-sandbox-selfcheck.invalid, a name no allowlist holds: server names are not checked"
    else
      ok "firewall-names: $host:443 answers for $host, not for a name off the allowlist"
    fi
  fi
}

check_dns() {
  if [[ ${CC_FIREWALL_ENABLED:-1} != 1 ]]; then
    skip dns "the stack disables the firewall (CC_FIREWALL_ENABLED=0)"
    return
  fi
  local servers
  servers=$(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf 2>/dev/null || true)
  if [[ -z $servers ]]; then
    fail dns-local-resolver "/etc/resolv.conf names no nameserver"
  elif grep -qvE '^(127\.|::1$)' <<<"$servers"; then
    fail dns-local-resolver "/etc/resolv.conf names a resolver outside the guest: $(tr '\n' ' ' <<<"$servers")"
  else
    ok "dns-local-resolver: $(tr '\n' ' ' <<<"$servers" | sed 's/ $//')"
  fi

  if resolves "$blocked_name"; then
    fail dns-blocks-name "$blocked_name resolves, though it is not allowlisted"
  else
    ok "dns-blocks-name: $blocked_name does not resolve"
  fi

  if dns_answers "$resolver"; then
    fail dns-foreign-resolver "$resolver answered a DNS query over UDP"
  elif tcp_connects "$resolver" 53; then
    fail dns-foreign-resolver "connected to $resolver:53 over TCP"
  else
    ok "dns-foreign-resolver: $resolver:53 unreachable (UDP and TCP)"
  fi
}

check_ipv6() {
  if [[ ${CC_FIREWALL_ENABLED:-1} != 1 ]]; then
    skip ipv6 "the stack disables the firewall (CC_FIREWALL_ENABLED=0)"
    return
  fi
  if tcp_connects "$blocked_ip6" 443; then
    fail ipv6-blocked "connected to [$blocked_ip6]:443 over IPv6"
  else
    ok "ipv6-blocked: [$blocked_ip6]:443 unreachable"
  fi
}
