"""Whole-process benchmarks (issue 14): the two commands a user times with a stopwatch.

Run: ``.venv/bin/python bench/bench_cli.py [--repeat R] [--src DIR] [--baseline-src DIR] [--json]``
(root: it creates and removes a network namespace; needs Debian's
``fail2ban`` for /usr/bin/fail2ban-regex). About a minute.

Each figure is a real process started from outside, start-up, imports and
output included, output to /dev/null:

1. ``pbxfw ips scan FILE --json`` and ``pbxfw ips scan FILE`` of the
   1,000,000-line log of bench_ips.py against ``fail2ban-regex FILE
   asterisk.conf`` (the stock filter) on the same file. The ratio is
   fail2ban-regex's wall time over pbxfw's; the failures each finds are
   counted on one extra run (to a pipe) and must be equal.
2. ``pbxfw apply --netns NS`` of a database with 10,000 networks (bench_foundation's
   random ones, firewall on), in a namespace this script creates and removes;
   the floors beside it: ``nft -f`` of the very ruleset pbxfw loads (``pbxfw
   compile``) in the same namespace, and ``python -c pass``.

pbxfw's figures are the median of ``--repeat`` runs; fail2ban-regex runs once
(about 15 s). ``--baseline-src DIR`` times the same commands a second time
with ``PYTHONPATH=DIR`` (another checkout's ``src``, e.g. main's), interleaved
run by run with this tree's, so both are measured in one run on the same
machine under the same load; each tree applies a database it made itself (the
trees' migrations may differ). ``--src DIR`` times another checkout's code in
place of this one (bench/compare.py runs this script against two commits);
``--json`` prints the figures as one JSON object instead of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_foundation import import_document, make_networks
from bench_ips import FILTER, log_file
from fail2ban_regex import FAIL2BAN_REGEX, children_cpu

PBXFW = str(Path(sys.executable).with_name("pbxfw"))
SRC = str(Path(__file__).resolve().parent.parent / "src")
SCAN_TARGET = 20.0
APPLY_TARGET = 1.0


#: CPU seconds (user + system) of every command :func:`timed` ran, by command
#: and tree: on a loaded machine they move less than wall time.
CPU: dict[tuple[str, ...], list[float]] = {}


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of ``cmd`` with stdout and stderr to /dev/null (it must succeed)."""
    cpu = children_cpu()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - start
    key = (*cmd, (env or {}).get("PYTHONPATH", ""))
    CPU.setdefault(key, []).append(children_cpu() - cpu)
    return wall


def cpu_of(cmd: list[str], env: dict[str, str]) -> float:
    """The median CPU seconds of ``cmd`` under ``env`` (see :data:`CPU`)."""
    return statistics.median(CPU[(*cmd, env["PYTHONPATH"])])


def environment(src: str, cache: str) -> dict[str, str]:
    """This process's environment with ``src`` first on the import path, as installed.

    An installed package has its bytecode compiled (pip does it): the
    bytecode of ``src`` is kept under ``cache`` (never in the checkout),
    whatever PYTHONDONTWRITEBYTECODE says here; stdout is buffered as in a
    user's shell (no PYTHONUNBUFFERED); no SSH_CLIENT or PBXFW_DB.
    """
    drop = ("SSH_CLIENT", "PBXFW_DB", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = src
    env["PYTHONPYCACHEPREFIX"] = cache
    return env


def interleaved(
    trees: dict[str, dict[str, str]], cmd: list[str], repeat: int
) -> dict[str, list[float]]:
    """``cmd`` run ``repeat`` times under each tree's environment, alternating."""
    times: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(repeat):
        for name, env in trees.items():
            times[name].append(timed(cmd, env))
    return times


def interleaved_each(
    trees: dict[str, dict[str, str]], cmds: dict[str, list[str]], repeat: int
) -> dict[str, list[float]]:
    """Each tree's own command (``cmds[tree]``) run ``repeat`` times, alternating."""
    times: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(repeat):
        for name, env in trees.items():
            times[name].append(timed(cmds[name], env))
    return times


def imported(env: dict[str, str]) -> str:
    """Where ``pbxfw`` (and so the ``pbxfw`` command) is imported from under ``env``."""
    code = "import pbxfw.cli, pbxfw; print(pbxfw.__file__)"
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    return run.stdout.decode().strip()


def scan_count(path: Path, env: dict[str, str]) -> int:
    run = subprocess.run(
        [PBXFW, "ips", "scan", str(path), "--json"],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    return run.stdout.count(b"\n")


def fail2ban(path: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, matched lines) of the whole ``fail2ban-regex FILE FILTER``."""
    with tempfile.TemporaryFile() as out:
        cpu = children_cpu()
        start = time.perf_counter()
        subprocess.run(
            [FAIL2BAN_REGEX, str(path), FILTER], check=True, stdout=out, stderr=subprocess.DEVNULL
        )
        wall = time.perf_counter() - start
        cpu = children_cpu() - cpu
        out.seek(0)
        text = out.read().decode(errors="replace")
    found = re.search(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched", text, re.M)
    if found is None:
        raise SystemExit(f"cannot parse fail2ban-regex output:\n{text[-2000:]}")
    return wall, cpu, int(found.group(3))


def apply_database(folder: Path, env: dict[str, str]) -> str:
    """A database of 10,000 networks with the firewall on; returns its path."""
    db = str(folder / "apply.db")
    doc = folder / "networks.json"
    doc.write_text(import_document(make_networks(10_000)))
    for args in (["init"], ["import", str(doc)], ["settings", "set", "firewall_enabled=true"]):
        subprocess.run([PBXFW, *args, "--db", db], check=True, stdout=subprocess.DEVNULL, env=env)
    return db


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--src", default=SRC, help="the src/ of the code to time (this tree's)")
    parser.add_argument("--baseline-src", help="another checkout's src/, timed alongside")
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the apply benchmark uses a network namespace")

    caches = tempfile.TemporaryDirectory()
    trees = {"this tree": environment(str(Path(args.src).resolve()), f"{caches.name}/this")}
    if args.baseline_src:
        trees["baseline tree"] = environment(
            str(Path(args.baseline_src).resolve()), f"{caches.name}/baseline"
        )
    for env in trees.values():  # compile the bytecode once, as pip install does
        timed([sys.executable, "-m", "compileall", "-q", env["PYTHONPATH"]], env)
    mine = trees["this tree"]
    load = os.getloadavg()[0]
    path, expected = log_file(args.lines, 5)

    f2b_wall, f2b_cpu, f2b_count = fail2ban(path)
    json_cmd = [PBXFW, "ips", "scan", str(path), "--json"]
    text_cmd = [PBXFW, "ips", "scan", str(path)]
    scan_json = interleaved(trees, json_cmd, args.repeat)
    scan_text = interleaved(trees, text_cmd, args.repeat)
    counts = {name: scan_count(path, env) for name, env in trees.items()}
    load = max(load, os.getloadavg()[0])

    netns = f"pbxfw-bench-cli-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            dbs = {}
            for i, (name, env) in enumerate(trees.items()):
                (Path(tmp) / str(i)).mkdir()
                dbs[name] = apply_database(Path(tmp) / str(i), env)
            apply_cmds = {
                name: [PBXFW, "apply", "--netns", netns, "--db", db] for name, db in dbs.items()
            }
            apply = interleaved_each(trees, apply_cmds, args.repeat)
            ruleset = Path(tmp) / "ruleset.nft"
            with ruleset.open("wb") as out:
                subprocess.run(
                    [PBXFW, "compile", "--db", dbs["this tree"]], check=True, stdout=out, env=mine
                )
            nft = [timed(["ip", "netns", "exec", netns, "nft", "-f", str(ruleset)])]
            nft += [timed(["ip", "netns", "exec", netns, "nft", "-f", str(ruleset)])]
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    python = min(timed([sys.executable, "-c", "pass"]) for _ in range(3))
    load = max(load, os.getloadavg()[0])
    caches.cleanup()

    med: Callable[[list[float]], float] = statistics.median
    all_counts = {"generator": expected, "fail2ban-regex": f2b_count, **counts}
    equal = len(set(all_counts.values())) == 1
    if args.json:
        figures: dict[str, object] = {
            "lines": args.lines,
            "load": load,
            "fail2ban_wall_s": f2b_wall,
            "fail2ban_cpu_s": f2b_cpu,
            "nft_f_s": min(nft),
            "python_s": python,
            "counts": all_counts,
            "equal": equal,
        }
        for name, env in trees.items():
            figures[name] = {
                "src": env["PYTHONPATH"],
                "pbxfw": imported(env),
                "scan_json_s": med(scan_json[name]),
                "scan_json_cpu_s": cpu_of(json_cmd, env),
                "scan_json_ratio": f2b_wall / med(scan_json[name]),
                "scan_text_s": med(scan_text[name]),
                "scan_text_cpu_s": cpu_of(text_cmd, env),
                "scan_text_ratio": f2b_wall / med(scan_text[name]),
                "apply_s": med(apply[name]),
                "apply_cpu_s": cpu_of(apply_cmds[name], env),
                "runs": {
                    "scan_json": scan_json[name],
                    "scan_text": scan_text[name],
                    "apply": apply[name],
                    "scan_text_cpu": CPU[(*text_cmd, env["PYTHONPATH"])],
                    "apply_cpu": CPU[(*apply_cmds[name], env["PYTHONPATH"])],
                },
            }
        print(json.dumps(figures))
        return 0 if equal else 1
    print(
        f"## Whole commands, start-up included ({sys.platform}, {len(os.sched_getaffinity(0))} "
        f"CPUs, load avg up to {load:.1f}, Python {sys.version.split()[0]}; "
        f"median of {args.repeat} runs each, output to /dev/null)"
    )
    print()
    print("| figure | tree | pbxfw | baseline (same run) | ratio | target |")
    print("|---|---|---|---|---|---|")
    f2b = f"`fail2ban-regex FILE asterisk.conf` {f2b_wall:.2f} s (CPU {f2b_cpu:.2f} s)"
    for label, cmd, times in (
        ("`pbxfw ips scan FILE --json`", json_cmd, scan_json),
        ("`pbxfw ips scan FILE`", text_cmd, scan_text),
    ):
        for name, env in trees.items():
            t, cpu = med(times[name]), cpu_of(cmd, env)
            print(
                f"| {label}, {args.lines:,} lines | {name} | {t:.2f} s "
                f"(runs {min(times[name]):.2f}–{max(times[name]):.2f}; CPU {cpu:.2f} s) | {f2b} | "
                f"**{f2b_wall / t:.1f}×** (CPU {f2b_cpu / cpu:.1f}×) | ≥ {SCAN_TARGET:.0f}× |"
            )
    for name, env in trees.items():
        t, cpu = med(apply[name]), cpu_of(apply_cmds[name], env)
        print(
            f"| `pbxfw apply --netns NS`, 10,000 networks | {name} | **{t:.2f} s** "
            f"(runs {min(apply[name]):.2f}–{max(apply[name]):.2f}; CPU {cpu:.2f} s, nft "
            f"included) | `nft -f` of the same ruleset {min(nft):.2f} s, `python -c pass` "
            f"{python:.3f} s | {t / min(nft):.1f}× `nft -f` | ≤ {APPLY_TARGET:.0f} s |"
        )
    print(
        f"| failures found | | {counts['this tree']:,} | {f2b_count:,} | "
        f"{'equal' if equal else 'DIFFERENT'} | equal |"
    )
    if not equal:
        print(f"\nfailure counts differ: {all_counts}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
