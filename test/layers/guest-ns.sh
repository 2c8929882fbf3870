#!/bin/bash
# Runs COMMAND in a throw-away copy of this machine set up like a cc-sandbox guest after cloud-init:
# a private mount namespace whose /etc, /home, /usr/local, /usr/bin (whose podman the guest makes
# root's), /var, /root, /run and /srv are overlays on a tmpfs (nothing reaches the host's own files),
# the rendered guest files from FILES installed, and the two users cloud-init creates: the admin
# (ubuntu: groups sudo, adm, lxd; passwordless sudo) and the agent (agent, uid 1001, locked
# password).
#   guest-ns.sh FILES -- COMMAND...
# FILES is a rendered tree (files/<guest path> of `npm run render -- --out`). Run as root.
set -euo pipefail

files=${1:?usage: guest-ns.sh FILES -- COMMAND...}
shift
[[ ${1:-} == -- ]] && shift
(($#)) || { echo "usage: guest-ns.sh FILES -- COMMAND..." >&2; exit 2; }
((EUID == 0)) || { echo "guest-ns.sh: run as root" >&2; exit 2; }

if [[ -z ${CC_GUEST_NS_SCRATCH:-} ]]; then
  scratch=$(mktemp -d /tmp/cc-guest-ns.XXXXXX)
  trap 'rmdir "$scratch" 2>/dev/null || true' EXIT
  rc=0
  CC_GUEST_NS_SCRATCH=$scratch unshare --mount --propagation private -- "$0" "$files" -- "$@" || rc=$?
  exit "$rc"
fi

scratch=$CC_GUEST_NS_SCRATCH
mount -t tmpfs -o mode=0755 cc-guest-ns "$scratch"
# shellcheck source-path=SCRIPTDIR source=../guest-root.sh
. "$(dirname "$0")/../guest-root.sh"
overlays=(/etc /home /usr/local /usr/bin /var /root /run /srv)
guest_overlays "$scratch" "${overlays[@]}"
guest_users
guest_files "$files" "${overlays[@]}" || exit 2
# A /tmp of its own (the rendered files may have been under the host's).
mount -t tmpfs -o mode=1777 cc-guest-ns-tmp /tmp

exec "$@"
