#!/usr/bin/env bash
# Installs the Debian packages pbxfw and its tests need, when they are missing.
# As root this uses apt-get; otherwise it only says what is missing (the tests
# that need a package then fail under CI=true and are skipped elsewhere).
set -euo pipefail

# command → package
declare -A wanted=(
  [nft]=nftables
  [ip]=iproute2
  [chromium]=chromium
  [sipp]=sip-tester
  [debootstrap]=debootstrap
  [logrotate]=logrotate
  [python3]=python3
  [journalctl]=systemd
  [openssl]=openssl
  # The fleet test of `node list` runs the reader with its clock moved (libfaketime).
  [faketime]=faketime
  # The metrics test scrapes a real agent with its own Prometheus binary, on
  # loopback with a temporary configuration (the package's service is not used).
  [prometheus]=prometheus
)
missing=()
for cmd in "${!wanted[@]}"; do
  # logrotate lives in /usr/sbin, which a non-root PATH may lack.
  PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${wanted[$cmd]}")
done
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
# The PostgreSQL tests start their own server from these (not on PATH).
compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || missing+=(postgresql)
# Writes the real journal files the journal: log source tests follow.
[ -x /lib/systemd/systemd-journal-remote ] || missing+=(systemd-journal-remote)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "pbxfw: missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
  exit 0
fi
echo "pbxfw: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
