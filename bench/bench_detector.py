"""Benchmark the IPS detector: memory for 1,000,000 sources, and events per second.

    .venv/bin/python bench/bench_detector.py [--sources 1000000]

Memory is measured with tracemalloc (Python allocations of the detector's
state, the failures fed being garbage once fed), with the ``normal`` preset
so every source stays inside its one-hour window:

* ``tracking``: each source sends one failure (a distributed scan), the
  common shape of an attack and the largest state per event;
* ``banned``: each source is banned at its first failure (maxretry 1), so
  every source also holds its ban records (escalation and recidive history).

Throughput is timed without tracemalloc on a mixed stream: half the events
from a few thousand persistent attackers (who get banned), half from a
scan of fresh addresses, every second event a duplicate NOTICE/SECURITY
line with the same key. Only ``feed`` is timed, not building the events.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from pbxfw.domain.settings import Settings
from pbxfw.ips.detector import Detector, DetectorParams
from pbxfw.ips.events import Failure

T0 = datetime(2026, 11, 1, tzinfo=UTC)
BASE = int(ipaddress.IPv4Address("11.0.0.0"))


def scan(sources: int, per_second: int) -> Iterator[Failure]:
    """One failure from each of ``sources`` distinct addresses."""
    for i in range(sources):
        yield Failure(
            time=T0 + timedelta(seconds=i // per_second),
            jail="asterisk",
            host=ipaddress.IPv4Address(BASE + i),
            event="InvalidPassword",
            key=f"{i}",
        )


def measure_memory(sources: int, maxretry: int) -> tuple[float, float, Detector]:
    settings = Settings().updated({"ips_preset": "normal", "ips_maxretry": maxretry})
    gc.collect()
    tracemalloc.start()
    detector = Detector(DetectorParams.from_settings(settings), lambda ip: ip.is_loopback)
    # 1000 events per second of log time: 1,000,000 sources in under 17 min.
    for failure in scan(sources, 1000):
        detector.feed(failure)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return current / 1e6, peak / 1e6, detector


def mixed(n: int, start: int) -> list[Failure]:
    out = []
    for i in range(start, start + n, 2):
        if i % 4 == 0:
            host = ipaddress.IPv4Address(BASE + (i * 7919) % 5000)  # persistent attackers
        else:
            host = ipaddress.IPv4Address(BASE + 10_000_000 + i)  # a scan
        at = T0 + timedelta(seconds=i // 2000)
        for _ in range(2):  # NOTICE and SECURITY line of one attempt
            out.append(
                Failure(
                    time=at,
                    jail="asterisk",
                    host=host,
                    event="ChallengeResponseFailed",
                    key=f"c{i}",
                )
            )
    return out


def measure_throughput(events: int) -> tuple[float, int]:
    detector = Detector(DetectorParams.from_settings(Settings()), lambda ip: ip.is_loopback)
    chunk = 100_000
    elapsed = 0.0
    bans = 0
    for start in range(0, events, chunk):
        batch = mixed(chunk, start)
        began = time.perf_counter()
        for failure in batch:
            bans += len(detector.feed(failure))
        elapsed += time.perf_counter() - began
    return events / elapsed, bans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    args = parser.parse_args()

    current, peak, det = measure_memory(args.sources, maxretry=10)
    print(
        f"tracking {args.sources:,} sources: {current:.1f} MB held, {peak:.1f} MB peak "
        f"(tracked {det.stats()['tracked']:,}, evicted {det.stats()['evicted']:,})"
    )
    del det
    current, peak, det = measure_memory(args.sources, maxretry=1)
    print(
        f"banned   {args.sources:,} sources: {current:.1f} MB held, {peak:.1f} MB peak "
        f"(ban records {det.stats()['offenders']:,}, "
        f"evicted {det.stats()['evicted_offenders']:,})"
    )
    del det
    rate, bans = measure_throughput(args.events)
    print(f"throughput: {rate:,.0f} events/s over {args.events:,} events ({bans:,} bans)")


if __name__ == "__main__":
    main()
