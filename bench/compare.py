"""Before/after comparison (issue 14): docs/benchmarks.md's figures for two commits, one run.

Run as root, from a checkout (about 10 minutes on a quiet 2-core machine)::

    .venv/bin/python bench/compare.py [--before REV] [--after REV] [--rounds N]
                                      [--only scan,kernel,dataplane,web,cli]

``--before`` defaults to f251d34 (main before issue 14's redesign began),
``--after`` to HEAD. Needs Debian's ``fail2ban``, ``wrk`` and ``iptables``
(``make bench`` installs them) and the kernel's network namespaces.

How it works:

- Each commit is checked out with ``git worktree add --detach`` into a
  temporary folder (removed at the end, also on failure). Its ``src/`` goes
  first on ``PYTHONPATH`` and its bytecode is compiled once (kept outside the
  worktree, as ``pip install`` would), so the in-process benchmarks *and*
  every ``pbxfw`` command they start import that commit's code; the harness
  checks ``pbxfw.__file__`` in every benchmark's output against the worktree.
  The interpreter and the libraries are this checkout's venv for both.
- **The measuring instrument is this checkout's ``bench/``**, for both commits:
  the benchmark scripts (their ``--json`` output, their load generators,
  their baselines) are the instrument, the commit is the code under test. So
  the old commit's code is driven by today's scripts, which only call APIs
  that both commits have (``scan_files``, ``compile_ruleset``, ``NftBackend``,
  ``has_element`` and the ``pbxfw`` commands).
- Each benchmark runs ``--rounds`` times per commit, interleaved (before,
  after, before, after, ...), so the drift of a shared machine hits both
  alike; a figure is the median of its rounds, printed with every round's
  value. ``bench_cli.py`` times both commits itself, run by run, against one
  ``fail2ban-regex`` run (``--repeat`` the larger of 5 and the rounds).
- It prints one Markdown table: figure, before, after, after/before, the
  issue's target, and "change": *same* when either commit's median lies
  within the other's rounds (the difference is within the run's own noise),
  else better/worse (with one round, any difference counts: use two or more).
  Every benchmark's JSON is kept under ``bench/out/compare-TIME/``.

The benchmarks and the figures taken from them:

- ``bench_ips.py --repeat 3``: ``scan_files`` of the 1,000,000-line log
  (kind detected, one process per CPU) against fail2ban-regex's own time;
- ``bench_ips_kernel.py``: failure line → ban in the kernel (p50, p99 of
  60) and ``pbxfw bans import`` of 100,000 addresses → the last in the kernel;
- ``bench_dataplane.py --modes one_flow --reps 3 --seconds 1 --apply-runs 3``:
  UDP one flow to the SIP port, delivered/s with pbxfw's ruleset over no
  ruleset (and conntrack alone, the floor, for context), compile + apply;
- ``bench_web.py``: ``GET /api/v1/networks`` p99 under wrk (bare uvicorn's
  p99 for context);
- ``bench_cli.py --repeat 5``: the whole ``pbxfw ips scan FILE`` (and
  ``--json``) over the whole ``fail2ban-regex FILE asterisk.conf``, and the
  whole ``pbxfw apply --netns NS`` of 10,000 networks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BEFORE = "f251d34"
BENCHES = ("scan", "kernel", "dataplane", "web", "cli")
TOOLS = ("fail2ban-regex", "wrk", "iptables-legacy-restore", "iptables-nft-restore", "nft")
#: one benchmark script run may take this long before it is stopped
TIMEOUT = 900


@dataclass
class Tree:
    """One commit checked out, and the environment that imports its code."""

    name: str
    rev: str
    commit: str
    path: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def src(self) -> Path:
        return self.path / "src"


@dataclass
class Figure:
    """One row of the table: a value per round for each commit."""

    label: str
    unit: str
    higher_is_better: bool
    target: str = "—"
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, tree: str, value: float) -> None:
        self.values.setdefault(tree, []).append(value)


def git(*argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *argv], check=True, capture_output=True, text=True
    ).stdout.strip()


def checkout(name: str, rev: str, folder: Path) -> Tree:
    """A detached worktree of ``rev`` and an environment importing its ``src``."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = folder / name
    git("worktree", "add", "--detach", str(path), commit)
    drop = ("SSH_CLIENT", "PBXFW_DB", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = str(path / "src")
    env["PYTHONPYCACHEPREFIX"] = str(folder / f"pycache-{name}")
    tree = Tree(name, rev, commit, path, env)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree.src)], check=True, env=env)
    imported = subprocess.run(
        [sys.executable, "-c", "import pbxfw.cli, pbxfw; print(pbxfw.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()
    check_imported(tree, imported)
    return tree


def check_imported(tree: Tree, imported: str) -> None:
    """Stop if ``pbxfw`` was imported from anywhere but ``tree``'s worktree."""
    if not Path(imported).resolve().is_relative_to(tree.src.resolve()):
        raise SystemExit(f"{tree.name}: pbxfw imported from {imported}, not from {tree.src}")


def remove_worktrees(trees: list[Tree], folder: Path) -> None:
    for tree in trees:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree.path)],
            check=False,
            capture_output=True,
        )
    git("worktree", "prune")
    shutil.rmtree(folder, ignore_errors=True)


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def remove_namespaces_of(pid: int) -> list[str]:
    """Delete the namespaces a benchmark process ``pid`` left behind (it
    names them after its pid: bench_ips_kernel, bench_cli, tests/kernel/lab)."""
    mine = (f"pbxfwbench-{pid}", f"pbxfw-bench-cli-{pid}")
    left = [n for n in namespaces() if n in mine or n.startswith(f"pbxfwt-{pid}-")]
    for name in left:
        subprocess.run(["ip", "netns", "del", name], check=False)
    return left


def run_bench(script: str, argv: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``bench/SCRIPT ARGV --json``; its JSON object (the last stdout line)."""
    cmd = [sys.executable, str(BENCH / script), *argv, "--json"]
    with log.with_suffix(".err").open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        finally:
            left = remove_namespaces_of(proc.pid)
    log.write_text(out)
    if left:
        print(f"  (removed namespaces {script} left behind: {', '.join(left)})", file=sys.stderr)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = log.with_suffix(".err").read_text()[-3000:]
        raise RuntimeError(
            f"{script} {' '.join(argv)} failed (exit {proc.returncode}):\n{out[-2000:]}\n{tail}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def figures_table() -> dict[str, Figure]:
    """Every row, in the order printed; the issue's targets where it gives one."""
    rows = [
        ("scan", "IPS scan in-process, lines/s ÷ fail2ban-regex (kind detected, parallel)", "×", True, "≥ 20×"),
        ("p99", "failure line → ban in the kernel, p99", "ms", False, "≤ 100 ms"),
        ("p50", "failure line → ban in the kernel, p50", "ms", False, "—"),
        ("bulk", "`pbxfw bans import` of 100,000 → last one in the kernel", "s", False, "≤ 2 s"),
        ("bulk_stored", "  of which `pbxfw bans import` itself (stored)", "s", False, "—"),
        ("bulk_nft", "  baseline: `nft -f` of the same 100,000 elements", "s", False, "—"),
        ("one_flow", "UDP one flow to the SIP port, delivered/s: pbxfw ÷ no ruleset", "", True, "≥ 0.9"),
        ("ct_only", "  floor: conntrack alone ÷ no ruleset (same runs)", "", True, "—"),
        ("compile_apply", "compile + apply in-process, 10,000 networks", "s", False, "≤ 1 s"),
        ("web_p99", "`GET /api/v1/networks` p99, 1,000 networks, 50 clients", "ms", False, "≤ 50 ms"),
        ("web_rps", "  same, requests/s", "/s", True, "—"),
        ("web_floor", "  baseline: bare uvicorn, same bytes, p99", "ms", False, "—"),
        ("cli_scan", "`pbxfw ips scan FILE` whole process ÷ whole `fail2ban-regex`", "×", True, "≥ 20×"),
        ("cli_scan_cpu", "  same, CPU seconds (user + system, both processes)", "s", False, "—"),
        ("cli_scan_json", "`pbxfw ips scan FILE --json` whole process ÷ whole `fail2ban-regex`", "×", True, "—"),
        ("cli_apply", "`pbxfw apply --netns NS`, 10,000 networks, whole process", "s", False, "≤ 1 s"),
        ("cli_apply_cpu", "  same, CPU seconds (user + system, nft included)", "s", False, "—"),
    ]  # fmt: skip
    return {key: Figure(label, unit, higher, target) for key, label, unit, higher, target in rows}


def measure(
    bench: str, trees: list[Tree], rounds: int, logs: Path, figs: dict[str, Figure]
) -> None:
    """Run one benchmark for every tree, interleaved, and record its figures."""
    if bench == "cli":
        # bench_cli interleaves the two trees itself, run by run
        before, after = trees
        argv = ["--repeat", str(max(rounds, 5)), "--src", str(before.src)]
        argv += ["--baseline-src", str(after.src)]
        out = run_bench("bench_cli.py", argv, after.env, logs / "cli.json")
        if not out["equal"]:
            raise RuntimeError(f"bench_cli: failure counts differ: {out['counts']}")
        f2b = out["fail2ban_wall_s"]
        for key in ("this tree", "baseline tree"):
            tree = before if key == "this tree" else after
            got = out[key]
            check_imported(tree, got["pbxfw"])
            for name, run in (("cli_scan", "scan_text"), ("cli_scan_json", "scan_json")):
                for wall in got["runs"][run]:
                    figs[name].add(tree.name, f2b / wall)
            for wall in got["runs"]["apply"]:
                figs["cli_apply"].add(tree.name, wall)
            for cpu in got["runs"]["apply_cpu"]:
                figs["cli_apply_cpu"].add(tree.name, cpu)
            for cpu in got["runs"]["scan_text_cpu"]:
                figs["cli_scan_cpu"].add(tree.name, cpu)
        return

    script, argv, record = BENCH_RUNS[bench]
    for i in range(rounds):
        for tree in trees:
            print(f"  {bench} round {i + 1}/{rounds}: {tree.name}", file=sys.stderr, flush=True)
            out = run_bench(script, argv, tree.env, logs / f"{bench}-{tree.name}-{i + 1}.json")
            check_imported(tree, out["pbxfw"])
            for key, value in record(out).items():
                figs[key].add(tree.name, value)


def _scan(out: dict[str, Any]) -> dict[str, float]:
    if not out["equal"]:
        raise RuntimeError(f"bench_ips: failure counts differ: {out['counts']}")
    best = max(out["scan_files"], key=lambda r: (r["kind"] is None, r["workers"]))
    return {"scan": best["ratio"]}


def _kernel(out: dict[str, Any]) -> dict[str, float]:
    return {
        "p99": out["latency_p99_ms"],
        "p50": out["latency_p50_ms"],
        "bulk": out["bulk_s"],
        "bulk_stored": out["bulk_stored_s"],
        "bulk_nft": out["bulk_nft_s"],
    }


def _dataplane(out: dict[str, Any]) -> dict[str, float]:
    ratio = out["one_flow"]["ratio"]
    return {
        "one_flow": ratio["pbxfw"],
        "ct_only": ratio["ct_only"],
        "compile_apply": out["compile_apply_s"],
    }


def _web(out: dict[str, Any]) -> dict[str, float]:
    if out["pbxfw_serve"]["errors"]:
        raise RuntimeError(f"bench_web: {out['pbxfw_serve']['errors']:.0f} answers not 2xx")
    return {
        "web_p99": out["pbxfw_serve"]["99"],
        "web_rps": out["pbxfw_serve"]["rps"],
        "web_floor": out["bare_uvicorn"]["99"],
    }


BENCH_RUNS: dict[str, tuple[str, list[str], Callable[[dict[str, Any]], dict[str, float]]]] = {
    "scan": ("bench_ips.py", ["--repeat", "3"], _scan),
    "kernel": ("bench_ips_kernel.py", [], _kernel),
    "dataplane": (
        "bench_dataplane.py",
        ["--modes", "one_flow", "--reps", "3", "--seconds", "1", "--apply-runs", "3"],
        _dataplane,
    ),
    "web": ("bench_web.py", [], _web),
}


def cell(values: list[float], unit: str) -> str:
    def fmt(v: float) -> str:
        if unit == "×":
            return f"{v:.1f}×"
        if unit == "ms":
            return f"{v:.1f} ms"
        if unit == "s":
            return f"{v:.2f} s"
        if unit == "/s":
            return f"{v:,.0f}/s"
        return f"{v:.2f}"

    median = fmt(statistics.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({', '.join(fmt(v) for v in values)})"


def change(fig: Figure, before: list[float], after: list[float]) -> str:
    """*same* if either commit's median lies within the other's rounds (the
    difference is no larger than the run's own noise), else which way it moved."""

    def within(value: float, values: list[float]) -> bool:
        return min(values) <= value <= max(values)

    if within(statistics.median(after), before) or within(statistics.median(before), after):
        return "same"
    up = statistics.median(after) > statistics.median(before)
    return "better" if up == fig.higher_is_better else "**worse**"


def table(figs: dict[str, Figure], trees: list[Tree]) -> list[str]:
    before, after = (t.name for t in trees)
    lines = [
        f"| figure | before ({trees[0].commit[:7]}) | after ({trees[1].commit[:7]}) "
        "| after / before | target | change |",
        "|---|---|---|---|---|---|",
    ]
    for fig in figs.values():
        b, a = fig.values.get(before), fig.values.get(after)
        if not b or not a:
            continue
        ratio = statistics.median(a) / statistics.median(b)
        lines.append(
            f"| {fig.label} | {cell(b, fig.unit)} | {cell(a, fig.unit)} | {ratio:.2f} "
            f"| {fig.target} | {change(fig, b, a)} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help=f"commit before (default {BEFORE})")
    parser.add_argument("--after", default="HEAD", help="commit after (default HEAD)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per commit, interleaved")
    parser.add_argument(
        "--only", default=",".join(BENCHES), help=f"benchmarks to run, of {','.join(BENCHES)}"
    )
    args = parser.parse_args()
    only = [b for b in BENCHES if b in args.only.split(",")]
    if not only or set(args.only.split(",")) - set(BENCHES):
        parser.error(f"--only: choose from {','.join(BENCHES)}")
    if os.geteuid() != 0:
        raise SystemExit("run as root: the kernel benchmarks use network namespaces")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: `make bench` installs them as root")

    started = time.monotonic()
    load = [os.getloadavg()[0]]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logs = BENCH / "out" / f"compare-{stamp}"
    logs.mkdir(parents=True)
    folder = Path(tempfile.mkdtemp(prefix="pbxfw-compare-"))
    trees: list[Tree] = []
    figs = figures_table()
    try:
        for name, rev in (("before", args.before), ("after", args.after)):
            trees.append(checkout(name, rev, folder))
        for tree in trees:
            print(f"{tree.name}: {tree.rev} = {tree.commit} in {tree.path}", file=sys.stderr)
        for bench in only:
            print(f"{bench}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            measure(bench, trees, args.rounds, logs, figs)
            load.append(os.getloadavg()[0])
    finally:
        remove_worktrees(trees, folder)
    minutes = (time.monotonic() - started) / 60
    print(
        f"## Before/after: {trees[0].rev} ({trees[0].commit[:7]}) → {trees[1].rev} "
        f"({trees[1].commit[:7]}), {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC"
    )
    print()
    print(
        f"`bench/compare.py --rounds {args.rounds}`: {minutes:.1f} min, {len(os.sched_getaffinity(0))} "
        f"CPUs, load average {min(load):.1f}–{max(load):.1f}; median of the rounds (each round "
        f"in brackets, before and after interleaved); raw output in {logs.relative_to(REPO)}/"
    )
    print()
    print("\n".join(table(figs, trees)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
