#!/bin/bash
# Installs the packages the layers need (CC_PACKAGES) that the image lacks, from the
# distribution's archive, before the firewall closes; and what installing Claude Code needs
# (CC_CLAUDE_PACKAGES: npm and Node) unless Claude Code is already at the pinned version. An image
# that has them all (one `npm run bake` made) fetches nothing and needs no archive: no `apt-get
# update`, no network.
# cloud-init's own `packages` module is not used for this: it updates the package lists whenever
# it is given a package, so an image with every package installed still fails where the archive
# cannot be reached.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/cc-sandbox/sandbox.env

log() { printf '05-packages: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

read -r -a wanted <<<"${CC_PACKAGES:-}"
if [[ ${CC_CLAUDE_INSTALL:-0} == 1 && -n ${CC_CLAUDE_PACKAGES:-} ]]; then
  installed=$(claude --version 2>/dev/null || true)
  if [[ -n ${CC_CLAUDE_VERSION:-} && $installed == "$CC_CLAUDE_VERSION "* ]]; then
    log "Claude Code $CC_CLAUDE_VERSION is in the image: ${CC_CLAUDE_PACKAGES} not needed"
  else
    read -r -a more <<<"$CC_CLAUDE_PACKAGES"
    wanted+=("${more[@]}")
  fi
fi
for p in "${wanted[@]}"; do
  [[ $p =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || die "CC_PACKAGES names '$p', which is not a package name"
done
# One dpkg-query for them all (a process costs tens of milliseconds on an emulated VM); one it
# does not know is missing too.
declare -A status=()
if ((${#wanted[@]} > 0)); then
  # shellcheck disable=SC2016 # dpkg-query's own format, not shell
  while read -r p state; do
    [[ ${status[$p]:-} == installed ]] || status[$p]=$state
  done < <(dpkg-query -W -f '${Package} ${db:Status-Status}\n' -- "${wanted[@]}" 2>/dev/null || true)
fi
missing=()
for p in "${wanted[@]}"; do
  [[ ${status[$p]:-} == installed ]] || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  log "all ${#wanted[@]} packages already installed"
  exit 0
fi

log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
  if apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    log "installed ${#missing[@]} packages"
    exit 0
  fi
  log "attempt $attempt failed"
  sleep $((attempt * 5))
done
die "could not install ${missing[*]} from the archive (is it reachable from the VM?)"
