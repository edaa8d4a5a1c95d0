"""Ban propagation across a fleet (issue 16): N agents, N namespaces, one PostgreSQL.

Run as root: ``.venv/bin/python bench/bench_fleet.py [--nodes 10] [--bans 200]
[--burst 10000]``. A throw-away PostgreSQL server is started as the tests do
(tests/pgserver.py); N real ``pbxfw agent`` processes run as the nodes of one
site, each in its own network namespace with its own state folder and its own
Asterisk logs (tests/fleet/nodes.py), all removed afterwards.

- **propagation**: a failure line appended to node A's Asterisk logs
  (``ips_maxretry`` 1: each attacker is banned at its first failure) until
  the ban is in the kernel set of *every other* node (each asked with one
  netlink element lookup, every ~2 ms, bounded); p50/p99 over ``--bans``
  attackers, one after the other.
- **burst** (``--burst``): that many failures from distinct attackers written
  to A's logs at once, until every other node's kernel holds all of them;
  and that many bans recorded at once as A's agent records a batch it
  decided (``BanService.record``, origin ``jail:asterisk`` at A), from the
  call until every other node's kernel holds the first and the last of them
  (a netlink lookup each, every 5 ms; then every set is counted).

Baseline in the same run: the same with ``PBXFW_LISTEN=0``, the agents
polling the revisions every 0.2 s (their loop's interval) instead of
waking on PostgreSQL's ``LISTEN/NOTIFY`` (``--listen-only``: not run).
The burst's baseline is an older checkout's code driven by this script
(``PYTHONPATH=<checkout>/src``; the recorded burst needs a ban's origin and
is left out there); ``--burst-timeout`` bounds each burst (60 s).
``--json``: one JSON object.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fleet.nodes import SET, Fleet, Node, failure_lines
from tests.kernel.lab import Lab, kernel_available
from tests.pgserver import PgServer, pg_unavailable

import pbxfw
from pbxfw.domain.bans import Ban

try:  # the recorded burst needs a ban's origin (pbxfw before it: the log burst only)
    from pbxfw.domain.bans import jail_origin
except ImportError:  # pragma: no cover - an older checkout under test
    jail_origin = None  # type: ignore[assignment]
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.kernel.netlink import has_element
from pbxfw.storage.repository import Store
from pbxfw.usecases.bans import BanService

#: Seconds one ban may take before the run gives up on it (bounded loops).
TIMEOUT = 10.0
#: Seconds a burst may take before the run gives up on it (``--burst-timeout``).
BURST_TIMEOUT = 60.0


def attackers(count: int, block: int) -> list[str]:
    """``count`` distinct attacker addresses, different for each ``block``."""
    base = int(ipaddress.ip_address("100.64.0.0")) + block * 0x40000
    return [str(ipaddress.ip_address(base + 1 + i)) for i in range(count)]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_all(fleet: Fleet, *, listen: bool) -> None:
    for node in fleet.nodes:
        fleet.start(node, listen=listen)
    deadline = time.monotonic() + 60
    ready = "listening for" if listen else "following "
    while time.monotonic() < deadline:
        if all(ready in n.log.read_text() for n in fleet.nodes):
            time.sleep(0.5)  # the first counters and statuses are written
            return
        time.sleep(0.1)
    raise SystemExit(f"the agents did not start: {fleet.nodes[0].log.read_text()[-2000:]}")


def propagation(fleet: Fleet, addresses: list[str]) -> list[float]:
    """Seconds from each failure at A to its ban in every other node's kernel."""
    a, others = fleet.nodes[0], fleet.nodes[1:]
    took: list[float] = []
    pause = random.Random(16)
    for address in addresses:
        key = ipaddress.ip_address(address).packed
        waiting = list(others)
        a.fail(address, 1)
        start = time.monotonic()
        while waiting and time.monotonic() - start < TIMEOUT:
            waiting = [n for n in waiting if not has_element(SET, key, n.ns)]
            if waiting:
                time.sleep(0.002)
        if waiting:
            raise SystemExit(f"{address} not in {waiting[0].name}'s kernel after {TIMEOUT} s")
        took.append(time.monotonic() - start)
        # A random pause: the next failure falls anywhere in the pollers'
        # 0.2 s interval, not always just after their tick (which would
        # make the baseline look worse than it is).
        time.sleep(pause.uniform(0.02, 0.25))
    return took


def burst(fleet: Fleet, addresses: list[str]) -> tuple[float, float]:
    """Seconds from writing all ``addresses``' failures at A to all of them in
    A's own kernel, and in every other node's kernel (each node's set read
    from the kernel)."""
    a, others = fleet.nodes[0], fleet.nodes[1:]
    at_a: float | None = None
    notices, securities = zip(*(failure_lines(x, 1) for x in addresses), strict=True)
    wanted = set(addresses)
    start = time.monotonic()
    with open(a.folder / "logs" / "messages", "a") as f:
        f.write("".join(notices))
    with open(a.folder / "logs" / "security_log", "a") as f:
        f.write("".join(securities))
    waiting: list[Node] = [a, *others]
    while waiting and time.monotonic() - start < BURST_TIMEOUT:
        waiting = [n for n in waiting if not wanted <= n.banned()]
        if at_a is None and a not in waiting:
            at_a = time.monotonic() - start
        if waiting:
            time.sleep(0.05)
    if waiting or at_a is None:
        missing = len(wanted - waiting[0].banned())
        raise SystemExit(f"burst: {missing} bans missing at {waiting[0].name}")
    return at_a, time.monotonic() - start


def recorded_burst(fleet: Fleet, addresses: list[str]) -> tuple[float, float]:
    """Seconds to record ``addresses`` as bans detected at A (one batch, the
    use case A's agent uses), and from the start of that until every other
    node's kernel set holds as many elements as it held before plus them."""
    a, others = fleet.nodes[0], fleet.nodes[1:]
    before = {n.name: n.set_size() for n in others}
    now = datetime.now(UTC)
    bans = [
        Ban(
            ipaddress.ip_network(x),
            "asterisk",
            JAIL_SCOPES["asterisk"],
            "burst",
            now.timestamp(),
            now.timestamp() + 3600,
            origin=jail_origin("asterisk"),
            node=a.name,
            site="default",
        )
        for x in addresses
    ]
    store = Store.open(fleet.db)
    try:
        start = time.monotonic()
        BanService(store).record(bans)
        stored = time.monotonic() - start
    finally:
        store.close()
    # The first and the last address, each one netlink lookup every 5 ms
    # (listing 10,000 elements of 9 sets would load the machine it measures);
    # every address is counted once they are there.
    ends = [ipaddress.ip_address(addresses[0]).packed, ipaddress.ip_address(addresses[-1]).packed]
    waiting = list(others)
    while waiting and time.monotonic() - start < BURST_TIMEOUT:
        waiting = [n for n in waiting if not all(has_element(SET, k, n.ns) for k in ends)]
        if waiting:
            time.sleep(0.005)
    took = time.monotonic() - start
    short = [n.name for n in others if n.set_size() < before[n.name] + len(addresses)]
    if waiting or short:
        raise SystemExit(f"recorded burst: not all in the kernel of {(waiting or short)[0]}")
    return stored, took


def run(args: argparse.Namespace, server: PgServer, listen: bool, block: int) -> dict[str, float]:
    database = server.create_database()
    folder = Path(tempfile.mkdtemp(prefix="pbxfw-fleet-"))
    tag = f"bf{os.getpid() % 10000}{'l' if listen else 'p'}"
    try:
        with Lab(tag) as lab:
            fleet = Fleet(lab, server.url(database), folder)
            try:
                fleet.configure(maxretry=1)
                for i in range(args.nodes):
                    fleet.add(f"n{i}")
                start_all(fleet, listen=listen)
                took = propagation(fleet, attackers(args.bans, block))
                figures = {
                    "p50_ms": statistics.median(took) * 1000,
                    "p99_ms": percentile(took, 99) * 1000,
                    "max_ms": max(took) * 1000,
                }
                if args.burst:
                    figures["burst_at_a_s"], figures["burst_s"] = burst(
                        fleet, attackers(args.burst, block + 1)
                    )
                    if jail_origin is not None:
                        figures["recorded_store_s"], figures["recorded_s"] = recorded_burst(
                            fleet, attackers(args.burst, block + 2)
                        )
                return figures
            finally:
                fleet.close()
    finally:
        server.drop_database(database)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    global BURST_TIMEOUT
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--bans", type=int, default=200)
    parser.add_argument("--burst", type=int, default=0, help="also a burst of this many bans")
    parser.add_argument(
        "--burst-timeout", type=float, default=BURST_TIMEOUT, help="seconds a burst may take"
    )
    parser.add_argument(
        "--listen-only", action="store_true", help="no polling run (e.g. an old checkout's burst)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = parser.parse_args()
    BURST_TIMEOUT = args.burst_timeout
    why = kernel_available() or pg_unavailable()
    if why:
        raise SystemExit(why)
    server = PgServer()
    try:
        server.create_template()
        listening = run(args, server, listen=True, block=0)
        polling = None if args.listen_only else run(args, server, listen=False, block=4)
    finally:
        server.stop()
    result = {
        "version": pbxfw.__version__,
        "nodes": args.nodes,
        "bans": args.bans,
        "listen": listening,
        "poll": polling,
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return
    print(f"pbxfw {pbxfw.__version__}: {args.nodes} agents, {args.bans} bans made at node A")
    print(f"{'failure at A → in every other kernel':40} {'p50':>9} {'p99':>9} {'max':>9}")
    runs = [("LISTEN/NOTIFY", listening)]
    if polling is not None:
        runs.append(("polling 0.2 s (baseline)", polling))
    for name, figures in runs:
        print(
            f"{name:40} {figures['p50_ms']:7.1f}ms {figures['p99_ms']:7.1f}ms "
            f"{figures['max_ms']:7.1f}ms"
        )
    if polling is not None:
        print(
            f"{'ratio (baseline / LISTEN)':40} {polling['p50_ms'] / listening['p50_ms']:8.2f}x "
            f"{polling['p99_ms'] / listening['p99_ms']:8.2f}x"
        )
    if not args.burst:
        return
    for name, figures in runs:
        print(
            f"{name}: burst of {args.burst} failures at A, in every other kernel "
            f"{figures['burst_s']:.2f} s (in A's own kernel {figures['burst_at_a_s']:.2f} s)"
        )
        if "recorded_s" in figures:
            print(
                f"{name}: {args.burst} bans recorded at A in one batch, in every other "
                f"kernel {figures['recorded_s']:.2f} s (the store write "
                f"{figures['recorded_store_s']:.2f} s; from its commit "
                f"{figures['recorded_s'] - figures['recorded_store_s']:.2f} s)"
            )


if __name__ == "__main__":
    main()
