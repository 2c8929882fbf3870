#!/usr/bin/env bash
# Builds the Pulumi engine the end-to-end test drives -- the `pulumi` CLI, the Node.js language
# host and the `command` resource provider -- from Go modules fetched through the module proxy,
# installs the provider as a plugin into an isolated PULUMI_HOME, and prints the bin dir on stdout.
# It runs before node_modules exist, so it needs only bash, coreutils, flock and Go.
#
# Usage:  bin="$(scripts/build-engine.sh)"
# Then set, for every pulumi call of the test:
#   PATH="$bin:$PATH"                                  pulumi and pulumi-language-nodejs
#   PULUMI_HOME="$(dirname "$bin")/home"               plugins live here, nothing goes to ~/.pulumi
#   PULUMI_SKIP_UPDATE_CHECK=1                         no version check against the service
#   PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true   a missing plugin is an error, not a download
#   PULUMI_BACKEND_URL=file://<state dir>              local state, no login to the service
#   PULUMI_CONFIG_PASSPHRASE=<anything>                secrets provider of file-backed stacks
#
# Versions follow package.json's @pulumi/pulumi and @pulumi/command. The module proxy does not
# serve every release, so each component falls back to the nearest build that it does serve:
#   CLI            pkg/v3 at the SDK's version, else $CLI_FALLBACK_VERSION (the proxy refuses the
#                  v3.270.0 archive; the CLI talks to older SDKs through a stable gRPC protocol).
#   language host  its own module at the SDK's version, else the last sdk/v3 release that still
#                  carried the host inside ($LANGUAGE_HOST_FALLBACK_VERSION). The host only starts
#                  node on @pulumi/pulumi's own `cmd/run`, so the npm SDK's version is what runs.
#   command        pulumi-command's provider module at the npm version, else the project's own
#                  local.Command provider, test code in test/e2e/command-provider with its own
#                  go.mod and Go tests (the proxy serves no version of pulumi-command/provider).
# What was built is recorded in engine.env next to bin/.
set -euo pipefail

readonly CLI_FALLBACK_VERSION=v3.274.1
readonly LANGUAGE_HOST_FALLBACK_VERSION=v3.68.0
readonly VERSION_VAR=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root

log() { printf 'build-engine: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# npm_version NAME DEFAULT: the exact version package.json pins for NAME, or DEFAULT.
npm_version() {
  local name=$1 default=$2 found=""
  if [[ -f "$repo_root/package.json" ]]; then
    found="$(sed -n "s|^[[:space:]]*\"${name}\":[[:space:]]*\"[\\^~=v]*\\([0-9][^\"]*\\)\".*|\\1|p" \
      "$repo_root/package.json" | head -n 1)"
  fi
  printf '%s\n' "${found:-$default}"
}

sdk_version="$(npm_version @pulumi/pulumi 3.270.0)"
command_version="$(npm_version @pulumi/command 1.2.1)"
readonly sdk_version command_version

engine_dir="$repo_root/.tools/pulumi/${sdk_version}-cmd${command_version}"
bin_dir="$engine_dir/bin"
# The provider stays off PATH: the engine takes it from PULUMI_HOME as an installed plugin, as it
# would a downloaded one, instead of warning about an ambient plugin.
provider_dir="$engine_dir/provider"
pulumi_home="$engine_dir/home"
build_dir="$engine_dir/build"
stamp="$engine_dir/engine.env"
readonly engine_dir bin_dir provider_dir pulumi_home build_dir stamp

# A change to this script or to the project's provider makes the next run rebuild.
readonly provider_src="$repo_root/test/e2e/command-provider"
build_inputs="$(cat "${BASH_SOURCE[0]}" "$provider_src"/*.go "$provider_src/go.mod" "$provider_src/go.sum" \
  | sha256sum | cut -d ' ' -f 1)"
readonly build_inputs

export PULUMI_HOME="$pulumi_home"
export PULUMI_SKIP_UPDATE_CHECK=1
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

is_warm() {
  [[ -f "$stamp" ]] && grep -qx "BUILD_INPUTS=$build_inputs" "$stamp" \
    && [[ -x "$bin_dir/pulumi" && -x "$bin_dir/pulumi-language-nodejs" \
    && -x "$provider_dir/pulumi-resource-command" ]] \
    && compgen -G "$pulumi_home/plugins/resource-command-v${command_version}*" >/dev/null \
    && "$bin_dir/pulumi" version >/dev/null 2>&1
}

if is_warm; then
  printf '%s\n' "$bin_dir"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (Go 1.24 or newer is needed)"
command -v flock >/dev/null || die "flock is not on PATH (util-linux)"
# Only the module proxy is reachable: a version it refuses must not fall through to fetching the
# repository directly.
goproxy="$(go env GOPROXY)"
goproxy="${goproxy//[,|]direct/}"
export GOPROXY="${goproxy:-https://proxy.golang.org}"
mkdir -p "$engine_dir"
exec 9>"$engine_dir/.lock"
flock 9
# Another run may have finished the build while this one waited for the lock.
if is_warm; then
  printf '%s\n' "$bin_dir"
  exit 0
fi

# served MODULE@VERSION: true when the module proxy hands out that version (this also fills the
# module cache). A refusal is final, so it is not retried.
served() {
  (cd "$build_dir" && go mod download "$1" >/dev/null 2>&1)
}

# replaces_of GOMOD: each replace directive as "OLD[@VERSION] NEW [NEW_VERSION]".
replaces_of() {
  awk '
    /^replace[[:space:]]*\($/ { block = 1; next }
    block && /^\)/ { block = 0; next }
    (block || /^replace[[:space:]]/) && /=>/ {
      line = $0
      sub(/^replace[[:space:]]+/, "", line)
      split(line, side, /[[:space:]]*=>[[:space:]]*/)
      split(side[1], old, /[[:space:]]+/)
      split(side[2], new, /[[:space:]]+/)
      o = (old[1] == "") ? old[2] : old[1]
      ov = (old[1] == "") ? old[3] : old[2]
      printf "%s%s %s %s\n", o, (ov == "" ? "" : "@" ov), new[1], new[2]
    }' "$1"
}

# prepare_module DIR MODULE VERSION PACKAGE: a throw-away module in DIR that requires MODULE for
# its main PACKAGE. Modules with replace directives cannot be built by `go install mod@version`,
# so it repeats MODULE's replaces; one that points at a sibling directory of the same repository
# becomes a require of that sibling at the same version.
prepare_module() {
  local dir=$1 module=$2 version=$3 package=$4 gomod old new new_version
  local -a siblings=()
  rm -rf "$dir"
  mkdir -p "$dir"
  gomod="$(cd "$dir" && go mod download -json "$module@$version" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
  [[ -n "$gomod" ]] || die "no go.mod for $module@$version"
  (
    cd "$dir"
    go mod init "cc-sandbox.local/engine/${dir##*/}" 2>/dev/null
    while read -r old new new_version; do
      case "$new" in
        ./* | ../*) siblings+=("${old%@*}@$version") ;;
        *) go mod edit -replace "$old=$new${new_version:+@$new_version}" ;;
      esac
    done < <(replaces_of "$gomod")
    if ((${#siblings[@]})); then go get "${siblings[@]}"; fi
    go get -tool "$package@$version"
  ) >&2
}

# build DIR PACKAGE OUTPUT [LDFLAGS...]: builds PACKAGE of the module in DIR into OUTPUT.
build() {
  local dir=$1 package=$2 output=$3 started=$SECONDS
  shift 3
  log "building ${output##*/}"
  mkdir -p "${output%/*}"
  (cd "$dir" && go build -trimpath -ldflags "-s -w $*" -o "$output.new" "$package") >&2
  mv -f "$output.new" "$output"
  log "built ${output##*/} in $((SECONDS - started)) s"
}

rm -rf "$stamp" "$bin_dir" "$provider_dir"
mkdir -p "$bin_dir" "$build_dir"
total_started=$SECONDS
log "engine for @pulumi/pulumi $sdk_version and @pulumi/command $command_version in $engine_dir"

# Resolve what to build first, so the builds below use one consistent set of versions.
cli_module=github.com/pulumi/pulumi/pkg/v3
cli_version="v$sdk_version"
if ! served "$cli_module@$cli_version"; then
  log "the module proxy does not serve $cli_module@$cli_version; using $CLI_FALLBACK_VERSION"
  cli_version=$CLI_FALLBACK_VERSION
fi

host_module=github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
host_version="v$sdk_version"
host_package=$host_module
if ! served "$host_module@$host_version"; then
  host_module=github.com/pulumi/pulumi/sdk/v3
  host_version=$LANGUAGE_HOST_FALLBACK_VERSION
  host_package=$host_module/nodejs/cmd/pulumi-language-nodejs
  log "the module proxy does not serve the Node.js language host at v$sdk_version; using $host_module@$host_version"
fi

provider_module=github.com/pulumi/pulumi-command/provider
provider_version="v$command_version"
provider_package=$provider_module/cmd/pulumi-resource-command
if served "$provider_module@$provider_version"; then
  provider_source="$provider_module@$provider_version"
else
  provider_source="test/e2e/command-provider (local.Command only)"
  log "the module proxy does not serve $provider_module; using the project's local.Command provider"
fi

log "resolving $cli_module@$cli_version"
prepare_module "$build_dir/pulumi" "$cli_module" "$cli_version" "$cli_module/cmd/pulumi"
build "$build_dir/pulumi" "$cli_module/cmd/pulumi" "$bin_dir/pulumi" "-X $VERSION_VAR=$cli_version"

log "resolving $host_module@$host_version"
prepare_module "$build_dir/pulumi-language-nodejs" "$host_module" "$host_version" "$host_package"
build "$build_dir/pulumi-language-nodejs" "$host_package" "$bin_dir/pulumi-language-nodejs" \
  "-X $VERSION_VAR=$host_version"

if [[ $provider_source == test/* ]]; then
  # From its own module (sdk/v3 pinned in its go.mod, the CLI's fallback version): built with the
  # same flags as the CLI, it shares the CLI's compiled packages.
  build "$provider_src" . "$provider_dir/pulumi-resource-command" "-X main.version=$command_version"
else
  log "resolving $provider_source"
  prepare_module "$build_dir/pulumi-resource-command" "$provider_module" "$provider_version" \
    "$provider_package"
  build "$build_dir/pulumi-resource-command" "$provider_package" "$provider_dir/pulumi-resource-command" \
    "-X $provider_module/pkg/version.Version=$command_version"
fi

log "installing the command plugin into $pulumi_home"
rm -rf "$pulumi_home/plugins/resource-command-v${command_version}"*
"$bin_dir/pulumi" plugin install resource command "$command_version" \
  --file "$provider_dir/pulumi-resource-command" >&2

cat >"$stamp" <<EOF
# Written by scripts/build-engine.sh; the build is complete when this file exists.
NPM_PULUMI=$sdk_version
NPM_COMMAND=$command_version
PULUMI_CLI=$cli_module@$cli_version
PULUMI_LANGUAGE_NODEJS=$host_package@$host_version
PULUMI_RESOURCE_COMMAND=$provider_source
BUILD_INPUTS=$build_inputs
EOF
log "engine ready in $((SECONDS - total_started)) s: $("$bin_dir/pulumi" version)"
printf '%s\n' "$bin_dir"
