"""Notifications (issue 19): what a channel that hangs costs the agent's ban path.

The agent in process (dry-run kernel, SQLite), a log with ``--bans`` attackers
failing ``maxretry`` times: the tick that reads them and bans them all, and
the idle ticks after it, with one webhook channel whose receiver takes each
request and never answers, against the baseline measured in the same run:
the same agent with no channel. Each variant runs ``--runs`` times, in turn.
Target: the same within noise (nothing is sent from the ban path).

    .venv/bin/python bench/bench_notify.py [--bans 1000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "src"))

from pbxfw.agent.daemon import Agent, AgentOptions  # noqa: E402
from pbxfw.kernel.dryrun import DryRunBackend  # noqa: E402
from pbxfw.storage.repository import Store  # noqa: E402
from pbxfw.usecases import ConfigService  # noqa: E402
from pbxfw.usecases.notifications import NotifyService  # noqa: E402

_RELEASE = threading.Event()


class _Hang(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _RELEASE.wait(60)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _line(stamp: str, i: int) -> str:
    return (
        f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
        f"'<sip:101@10.0.0.1>' failed for '10.{100 + i // 250}.{i % 250}.7:5060' "
        "(callid: c) - Failed to authenticate\n"
    )


def run_once(folder: Path, bans: int, hook: str | None) -> tuple[float, float]:
    """(seconds of the tick that bans, median ms of 50 idle ticks after it)."""
    folder.mkdir()
    svc = ConfigService(Store.open(f"sqlite:///{folder / 'pbxfw.db'}", create=True))
    svc.init()
    log = folder / "messages"
    log.write_text("")
    svc.update_settings(
        {
            "ips_maxretry": "3",
            "log_asterisk_messages": str(log),
            "log_asterisk_security": str(folder / "security_log"),
            "log_ssh": str(folder / "auth.log"),
            "log_web": str(folder / "error.log"),
            "asterisk_config_dir": "",
        }
    )
    if hook:
        NotifyService(svc.store).add("hook", hook)
    agent = Agent(
        svc.store,
        AgentOptions(state_dir=str(folder / "state"), node="bench"),
        backend=DryRunBackend(),
    )
    try:
        agent.start()
        time.sleep(1.0)  # past the start (a sender thread makes its HTTP client)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write_text("".join(_line(stamp, i) * 3 for i in range(bans)))
        began = time.perf_counter()
        agent.tick()
        ban_tick = time.perf_counter() - began
        idle = []
        for _ in range(50):
            began = time.perf_counter()
            agent.tick()
            idle.append(time.perf_counter() - began)
        assert len(agent.rules.backend.bans) == bans  # type: ignore[attr-defined]
        return ban_tick, statistics.median(idle) * 1000
    finally:
        agent.notifier.close(0.1)
        agent.ips.close()
        svc.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bans", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    results: dict[str, list[tuple[float, float]]] = {"none": [], "hanging": []}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for name, target in (("none", None), ("hanging", hook)):
                results[name].append(run_once(Path(tmp) / f"{name}{run}", args.bans, target))
    _RELEASE.set()
    server.shutdown()
    summary = {
        name: {
            "ban_tick_s": statistics.median(r[0] for r in runs),
            "idle_tick_ms": statistics.median(r[1] for r in runs),
        }
        for name, runs in results.items()
    }
    if args.json:
        print(json.dumps(summary))
        return
    base, hang = summary["none"], summary["hanging"]
    print(
        f"| {args.bans} bans, median of {args.runs} | no channel (baseline) | a channel that hangs | ratio |"
    )
    print("|---|---|---|---|")
    print(
        f"| the tick that bans them | {base['ban_tick_s']:.3f} s | {hang['ban_tick_s']:.3f} s "
        f"| {hang['ban_tick_s'] / base['ban_tick_s']:.2f} |"
    )
    print(
        f"| an idle tick after it | {base['idle_tick_ms']:.2f} ms | {hang['idle_tick_ms']:.2f} ms "
        f"| {hang['idle_tick_ms'] / base['idle_tick_ms']:.2f} |"
    )


if __name__ == "__main__":
    main()
