#!/bin/bash
# Loads the bubblewrap AppArmor profile so Claude Code's Bash sandbox can create user namespaces
# on Ubuntu 24.04 (kernel.apparmor_restrict_unprivileged_userns=1).
#   - No AppArmor (no parser, or not enabled in the kernel): nothing to load; logged, and
#     cc-sandbox-verify reports it.
#   - Another profile attached to /usr/bin/bwrap is installed (apparmor's bwrap-userns-restrict,
#     or one a later package ships): two attachments to one path make the parser refuse both, so
#     ours steps aside through /etc/apparmor.d/disable and the other one rules.
#   - The profile fails to load: fatal where the kernel restricts user namespaces (bwrap could not
#     work), a warning elsewhere.
set -euo pipefail

readonly name=cc-sandbox-bwrap
readonly profiles_dir=/etc/apparmor.d
readonly profile=$profiles_dir/$name
readonly securityfs=/sys/kernel/security/apparmor
readonly restrict_sysctl=/proc/sys/kernel/apparmor_restrict_unprivileged_userns

log() { printf '30-apparmor: %s\n' "$*" >&2; }

[[ -f $profile ]] || { log "error: $profile is missing"; exit 1; }

if ! command -v apparmor_parser >/dev/null; then
  log "apparmor_parser is not installed: profile $name not loaded"
  exit 0
fi
if [[ ! -r $securityfs/profiles ]]; then
  log "AppArmor is not enabled in this kernel: profile $name not loaded"
  exit 0
fi

restricted=0
if [[ -r $restrict_sysctl && $(<"$restrict_sysctl") == 1 ]]; then restricted=1; fi

# Another enabled profile in /etc/apparmor.d whose attachment is /usr/bin/bwrap. One grep over
# every file (a process per file costs seconds on a slow VM).
other_bwrap_profile() {
  local file base
  local -a files=()
  # A top-level profile header (`[profile NAME] /usr/bin/bwrap [flags=(...)] {` at the start of a
  # line), not a rule that merely runs bwrap (`  /usr/bin/bwrap rix,`) nor an indented child
  # profile, which applies only inside its parent.
  mapfile -t files < <(find "$profiles_dir" -maxdepth 1 -type f -print0 |
    xargs -0 -r grep -lE '^(profile[[:space:]]+[^[:space:]]+[[:space:]]+)?/usr/bin/bwrap([[:space:]]+flags=\([^)]*\))?[[:space:]]*\{' || true)
  for file in "${files[@]}"; do
    base=${file##*/}
    [[ $base != "$name" ]] || continue
    [[ ! -e $profiles_dir/disable/$base ]] || continue
    printf '%s\n' "$file"
    return 0
  done
  return 1
}

loaded() { grep -q "^$name (" "$securityfs/profiles"; }

if other=$(other_bwrap_profile); then
  mkdir -p "$profiles_dir/disable"
  ln -sfn "../$name" "$profiles_dir/disable/$name"
  if loaded; then apparmor_parser -R "$profile"; fi
  log "$other already confines /usr/bin/bwrap: $name disabled so the two do not conflict"
  exit 0
fi

rm -f "$profiles_dir/disable/$name"
if ! apparmor_parser -r -W "$profile"; then
  if ((restricted)); then
    log "error: could not load $profile, and this kernel restricts unprivileged user namespaces:" \
      "bwrap (Claude Code's sandbox) cannot work"
    exit 1
  fi
  log "warning: could not load $profile; this kernel does not restrict user namespaces, bwrap works without it"
  exit 0
fi
loaded || { log "error: $name is not listed in $securityfs/profiles after loading"; exit 1; }
log "loaded $name (unprivileged user namespaces restricted: $restricted)"
