# Shared by the secure-ops dispatcher (run as the secrets owner) and cc-sandbox-secure-ops (run as
# root): where the bridge lives, how its allowlist is parsed, and when a script may be trusted.
# Sourced, never executed; callers set `set -euo pipefail` and LC_ALL=C.
# shellcheck shell=bash disable=SC2034

# The stack's bridge (the agent's), or with SECURE_OPS_PROJECT=NAME set before this is sourced, the
# bridge of project NAME (its worker's): an owner, home, allowlist, host key, port and log of its own,
# so one project's scripts never run as the owner of another's secrets.
# A project's name and its worker's (project_name_re, worker_name_re).
# shellcheck source-path=SCRIPTDIR source-path=SCRIPTDIR/../lib/cc-sandbox source=workers.sh
. /usr/local/lib/cc-sandbox/workers.sh
readonly SECURE_OPS_PROJECTS_HOME=/var/lib/cc-sandbox/project-secrets
readonly SECURE_OPS_PROJECTS_ETC=/etc/cc-sandbox/secure-ops.d
if [ -n "${SECURE_OPS_PROJECT:-}" ]; then
  [[ $SECURE_OPS_PROJECT =~ $project_name_re ]] || {
    printf 'secure-ops: not a project name: %q\n' "$SECURE_OPS_PROJECT" >&2
    exit 2
  }
  readonly SECURE_OPS_PROJECT
  readonly SECURE_OPS_USER=ccs-$SECURE_OPS_PROJECT
  # The owner's home holds its secrets (written as the owner) and what its scripts leave; root
  # keeps everything else of the bridge in a directory of its own, which the owner cannot change.
  readonly SECURE_OPS_HOME=$SECURE_OPS_PROJECTS_HOME/$SECURE_OPS_PROJECT
  readonly SECURE_OPS_ETC=$SECURE_OPS_PROJECTS_ETC/$SECURE_OPS_PROJECT
  readonly SECURE_OPS_SSH_DIR=$SECURE_OPS_ETC
  readonly SECURE_OPS_CONF=$SECURE_OPS_ETC/scripts.conf
  readonly SECURE_OPS_SSHD_CONFIG=$SECURE_OPS_ETC/sshd_config
  readonly SECURE_OPS_KNOWN_HOSTS=$SECURE_OPS_ETC/known_hosts
  # `PORT USER`: what secure_run of the project's worker connects to.
  readonly SECURE_OPS_CLIENT=$SECURE_OPS_ETC/client
  readonly SECURE_OPS_LOG=/var/log/cc-sandbox/secure-ops.d/$SECURE_OPS_PROJECT.log
else
  readonly SECURE_OPS_PROJECT=
  readonly SECURE_OPS_USER=ccsecrets
  # Below 1024, as a project's bridge's port is (SECURE_OPS_PROJECT_PORTS): no user can bind it
  # first, not even while the bridge restarts.
  readonly SECURE_OPS_PORT=799
  readonly SECURE_OPS_HOME=/var/lib/cc-sandbox/secure-ops
  readonly SECURE_OPS_CONF=/etc/cc-sandbox/secure-ops.conf
  readonly SECURE_OPS_SSHD_CONFIG=/etc/cc-sandbox/secure-ops-sshd_config
  readonly SECURE_OPS_KNOWN_HOSTS=/etc/cc-sandbox/secure-ops.known_hosts
  readonly SECURE_OPS_LOG=/var/log/cc-sandbox/secure-ops.log
  readonly SECURE_OPS_SSH_DIR=$SECURE_OPS_HOME/ssh
fi
readonly SECURE_OPS_SECRETS=$SECURE_OPS_HOME/secrets
readonly SECURE_OPS_SSHD_COMMON=/etc/cc-sandbox/secure-ops-sshd_common
readonly SECURE_OPS_DISPATCH=/usr/local/lib/cc-sandbox/secure-ops-dispatch
readonly SECURE_OPS_KEY_NAME=cc-sandbox-secure-ops
# Projects' bridges listen on loopback ports from this range, one each, chosen when the bridge is
# made: below 1024, so no user can take one first (the bridge's sshd binds it with
# CAP_NET_BIND_SERVICE, which the dispatcher drops before a script runs).
readonly SECURE_OPS_PROJECT_PORTS=(800 899)
# bash's loadable stat builtin (package bash-builtins), used by secure_ops_check_trust.
readonly SECURE_OPS_STAT_BUILTIN=/usr/lib/bash/stat

readonly SECURE_OPS_SECRET_NAME_RE='^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'

# Parsed allowlist: parallel arrays, filled by secure_ops_parse_conf.
SECURE_OPS_PATHS=()
SECURE_OPS_PATTERNS=()
# Set by secure_ops_check_trust.
SECURE_OPS_UNTRUSTED=

# The checks below run on every request, so they use glob tests where a regex would do the same:
# bash compiles a regex each time it matches one. Callers set LC_ALL=C, so ranges are ASCII.

# An absolute path of one or more non-empty components made of [A-Za-z0-9_.+@,=:%-], without `..`.
secure_ops_valid_path() {
  local p=$1
  [[ $p == /* && $p != */ && $p != *//* && $p != *..* && $p != *[!A-Za-z0-9_.+@,=:%/-]* ]]
}

# Returns 0 if PATTERN is a valid extended regex for [[ =~ ]] without blanks or control characters.
secure_ops_valid_pattern() {
  local re="^(${1})\$" rc
  [[ -n $1 && $1 != *[[:space:][:cntrl:]]* ]] || return 1
  [[ "" =~ $re ]] && return 0
  # [[ =~ ]] returns 2, not 1, when the pattern does not compile.
  # shellcheck disable=SC2319
  rc=$?
  [ "$rc" -ne 2 ]
}

# Parses an allowlist file (`PATH [ARG_PATTERN]` per line, `#` comments) into SECURE_OPS_PATHS and
# SECURE_OPS_PATTERNS. Prints every bad line to stderr and returns 1 if there was any.
secure_ops_parse_conf() {
  # Fields are split with word splitting, which must never glob a pattern's * or [.
  local - IFS=$' \t' file=$1 line n=0 bad=0
  local -a lines fields
  set -f
  SECURE_OPS_PATHS=()
  SECURE_OPS_PATTERNS=()
  if ! mapfile -t lines <"$file"; then
    printf '%s: cannot read\n' "$file" >&2
    return 1
  fi
  for line in "${lines[@]}"; do
    n=$((n + 1))
    if [[ ${line//$'\t'/ } == *[[:cntrl:]]* ]]; then
      printf '%s:%d: control character in line\n' "$file" "$n" >&2
      bad=1
      continue
    fi
    # shellcheck disable=SC2206 # split on blanks on purpose; globbing is off
    fields=($line)
    # A blank line, or a comment: `#` first on the line after any blanks.
    [[ ${#fields[@]} -eq 0 || ${fields[0]} == '#'* ]] && continue
    if [ "${#fields[@]}" -gt 2 ]; then
      printf '%s:%d: expected PATH [ARG_PATTERN], got more fields\n' "$file" "$n" >&2
      bad=1
    elif ! secure_ops_valid_path "${fields[0]}"; then
      printf '%s:%d: not an absolute, plain script path: %q\n' "$file" "$n" "${fields[0]}" >&2
      bad=1
    elif [ -n "${fields[1]-}" ] && ! secure_ops_valid_pattern "${fields[1]}"; then
      printf '%s:%d: not a valid argument pattern (POSIX ERE): %q\n' "$file" "$n" "${fields[1]}" >&2
      bad=1
    else
      SECURE_OPS_PATHS+=("${fields[0]}")
      SECURE_OPS_PATTERNS+=("${fields[1]-}")
    fi
  done
  return "$bad"
}

# Checks that each PATH can be trusted, given as pairs: PATH OTHER_BITS. The file and every
# directory above it must be root-owned, not writable by group or others, and not symlinks, so only
# root can swap or edit it (group/other write bits also reflect any ACL mask). The file must be a
# regular file granting others the octal permission bits OTHER_BITS: 5 (read + execute) for a
# script, 4 for a data file. Returns 1 with the first problem in SECURE_OPS_UNTRUSTED, else 0.
# This runs on every request, so it starts no process where bash's loadable stat is installed
# (bash-builtins); elsewhere it runs coreutils' stat once for every path.
secure_ops_check_trust() {
  local -A need=() st=()
  local -a chain=() one=() lines=()
  local p line uid mode kind name out
  SECURE_OPS_UNTRUSTED=
  while [ "$#" -ge 2 ]; do
    need[$1]=$2
    one=()
    p=$1
    while [ -n "$p" ]; do
      one=("$p" "${one[@]}")
      p=${p%/*}
    done
    chain+=(/ "${one[@]}")
    shift 2
  done
  # Each line: UID OCTAL_MODE TYPE|NAME, TYPE starting with the letter `ls -l` shows (- d l ...).
  if secure_ops_enable_stat; then
    for p in "${chain[@]}"; do
      # -L: lstat, so a symlink is seen as one.
      if ! stat -L -A st -- "$p" 2>/dev/null; then
        SECURE_OPS_UNTRUSTED="cannot stat: $p"
        enable -n stat
        return 1
      fi
      lines+=("${st[uid]} ${st[perms]} ${st[type]}|$p")
    done
    # Disabled again, so that `stat` in the caller stays coreutils' command.
    enable -n stat
  else
    if ! out=$(/usr/bin/stat -c '%u %a %A|%n' -- "${chain[@]}" 2>&1); then
      SECURE_OPS_UNTRUSTED="cannot stat: ${out##*stat: }"
      return 1
    fi
    # Split with parameter expansion, not read: read on a pipe costs a system call per character.
    # Names are plain paths (no space, | or newline).
    out+=$'\n'
    while [ -n "$out" ]; do
      line=${out%%$'\n'*}
      out=${out#*$'\n'}
      lines+=("$line")
    done
  fi
  for line in "${lines[@]}"; do
    uid=${line%% *}
    line=${line#* }
    mode=${line%% *}
    line=${line#* }
    kind=${line:0:1}
    name=${line#*|}
    if [ "$kind" = l ]; then
      SECURE_OPS_UNTRUSTED="$name is a symlink"
    elif [ "$uid" != 0 ]; then
      SECURE_OPS_UNTRUSTED="$name is not owned by root"
    elif (((8#$mode & 8#022) != 0)); then
      SECURE_OPS_UNTRUSTED="$name is writable by group or others (mode ${mode#0})"
    elif [ -n "${need[$name]-}" ]; then
      if [ "$kind" != - ]; then
        SECURE_OPS_UNTRUSTED="$name is not a regular file"
      elif (((8#$mode & ${need[$name]}) != ${need[$name]})); then
        SECURE_OPS_UNTRUSTED="$name does not grant others permission ${need[$name]} (mode ${mode#0})"
      fi
    elif [ "$kind" != d ]; then
      SECURE_OPS_UNTRUSTED="$name is not a directory"
    fi
    [ -z "$SECURE_OPS_UNTRUSTED" ] || return 1
  done
}

# Returns 0 with bash's loadable stat builtin loaded and enabled, 1 if this system has none.
# Callers disable it again with `enable -n stat` once done.
secure_ops_enable_stat() {
  enable stat 2>/dev/null ||
    { [ -r "$SECURE_OPS_STAT_BUILTIN" ] && enable -f "$SECURE_OPS_STAT_BUILTIN" stat 2>/dev/null; }
}
