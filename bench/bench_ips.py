"""IPS scan benchmark (issue 5): pbxfw against fail2ban-regex on one Asterisk log.

Run: ``.venv/bin/python bench/bench_ips.py [--lines N] [--repeat R] [--json]``
(needs Debian's ``fail2ban`` package: /usr/bin/fail2ban-regex and
/etc/fail2ban/filter.d/asterisk.conf).

1. Generate the log with bench/gen_asterisk_log.py (cached under bench/out/,
   keyed by line count and seed).
2. Run ``fail2ban-regex --print-no-missed FILE asterisk.conf`` once; read its
   ``Lines: … matched`` count and ``[processed in X sec]``, and time the whole
   process from outside.
3. Run pbxfw's ``scan_files`` in-process (best of ``--repeat``), single-process
   (``workers=1``) and parallel (one process per CPU), consuming every
   ``Failure``: with the kind detected per line (``kind=None``, what
   ``pbxfw ips scan`` does) and with the kind given (``kind="asterisk_messages"``,
   the counterpart of handing fail2ban-regex the asterisk filter); then the
   real ``pbxfw ips scan FILE`` command end to end.
4. Check that all of them report the generator's failure count, and print
   a Markdown table. Lines per second are the file's lines over wall time;
   CPU seconds (this process plus its children: workers, fail2ban-regex) are
   printed too, because on a shared machine wall time depends on the load.
   ``--json`` prints the same figures as one JSON object instead (for
   bench/compare.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pbxfw
from fail2ban_regex import children_cpu, run_fail2ban_regex
from gen_asterisk_log import generate
from pbxfw.ips.scan import scan_files

OUT = Path(__file__).resolve().parent / "out"
FILTER = "/etc/fail2ban/filter.d/asterisk.conf"
PBXFW = str(Path(sys.executable).with_name("pbxfw"))
TARGET = 20.0


def log_file(lines: int, seed: int) -> tuple[Path, int]:
    """The cached generated log and its failure count."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"asterisk_{lines}_{seed}.log"
    count = path.with_suffix(".failures")
    if not (path.exists() and count.exists()):
        text, failures = generate(lines, seed)
        path.write_text(text, encoding="utf-8")
        count.write_text(f"{failures}\n")
    return path, int(count.read_text())


def fail2ban(path: Path) -> tuple[int, float, float, float]:
    """(matched lines, fail2ban-regex's own 'processed in' seconds, wall seconds, CPU seconds)."""
    run = run_fail2ban_regex(path, FILTER)
    if run.processed is None:
        raise SystemExit("cannot parse fail2ban-regex output: no 'processed in'")
    return run.matched, run.processed, run.wall, run.cpu


def pbxfw_in_process(
    path: Path, kind: str | None, workers: int, repeat: int
) -> tuple[int, float, float]:
    """(failures, best wall seconds, CPU seconds of that run incl. worker processes)."""
    best = (0, float("inf"), 0.0)
    for _ in range(repeat):
        cpu = time.process_time() + children_cpu()
        start = time.perf_counter()
        count = sum(1 for _ in scan_files([path], tz=UTC, kind=kind, workers=workers))
        wall = time.perf_counter() - start
        if wall < best[1]:
            best = (count, wall, time.process_time() + children_cpu() - cpu)
    return best


def pbxfw_cli(path: Path) -> tuple[int, float]:
    """(failures, wall seconds) of ``pbxfw ips scan FILE`` (output to /dev/null)."""
    start = time.perf_counter()
    run = subprocess.run(
        [PBXFW, "ips", "scan", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    found = re.search(r"(\d+) failures", run.stderr)
    if found is None:
        raise SystemExit(f"cannot parse pbxfw ips scan output:\n{run.stderr[-2000:]}")
    return int(found.group(1)), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = parser.parse_args()

    path, expected = log_file(args.lines, args.seed)
    size_mb = path.stat().st_size / 1e6
    cpus = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    f2b_count, f2b_s, f2b_wall, f2b_cpu = fail2ban(path)
    runs = {
        (kind, workers): pbxfw_in_process(path, kind, workers, args.repeat)
        for kind in (None, "asterisk_messages")
        for workers in (cpus, 1)
    }
    cli_count, cli_s = pbxfw_cli(path)
    load = max(load, os.getloadavg()[0])

    n = args.lines
    counts = {"generator": expected, "fail2ban-regex": f2b_count, "pbxfw ips scan": cli_count}
    counts.update({f"scan_files{key}": run[0] for key, run in runs.items()})
    equal = len(set(counts.values())) == 1
    if args.json:
        print(
            json.dumps(
                {
                    "pbxfw": pbxfw.__file__,
                    "lines": n,
                    "cpus": cpus,
                    "load": load,
                    "fail2ban_s": f2b_s,
                    "fail2ban_wall_s": f2b_wall,
                    "fail2ban_cpu_s": f2b_cpu,
                    "scan_files": [
                        {
                            "kind": kind,
                            "workers": workers,
                            "wall_s": wall,
                            "cpu_s": cpu,
                            "ratio": f2b_s / wall,
                        }
                        for (kind, workers), (_, wall, cpu) in runs.items()
                    ],
                    "cli_wall_s": cli_s,
                    "cli_ratio": f2b_wall / cli_s,
                    "counts": counts,
                    "equal": equal,
                }
            )
        )
        return 0 if equal else 1

    def rate(seconds: float) -> str:
        return f"{n / seconds / 1e6:.2f} M lines/s ({seconds:.2f} s)"

    print(
        f"## IPS scan, {n:,} Asterisk lines, {size_mb:.0f} MB, {f2b_count:,} failures "
        f"({sys.platform}, {cpus} CPUs, load avg up to {load:.1f}, "
        f"Python {sys.version.split()[0]})"
    )
    print()
    print("| figure | pbxfw | baseline (same run) | ratio | target |")
    print("|---|---|---|---|---|")
    baseline = f"fail2ban-regex {n / f2b_s / 1e3:,.0f} k lines/s ({f2b_s:.2f} s)"
    for (kind, workers), (_, wall, _) in runs.items():
        how = "kind detected per line" if kind is None else f"`kind={kind!r}`"
        procs = f"parallel, {workers} processes" if workers > 1 else "single process"
        print(
            f"| `scan_files`, {how}, {procs} | {rate(wall)} | {baseline} | "
            f"**{f2b_s / wall:.1f}×** | ≥ {TARGET:.0f}× |"
        )
    for (kind, workers), (_, _, cpu) in runs.items():
        how = "kind detected" if kind is None else "kind given"
        procs = f"{workers} processes" if workers > 1 else "1 process"
        print(
            f"| CPU seconds, {how}, {procs} | {cpu:.2f} s | fail2ban-regex {f2b_cpu:.2f} s | "
            f"{f2b_cpu / cpu:.1f}× less CPU | — |"
        )
    print(
        f"| `pbxfw ips scan FILE > /dev/null`, whole process | {rate(cli_s)} | "
        f"`fail2ban-regex` whole process {n / f2b_wall / 1e3:,.0f} k lines/s ({f2b_wall:.2f} s) | "
        f"{f2b_wall / cli_s:.1f}× | — |"
    )
    print(
        f"| failures found | {cli_count:,} | {f2b_count:,} | "
        f"{'equal' if equal else 'DIFFERENT'} | equal |"
    )
    if not equal:
        print(f"\nfailure counts differ: {counts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
