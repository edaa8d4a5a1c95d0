"""What a ban's evidence costs (issue 19): storage for 100,000 bans, and the agent's per-failure cost.

Run: ``.venv/bin/python bench/bench_evidence.py [--bans 100000] [--json]``.

- **storage**: 100,000 jail bans stored as the agent stores them
  (``BanService.record``, batches of 1,000), each with the evidence of
  ``--lines`` (10: the default ``ips_maxretry``) Asterisk NOTICE lines as a
  scanner causes them (its own address, source port and PBX thread; the
  extensions tried in turn; a random 96-bit call-id and the time in each). The figure
  is the database's growth (SQLite pages in use after a checkpoint) over
  the baseline measured in the same run: the same bans without evidence.
  The issue's bound: ~50 MB. For context: the lines' raw text size.
- **per failure**: what the agent adds to each counted failure (one
  ``EvidenceRing.add``) against the baseline measured in the same run:
  ``Detector.feed`` of the same failures (the detector's own cost), over a
  scan-like stream (``--sources`` attackers, a few failures each).
- **show**: ``BanService.show`` of one address among the 100,000 (the CLI's,
  REST's and page's read).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pbxfw
from pbxfw.domain.bans import Ban
from pbxfw.domain.evidence import BanEvidence, EvidenceLine
from pbxfw.ips.detector import Detector, DetectorParams
from pbxfw.ips.events import BanDecision, Failure
from pbxfw.ips.evidence import EvidenceRing
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService

NOW = time.time()


def address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def notice(host: str, port: int, thread: int, extension: int, callid: str, when: datetime) -> str:
    """An Asterisk 22 NOTICE line of a failed registration, as res_pjsip writes it."""
    return (
        f"[{when:%Y-%m-%d %H:%M:%S}] NOTICE[{thread}] res_pjsip/pjsip_distributor.c: Request "
        f"'REGISTER' from '\"{extension}\" <sip:{extension}@203.0.113.1>' failed for "
        f"'{host}:{port}' (callid: {callid}) - No matching endpoint found"
    )


def make_bans(n: int, lines: int, evidence: bool, seed: int = 7) -> list[Ban]:
    rng = random.Random(seed)
    bans = []
    for i in range(n):
        host = address(i)
        # A scanner: one source port and one PBX thread per attacker, the
        # extensions tried in turn, a random 96-bit call-id each (as tools make them).
        port, thread, first = (
            rng.randrange(1024, 65535),
            rng.randrange(1000, 99999),
            rng.randrange(100, 9000),
        )
        when = datetime.fromtimestamp(NOW - 60, UTC)
        decision = BanDecision(
            ipaddress.ip_address(host),
            "asterisk",
            frozenset({"sip", "iax", "ajam"}),
            when,
            86400,
            lines,
            when,
            f"{lines} asterisk failures within 3600 s (offence 1: 86400 s)",
        )
        kept = None
        if evidence:
            kept = BanEvidence(
                "asterisk",
                lines,
                3600,
                tuple(
                    EvidenceLine(
                        "/var/log/asterisk/messages",
                        1_000_000 + i * lines + k,
                        notice(
                            host,
                            port,
                            thread,
                            first + k,
                            f"{rng.getrandbits(96):024x}",
                            when + timedelta(seconds=k),
                        ),
                        when.timestamp() + k,
                        "InvalidAccountID",
                    )
                    for k in range(lines)
                ),
            )
        bans.append(Ban.from_decision(decision, NOW, "pbx-a", "default", kept))
    return bans


def stored_bytes(path: Path) -> int:
    """Bytes of the pages the database uses (after a checkpoint: the WAL folded in)."""
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def store_bans(folder: Path, bans: list[Ban]) -> tuple[int, float]:
    path = folder / "pbxfw.db"
    store = Store.open(database_url(str(path)), create=True)
    try:
        ConfigService(store).init()
        before = stored_bytes(path)
        service = BanService(store, clock=lambda: NOW, own_addresses=lambda: [])
        start = time.perf_counter()
        for at in range(0, len(bans), 1000):
            service.record(bans[at : at + 1000])
        seconds = time.perf_counter() - start
        return stored_bytes(path) - before, seconds
    finally:
        store.close()


def show_seconds(folder: Path, host: str, repeat: int = 50) -> float:
    store = Store.open(database_url(str(folder / "pbxfw.db")))
    try:
        service = BanService(store, own_addresses=lambda: [])
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            [record] = service.show(host)
            times.append(time.perf_counter() - start)
            assert record.evidence is not None
        return statistics.median(times)
    finally:
        store.close()


def per_failure(sources: int, per_source: int) -> tuple[float, float]:
    """(ns per Detector.feed, ns per EvidenceRing.add) over the same scan-like stream."""
    rng = random.Random(3)
    start = datetime(2026, 12, 5, tzinfo=UTC)
    hosts = [ipaddress.ip_address(address(i)) for i in range(sources)]
    failures = []
    for n in range(sources * per_source):
        host = hosts[rng.randrange(sources)]
        failures.append(
            Failure(
                start + timedelta(seconds=n // 1000),
                "asterisk",
                host,
                "InvalidAccountID",
                "/l",
                n + 1,
            )
        )
    text = notice("10.0.0.1", 5060, 2714, 101, "0" * 24, start)
    params = DetectorParams(maxretry=10, findtime=3600)
    detector = Detector(params, lambda host: False)
    t0 = time.perf_counter()
    for failure in failures:
        detector.feed(failure)
    feed = time.perf_counter() - t0
    ring = EvidenceRing(params.maxretry)
    t0 = time.perf_counter()
    for failure in failures:
        ring.add(failure.jail, failure.host, failure.file, failure.line, text, 0.0, failure.event)
    add = time.perf_counter() - t0
    n = len(failures)
    return feed / n * 1e9, add / n * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bans", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--sources", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = parser.parse_args()

    with_evidence = make_bans(args.bans, args.lines, evidence=True)
    raw = sum(len(x.text.encode()) for b in with_evidence if b.evidence for x in b.evidence.lines)
    without = make_bans(args.bans, args.lines, evidence=False)
    root = Path(tempfile.mkdtemp(prefix="pbxfw-bench-evidence-"))
    try:
        (root / "a").mkdir()
        (root / "b").mkdir()
        base_bytes, base_s = store_bans(root / "a", without)
        ev_bytes, ev_s = store_bans(root / "b", with_evidence)
        show = show_seconds(root / "b", address(args.bans // 2))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    feed_ns, add_ns = per_failure(args.sources, 5)
    result = {
        "pbxfw": pbxfw.__file__,
        "bans": args.bans,
        "lines_per_ban": args.lines,
        "raw_text_mb": raw / 1e6,
        "bans_mb": base_bytes / 1e6,
        "bans_with_evidence_mb": ev_bytes / 1e6,
        "evidence_mb": (ev_bytes - base_bytes) / 1e6,
        "record_s": base_s,
        "record_with_evidence_s": ev_s,
        "show_ms": show * 1e3,
        "feed_ns": feed_ns,
        "ring_add_ns": add_ns,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.bans:,} jail bans, {args.lines} lines each ({raw / 1e6:.1f} MB of raw text)")
    print(
        f"  database growth, bans alone (baseline): {base_bytes / 1e6:8.1f} MB  stored in {base_s:.1f} s"
    )
    print(
        f"  database growth, bans + evidence:       {ev_bytes / 1e6:8.1f} MB  stored in {ev_s:.1f} s"
    )
    print(
        f"  evidence adds:                           {(ev_bytes - base_bytes) / 1e6:8.1f} MB (bound: ~50 MB)"
    )
    print(f"  bans show of one address:                {show * 1e3:8.2f} ms")
    print(
        f"per counted failure: Detector.feed {feed_ns:.0f} ns (baseline), EvidenceRing.add {add_ns:.0f} ns"
    )


if __name__ == "__main__":
    main()
