# shellcheck shell=bash disable=SC2034
# What makes a user a project's worker, for every guest script that decides it (cc-sandbox-project,
# worker-tmp, cc-sandbox-firewall): its uid's range and its name. Sourced, never run. The host's
# rule is src/config/projects.ts (projectUidBase, projectUidSlots) and the schema's project-name,
# which a unit test holds this file to.
readonly worker_uid_min=20000 worker_uid_max=29999
# A project's name: lowercase letters, digits and hyphens, starting with a letter, at most 20; its
# worker is cc-NAME.
readonly project_name_re='^[a-z]([a-z0-9-]{0,18}[a-z0-9])?$'
readonly worker_name_re="^cc-${project_name_re#^}"

# Rootless Podman is for the workers of projects with `containers: true` alone: /usr/bin/podman is
# root's and 0750 (a dpkg-statoverride, so that an upgrade of the package keeps it so), and each
# such worker may run it by an ACL entry naming its uid. Not a group: one the container workers had
# in common would be a channel between projects (SysV IPC, files they give it). This is policy, not
# confinement: a container is no more than its user (its uid, no_new_privs, its egress).
readonly podman_bin=/usr/bin/podman podman_mode='root root 0750'

# podman_close: podman (if installed) open to root and the ACL's workers only. 0 when it is.
podman_close() {
  [[ -e $podman_bin ]] || return 0
  local have
  have=$(dpkg-statoverride --list "$podman_bin" 2>/dev/null) || true
  if [[ $have != "$podman_mode $podman_bin" ]]; then
    [[ -z $have ]] || dpkg-statoverride --quiet --remove "$podman_bin" || return 1
    # shellcheck disable=SC2086 # owner, group and mode
    dpkg-statoverride --quiet --update --add $podman_mode "$podman_bin" || return 1
  fi
  [[ $(stat -c '%U %G %a' "$podman_bin") == "root root 750" ]]
}

# podman_allow UID yes|no: the worker with UID may run podman, or not (its ACL entry).
podman_allow() {
  local uid=$1 allow=$2
  if [[ $allow == yes ]]; then
    setfacl -m "u:$uid:rx" "$podman_bin"
  elif [[ -e $podman_bin ]] && command -v setfacl >/dev/null; then
    setfacl -x "u:$uid" "$podman_bin" 2>/dev/null || true
  fi
}

# podman_allowed UID: the worker with UID has an ACL entry for podman.
podman_allowed() {
  [[ -e $podman_bin ]] && getfacl -cn "$podman_bin" 2>/dev/null | grep -q "^user:$1:r-x"
}
