"""Intrusion prevention into the kernel (issue 5): ban latency and bulk bans.

Run as root: ``.venv/bin/python bench/bench_ips_kernel.py``. In a network
namespace of its own (removed afterwards), with the real agent running:

- **latency**: a failure line appended to the Asterisk log (``ips_maxretry``
  1, so each line bans) until the kernel holds the ban, observed with
  ``nft monitor`` (event-driven, no polling); p50/p99 over 60 attackers.
  Baseline in the same run: the cost of one ``nft add element`` of that
  address, the floor any userspace banner pays.
- **bulk**: ``pbxfw bans import`` of 100,000 addresses until the last one is
  in the kernel set (asked with one netlink element lookup every 5 ms). Baseline in the same run: ``nft -f`` of the same
  100,000 elements (the kernel's own cost).

``--json`` prints the figures as one JSON object instead of the table (for
bench/compare.py).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pbxfw
from pbxfw.kernel.netlink import has_element

NS = f"pbxfwbench-{os.getpid()}"
PBXFW = str(Path(sys.executable).with_name("pbxfw"))


def sh(*argv: str, input: str | None = None) -> str:
    return subprocess.run(argv, input=input, capture_output=True, text=True, check=True).stdout


def nsexec(*argv: str, input: str | None = None) -> str:
    return sh("ip", "netns", "exec", NS, *argv, input=input)


def addresses(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add(f"198.{rng.randrange(18, 20)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pbxfw-bench-"))
    db = str(tmp / "pbxfw.db")
    messages = tmp / "messages"
    messages.touch()
    sh("ip", "netns", "add", NS)
    agent = None
    monitor = None
    try:
        sh(PBXFW, "init", "--db", db)
        sh(
            PBXFW,
            "settings",
            "set",
            "ips_maxretry=1",
            f"log_asterisk_messages={messages}",
            f"log_asterisk_security={tmp / 'security_log'}",
            f"log_ssh={tmp / 'auth'}",
            f"log_web={tmp / 'web'}",
            "asterisk_config_dir=",
            "--db",
            db,
        )
        agent = subprocess.Popen(
            [PBXFW, "agent", "--netns", NS, "--db", db, "--state-dir", str(tmp / "state")],
            stdout=subprocess.DEVNULL,
            # PBXFW_BENCH_AGENT_LOG=FILE keeps the agent's log, to see where time went
            stderr=open(os.environ.get("PBXFW_BENCH_AGENT_LOG", os.devnull), "w"),  # noqa: SIM115
        )
        for _ in range(100):
            if "pbxfw" in nsexec("nft", "list", "tables"):
                break
            time.sleep(0.1)
        time.sleep(1.0)

        # -- latency ---------------------------------------------------------
        seen: dict[str, float] = {}
        monitor = subprocess.Popen(
            ["ip", "netns", "exec", NS, "nft", "monitor", "elements"],
            stdout=subprocess.PIPE,
            text=True,
        )

        def watch() -> None:
            assert monitor is not None and monitor.stdout is not None
            for line in monitor.stdout:
                if "ban_asterisk_v4" in line and line.startswith("add element"):
                    address = line.split("{", 1)[1].split()[0]
                    seen.setdefault(address, time.monotonic())

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(0.3)
        latencies = []
        for address in addresses(60, 1):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            line = (
                f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
                f"'<sip:101@10.0.0.1>' failed for '{address}:5060' (callid: x) - Failed to authenticate\n"
            )
            start = time.monotonic()
            with messages.open("a") as f:
                f.write(line)
            deadline = start + 2.0
            while address not in seen and time.monotonic() < deadline:
                time.sleep(0.001)
            latencies.append((seen.get(address, deadline) - start) * 1000)
            time.sleep(0.05)
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        floors = []
        for address in addresses(20, 2):
            start = time.monotonic()
            nsexec(
                "nft",
                "add",
                "element",
                "inet",
                "pbxfw",
                "ban_manual_v4",
                f"{{ {address} timeout 60s }}",
            )
            floors.append((time.monotonic() - start) * 1000)
        floor = statistics.median(floors)

        # -- bulk --------------------------------------------------------------
        # The latency monitor would print (and its reader parse) all 200,000
        # elements of the bulk load, taking CPU from the agent being measured.
        monitor.terminate()
        monitor.wait(5)
        bulk = addresses(100_000, 3)
        last = bulk[-1]
        path = tmp / "blocklist.txt"
        path.write_text("\n".join(bulk) + "\n")
        arrived = threading.Event()

        def watch_bulk() -> None:
            # Ask the kernel itself for the last address every 5 ms: one
            # netlink lookup of that element; `nft get element` would read
            # the whole set back first, and `nft monitor` lags printing
            # 200,000 elements.
            key = ipaddress.ip_address(last).packed
            for _ in range(12_000):  # bounded: about 60 s
                if has_element("ban_manual_v4", key, NS):
                    arrived.set()
                    return
                time.sleep(0.005)

        watcher = threading.Thread(target=watch_bulk, daemon=True)
        start = time.monotonic()
        watcher.start()
        sh(PBXFW, "bans", "import", str(path), "--db", db)
        imported = time.monotonic() - start
        arrived.wait(60)
        bulk_s = time.monotonic() - start
        assert arrived.is_set(), "the last address never reached the kernel"
        probe = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                NS,
                "nft",
                "get",
                "element",
                "inet",
                "pbxfw",
                "ban_manual_v4",
                f"{{ {last} }}",
            ],
            capture_output=True,
        )
        assert probe.returncode == 0
        # the same kind of set pbxfw keeps addresses in (hash, timeout)
        payload = "add table inet bench\nadd set inet bench s { type ipv4_addr; flags timeout; }\n"
        payload += (
            "add element inet bench s { " + ", ".join(f"{a} timeout 1d" for a in bulk) + " }\n"
        )
        start = time.monotonic()
        nsexec("nft", "-f", "-", input=payload)
        raw_s = time.monotonic() - start
    finally:
        for proc in (monitor, agent):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        subprocess.run(["ip", "netns", "pids", NS], capture_output=True)
        subprocess.run(["ip", "netns", "del", NS], check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        figures = {
            "pbxfw": pbxfw.__file__,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "latencies_ms": latencies,
            "nft_add_element_ms": floor,
            "bulk_s": bulk_s,
            "bulk_stored_s": imported,
            "bulk_nft_s": raw_s,
        }
        print(json.dumps(figures))
        return
    print("## Intrusion prevention into the kernel (agent running, one namespace)")
    print()
    print("| figure | pbxfw | baseline (same run) | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| failure line → ban in the kernel, p50 / p99 of {len(latencies)} | {p50:.1f} ms / {p99:.1f} ms "
        f"| one `nft add element` {floor:.1f} ms | p99 = {p99 / floor:.1f}× one nft call | p99 ≤ 100 ms |"
    )
    print(
        f"| `pbxfw bans import` of 100,000 → last one in the kernel | {bulk_s:.2f} s (stored in {imported:.2f} s) "
        f"| `nft -f` of the same elements {raw_s:.2f} s | {bulk_s / raw_s:.1f}× | ≤ 2 s |"
    )


if __name__ == "__main__":
    main()
