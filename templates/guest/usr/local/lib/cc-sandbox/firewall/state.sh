# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# What the firewall is doing: the live state ON is checked against, the state file, refusals.
# Sourced by /usr/local/sbin/cc-sandbox-firewall, never run: its constants and log() are in scope.

# ---------------------------------------------------------------------------------------------
# Live state.

# live_rules: the filter tables as iptables prints them, without comments and counters.
live_rules() {
  local -a lines=()
  # The three tables read side by side (two cores), then taken in order.
  local nat v6
  exec {nat}< <(iptables-legacy-save -t nat 2>/dev/null 9>&-) {v6}< <(ip6tables-legacy-save -t filter 2>/dev/null 9>&-)
  mapfile -t lines < <(iptables-legacy-save -t filter 2>/dev/null 9>&-)
  mapfile -t -O "${#lines[@]}" lines <&"$nat"
  mapfile -t -O "${#lines[@]}" lines <&"$v6"
  exec {nat}<&- {v6}<&-
  # Counters off every line, and each comment line (a date) made empty, in two expansions.
  lines=("${lines[@]% \[*:*\]}")
  printf '%s\n' "${lines[@]/#\#*/}"
}

# live_state: what ON means, as one text: the filter tables, the sets whose contents are fixed by
# the policy (not the ones DNS answers fill), and the resolver's configuration with whether the
# running resolver was started from it. Compared with what `up`/`apply` recorded.
live_state() {
  live_tables
  live_daemons check
}

# live_tables: the tables and the fixed sets (live_state's first part).
live_tables() {
  live_rules
  ipset save 2>/dev/null | awk -v never="$never_set" '($1 == "create" || $1 == "add") && ($2 == never || $2 ~ /^ccfw-([0-9]+-)?n-/)' | LC_ALL=C sort
}

# live_daemons check|proxy-listening: the resolver's configuration and which resolver and proxy
# run (live_state's second part). "proxy-listening": its caller has just seen the proxy listen.
live_daemons() {
  local conf='' pid cmdline=''
  IFS= read -rd '' conf 2>/dev/null <"$resolver_conf" || true
  printf '%s' "$conf"
  local -a args=()
  if resolver_running && read -r pid 2>/dev/null <"$resolver_pid"; then
    mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || true
    cmdline="resolver running: ${args[*]}"
  fi
  printf '%s\n' "${cmdline:-resolver not running}"
  cmdline=
  if proxy_running && { [[ $1 == proxy-listening ]] || proxy_listening; } && read -r pid 2>/dev/null <"$proxy_pid"; then
    mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || true
    cmdline="proxy running: ${args[*]}"
  fi
  printf '%s\n' "${cmdline:-proxy not running}"
}

# firewall_on [EXPECTED]: the live state is the one up/apply recorded. EXPECTED: that record as
# the caller already read it (the watcher, every tick); else it is read here, with read rather
# than cat (a process costs tens of milliseconds on an emulated VM).
firewall_on() {
  local expected=${1-}
  if (($# == 0)); then
    [[ -s $expected_rules ]] || return 1
    IFS= read -rd '' expected 2>/dev/null <"$expected_rules" || true
  fi
  [[ -n $expected ]] || return 1
  # Trailing newlines go, as $(live_state) drops them.
  while [[ $expected == *$'\n' ]]; do expected=${expected%$'\n'}; done
  [[ $(live_state) == "$expected" ]]
}

# write_state ON|OFF [DENIED]: the file the status line reads (world-readable, replaced
# atomically): "ON 1764648000", with " denied=N" when N connections were refused lately.
write_state() {
  [[ -d $run_dir ]] || { mkdir -p "$run_dir"; chmod 0755 "$run_dir"; }
  local extra=
  [[ ${2:-0} == 0 ]] || extra=" denied=$2"
  printf '%s %(%s)T%s\n' "$1" -1 "$extra" >"$state_file.new"
  mv -f "$state_file.new" "$state_file"
}

# own_addresses: OWN set to the guest's IPv4 addresses, blank-separated with blanks around (the
# kernel log is shared by every network namespace on a host: only lines from these are ours).
own_addresses() {
  OWN=" $(ip -4 -o addr show 2>/dev/null | awk '{ sub(/\/.*/, "", $4); printf "%s ", $4 }')"
}

# refusal_lines [iso]: the firewall's deny log lines from the kernel ("K " before each; with iso,
# dmesg's ISO times rather than seconds since boot) and the proxy's refusals ("P ").
refusal_lines() {
  local f
  if [[ ${1:-} == iso ]]; then dmesg --time-format iso; else dmesg; fi 2>/dev/null | grep -F "$deny_prefix" | sed 's/^/K /' || true
  for f in "$proxy_log.1" "$proxy_log"; do
    if [[ -r $f ]]; then grep -F ' verdict=- ' "$f" | sed 's/^/P /' || true; fi
  done
}

# count_denied: DENIED set to the connections refused in the last 10 minutes: the firewall's
# deny log (rate limited: at least that many) and the proxy's refusals.
count_denied() {
  local up now
  read -r up _ </proc/uptime
  printf -v now '%(%s)T' -1
  own_addresses
  DENIED=$(refusal_lines | awk -v up="${up%.*}" -v now="$now" -v addrs="$OWN" '
    # Only the lines of the LOG target: the prefix first, then IN= (another kernel message quoting
    # a file name could carry the prefix further on).
    $1 == "K" && $0 ~ /^K \[ *[0-9.]+\] cc-fw-deny: IN=/ {
      t = $0; sub(/^K \[ */, "", t); sub(/\].*/, "", t)
      if (t + 0 < up - 600) next
      for (i = 2; i <= NF; i++) if ($i ~ /^SRC=/ && index(addrs, " " substr($i, 5) " ")) { n++; break }
      next
    }
    $1 == "P" { for (i = 3; i <= NF; i++) if ($i ~ /^ts=/ && substr($i, 4) + 0 >= now - 600) { n++; break } }
    END { print n + 0 }') || DENIED=0
}

prepare_dirs() {
  [[ -d $run_dir ]] || { mkdir -p "$run_dir"; chmod 0755 "$run_dir"; }
  [[ -d $log_dir ]] || { mkdir -p "$log_dir"; chmod 0755 "$log_dir"; }
  [[ -d $work ]] || { mkdir -p "$work"; chmod 0700 "$work"; }
  [[ -d $lib_dir ]] || { mkdir -p "$lib_dir"; chmod 0700 "$lib_dir"; }
  [[ -d $proxy_dir ]] || { mkdir -p "$proxy_dir"; chmod 0700 "$proxy_dir"; }
  locks_ready
}

need_root() { ((EUID == 0)) || die "must be run as root (sudo cc-sandbox-firewall $*)"; }

need_tools() {
  local t
  for t in iptables-legacy-restore iptables-legacy-save ip6tables-legacy-restore ip6tables-legacy-save ipset dnsmasq haproxy socat; do
    command -v "$t" >/dev/null || die "$t is not installed (packages: iptables ipset dnsmasq-base haproxy socat)"
  done
}


cmd_denied() {
  need_root denied
  local f
  own_addresses
  { for f in "$resolver_log.1" "$resolver_log"; do
      if [[ -r $f ]]; then sed 's/^/R /' "$f"; fi
    done
    refusal_lines iso; } |
    LC_ALL=C awk -v addrs="$OWN" -v selfcheck="$selfcheck_name" '
      BEGIN { for (i = 0; i < 256; i++) ord[sprintf("%c", i)] = i }
      # A name as dig prints one: printable ASCII as it is, every other byte (blanks, control
      # characters, escapes) as \DDD, so no name can break a column or reach the terminal raw.
      function shown(s,   out, i, c) {
        out = ""
        for (i = 1; i <= length(s); i++) {
          c = substr(s, i, 1)
          out = out ((ord[c] > 32 && ord[c] < 127 && c != "\\") ? c : sprintf("\\%03d", ord[c]))
        }
        return out
      }
      # The name between a log line'\''s keyword and " is ...": it may hold blanks of its own.
      function logged_name(keyword,   p, n) {
        p = index($0, " " keyword " ")
        n = substr($0, p + length(keyword) + 2)
        sub(/ is [^ ]*$/, "", n)
        return n
      }
      $1 == "R" && $6 == "reply" && $NF ~ /^[0-9.]+$/ && $(NF - 1) == "is" { name[$NF] = shown(logged_name("reply")) }
      $1 == "R" && $6 == "config" && $NF == "NXDOMAIN" && $(NF - 1) == "is" {
        n = logged_name("config")
        if (n == selfcheck || n ~ /in-addr\.arpa$/) next
        # dnsmasq logs a name with other control characters as "<name unprintable>".
        n = (n == "<name unprintable>") ? n : shown(n)
        if (!(n in refused)) order[++nn] = n
        refused[n]++; last[n] = $2 " " $3 " " $4
      }
      # The proxy logs only names it could print; anything else is "<unprintable>" already.
      $1 == "P" && $2 == "ccproxy" {
        pn = pp = pd = pw = ""
        for (i = 4; i <= NF; i++) {
          split($i, kv, "=")
          if (kv[1] == "name") pn = kv[2]; else if (kv[1] == "port") pp = kv[2]
          else if (kv[1] == "dst") pd = kv[2]; else if (kv[1] == "why") pw = kv[2]
        }
        pkey = shown(pn) " " pp " " pw
        if (!(pkey in phits)) porder[++pnn] = pkey
        phits[pkey]++; plast[pkey] = $3; pdst[pkey] = pd
        next
      }
      $1 == "K" && $3 == "cc-fw-deny:" && $4 ~ /^IN=/ {
        src = dst = proto = dpt = uid = ""
        for (i = 3; i <= NF; i++) {
          split($i, kv, "=")
          if (kv[1] == "SRC") src = kv[2]; else if (kv[1] == "DST") dst = kv[2]
          else if (kv[1] == "PROTO") proto = tolower(kv[2]); else if (kv[1] == "DPT") dpt = kv[2]
          else if (kv[1] == "UID") uid = kv[2]
        }
        if (index(addrs, " " src " ") == 0) next
        key = dst " " proto (dpt == "" ? "" : "/" dpt)
        if (!(key in hits)) korder[++kn] = key
        hits[key]++; ktime[key] = $2; kuid[key] = uid
      }
      END {
        print "Blocked connections (destination, protocol/port, last resolved name, uid, count, last seen):"
        if (kn == 0) print "  none logged"
        for (i = (kn > 50 ? kn - 49 : 1); i <= kn; i++) {
          k = korder[i]; split(k, p, " ")
          printf "  %-15s %-10s %-40s uid=%-6s x%-4d %s\n", p[1], p[2], (p[1] in name ? name[p[1]] : "-"), kuid[k], hits[k], ktime[k]
        }
        print "Names the resolver refused (not allowlisted):"
        if (nn == 0) print "  none"
        for (i = (nn > 50 ? nn - 49 : 1); i <= nn; i++) printf "  %-50s x%-4d %s\n", order[i], refused[order[i]], last[order[i]]
        why["name-not-allowed"] = "name not allowed on this port"; why["no-name"] = "no server name"
        why["not-tls"] = "not a TLS ClientHello"; why["name-not-resolved"] = "the resolver gave no address"
        why["not-origin-form"] = "CONNECT or an absolute URL"; why["bad-host"] = "a Host that is not a name[:port]"
        why["upgrade"] = "an upgrade to another protocol"
        print "Connections the name-checking proxy refused (name asked for, port, address asked, reason, count, last seen):"
        if (pnn == 0) print "  none"
        for (i = (pnn > 50 ? pnn - 49 : 1); i <= pnn; i++) {
          k = porder[i]; split(k, p, " ")
          printf "  %-40s %-5s %-15s %-30s x%-4d %s\n", p[1], p[2], pdst[k], (p[3] in why ? why[p[3]] : "malformed or no request"), phits[k], plast[k]
        }
      }'
}
