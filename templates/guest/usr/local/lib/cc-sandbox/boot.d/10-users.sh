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
id -u "$agent" >/dev/null 2>&1 || die "agent user $agent does not exist"
id -u "$admin" >/dev/null 2>&1 || die "admin user $admin does not exist"
[[ $(id -u "$agent") == "$agent_uid" ]] ||
  die "agent user $agent has uid $(id -u "$agent"), but /etc/systemd/system/user@$agent_uid.service.d expects $agent_uid"

# USER is in GROUP (one process, not three per group: seconds on a slow VM).
member_of() { local groups; groups=" $(id -nG "$1") "; [[ $groups == *" $2 "* ]]; }

agent_groups=" $(id -nG "$agent") "
for group in "${privileged_groups[@]}"; do
  if [[ $agent_groups == *" $group "* ]]; then
    gpasswd -d "$agent" "$group" >/dev/null
    log "removed $agent from group $group"
  fi
done
if member_of "$agent" "$admin"; then gpasswd -d "$agent" "$admin" >/dev/null; log "removed $agent from group $admin"; fi
if member_of "$admin" "$agent"; then gpasswd -d "$admin" "$agent" >/dev/null; log "removed $admin from group $agent"; fi

passwd -l "$agent" >/dev/null

[[ -f /etc/sudoers.d/cc-sandbox ]] || die "/etc/sudoers.d/cc-sandbox is missing"
chown root:root /etc/sudoers.d/cc-sandbox
chmod 0440 /etc/sudoers.d/cc-sandbox
if command -v visudo >/dev/null; then
  visudo -cq || die "sudoers do not parse (visudo -c)"
fi

# pam_wheel right after pam_rootok: root may still su to anyone, other users only from group sudo.
if [[ -f $su_pam ]] && ! grep -Eq '^[[:space:]]*auth[[:space:]]+required[[:space:]]+pam_wheel\.so' "$su_pam"; then
  grep -Eq '^[[:space:]]*auth[[:space:]]+sufficient[[:space:]]+pam_rootok\.so' "$su_pam" ||
    die "$su_pam has no pam_rootok line to put pam_wheel after"
  sed -i -E '0,/^[[:space:]]*auth[[:space:]]+sufficient[[:space:]]+pam_rootok\.so.*$/s//&\nauth       required   pam_wheel.so use_uid group=sudo/' "$su_pam"
  log "su restricted to group sudo"
fi

# cloud-init's write_files creates missing parent directories (~/.claude) as root.
agent_home=$(getent passwd "$agent" | cut -d: -f6)
find "$agent_home" -xdev -uid 0 -exec chown "$agent:$agent" {} +

for user in "$admin" "$agent"; do
  home=$(getent passwd "$user" | cut -d: -f6)
  [[ -d $home ]] || die "home of $user ($home) does not exist"
  chmod 0750 "$home"
done
[[ -x $agent_shell ]] || die "$agent_shell is missing"
usermod -s "$agent_shell" "$agent"

podman_close || die "$podman_bin could not be made root's alone (dpkg-statoverride)"

[[ -f $keys_dir/$agent ]] || die "$keys_dir/$agent (the agent's SSH keys) is missing"
chown root:root "$keys_dir" "$keys_dir/$agent"
chmod 0755 "$keys_dir"
chmod 0644 "$keys_dir/$agent"
log "users hardened: $agent (no sudo, no su, no_new_privs at login, keys from the stack), $admin (sudo)"
