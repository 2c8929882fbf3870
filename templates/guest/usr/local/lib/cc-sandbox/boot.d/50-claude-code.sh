#!/bin/bash
# Installs Claude Code at the version the stack pins (CC_CLAUDE_VERSION) when CC_CLAUDE_INSTALL=1.
# Node and npm come from Ubuntu's archive (boot.d/05-packages.sh, before the firewall closes); the
# npm package itself comes from registry.npmjs.org, which the allowlist must hold (the npm preset).
# The package is a native binary: Node is only needed to install it, and an image that already
# has the pinned version (npm run bake) needs neither.
set -euo pipefail

# shellcheck source=/dev/null
. /etc/cc-sandbox/sandbox.env

readonly package=@anthropic-ai/claude-code

log() { printf '50-claude-code: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ ${CC_CLAUDE_INSTALL:-0} != 1 ]]; then
  log "Claude Code not installed (claude.install is false)"
  exit 0
fi
[[ $CC_CLAUDE_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
  die "CC_CLAUDE_VERSION '$CC_CLAUDE_VERSION' is not a version"

for tool in bwrap socat; do
  command -v "$tool" >/dev/null ||
    die "missing $tool: Claude Code's sandbox needs bubblewrap and socat, and fails closed without them" \
      "(CC_PACKAGES names both; see boot.d/05-packages.sh)"
done

# A baked image has it already: then neither Node nor npm is needed.
installed=$(claude --version 2>/dev/null || true)
if [[ $installed == "$CC_CLAUDE_VERSION "* ]]; then
  log "Claude Code $CC_CLAUDE_VERSION already installed"
  exit 0
fi

missing=()
for tool in node npm; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
((${#missing[@]} == 0)) ||
  die "missing ${missing[*]}: boot.d/05-packages.sh installs nodejs and npm (CC_CLAUDE_PACKAGES) to install Claude Code"

# The registry is reached through the firewall, which 20-firewall.sh started without waiting: a
# start of a unit whose start is under way waits for that one to end (and fails as it does).
# So is systemd-resolved's restart (its marker), whose file lists the upstream DNS servers: the
# firewall, which may have started while resolved restarted, reloads with them.
if [[ -d /run/systemd/system && ${CC_FIREWALL_ENABLED:-1} == 1 ]]; then
  systemctl start cc-sandbox-firewall.service || die "the firewall did not start: see systemctl status cc-sandbox-firewall"
  if [[ -e /run/cc-sandbox-boot.resolved ]]; then
    systemctl start systemd-resolved.service || die "systemd-resolved did not start again"
    systemctl reload cc-sandbox-firewall.service || die "the firewall did not reload with resolved's upstream servers"
  fi
fi

# Ubuntu 24.04's Node is older than the package's engines field asks for; that field only guards
# the install script, which runs on any Node >= 12, so it is a warning, not an error.
if ! timeout 600 npm install --global --no-fund --no-audit --loglevel=error --engine-strict=false \
  "$package@$CC_CLAUDE_VERSION"; then
  die "npm could not install $package@$CC_CLAUDE_VERSION: is registry.npmjs.org on the allowlist" \
    "(preset npm)? See cc-sandbox-firewall denied"
fi
installed=$(claude --version 2>&1) ||
  die "claude does not run after installing (its native package may be missing): $installed"
[[ $installed == "$CC_CLAUDE_VERSION "* ]] || die "claude --version says '$installed', wanted $CC_CLAUDE_VERSION"
log "installed Claude Code $installed"
