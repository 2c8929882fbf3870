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
# root's and 0750 (a dpkg-statoverride, so that an upgrade of the package keeps its mode), and its
# ACL names those workers' uids alone. Read and execute: a program its user may not read is not
# dumpable, and Podman must write its own child's /proc files (uid_map). Not a group: one the
# container workers had in common would be a channel between projects (SysV IPC, files). cc-sandbox-project derives
# the ACL from its registry under one lock (adds run side by side). This is policy, not
# confinement: a container is no more than its user (its uid, no_new_privs, its egress).
readonly podman_bin=/usr/bin/podman

# Root's locks, in a folder only root may enter: a lock file in /run/lock (world-writable) any user
# can open, read-only, and hold with flock for good, stopping every project being added, bound or
# removed.
readonly lock_dir=/run/cc-sandbox-locks
readonly podman_lock=$lock_dir/podman.lock
# locks_ready: the locks' folder made (root's, 0700; only root can make it in /run), without a
# process start once it is there (firewall apply, each project command).
locks_ready() { [[ -d $lock_dir && ! -L $lock_dir ]] || install -d -o root -g root -m 0700 "$lock_dir"; }

# podman_closed: podman is root's and 0750 (as stat prints it).
podman_closed() { [[ $(stat -c '%U %G %a' "$podman_bin") == "root root 750" ]]; }

# podman_close: podman (if installed) root's and 0750, by the statoverride and on the file itself
# (whatever was done to it by hand). 0 when it is.
podman_close() {
  [[ -e $podman_bin ]] || return 0
  local have owner='' group='' mode=''
  have=$(dpkg-statoverride --list "$podman_bin" 2>/dev/null) || true
  read -r owner group mode _ <<<"$have"
  # dpkg-statoverride lists the mode without its leading 0.
  if [[ $owner != root || $group != root || ! $mode =~ ^0?750$ ]]; then
    [[ -z $have ]] || dpkg-statoverride --quiet --remove "$podman_bin" || return 1
    dpkg-statoverride --quiet --add root root 0750 "$podman_bin" || return 1
  fi
  podman_closed || { chown root:root "$podman_bin" && chmod 0750 "$podman_bin"; }
}

# podman_acl UID...: the ACL podman must have with the workers UID... let run it, one entry a line
# as `getfacl -cn` prints it.
podman_acl() {
  printf '%s\n' user::rwx
  local uid
  for uid in $(printf '%s\n' "$@" | sort -n); do printf 'user:%s:r-x\n' "$uid"; done
  printf '%s\n' group::r-x
  (($# == 0)) || printf '%s\n' mask::r-x
  printf '%s\n' other::---
}
