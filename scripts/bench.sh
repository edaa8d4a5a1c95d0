#!/usr/bin/env bash
# `make bench`: every benchmark in bench/, each printing a Markdown table
# with its baseline measured in the same run. Copy the figures into
# docs/benchmarks.md with the command that produced them. As root the
# baselines' tools are installed first (fail2ban, iptables, wrk); the
# kernel benchmarks need root anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
  missing=()
  command -v fail2ban-regex >/dev/null || missing+=(fail2ban)
  command -v iptables-legacy-restore >/dev/null || missing+=(iptables)
  command -v wrk >/dev/null || missing+=(wrk)
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
  fi
fi
for script in bench/bench_*.py; do
  echo "### $script"
  .venv/bin/python "$script"
  echo
done
