#!/bin/bash
# Runs COMMAND in a throw-away copy of this machine set up like a cc-sandbox guest after cloud-init:
# a private mount namespace whose /etc, /home, /usr/local, /var, /root and /run are overlays on a
# tmpfs (nothing reaches the host's own files), the rendered guest files from FILES installed, and
# the two users cloud-init creates: the admin (ubuntu: groups sudo, adm, lxd; passwordless sudo)
# and the agent (agent, uid 1001, locked password).
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
overlays=(/etc /home /usr/local /var /root /run)
for dir in "${overlays[@]}"; do
  key=${dir//\//_}
  mkdir -p "$scratch/upper$key" "$scratch/work$key"
  mount -t overlay cc-guest-ns -o "lowerdir=$dir,upperdir=$scratch/upper$key,workdir=$scratch/work$key" "$dir"
done
useradd --create-home --shell /bin/bash --uid 1001 agent
passwd -l agent >/dev/null
groupadd -f lxd
useradd --create-home --shell /bin/bash --groups sudo,adm,lxd ubuntu
printf 'ubuntu ALL=(ALL) NOPASSWD:ALL\n' >/etc/sudoers.d/90-cloud-init-users
chmod 0440 /etc/sudoers.d/90-cloud-init-users

# Into each overlay on its own, never with -C /: GNU tar sets an existing directory it extracts to
# 0700 until it is done, and on the host's own / or /usr that locks every other user on this
# machine out of its libraries meanwhile.
prune=()
for dir in "${overlays[@]}"; do prune+=(${prune[@]:+-o} -path ".$dir"); done
outside=$(cd "$files" && find . -mindepth 1 \( "${prune[@]}" \) -prune -o ! -type d -print)
[[ -z $outside ]] || { echo "guest-ns.sh: files outside the overlays: $outside" >&2; exit 2; }
for dir in "${overlays[@]}"; do
  [[ ! -d $files$dir ]] || tar -C "$files$dir" -cf - . | tar -C "$dir" -xf - --no-overwrite-dir --no-same-owner
done
[[ ! -e /etc/sudoers.d/cc-sandbox ]] || chmod 0440 /etc/sudoers.d/cc-sandbox
[[ ! -d /home/agent ]] || chown -R agent:agent /home/agent
# A /tmp of its own (the rendered files may have been under the host's).
mount -t tmpfs -o mode=1777 cc-guest-ns-tmp /tmp

exec "$@"
