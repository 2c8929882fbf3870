#!/bin/bash
# Keeps the agent's sessions away from the admin user. cloud-init created both users (the admin is
# the image's default user with passwordless sudo, for the human and for Multipass); this step
# takes from the agent every road to root or to the admin's files:
#   - no privileged group (sudo, adm, lxd, ...) and no group shared with the admin;
#   - sudo denied explicitly (/etc/sudoers.d/cc-sandbox), password locked;
#   - `su` only for members of group sudo (pam_wheel), so a leaked admin password is not enough;
#   - the admin's home is 0750, the agent's 0750: neither reads the other's files;
#   - everything in the agent's home is the agent's (cloud-init creates some of it as root);
#   - every login of the agent starts with no_new_privs (its login shell is agent-shell), and its
#     systemd user manager too (user@1001.service.d);
#   - its SSH keys are the stack's, in a root-owned file (sshd reads no key from its home);
#   - podman is root's (and the container projects' workers'), not the agent's.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/cc-sandbox/sandbox.env
# podman_close (rootless Podman is for the workers of projects with containers alone).
# shellcheck source-path=SCRIPTDIR source=../workers.sh
. /usr/local/lib/cc-sandbox/workers.sh

readonly agent=$CC_AGENT_USER admin=$CC_ADMIN_USER
readonly privileged_groups=(sudo admin wheel adm lxd docker libvirt kvm disk shadow systemd-journal netdev)
readonly su_pam=/etc/pam.d/su
readonly agent_shell=/usr/local/lib/cc-sandbox/agent-shell
readonly agent_uid=1001 # user@1001.service.d names it
readonly keys_dir=/etc/ssh/cc-sandbox-authorized_keys

log() { printf '10-users: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# sudoers and sshd_config name the users; they are fixed by the program, check they still agree.
[[ $agent == agent && $admin == ubuntu ]] ||
  die "users are $agent/$admin but /etc/sudoers.d/cc-sandbox and sshd's AllowUsers expect agent/ubuntu"
# Each user's passwd entry read once (name:x:uid:gid:gecos:home:shell): a process costs tens of
# milliseconds on an emulated VM, and this step used to run thirty.
entry=$(getent passwd "$agent") || die "agent user $agent does not exist"
IFS=: read -r _ _ uid _ _ agent_home agent_login <<<"$entry"
entry=$(getent passwd "$admin") || die "admin user $admin does not exist"
IFS=: read -r _ _ _ _ _ admin_home _ <<<"$entry"
[[ $uid == "$agent_uid" ]] ||
  die "agent user $agent has uid $uid, but /etc/systemd/system/user@$agent_uid.service.d expects $agent_uid"

agent_groups=" $(id -nG "$agent") "
admin_groups=" $(id -nG "$admin") "
for group in "${privileged_groups[@]}"; do
  if [[ $agent_groups == *" $group "* ]]; then
    gpasswd -d "$agent" "$group" >/dev/null
    log "removed $agent from group $group"
  fi
done
if [[ $agent_groups == *" $admin "* ]]; then gpasswd -d "$agent" "$admin" >/dev/null; log "removed $agent from group $admin"; fi
if [[ $admin_groups == *" $agent "* ]]; then gpasswd -d "$admin" "$agent" >/dev/null; log "removed $admin from group $agent"; fi

# Locked: its password field starts with '!' (cloud-init's lock_passwd does that already).
locked=0
while IFS=: read -r name password _; do
  if [[ $name == "$agent" ]]; then
    [[ $password != '!'* ]] || locked=1
    break
  fi
done </etc/shadow
((locked)) || passwd -l "$agent" >/dev/null

[[ -f /etc/sudoers.d/cc-sandbox ]] || die "/etc/sudoers.d/cc-sandbox is missing"
chown root:root /etc/sudoers.d/cc-sandbox
chmod 0440 /etc/sudoers.d/cc-sandbox
if command -v visudo >/dev/null; then
  visudo -cq || die "sudoers do not parse (visudo -c)"
fi

# pam_wheel right after pam_rootok: root may still su to anyone, other users only from group sudo.
# has_line RE: a line of su's PAM file matches RE (read by bash, not grep).
has_line() {
  local line
  for line in "${su_lines[@]}"; do
    [[ ! $line =~ $1 ]] || return 0
  done
  return 1
}
su_lines=()
[[ ! -f $su_pam ]] || mapfile -t su_lines <"$su_pam"
if [[ -f $su_pam ]] && ! has_line '^[[:space:]]*auth[[:space:]]+required[[:space:]]+pam_wheel\.so'; then
  has_line '^[[:space:]]*auth[[:space:]]+sufficient[[:space:]]+pam_rootok\.so' ||
    die "$su_pam has no pam_rootok line to put pam_wheel after"
  sed -i -E '0,/^[[:space:]]*auth[[:space:]]+sufficient[[:space:]]+pam_rootok\.so.*$/s//&\nauth       required   pam_wheel.so use_uid group=sudo/' "$su_pam"
  log "su restricted to group sudo"
fi

# cloud-init's write_files creates missing parent directories (~/.claude) as root.
find "$agent_home" -xdev -uid 0 -exec chown "$agent:$agent" {} +

for home in "$admin_home" "$agent_home"; do
  [[ -d $home ]] || die "home $home does not exist"
done
chmod 0750 "$admin_home" "$agent_home"
[[ -x $agent_shell ]] || die "$agent_shell is missing"
# cloud-init gives it this shell already (the cloud-config names it).
[[ $agent_login == "$agent_shell" ]] || usermod -s "$agent_shell" "$agent"

podman_close || die "$podman_bin could not be made root's alone (dpkg-statoverride)"

[[ -f $keys_dir/$agent ]] || die "$keys_dir/$agent (the agent's SSH keys) is missing"
chown root:root "$keys_dir" "$keys_dir/$agent"
chmod 0755 "$keys_dir"
chmod 0644 "$keys_dir/$agent"
log "users hardened: $agent (no sudo, no su, no_new_privs at login, keys from the stack), $admin (sudo)"
