"""fail2ban-regex, the baseline of the log benchmarks (bench_ips.py, bench_ssh_scan.py):
run it on a log with one of fail2ban's filters and read its figures."""

from __future__ import annotations

import re
import resource
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FAIL2BAN_REGEX", "Fail2banRun", "children_cpu", "run_fail2ban_regex"]

FAIL2BAN_REGEX = "/usr/bin/fail2ban-regex"


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's ended children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Fail2banRun:
    #: lines the filter matched
    matched: int
    #: fail2ban-regex's own "processed in" seconds (None when it printed none)
    processed: float | None
    #: wall and CPU seconds of the whole command
    wall: float
    cpu: float


def run_fail2ban_regex(path: Path, filter_path: str) -> Fail2banRun:
    """``fail2ban-regex --print-no-missed PATH FILTER``, timed."""
    cpu = children_cpu()
    start = time.perf_counter()
    run = subprocess.run(
        [FAIL2BAN_REGEX, "--print-no-missed", str(path), filter_path],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    cpu = children_cpu() - cpu
    lines = re.search(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched", run.stdout, re.M)
    if lines is None:
        raise SystemExit(f"cannot parse fail2ban-regex output:\n{run.stdout[-2000:]}")
    processed = re.search(r"\[processed in ([\d.]+) sec\]", run.stdout)
    return Fail2banRun(
        int(lines.group(3)), float(processed.group(1)) if processed else None, wall, cpu
    )
