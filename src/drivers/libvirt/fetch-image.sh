#!/usr/bin/env bash
# Downloads a base image named by URL into STORE, verified, kept by its checksum; prints its path.
#   fetch-image.sh URL STORE KEYRING_BASE64 FINGERPRINTS [SHA256]
# - The release's SHA256SUMS beside the image must carry a valid signature (SHA256SUMS.gpg) by one
#   of FINGERPRINTS (primary keys, comma-separated) in the keyring given, and list the image.
# - The image is downloaded to a temporary file in STORE, checked against that sum, and renamed to
#   STORE/<sha256>.img only when complete and good: an interrupted or altered download is never used.
# - The first good download for a URL is recorded (STORE/.by-url/<sha256 of URL>), and later
#   creates use that file without asking the network: a new point release under the same URL is
#   taken only when the stack says so by pinning its checksum (SHA256).
# - With SHA256 (libvirt.imageSha256), an image by that checksum already in STORE is used as it is;
#   otherwise the release must list exactly that checksum.
# - An image kept in STORE is hashed again before each use: one that no longer matches its name
#   (altered or damaged on disk) is refused, never used.
# Existing images are never overwritten: a VM's disk keeps its backing file for as long as it lives.
set -euo pipefail

log() { printf 'fetch-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# kept SUM: STORE/SUM.img, after checking that its content still hashes to SUM.
kept() {
  local got
  got=$(sha256sum <"$store/$1.img" | cut -c1-64)
  [[ $got == "$1" ]] ||
    die "$store/$1.img no longer has the checksum it is kept by (it hashes to $got): altered or damaged on disk, so it is not used; remove it (and any VM disk backed by it) and run again"
  printf '%s\n' "$store/$1.img"
}

(($# == 4 || $# == 5)) || die "usage: fetch-image.sh URL STORE KEYRING_BASE64 FINGERPRINTS [SHA256]"
url=$1 store=$2 keyring_b64=$3 fingerprints=$4 pin=${5:-}
[[ $url =~ ^https?://[^[:space:]]+/([^/[:space:]]+)$ ]] || die "'$url' is not an http(s) URL of a file"
name=${BASH_REMATCH[1]}
base=${url%/*}
[[ -z $pin || $pin =~ ^[0-9a-f]{64}$ ]] || die "'$pin' is not a sha256 checksum (64 lowercase hex digits)"

mkdir -p "$store/.by-url"
exec 9>"$store/.lock"
flock 9

url_key=$(printf '%s' "$url" | sha256sum | cut -c1-64)
record=$store/.by-url/$url_key
if [[ -n $pin && -s $store/$pin.img ]]; then
  kept "$pin"
  printf '%s\n' "$pin" >"$record"
  exit 0
fi
if [[ -z $pin && -s $record ]]; then
  read -r known <"$record"
  if [[ $known =~ ^[0-9a-f]{64}$ && -s $store/$known.img ]]; then
    kept "$known"
    exit 0
  fi
fi

tmp=$(mktemp -d "$store/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fetch() { curl -fsSL --retry 3 --connect-timeout 30 -o "$2" "$1" || die "could not download $1"; }

fetch "$base/SHA256SUMS" "$tmp/SHA256SUMS"
fetch "$base/SHA256SUMS.gpg" "$tmp/SHA256SUMS.gpg"
base64 -d <<<"$keyring_b64" >"$tmp/keyring.gpg" || die "the keyring is not base64"
status=$(gpgv --status-fd 1 --keyring "$tmp/keyring.gpg" "$tmp/SHA256SUMS.gpg" "$tmp/SHA256SUMS" 2>/dev/null) ||
  die "$base/SHA256SUMS has no valid signature by a pinned key ($fingerprints)"
# VALIDSIG <fingerprint> <date> <time> <expire> <version> <reserved> <algo> <hash> <class> <primary>
signer=$(awk '$1 == "[GNUPG:]" && $2 == "VALIDSIG" { print $NF; exit }' <<<"$status")
[[ -n $signer && ,$fingerprints, == *,"$signer",* ]] ||
  die "$base/SHA256SUMS is signed by '${signer:-nobody}', not by a pinned key ($fingerprints)"

sum=$(awk -v f="$name" '($2 == f || $2 == ("*" f)) && length($1) == 64 && $1 ~ /^[0-9a-f]+$/ { print $1; exit }' "$tmp/SHA256SUMS")
[[ -n $sum ]] || die "$base/SHA256SUMS does not list $name"
if [[ -n $pin && $sum != "$pin" ]]; then
  die "the release lists $sum for $name, and the stack pins $pin (libvirt.imageSha256): set it to $sum to move to this release"
fi

if [[ -s $store/$sum.img ]]; then
  kept "$sum" >/dev/null
else
  log "downloading $url (sha256 $sum)"
  fetch "$url" "$tmp/image"
  got=$(sha256sum <"$tmp/image" | cut -c1-64)
  [[ $got == "$sum" ]] || die "$url has sha256 $got, but the signed SHA256SUMS lists $sum: not used"
  chmod 0644 "$tmp/image"
  mv "$tmp/image" "$store/$sum.img"
fi
printf '%s\n' "$sum" >"$record"
log "$name: sha256 $sum${pin:+ (pinned)}"
printf '%s\n' "$store/$sum.img"
