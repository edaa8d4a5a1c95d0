#!/usr/bin/env bash
# `make run`: initialise the embedded SQLite database under ./var and start pbxfw.
set -euo pipefail
cd "$(dirname "$0")/.."
export PBXFW_DB="${PBXFW_DB:-$PWD/var/pbxfw.db}"
pbxfw=.venv/bin/pbxfw

$pbxfw init
echo
$pbxfw network list
echo
echo "pbxfw is set up; the database is $PBXFW_DB."
echo "Try:  .venv/bin/pbxfw check 198.51.100.7 sip      (see README.md for a tour)"
