# shellcheck shell=bash
# What every test guest is built from, whichever suite builds it (test/layers/guest-ns.sh,
# test/bridge/bridge-namespace.sh, test/harness/lib.ts): the host's own directories as overlays whose
# changes vanish with the namespace, the users cloud-init creates, and the rendered guest files.
# Sourced as root in a private mount namespace, never on the host's own mounts.

# guest_overlays SCRATCH DIR...: each DIR that exists becomes an overlay on itself, its upper layer
# under SCRATCH (a tmpfs the caller mounted).
guest_overlays() {
  local scratch=$1 dir key
  shift
  for dir; do
    [[ -d $dir ]] || continue
    key=${dir//\//_}
    mkdir -p "$scratch/upper$key" "$scratch/work$key"
    mount -t overlay cc-guest -o "lowerdir=$dir,upperdir=$scratch/upper$key,workdir=$scratch/work$key" "$dir"
  done
}

# guest_users: the users cloud-init creates (src/render/index.ts): the agent with uid 1001 (the
# agentUid of src/config/defaults.ts) and a locked password, and the admin, `ubuntu`, the image's
# default user: groups sudo, adm and lxd, passwordless sudo (cloud-init's own sudoers file).
guest_users() {
  if ! id agent >/dev/null 2>&1; then
    if getent passwd 1001 >/dev/null; then
      echo "guest-root: uid 1001 is taken: the agent needs it" >&2
      return 1
    fi
    useradd --create-home --user-group --shell /bin/bash --uid 1001 agent
  fi
  passwd -l agent >/dev/null
  getent group lxd >/dev/null || groupadd lxd
  id ubuntu >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups sudo,adm,lxd ubuntu
  printf 'ubuntu ALL=(ALL) NOPASSWD:ALL\n' >/etc/sudoers.d/90-cloud-init-users
  chmod 0440 /etc/sudoers.d/90-cloud-init-users
}

# guest_files FILES DIR...: the rendered tree FILES (files/<guest path> of `npm run render -- --out`)
# into the overlays DIR..., refusing any file outside them. Into each overlay on its own, never with
# -C /: GNU tar sets an existing directory it extracts to 0700 until it is done, and on the host's
# own / or /usr that locks every other user on this machine out of its libraries meanwhile.
guest_files() {
  local files=$1 dir outside
  shift
  local -a prune=()
  for dir; do prune+=(${prune[@]:+-o} -path ".$dir"); done
  outside=$(cd "$files" && find . -mindepth 1 \( "${prune[@]}" \) -prune -o ! -type d -print)
  if [[ -n $outside ]]; then
    echo "guest-root: files outside the overlays: $outside" >&2
    return 2
  fi
  for dir; do
    [[ ! -d $files$dir ]] || tar -C "$files$dir" -cf - . | tar -C "$dir" -xf - --no-overwrite-dir --no-same-owner
  done
  [[ ! -e /etc/sudoers.d/cc-sandbox ]] || chmod 0440 /etc/sudoers.d/cc-sandbox
  [[ ! -d /home/agent ]] || chown -R agent:agent /home/agent
}
