#!/usr/bin/env bash
# Builds the Debian sid chroot with Asterisk 22 that the end-to-end suite
# (tests/e2e) runs inside the PBX network namespace. Usage:
#
#   scripts/e2e-build-chroot.sh ROOT [MIRROR]
#
# Builds into ROOT.partial and renames it to ROOT only when everything
# succeeded, so an interrupted build never looks like a finished one. The
# suite calls this itself (and caches ROOT between local runs); run it by hand
# to prepare or inspect the chroot. Needs root; installs debootstrap when
# missing. About 30-60 s with a nearby mirror.
set -euo pipefail

root="${1:?usage: $0 ROOT [MIRROR]}"
mirror="${2:-${PBXFW_E2E_MIRROR:-http://deb.debian.org/debian}}"
partial="$root.partial"
apt_opts=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3 -o Dpkg::Use-Pty=0)

if [ "$(id -u)" -ne 0 ]; then
  echo "e2e-build-chroot: needs root" >&2
  exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "e2e-build-chroot: installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi

# Never delete through a mount: a leftover bind mount of /dev or /proc inside
# an old partial tree would otherwise take the host's files with it.
unmount_under() {
  local dir
  dir="$(realpath -m "$1")"
  awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
unmount_under "$partial"
rm -rf --one-file-system "$partial"
mkdir -p "$(dirname "$partial")"

start=$SECONDS
debootstrap --variant=minbase sid "$partial" "$mirror" >"$partial.log" 2>&1 \
  || { tail -20 "$partial.log" >&2; exit 1; }
echo "e2e-build-chroot: debootstrap done in $((SECONDS - start)) s"

# The chroot must not start services while packages are installed.
printf '#!/bin/sh\nexit 101\n' >"$partial/usr/sbin/policy-rc.d"
chmod 755 "$partial/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$partial/etc/resolv.conf" 2>/dev/null || true

chroot "$partial" apt-get "${apt_opts[@]}" -qq update
chroot "$partial" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" -qq install -y \
  --no-install-recommends asterisk asterisk-modules >>"$partial.log" 2>&1 \
  || { tail -20 "$partial.log" >&2; exit 1; }
chroot "$partial" apt-get clean
chroot "$partial" asterisk -V >"$partial/.asterisk-version"
echo "e2e-build-chroot: $(cat "$partial/.asterisk-version") installed, $((SECONDS - start)) s in all"

unmount_under "$partial"
unmount_under "$root"
rm -rf --one-file-system "$root"
mv "$partial" "$root"
mv "$partial.log" "$root.log"
