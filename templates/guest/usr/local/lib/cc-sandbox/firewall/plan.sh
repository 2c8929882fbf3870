# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# The firewall's allowlist plan: the address rules, the plan checker and loader, the upstream
# DNS servers.
# Sourced by /usr/local/sbin/cc-sandbox-firewall, never run: its constants and log() are in scope.

# The address rules, in one place, for every awk program here: a lowercase DNS name of two labels
# or more whose last label starts with a letter; an IPv4 CIDR as a dotted quad without leading
# zeros, a prefix from MIN to 32 and its host bits zero. (The host's schema holds the same rules;
# test/unit/egress.test.ts feeds both the same entries.)
readonly awk_rules='
    function valid_name(n,   l, k, i) {
      if (length(n) > 253) return 0
      k = split(n, l, ".")
      if (k < 2) return 0
      for (i = 1; i <= k; i++)
        if (length(l[i]) > 63 || l[i] !~ /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/) return 0
      return l[k] ~ /^[a-z]/
    }
    function valid_cidr(c, min,   p, o, i, addr) {
      if (c !~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\/[0-9]+$/) return 0
      split(c, p, "/")
      if (p[2] ~ /^0./ || p[2] + 0 < min || p[2] + 0 > 32) return 0
      split(p[1], o, ".")
      addr = 0
      for (i = 1; i <= 4; i++) {
        if (length(o[i]) > 3 || o[i] ~ /^0./ || o[i] + 0 > 255) return 0
        addr = addr * 256 + o[i]
      }
      return addr % (2 ^ (32 - p[2])) == 0
    }'

# load_plan FILE [CONF]: checks every line of the allowlist FILE, an egress plan made on the host
# (src/render/egress.ts; all errors reported, as FILE:LINE), and, only when all are good and CONF
# is given, writes the resolver's config to CONF and the plan files:
#   $work/plan.users    UID MODE        each project worker the plan has rules for (MODE
#                                       allowlist: the stack's and its own; none: its own only)
#   $work/plan.sets     SET PORTS       one set per distinct port list and owner (d: DNS answers,
#                                       n: CIDRs; ccfw-UID-…: that worker's alone)
#   $work/plan.cidrs    SET CIDR
#   $work/plan.domains  DOMAIN SET,...  the sets an answer under DOMAIN goes into
#   $work/plan.proxy    MODE MATCH KEY [UID]  what the name-checking proxy lets through: MODE tls
#                                       or http, MATCH exact (KEY NAME:PORT) or suffix (.NAME:PORT);
#                                       with UID, for that worker alone
# Sets PLAN_COUNTS. The plan is not re-planned here: each line's shape is checked, each set a line
# names must be declared (and of the right kind), and each proxy key must be a TLS or HTTP port of
# its name; then the lines are loaded as they are. One awk process, whatever the number of lines.
load_plan() {
  local file=$1 conf=${2:-}
  [[ -r $file ]] || { log "cannot read allowlist $file"; return 1; }
  PLAN_COUNTS=$(awk -v file="$file" -v conf="$conf" -v work="$work" -v ups="${upstreams[*]}" -v uid_min="$worker_uid_min" -v uid_max="$worker_uid_max" \
    -v marker="$resolv_marker" -v user="$resolver_user" -v pidfile="$resolver_pid" -v logfile="$resolver_log" "$awk_rules"'
    function err(msg, line) { printf "cc-sandbox-firewall: %s:%d: %s\n", file, line ? line : NR, msg > "/dev/stderr"; errors++ }
    function valid_port(p) { return p ~ /^[1-9][0-9]?[0-9]?[0-9]?[0-9]?$/ && p + 0 <= 65535 }
    # PORT/MODE,... : 1 to 16 ports, each once; a network (kind n) is reached by address only
    function valid_ports(s, kind,   a, k, i, port, seen) {
      k = split(s, a, ",")
      if (k < 1 || k > 16) return 0
      for (i = 1; i <= k; i++) {
        if (a[i] !~ /^[0-9]+\/(raw|tls|http)$/ || (kind == "n" && a[i] !~ /\/raw$/)) return 0
        port = a[i]; sub(/\/.*/, "", port)
        if (!valid_port(port) || (port in seen)) return 0
        seen[port] = 1
      }
      return 1
    }
    {
      sub(/#.*/, "")
      if (NF == 0) next
      if (!version) {
        version = 1
        if ($0 != "plan 1") unversioned = 1
        if ($0 != "plan 1") err("'\''" $0 "'\'': the first line must be '\''plan 1'\'': the allowlist is a plan made by cc-sandbox on the host")
        next
      }
    }
    $1 == "counts" && NF == 4 {
      if (counted++ || $2 !~ /^[0-9]+$/ || $3 !~ /^[0-9]+$/ || $4 !~ /^[0-9]+$/) err("'\''" $0 "'\'': one counts line: three numbers")
      counts = sprintf("%d names, %d wildcards, %d CIDRs", $2, $3, $4)
      next
    }
    # a project worker: a uid in the workers'\'' range, once
    $1 == "user" && NF == 3 {
      if ($2 !~ /^[1-9][0-9][0-9][0-9][0-9]$/ || $2 + 0 < uid_min || $2 + 0 > uid_max) err("'\''" $2 "'\'' is not a worker'\''s uid (" uid_min "-" uid_max ")")
      else if ($3 != "allowlist" && $3 != "none") err("'\''" $3 "'\'' is no network mode (allowlist or none)")
      else if ($2 in user_mode) err("user '\''" $2 "'\'' is declared twice")
      else if (n_sets) err("user '\''" $2 "'\'' comes after a set: users first")
      else user_mode[$2] = $3
      next
    }
    $1 == "set" && NF == 3 {
      kind = ""; owner = ""
      if ($2 ~ /^ccfw-[dn]-[0-9a-z.]+$/) kind = substr($2, 6, 1)
      else if ($2 ~ /^ccfw-[1-9][0-9]*-[dn]-[0-9a-z.]+$/) { owner = $2; sub(/^ccfw-/, "", owner); sub(/-.*/, "", owner); kind = substr($2, 7 + length(owner), 1) }
      if (kind == "" || length($2) > 31) err("'\''" $2 "'\'' is not a set name (ccfw-d-…, ccfw-n-…, or ccfw-UID-d-… and ccfw-UID-n-… for a worker; 31 characters at most)")
      else if (owner != "" && !(owner in user_mode)) err("set '\''" $2 "'\'' belongs to no user declared above")
      else if ($2 in set_ports) err("set '\''" $2 "'\'' is declared twice")
      else if (!valid_ports($3, kind)) err("'\''" $3 "'\'' must be a comma list of 1 to 16 TCP ports (1-65535), each once, each /raw, /tls or /http (a network'\''s: /raw)")
      else { set_ports[$2] = $3; set_kind[$2] = kind; set_owner[$2] = owner; n_sets++ }
      next
    }
    $1 == "cidr" && NF == 3 {
      if (!($2 in set_ports) || set_kind[$2] != "n") err("'\''" $2 "'\'' is no network set declared above")
      else if (!valid_cidr($3, 8)) err("'\''" $3 "'\'' is not an IPv4 CIDR (prefix 8-32, host bits zero)")
      else if (($2 SUBSEP $3) in cidr) err("'\''" $3 "'\'' is listed twice in '\''" $2 "'\''")
      else cidr[$2, $3] = 1
      next
    }
    $1 == "name" && NF == 4 {
      if (!valid_name($2)) { err("'\''" $2 "'\'' is not a lowercase DNS name"); next }
      if ($2 in scope) { err("'\''" $2 "'\'' is listed twice"); next }
      if ($3 != "only" && $3 != "tree" && $3 != "below") { err("'\''" $3 "'\'' is no scope (only, tree or below)"); next }
      k = split($4, a, ","); bad = 0; split("", seen)
      for (i = 1; i <= k; i++) { if (!(a[i] in set_ports) || set_kind[a[i]] != "d" || (a[i] in seen)) bad = 1; seen[a[i]] = 1 }
      if (bad) { err("'\''" $4 "'\'' must list name sets declared above, each once"); next }
      scope[$2] = $3; sets[$2] = $4; order[++names] = $2
      next
    }
    $1 == "proxy" && (NF == 4 || NF == 5) {
      if (($2 != "tls" && $2 != "http") || ($3 != "exact" && $3 != "suffix")) { err("'\''" $2 " " $3 "'\'': a proxy key is tls or http, exact or suffix"); next }
      key = $4; port = key; sub(/^.*:/, "", port); n = key; sub(/:[^:]*$/, "", n)
      if ($3 == "suffix") { if (n !~ /^\./) n = "-"; else n = substr(n, 2) }
      if (key !~ /:/ || !valid_name(n) || !valid_port(port)) { err("'\''" key "'\'' is not NAME:PORT (a suffix: .NAME:PORT)"); next }
      if (NF == 5 && !($5 in user_mode)) { err("'\''" $5 "'\'' is no user declared above"); next }
      id = key " " $5
      if (id in proxied) { err("'\''" key "'\'' is listed twice" (NF == 5 ? " for user " $5 : "")); next }
      proxied[id] = $2 " " $3; pkey[id] = key; pname[id] = n; pport[id] = port; pline[id] = NR; powner[id] = $5
      next
    }
    { err("'\''" $0 "'\'' is no plan line (plan, counts, set, cidr, name or proxy with their fields)") }
    END {
      if (!version) err("the allowlist is empty: it must start with '\''plan 1'\''", 1)
      else if (!counted && !unversioned) err("no counts line", NR)
      # A proxy key lets a name through on a port only if that name is listed with that port in
      # that mode, in a set of the key'\''s owner (the stack'\''s, or that worker'\''s): an exact key for a
      # name the resolver answers (not `below`), a suffix key for a name whose subdomains it
      # answers (not `only`).
      for (id in proxied) {
        split(proxied[id], pm, " "); n = pname[id]; ok = 0
        if ((n in scope) && scope[n] != (pm[2] == "exact" ? "below" : "only")) {
          k = split(sets[n], a, ",")
          for (i = 1; i <= k; i++) if (set_owner[a[i]] == powner[id] && ("," set_ports[a[i]] ",") ~ ("," pport[id] "/" pm[1] ",")) ok = 1
        }
        if (!ok) err("'\''" pkey[id] "'\'': no name line opens " pport[id] "/" pm[1] " for " (pm[2] == "suffix" ? "*." : "") n (powner[id] == "" ? "" : " in a set of user " powner[id]), pline[id])
      }
      if (errors) { printf "cc-sandbox-firewall: %s: %d bad line(s); nothing was changed\n", file, errors > "/dev/stderr"; exit 2 }
      if (conf == "") { print counts; exit 0 }

      for (s in set_ports) print s, set_ports[s] > (work "/plan.sets")
      printf "" > (work "/plan.sets")
      for (c in cidr) { split(c, sc, SUBSEP); print sc[1], sc[2] > (work "/plan.cidrs") }
      printf "" > (work "/plan.cidrs")
      printf "" > (work "/plan.users")
      for (u in user_mode) print u, user_mode[u] > (work "/plan.users")
      printf "" > (work "/plan.proxy")
      for (id in proxied) print proxied[id], pkey[id], powner[id] > (work "/plan.proxy")
      nu = split(ups, up, " ")
      print marker " generated from the allowlist; rewritten on every up/apply" > conf
      print "user=" user "\npid-file=" pidfile "\nno-resolv\nno-hosts\nno-poll\nlisten-address=127.0.0.1" > conf
      print "bind-interfaces\ncache-size=2000\nfilter-AAAA\nlog-queries\nlog-facility=" logfile "\naddress=/#/" > conf
      printf "" > (work "/plan.domains")
      for (j = 1; j <= names; j++) {
        d = order[j]
        for (i = 1; i <= nu; i++) print "server=/" (scope[d] == "below" ? "*." : "") d "/" up[i] > conf
        if (scope[d] == "only") print "address=/*." d "/" > conf
        print "ipset=/" d "/" sets[d] > conf
        print d, sets[d] > (work "/plan.domains")
      }
      print counts
    }' "$file") || return 2
  [[ -n $conf ]] || return 0
  declare -gA set_ports=() plan_users=()
  local s p
  while read -r s p; do set_ports[$s]=$p; done <"$work/plan.sets"
  while read -r s p; do plan_users[$s]=$p; done <"$work/plan.users"
}

# ---------------------------------------------------------------------------------------------
# Upstream DNS servers: the ones the VM was given, never a loopback stub.

# nameservers_in FILE: sets NS to the IPv4 nameservers of a resolv.conf, loopback left out, and
# fails when FILE is missing or is our own. Read by bash (no process: `up` reads one or two).
nameservers_in() {
  local line key ns rest o
  local -a octets
  NS=()
  [[ -r $1 ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    read -r key ns rest <<<"$line"
    [[ "$key $ns" != "$resolv_marker"* ]] || { NS=(); return 1; }
    [[ $key == nameserver && $ns =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ && $ns != 127.* ]] || continue
    IFS=. read -ra octets <<<"$ns"
    for o in "${octets[@]}"; do
      if [[ $o == 0?* ]] || ((10#$o > 255)); then continue 2; fi
    done
    NS+=("$ns")
  done <"$1"
  return 0
}

find_upstreams() {
  local saved=
  if { nameservers_in "$resolved_upstreams" && ((${#NS[@]} > 0)); } ||
    { nameservers_in /etc/resolv.conf && ((${#NS[@]} > 0)); }; then
    local want
    printf -v want 'nameserver %s\n' "${NS[@]}"
    [[ ! -r $upstreams_file ]] || IFS= read -rd '' saved <"$upstreams_file" || true
    if [[ $saved != "$want" ]]; then
      printf '%s' "$want" >"$lib_dir/.upstreams.new" && mv -f "$lib_dir/.upstreams.new" "$upstreams_file"
    fi
  else
    nameservers_in "$upstreams_file" || true
  fi
  upstreams=("${NS[@]}")
  ((${#upstreams[@]} > 0)) || log "warning: no upstream DNS server known yet; allowlisted names will not resolve until one is (the watcher reloads when it appears)"
}
