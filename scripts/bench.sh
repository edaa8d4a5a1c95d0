#!/usr/bin/env bash
# `make bench`: every benchmark in bench/, each printing a Markdown table
# with its baseline measured in the same run. Copy the figures into
# docs/benchmarks.md with the command that produced them.
set -euo pipefail
cd "$(dirname "$0")/.."
for script in bench/bench_*.py; do
  echo "### $script"
  .venv/bin/python "$script"
  echo
done
