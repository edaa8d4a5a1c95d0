"""Foundation benchmarks (issue 3): check, import and list with 10,000 networks.

Run: ``.venv/bin/python bench/bench_foundation.py`` (or ``make bench``).
Each figure is printed with its baseline measured in the same run:
- ``check``: the PolicyIndex (bisect over flattened intervals) against a
  brute-force scan of every network (what the index replaces);
- ``import`` and ``network list --json``: the real ``pbxfw`` command in a
  subprocess against the interpreter's bare start-up (``python -c pass``)
  and a raw ``sqlite3`` bulk insert of the same rows.
"""

from __future__ import annotations

import ipaddress
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import PolicyIndex, check
from pbxfw.domain.networks import Network, Verdict, permanent_networks
from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.domain.settings import Settings

N = 10_000
PBXFW = str(Path(sys.executable).with_name("pbxfw"))


def make_networks(n: int, seed: int = 7) -> list[Network]:
    rng = random.Random(seed)
    seen: set[str] = set()
    networks: list[Network] = []
    while len(networks) < n:
        if rng.random() < 0.8:
            prefix = rng.choice([8, 12, 16, 20, 24, 24, 28, 32, 32])
            subnet = ipaddress.ip_network((rng.getrandbits(32), prefix), strict=False)
        else:
            prefix = rng.choice([32, 48, 56, 64, 64, 128])
            subnet = ipaddress.ip_network(
                ((0x2001 << 112) | rng.getrandbits(112), prefix), strict=False
            )
        if str(subnet) in seen or subnet.prefixlen == 0:
            continue
        seen.add(str(subnet))
        services = {k: rng.choice(list(Verdict)) for k in BUILTIN_KEYS}
        networks.append(Network(f"net {len(networks)}", subnet, services))
    return networks


def brute_force(
    networks: list[Network], address: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> Network | None:
    best = None
    for network in networks:
        contains = network.subnet.version == address.version and address in network.subnet
        if contains and (best is None or network.subnet.prefixlen > best.subnet.prefixlen):
            best = network
    return best


def median_us(fn, args: list, repeat: int = 1) -> float:  # type: ignore[no-untyped-def,type-arg]
    times = []
    for arg in args:
        start = time.perf_counter_ns()
        for _ in range(repeat):
            fn(arg)
        times.append((time.perf_counter_ns() - start) / repeat / 1000)
    return statistics.median(times)


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def best_of(cmd: list[str], times: int = 3) -> float:
    return min(run(cmd) for _ in range(times))


def import_document(networks: list[Network]) -> str:
    """``networks`` as a configuration document for ``pbxfw import``."""
    return json.dumps(
        {
            "networks": [
                {
                    "name": n.name,
                    "subnet": str(n.subnet),
                    "services": {k: str(v) for k, v in n.services.items()},
                }
                for n in networks
            ]
        }
    )


def main() -> None:
    networks = [*permanent_networks(), *make_networks(N)]
    config = Configuration(tuple(networks), (), Settings(firewall_enabled=True))
    rng = random.Random(1)
    probes = [
        ipaddress.IPv4Address(rng.getrandbits(32))
        if rng.random() < 0.8
        else ipaddress.IPv6Address((0x2001 << 112) | rng.getrandbits(112))
        for _ in range(2000)
    ]
    start = time.perf_counter()
    index = PolicyIndex(networks)
    build_ms = (time.perf_counter() - start) * 1000
    for probe in probes[:200]:
        assert index.lookup(probe) is brute_force(networks, probe)
    check_us = median_us(lambda a: check(config, a, "sip", index=index), probes, repeat=20)
    brute_us = median_us(lambda a: brute_force(networks, a), probes[:200])

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.db")
        doc = Path(tmp) / "doc.json"
        subprocess.run([PBXFW, "init", "--db", db], check=True, stdout=subprocess.DEVNULL)
        doc.write_text(import_document(networks[2:]))
        import_s = best_of([PBXFW, "import", str(doc), "--db", db])
        list_s = best_of([PBXFW, "network", "list", "--json", "--db", db])
        startup_s = best_of([sys.executable, "-c", "pass"])
        raw = sqlite3.connect(Path(tmp) / "raw.db")
        raw.execute("create table t (name text unique, subnet text unique, services text)")
        start = time.perf_counter()
        raw.executemany(
            "insert into t values (?, ?, ?)",
            [
                (n.name, str(n.subnet), json.dumps({k: str(v) for k, v in n.services.items()}))
                for n in networks[2:]
            ],
        )
        raw.commit()
        raw_s = time.perf_counter() - start
        raw.close()

    print(f"## Foundation, {N:,} networks ({sys.platform}, Python {sys.version.split()[0]})")
    print()
    print("| figure | pbxfw | baseline (same run) | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| `check` median, in-process | {check_us:.2f} µs | brute-force scan {brute_us:,.0f} µs | {brute_us / check_us:,.0f}× faster | ≤ 20 µs |"
    )
    print(f"| PolicyIndex build | {build_ms:.0f} ms | — | — | — |")
    print(
        f"| `pbxfw import` of {N:,} networks | {import_s:.2f} s | raw sqlite3 insert {raw_s:.3f} s, `python -c pass` {startup_s:.3f} s | {import_s / startup_s:.0f}× start-up | ≤ 5 s |"
    )
    print(
        f"| `pbxfw network list --json` | {list_s:.2f} s | `python -c pass` {startup_s:.3f} s | {list_s / startup_s:.0f}× start-up | ≤ 1 s |"
    )


if __name__ == "__main__":
    main()
