"""CPU time of two hot paths, two commits, one run (issue 14's tuning).

Run as root: ``.venv/bin/python bench/cpu_compare.py [--before f251d34]
[--rounds 4]``. Wall time on a shared machine follows the load; CPU time of
the same work much less, so this measures CPU seconds, before and after
interleaved round by round (before, after, before, after, ...):

- **scan**: ``scan_files`` of bench's 1,000,000-line Asterisk log (kind
  detected, ``--workers`` processes, default 1), CPU seconds of this
  process and of its worker processes, best of 2;
- **tick**: the real agent in a namespace of its own (SQLite, ``ips_maxretry``
  1), driven in-process: a failure line appended, then one ``tick()``; CPU
  seconds from the tick's start to the return of the ban's netlink send
  (``send_element_batch``), of the whole tick, and of an idle tick after
  it; medians over ``--bans`` lines.

The before commit's ``src/`` is taken with ``git archive`` into a temporary
folder (removed at the end); *after* is this checkout's ``src/``. Each
measurement runs in a child process with that ``src/`` first on
``PYTHONPATH`` (``--child`` is that child). Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOG = HERE / "out" / "asterisk_1000000_5.log"


def cpu() -> float:
    return time.process_time()


def child_scan(log: Path, workers: int) -> dict[str, float]:
    from pbxfw.ips.scan import scan_files

    best = (float("inf"), 0.0)
    for _ in range(2):
        start, children = cpu(), children_cpu()
        count = sum(1 for _ in scan_files([log], tz=UTC, kind=None, workers=workers))
        best = min(best, (cpu() - start, children_cpu() - children))
    return {"scan_cpu_s": best[0], "scan_workers_cpu_s": best[1], "failures": count}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child_tick(bans: int) -> dict[str, float]:
    import pbxfw.kernel.nft as nft
    from pbxfw.agent.daemon import Agent, AgentOptions
    from pbxfw.storage.repository import Store

    ns = f"pbxfwcpu-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="pbxfw-cpu-"))
    db, messages = tmp / "pbxfw.db", tmp / "messages"
    messages.touch()
    cli = [sys.executable, "-c", "from pbxfw.cli import main; main()"]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run([*cli, "init", "--db", str(db)], check=True, capture_output=True)
        settings = [f"log_{k}={tmp / k}" for k in ("asterisk_security", "ssh", "web")]
        settings += ["ips_maxretry=1", f"log_asterisk_messages={messages}", "asterisk_config_dir="]
        subprocess.run(
            [*cli, "settings", "set", *settings, "--db", str(db)], check=True, capture_output=True
        )
        store = Store.open(f"sqlite:///{db}")
        options = AgentOptions(netns=ns, state_dir=str(tmp / "state"), discover_asterisk=False)
        agent = Agent(store, options)
        sent: list[float] = []
        # Patched where NftBackend looks it up (both commits import it so).
        names = vars(nft)
        send = names["send_element_batch"]

        def spy(*args: Any, **kwargs: Any) -> None:
            send(*args, **kwargs)
            sent.append(cpu())

        names["send_element_batch"] = spy
        agent.start()
        for _ in range(5):
            agent.tick()
        to_kernel, ban_tick, idle_tick = [], [], []
        for i in range(bans):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            with messages.open("a") as f:
                f.write(
                    f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' "
                    f"from '<sip:101@10.0.0.1>' failed for '198.18.{i // 250}.{i % 250 + 1}:5060' "
                    "(callid: x) - Failed to authenticate\n"
                )
            sent.clear()
            start = cpu()
            agent.tick()
            end = cpu()
            if not sent:
                raise SystemExit("the ban never reached the netlink send")
            to_kernel.append(sent[0] - start)
            ban_tick.append(end - start)
            agent.tick()  # woken by its own database write
            start = cpu()
            agent.tick()
            idle_tick.append(cpu() - start)
        store.close()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "to_kernel_ms": statistics.median(to_kernel) * 1e3,
        "ban_tick_ms": statistics.median(ban_tick) * 1e3,
        "idle_tick_ms": statistics.median(idle_tick) * 1e3,
    }


def measure(src: Path, what: str, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    argv = [sys.executable, __file__, "--child", what, "--bans", str(args.bans)]
    argv += ["--log", str(args.log), "--workers", str(args.workers)]
    run = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", default="f251d34")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--bans", type=int, default=80)
    parser.add_argument("--only", choices=("scan", "tick"))
    parser.add_argument("--log", type=Path, default=LOG, help="the 1,000,000-line log")
    parser.add_argument(
        "--workers", type=int, default=1, help="scan processes (2: also the workers' CPU)"
    )
    parser.add_argument("--child", choices=("scan", "tick"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out = child_scan(args.log, args.workers) if args.child == "scan" else child_tick(args.bans)
        print(json.dumps(out))
        return 0
    if not args.log.exists():
        raise SystemExit(f"{args.log} is missing: run bench/bench_ips.py once (it writes it)")
    tmp = Path(tempfile.mkdtemp(prefix="pbxfw-before-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(HERE.parent), "archive", args.before, "src"],
            check=True,
            capture_output=True,
        )
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        trees = {"before": tmp / "src", "after": HERE.parent / "src"}
        runs: dict[tuple[str, str], list[dict[str, float]]] = {}
        whats = [args.only] if args.only else ["scan", "tick"]
        for _ in range(args.rounds):
            for what in whats:
                for name, src in trees.items():
                    runs.setdefault((what, name), []).append(measure(src, what, args))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"| figure (CPU, median of {args.rounds} rounds) | before ({args.before}) | after | ratio |"
    )
    print("|---|---|---|---|")
    for what, field in [
        ("scan", "scan_cpu_s"),
        ("scan", "scan_workers_cpu_s"),
        ("tick", "to_kernel_ms"),
        ("tick", "ban_tick_ms"),
        ("tick", "idle_tick_ms"),
    ]:
        if what not in whats:
            continue
        before = [r[field] for r in runs[what, "before"]]
        after = [r[field] for r in runs[what, "after"]]
        b, a = statistics.median(before), statistics.median(after)
        if not (a or b):
            continue  # no worker processes (--workers 1)
        rounds = ", ".join(f"{x:.3f}" for x in after)
        ratio = f"{a / b:.2f}" if b else "—"
        print(f"| {field} | {b:.3f} | {a:.3f} ({rounds}) | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
