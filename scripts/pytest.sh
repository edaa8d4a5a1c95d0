#!/usr/bin/env bash
# Runs the test suite. pytest exits 5 when it collects nothing: that is a
# failure here, never a silent success. Under CI=true a skipped test is a
# failure too (tests/conftest.py), so a green run means everything ran.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest "$@"
status=$?
if [ $status -eq 5 ]; then
  echo "pbxfw: pytest collected no tests" >&2
  exit 1
fi
exit $status
