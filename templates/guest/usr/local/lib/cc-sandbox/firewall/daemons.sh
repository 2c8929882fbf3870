# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# The firewall's two daemons: the filtering resolver (dnsmasq) and the name-checking proxy
# (HAProxy), and tightening the connections already open through them.
# Sourced by /usr/local/sbin/cc-sandbox-firewall, never run: its constants and log() are in scope.

# ---------------------------------------------------------------------------------------------
# The resolver.

# nap SECONDS: a pause without starting a process (a read that times out on a pipe nobody writes
# to): the watcher pauses between its looks, and a process costs tens of milliseconds on an
# emulated VM.
nap() {
  [[ -n ${nap_fd:-} ]] || exec {nap_fd}<> <(:)
  read -rt "$1" -u "$nap_fd" _ || true
}

# alive PID: the process exists and is not a zombie (an exited daemon may wait a while to be reaped).
# (`read` rather than $(<file): a missing file there ends a non-interactive bash. 2>/dev/null
# comes first: redirections apply in order, so a failed `<` would be reported before it.)
alive() {
  local stat
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

resolver_running() {
  local pid comm
  [[ -r $resolver_pid ]] && read -r pid 2>/dev/null <"$resolver_pid" && [[ -n ${pid:-} ]] && alive "$pid" &&
    read -r comm 2>/dev/null <"/proc/$pid/comm" && [[ $comm == dnsmasq ]]
}

# stop_pid PIDFILE: ends the daemon the file names (TERM, then KILL after 3 s) and removes the file.
stop_pid() {
  local pid i
  read -r pid <"$1"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || break
    nap 0.01
  done
  ! alive "$pid" || { kill -9 "$pid" 2>/dev/null || true; sleep 0.05; }
  rm -f "$1"
}

stop_resolver() {
  resolver_running || return 0
  stop_pid "$resolver_pid"
}

start_resolver() {
  stop_resolver
  # The daemon must not inherit the lock's descriptor (fd 9): it would hold the lock for good.
  dnsmasq --conf-file="$resolver_conf" 9>&- || return 1
  resolver_running
}

# Every program asks our resolver, and only it.
point_resolv_conf() {
  local want current=
  printf -v want '%s every lookup goes through the filtering resolver\nnameserver 127.0.0.1\noptions edns0 trust-ad\n' "$resolv_marker"
  [[ -L /etc/resolv.conf || ! -r /etc/resolv.conf ]] || IFS= read -rd '' current </etc/resolv.conf || true
  [[ $current != "$want" ]] || return 0
  printf '%s' "$want" >/etc/.resolv.conf.cc-sandbox
  mv -f /etc/.resolv.conf.cc-sandbox /etc/resolv.conf
}

restore_resolv_conf() {
  grep -qF "$resolv_marker" /etc/resolv.conf 2>/dev/null || return 0
  if [[ -e $resolved_upstreams ]]; then
    ln -sf "$resolved_upstreams" /etc/resolv.conf
  else
    local ns
    { for ns in "${upstreams[@]}"; do printf 'nameserver %s\n' "$ns"; done; } >/etc/.resolv.conf.cc-sandbox
    chmod 0644 /etc/.resolv.conf.cc-sandbox
    mv -f /etc/.resolv.conf.cc-sandbox /etc/resolv.conf
  fi
}

# ---------------------------------------------------------------------------------------------
# The name-checking proxy.

# write_proxy_conf: HAProxy's configuration. It never changes with the allowlist: what it lets
# through is in the lists ($proxy_dir/*.exact, *.suffix), which `apply` swaps into the running
# proxy (no reload, so open connections stay with the process that checked them).
#   - TLS: waits up to 5 s for a ClientHello; no hello, no server name, or a name whose NAME:PORT is
#     in neither list: refused. (An encrypted ClientHello is judged by its outer name.)
#   - Only connections the firewall redirected are judged: one made to the proxy itself (its
#     original destination on loopback) is refused before it says anything.
#   - A project worker's connection arrives from its own address (127.77.H.L, given on the way by
#     the firewall's nat table, which no one can send from): NAME:PORT@ADDRESS in the workers'
#     lists lets that worker alone through; the stack's lists let it through unless its network is
#     none (its address in none.src).
#   - HTTP: every request on a connection is judged by its Host header (one, a name, origin-form
#     request target, no CONNECT); each goes out on a connection of its own.
#   - The name is then resolved by the filtering resolver and the connection goes to that address,
#     whichever address the client had asked for. A name it does not answer for: refused.
# Each verdict is logged to stderr (the proxy's log) as one line of KEY=VALUE words: accepted
# connections as soon as they are established, refusals when they end.
# HAProxy's own HTTP client (for Lua and the admin CLI) is not used here: told not to verify, it
# loads no CA store at start, which is three quarters of the proxy's start-up (24 ms -> 6 ms).
# It never changes with the allowlist: written (to a temporary file, renamed over it) only when it
# is not already the one on disk, so a run that dies half-way cannot leave it cut short.
write_proxy_conf() {
  local f tmp=$proxy_conf.new want have=
  local acl_tls="var(txn.key) -m str -f $proxy_dir/tls.exact" acl_tls_suffix="var(txn.key) -m end -f $proxy_dir/tls.suffix"
  local acl_http="var(txn.key) -m str -f $proxy_dir/http.exact" acl_http_suffix="var(txn.key) -m end -f $proxy_dir/http.suffix"
  local acl_none="src -f $proxy_dir/none.src"
  local acl_utls="var(txn.ukey) -m str -f $proxy_dir/tls.uexact" acl_utls_suffix="var(txn.ukey) -m end -f $proxy_dir/tls.usuffix"
  local acl_uhttp="var(txn.ukey) -m str -f $proxy_dir/http.uexact" acl_uhttp_suffix="var(txn.ukey) -m end -f $proxy_dir/http.usuffix"
  local fmt='ccproxy %t ts=%Ts pid=%pid id=%rt verdict=%[var(txn.verdict)] why=%[var(txn.why)] name=%[var(txn.shown)] port=%[var(txn.port)] dst=%[var(txn.odst)] via=%[var(txn.ip)] cport=%cp fe=%f'
  {
    printf '%s\n' "# $resolv_marker generated by cc-sandbox-firewall; the lists beside it say what passes" \
      global "  user $proxy_user" "  group $proxy_user" '  chroot /var/lib/haproxy' '  maxconn 4096' '  nbthread 1' '  noreuseport' \
      '  httpclient.ssl.verify none' \
      "  stats socket $proxy_sock mode 600 level admin" '  log stderr format raw daemon' \
      defaults '  log global' '  option splice-response' '  option splice-request' '  timeout connect 10s' '  timeout client 1h' '  timeout server 1h' '  timeout tunnel 1h' \
      '  timeout http-request 10s' '  timeout http-keep-alive 30s' \
      'resolvers filter' '  nameserver filter 127.0.0.1:53' '  accepted_payload_size 1232' '  resolve_retries 2' \
      '  timeout resolve 1s' '  timeout retry 1s' '  hold valid 10s' '  hold nx 1s' '  hold other 1s' '  hold refused 1s' '  hold timeout 1s' '  hold obsolete 1s' \
      'frontend tls' '  mode tcp' "  bind 127.0.0.1:$proxy_tls_port" "  log-format \"$fmt\"" \
      '  tcp-request connection reject if { dst 127.0.0.0/8 }' \
      '  tcp-request inspect-delay 5s' \
      '  tcp-request content set-var(txn.odst) dst' '  tcp-request content set-var(txn.port) dst_port' \
      '  tcp-request content set-var(txn.why) str(not-tls) unless { req.ssl_hello_type 1 }' \
      '  tcp-request content reject unless { req.ssl_hello_type 1 }' \
      '  tcp-request content set-var(txn.name) req.ssl_sni,lower' \
      '  tcp-request content set-var(txn.why) str(no-name) unless { var(txn.name) -m found }' \
      '  tcp-request content reject unless { var(txn.name) -m found }' \
      '  tcp-request content set-var(txn.shown) var(txn.name) if { var(txn.name) -m reg ^[a-z0-9_.*-]{1,253}(?!\\n)$ }' \
      '  tcp-request content set-var(txn.shown) str(<unprintable>) unless { var(txn.shown) -m found }' \
      '  tcp-request content set-var-fmt(txn.key) "%[var(txn.name)]:%[dst_port]"' \
      '  tcp-request content set-var-fmt(txn.ukey) "%[var(txn.key)]@%[src]"' \
      '  tcp-request content set-var(txn.why) str(name-not-allowed)' \
      "  tcp-request content reject unless { $acl_tls } !{ $acl_none } or { $acl_tls_suffix } !{ $acl_none } or { $acl_utls } or { $acl_utls_suffix }" \
      '  tcp-request content do-resolve(txn.ip,filter,ipv4) var(txn.name)' \
      '  tcp-request content set-var(txn.why) str(name-not-resolved) unless { var(txn.ip) -m found }' \
      '  tcp-request content reject unless { var(txn.ip) -m found }' \
      '  tcp-request content set-dst var(txn.ip)' \
      '  tcp-request content set-var(txn.why) str(-)' '  tcp-request content set-var(txn.verdict) str(allow)' \
      '  option logasap' '  default_backend out-tls' \
      'frontend http' '  mode http' "  bind 127.0.0.1:$proxy_http_port" "  log-format \"$fmt\"" \
      '  tcp-request connection reject if { dst 127.0.0.0/8 }' \
      '  option http-server-close' '  option logasap' \
      '  http-request set-var(txn.odst) dst' '  http-request set-var(txn.port) dst_port' \
      '  http-request set-var(txn.why) str(not-origin-form) if METH_CONNECT or !{ url_beg / }' \
      '  http-request deny if METH_CONNECT or !{ url_beg / }' \
      '  http-request set-var(txn.why) str(no-name) unless { req.hdr_cnt(host) eq 1 }' \
      '  http-request deny unless { req.hdr_cnt(host) eq 1 }' \
      '  http-request set-var(txn.why) str(bad-host) unless { req.hdr(host) -m reg -i ^[a-z0-9.-]{1,253}(:[0-9]{1,5})?(?!\\n)$ }' \
      '  http-request deny unless { req.hdr(host) -m reg -i ^[a-z0-9.-]{1,253}(:[0-9]{1,5})?(?!\\n)$ }' \
      '  http-request set-var(txn.why) str(upgrade) if { req.hdr(upgrade) -m found } !{ req.hdr(upgrade) -i websocket }' \
      '  http-request deny if { req.hdr(upgrade) -m found } !{ req.hdr(upgrade) -i websocket }' \
      '  http-request set-var(txn.name) req.hdr(host),field(1,:),lower' \
      '  http-request set-var(txn.shown) var(txn.name) if { var(txn.name) -m reg ^[a-z0-9_.*-]{1,253}(?!\\n)$ }' \
      '  http-request set-var(txn.shown) str(<unprintable>) unless { var(txn.shown) -m found }' \
      '  http-request set-var-fmt(txn.key) "%[var(txn.name)]:%[dst_port]"' \
      '  http-request set-var-fmt(txn.ukey) "%[var(txn.key)]@%[src]"' \
      '  http-request set-var(txn.why) str(name-not-allowed)' \
      "  http-request deny unless { $acl_http } !{ $acl_none } or { $acl_http_suffix } !{ $acl_none } or { $acl_uhttp } or { $acl_uhttp_suffix }" \
      '  http-request do-resolve(txn.ip,filter,ipv4) var(txn.name)' \
      '  http-request set-var(txn.why) str(name-not-resolved) unless { var(txn.ip) -m found }' \
      '  http-request deny unless { var(txn.ip) -m found }' \
      '  http-request set-dst var(txn.ip)' \
      '  http-request set-var(txn.why) str(-)' '  http-request set-var(txn.verdict) str(allow)' \
      '  default_backend out-http' \
      'backend out-tls' '  mode tcp' '  server out 0.0.0.0:0' \
      'backend out-http' '  mode http' '  http-reuse never' '  server out 0.0.0.0:0'
  } >"$tmp"
  IFS= read -rd '' want <"$tmp" || true
  [[ ! -r $proxy_conf ]] || IFS= read -rd '' have <"$proxy_conf" || true
  [[ -n $want && $want == "$have" ]] || mv -f "$tmp" "$proxy_conf"
}

# write_proxy_lists DIR: the plan's keys into DIR/tls.exact, tls.suffix, http.exact, http.suffix,
# a worker's own as KEY@ADDRESS into tls.uexact, tls.usuffix, http.uexact, http.usuffix, and the
# addresses of the workers with network none into none.src.
# Written in place: the proxy reads them only when it starts, and every start (up, apply, the
# watcher's restart) holds the lock this runs under.
write_proxy_lists() {
  local dir=$1 mode match key owner f address u
  local -A out=()
  for f in $proxy_lists; do out[$f]=; done
  while read -r mode match key owner; do
    if [[ -z $owner ]]; then
      out[$mode.$match]+="$key"$'\n'
    else
      worker_address address "$owner"
      out[$mode.u$match]+="$key@$address"$'\n'
    fi
  done <"$work/plan.proxy"
  for u in "${!plan_users[@]}"; do
    [[ ${plan_users[$u]} == none ]] || continue
    worker_address address "$u"
    out[none.src]+="$address"$'\n'
  done
  for f in $proxy_lists; do printf '%s' "${out[$f]}" >"$dir/$f"; done
}

proxy_running() {
  local pid comm
  [[ -r $proxy_pid ]] && read -r pid 2>/dev/null <"$proxy_pid" && [[ -n ${pid:-} ]] && alive "$pid" &&
    read -r comm 2>/dev/null <"/proc/$pid/comm" && [[ $comm == haproxy ]]
}

# proxy_listening: both its ports are listened on (by whom is the pid check's job; only root can
# take ports below 1024). Read from the kernel's socket table, which no rule can hide (a connection
# to try them would hang while rules drop loopback), in one read: the kernel walks the table for
# every read of /proc/net/tcp, so reading it line by line would walk it many times.
proxy_listening() {
  local tls http table
  local -a lines=()
  printf -v tls ' 0100007F:%04X 00000000:0000 0A ' "$proxy_tls_port"
  printf -v http ' 0100007F:%04X 00000000:0000 0A ' "$proxy_http_port"
  mapfile -t lines </proc/net/tcp
  table="${lines[*]} "
  [[ $table == *"$tls"* && $table == *"$http"* ]]
}

stop_proxy() {
  proxy_running || { rm -f "$proxy_pid"; return 0; }
  stop_pid "$proxy_pid"
}

# start_proxy: (re)starts it from its configuration and lists, and waits until it listens.
start_proxy() {
  launch_proxy && await_proxy
}

# launch_proxy: (re)starts it (its pid in PROXY_STARTING and its file); await_proxy then waits
# for it, so that `up` builds everything else while the proxy starts.
launch_proxy() {
  stop_proxy
  [[ -d /var/lib/haproxy ]] || install -d -m 0755 /var/lib/haproxy
  # Root's alone: it names where every user connected (the secrets owner's destinations too).
  [[ -e $proxy_log ]] || install -m 0600 /dev/null "$proxy_log"
  # In the foreground (its log is its stderr), in a session of its own, without the lock (fd 9).
  setsid haproxy -db -f "$proxy_conf" </dev/null >>"$proxy_log" 2>&1 9>&- &
  PROXY_STARTING=$!
  printf '%s\n' "$PROXY_STARTING" >"$proxy_pid"
}

# stop_launched_proxy: ends the proxy launch_proxy started in this run (a failed switch's), by its
# pid: until it has exec'd HAProxy, stop_proxy would not know it by name, and it would run on
# unmanaged. Its pid is not reused while it is this shell's unreaped child.
stop_launched_proxy() {
  [[ -n ${PROXY_STARTING:-} ]] || return 0
  kill "$PROXY_STARTING" 2>/dev/null || true
  wait "$PROXY_STARTING" 2>/dev/null || true
  PROXY_STARTING=''
  rm -f "$proxy_pid"
}

# await_proxy: waits (5 s at most) until the proxy launch_proxy started listens on both ports.
# The first sign looked for is its runtime socket, newer than the pid file (HAProxy makes it with
# its ports), which costs no read of the socket table; then the table must show both ports
# listened on. Each 100 ms the table is read whatever the sign.
await_proxy() {
  local pid=$PROXY_STARTING i
  for ((i = 0; i < 1000; i++)); do
    alive "$pid" || { log "the proxy exited at start (see $proxy_log)"; rm -f "$proxy_pid"; return 1; }
    if [[ $proxy_sock -nt $proxy_pid ]] || ((i % 20 == 19)); then
      proxy_listening && return 0
    fi
    nap 0.005
  done
  log "the proxy does not listen on 127.0.0.1:$proxy_tls_port and :$proxy_http_port after 5 s"
  return 1
}

# proxy_cli: runs the commands on stdin (one a line) on the proxy's runtime socket.
proxy_cli() {
  { printf 'prompt\n'; cat; printf 'quit\n'; } | socat -t 10 - "UNIX-CONNECT:$proxy_sock"
}

# update_proxy_lists: the running proxy takes the lists on disk, each one replaced atomically
# (prepare, add, commit), without a reload: open connections stay.
update_proxy_lists() {
  local f out key cmds=
  local -A versions=()
  out=$(for f in $proxy_lists; do printf 'prepare acl %s\n' "$proxy_dir/$f"; done | proxy_cli) || return 1
  for f in $proxy_lists; do
    [[ $out =~ New\ version\ created:\ ([0-9]+) ]] || { log "the proxy did not prepare a new version of $f: $out"; return 1; }
    versions[$f]=${BASH_REMATCH[1]}
    out=${out#*"New version created: ${versions[$f]}"}
  done
  for f in $proxy_lists; do
    while read -r key; do
      [[ -z $key ]] || cmds+="add acl @${versions[$f]} $proxy_dir/$f $key"$'\n'
    done <"$proxy_dir/$f"
    cmds+="commit acl @${versions[$f]} $proxy_dir/$f"$'\n'
  done
  out=$(printf '%s' "$cmds" | proxy_cli) || return 1
  if [[ $out == *rror* || $out == *nknown* || $out == *nvalid* ]]; then
    log "the proxy refused the new lists: $out"
    return 1
  fi
}

# cut_sessions: closes every connection through the proxy whose name the lists no longer allow
# (after `apply` changed them), and any whose name its log does not give for that very stream (an
# HTTP request still waiting for its answer, say): tightening the allowlist takes effect on open
# connections too. Connections still allowed stay. Leaves the client ports of the connections it
# kept in $work/proxy.clients, for cut_connections.
cut_sessions() {
  local sessions=$work/proxy.sessions pid f
  : >"$work/proxy.clients"
  read -r pid 2>/dev/null <"$proxy_pid" || return 1
  printf 'show sess all\n' | proxy_cli >"$sessions" || return 1
  {
    for f in "$proxy_log.1" "$proxy_log"; do
      [[ ! -r $f ]] || grep -F " pid=$pid " "$f" | grep -F ' verdict=allow ' || true
    done
  } | awk -v dir="$proxy_dir" -v sessions="$sessions" -v clients="$work/proxy.clients" '
    function load(file, into,   line) { while ((getline line < file) > 0) if (line != "") into[line] = 1; close(file) }
    function ends(key, suffix) { return length(key) > length(suffix) && substr(key, length(key) - length(suffix) + 1) == suffix }
    # as the proxy judges it: the stack'\''s keys (not for a worker with network none), the worker'\''s own
    function allowed(mode, key, src,   s, ukey) {
      ukey = key "@" src
      if (mode == "tls") {
        if (!(src in none) && (key in tls_exact)) return 1
        if (ukey in tls_uexact) return 1
        if (!(src in none)) for (s in tls_suffix) if (ends(key, s)) return 1
        for (s in tls_usuffix) if (ends(ukey, s)) return 1
      } else if (mode == "http") {
        if (!(src in none) && (key in http_exact)) return 1
        if (ukey in http_uexact) return 1
        if (!(src in none)) for (s in http_suffix) if (ends(key, s)) return 1
        for (s in http_usuffix) if (ends(ukey, s)) return 1
      }
      return 0
    }
    BEGIN {
      load(dir "/tls.exact", tls_exact); load(dir "/tls.suffix", tls_suffix)
      load(dir "/http.exact", http_exact); load(dir "/http.suffix", http_suffix)
      load(dir "/tls.uexact", tls_uexact); load(dir "/tls.usuffix", tls_usuffix)
      load(dir "/http.uexact", http_uexact); load(dir "/http.usuffix", http_usuffix)
      load(dir "/none.src", none)
    }
    # the stream each accepted connection or request was logged for, and its NAME:PORT
    {
      name = port = id = ""
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "name") name = kv[2]; else if (kv[1] == "port") port = kv[2]; else if (kv[1] == "id") id = kv[2]
      }
      if (id != "") key_of[id] = name ":" port
    }
    END {
      # "0xPTR: [date] id=N proto=tcpv4 source=IP:PORT", then "  frontend=NAME (id=...".
      while ((getline line < sessions) > 0) {
        sub(/^(> )+/, "", line) # the runtime prompt
        if (line ~ /^0x[0-9a-f]+: /) {
          ptr = line; sub(/:.*/, "", ptr)
          sid = line; sub(/.* id=/, "", sid); sub(/ .*/, "", sid)
          cport = line; sub(/.* source=/, "", cport); sub(/ .*/, "", cport)
          src = cport; sub(/:[^:]*$/, "", src); sub(/.*:/, "", cport)
        } else if (line ~ /^ +frontend=(tls|http) /) {
          fe = line; sub(/^ +frontend=/, "", fe); sub(/ .*/, "", fe)
          if ((sid in key_of) && allowed(fe, key_of[sid], src)) print cport > clients
          else print "shutdown session " ptr
        }
      }
    }' | proxy_cli >/dev/null
}

# cut_connections: closes the guest's open TCP connections to an address and port the sets no
# longer allow (raw ports, CIDR entries, a removed name's address): tightening takes effect on open
# connections, not only on new ones. Connections through the proxy are judged by name
# (cut_sessions); loopback, SSH in and the resolver's own are never touched.
cut_connections() {
  local s
  local -a none_uids=()
  user_ids
  for s in "${!plan_users[@]}"; do [[ ${plan_users[$s]} != none ]] || none_uids+=("$s"); done
  {
    ipset save 2>/dev/null | awk '$1 == "add" && $2 ~ /^ccfw-/ { print "member", $2, $3 }'
    for s in "${!set_ports[@]}"; do printf 'ports %s %s\n' "$s" "${set_ports[$s]}"; done
    [[ $CC_FIREWALL_GITHUB_META != 1 ]] || printf 'ports %s %s\n' "$github_set" "${github_ports//,//raw,}/raw"
    [[ ! -r $work/proxy.clients ]] || sed 's/^/proxied /' "$work/proxy.clients"
    ss -Htne state established 2>/dev/null | sed 's/^/conn /'
  } | awk -v skip=" ${PROXY_UID:-none} ${RESOLVER_UID:-none} " -v none=" ${none_uids[*]} " '
    # a dotted quad as a number (32 bits fit a double exactly)
    function num(ip,   o) { split(ip, o, "."); return ((o[1] * 256 + o[2]) * 256 + o[3]) * 256 + o[4] }
    function in_net(ip, net,   p, b) { split(net, p, "/"); b = 2 ^ (32 - p[2]); return int(num(ip) / b) == int(num(p[1]) / b) }
    # ip:port is in a set UID may use whose entry gives that port one of MODES (a pattern: "raw",
    # "[a-z]+"): the stack'\''s (unless its network is none) and its own (a worker'\''s set: ccfw-UID-…)
    function allowed(ip, port, modes, uid,   s, i, k, m, owner) {
      for (s in ports) {
        owner = s; if (!sub(/^ccfw-/, "", owner) || owner !~ /^[0-9]+-/) owner = ""; else sub(/-.*/, "", owner)
        if (owner == "" && index(none, " " uid " ")) continue
        if (owner != "" && owner != uid) continue
        if (("," ports[s] ",") !~ ("," port "/" modes ",")) continue
        if ((s, ip) in exact) return 1
        k = split(nets[s], m, " ")
        for (i = 1; i <= k; i++) if (in_net(ip, m[i])) return 1
      }
      return 0
    }
    $1 == "member" { if ($3 ~ /\//) nets[$2] = nets[$2] " " $3; else exact[$2, $3] = 1; next }
    $1 == "ports" { ports[$2] = $3; next }
    $1 == "proxied" { proxied[$2] = 1; next }
    $1 == "conn" {
      uid = "0"
      for (i = 6; i <= NF; i++) if ($i ~ /^uid:/) uid = substr($i, 5)
      if (index(skip, " " uid " ")) next
      n = split($4, l, ":"); lport = l[n]
      n = split($5, r, ":"); rport = r[n]; rip = $5; sub(/:[0-9]+$/, "", rip)
      if (rip !~ /^[0-9.]+$/ || rip ~ /^127\./ || lport == 22) next
      # Root is never redirected: any mode. A connection the proxy carries was judged by name
      # (cut_sessions). Any other went straight to the address: only a raw port allows that now
      # (an entry that became TLS or HTTP no longer does).
      if (uid == "0") { if (!allowed(rip, rport, "[a-z]+", uid)) print rip, rport, lport }
      else if (!(lport in proxied) && !allowed(rip, rport, "raw", uid)) print rip, rport, lport
    }' | sort -u | while read -r ip port lport; do
    ss -K dst "$ip" dport = ":$port" sport = ":$lport" >/dev/null 2>&1 || true
  done
}
