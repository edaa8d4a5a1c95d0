"""PostgreSQL down while attackers keep failing at two nodes (issue 16, "Figures").

Run as root: ``.venv/bin/python bench/bench_fleet_outage.py [--nodes 10]
[--outage 15] [--every 0.5]``; the figure of record is ``--outage 60``. A
throw-away PostgreSQL server (tests/pgserver.py) and ``--nodes`` real
``pbxfw agent`` processes, each in its own network namespace with its own
nftables, state folder and Asterisk logs (tests/fleet/nodes.py), all removed
afterwards. ``ips_maxretry`` is 1: one failure line bans its attacker.

1. *Database up* (the baseline of the same run): 20 attackers, each one
   failure line appended to node n0's or n1's Asterisk logs in turn; the
   seconds from the line to the element in that node's own kernel set
   (one netlink lookup every 2 ms).
2. *Outage*: ``pg_ctl stop -m fast``; for ``--outage`` seconds a new
   attacker every ``--every`` seconds, at n0 and n1 in turn, measured the
   same way. Just before the server comes back, each node's spool file is
   read: it must hold exactly that node's outage attackers.
3. *Back*: ``pg_ctl start``; from its return, the seconds until every
   node's kernel holds every attacker (target ≤ 5 s). Then, from the
   database: attackers not stored (lost), attackers stored or counted more
   than once (duplicated: the ``bans`` counter of the asterisk jail against
   the number of attackers), and the spool files emptied.

``--json``: one JSON object.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fleet.nodes import SET, Fleet, Node
from tests.kernel.lab import Lab
from tests.pgserver import PgServer

import pbxfw
from bench_fleet import attackers, percentile
from bench_fleet_scale import agents_cpu, measure, postgres_cpu, start_agents
from pbxfw.kernel.netlink import has_element

#: Seconds one ban may take in its own node's kernel before the run gives up.
LOCAL_TIMEOUT = 5.0


def holds(node: Node, address: str) -> bool:
    return has_element(SET, ipaddress.ip_address(address).packed, node.ns)


def ban_locally(node: Node, address: str) -> float:
    """Append one failure of ``address`` to ``node``'s logs; seconds until its kernel drops it."""
    node.fail(address, 1)
    start = time.monotonic()
    while time.monotonic() - start < LOCAL_TIMEOUT:
        if holds(node, address):
            return time.monotonic() - start
        time.sleep(0.002)
    raise SystemExit(f"{address} not in {node.name}'s own kernel after {LOCAL_TIMEOUT} s")


def attack(
    pair: list[Node], addresses: list[str], every: float
) -> tuple[list[float], dict[str, str]]:
    """One attacker per ``every`` seconds, at the nodes of ``pair`` in turn."""
    took: list[float] = []
    where: dict[str, str] = {}
    for i, address in enumerate(addresses):
        started = time.monotonic()
        node = pair[i % len(pair)]
        took.append(ban_locally(node, address))
        where[address] = node.name
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return took, where


def everywhere(nodes: list[Node], wanted: set[str], limit: float) -> tuple[float | None, int]:
    """Seconds until every node's kernel holds every address of ``wanted``
    (None after ``limit``), and how many (node, address) pairs were missing then."""
    missing = {n.name: set(wanted) for n in nodes}
    start = time.monotonic()
    while time.monotonic() - start < limit:
        for node in nodes:
            left = missing[node.name]
            if left:
                # Whole batches land in one transaction: one missing means look at all.
                missing[node.name] = {a for a in left if not holds(node, a)}
        if not any(missing.values()):
            return time.monotonic() - start, 0
        time.sleep(0.02)
    return None, sum(len(v) for v in missing.values())


def stored_counts(fleet: Fleet, wanted: set[str]) -> tuple[dict[str, int], int]:
    """How many stored bans each of ``wanted`` has, and the asterisk jail's ``bans`` counter."""
    listed = fleet.pbxfw("bans", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    counts = dict.fromkeys(wanted, 0)
    for ban in json.loads(listed.stdout):
        if ban["address"] in counts:
            counts[ban["address"]] += 1
    status = fleet.pbxfw("ips", "status", "--json")
    assert status.returncode == 0, status.stderr
    return counts, int(json.loads(status.stdout)["jails"]["asterisk"]["bans"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    server = PgServer()
    folder = Path(tempfile.mkdtemp(prefix="pbxfw-outage-"))
    try:
        server.create_template()
        database = server.create_database()
        with Lab(f"bo{os.getpid() % 10000}") as lab:
            fleet = Fleet(lab, server.url(database), folder)
            try:
                fleet.configure(maxretry=1)
                start_agents(fleet, [fleet.add(f"n{i}") for i in range(args.nodes)])
                pair = fleet.nodes[:2]
                up, _ = attack(pair, attackers(20, 0), args.every)

                count = max(2, round(args.outage / args.every))
                during = attackers(count, 1)
                cpu0 = agents_cpu(fleet.nodes)
                marks = {n.name: len(n.log.read_text()) for n in fleet.nodes}
                server.pause()
                down_at = time.monotonic()
                took, where = attack(pair, during, args.every)
                time.sleep(max(0.0, args.outage - (time.monotonic() - down_at)))
                in_spools = {n.name: n.spooled() for n in pair}
                wanted_spools = {
                    n.name: {a for a, at in where.items() if at == n.name} for n in pair
                }
                outage_s = time.monotonic() - down_at
                outage_cpu = agents_cpu(fleet.nodes) - cpu0

                server.start()
                pg0 = postgres_cpu(server)
                all_bans = set(attackers(20, 0)) | set(during)
                back, missing = everywhere(fleet.nodes, all_bans, 60)
                recovered_pg = postgres_cpu(server) - pg0
                time.sleep(2)  # log lines read again after reconnecting ban nobody twice
                counts, counter = stored_counts(fleet, all_bans)
                spools_left = sum(len(n.spooled()) for n in fleet.nodes)
                # The outage's messages at level ERROR, per node (logged once: 1).
                outage_lines = [
                    n.log.read_text()[marks[n.name] :].count(" ERROR ") for n in fleet.nodes
                ]
            finally:
                fleet.close()
        lost = sum(1 for c in counts.values() if c == 0)
        return {
            "version": pbxfw.__version__,
            "nodes": args.nodes,
            "outage_s": outage_s,
            "attackers_during": len(during),
            "local_up_p50_ms": percentile(up, 50) * 1000,
            "local_up_p99_ms": percentile(up, 99) * 1000,
            "local_down_p50_ms": percentile(took, 50) * 1000,
            "local_down_p99_ms": percentile(took, 99) * 1000,
            "local_down_max_ms": max(took) * 1000,
            "spools_match": in_spools == wanted_spools,
            "spooled": sum(len(v) for v in in_spools.values()),
            "every_node_every_ban_s": back,
            "missing_pairs": missing,
            "lost": lost,
            "duplicated_rows": sum(c - 1 for c in counts.values() if c > 1),
            "counted": counter,
            "duplicated_counts": counter - len(all_bans),
            "spools_left": spools_left,
            "outage_logged": outage_lines,
            "agents_cpu_s_per_node_s_down": outage_cpu / args.nodes / outage_s,
            "postgres_cpu_s_recovering": recovered_pg,
            "load": os.getloadavg(),
        }
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--outage", type=float, default=15.0, help="seconds the server is down")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between attackers")
    measured = measure(parser, run)
    if measured is None:
        return
    args, r = measured
    back = r["every_node_every_ban_s"]
    print(
        f"pbxfw {pbxfw.__version__}: {args.nodes} agents, PostgreSQL down {r['outage_s']:.1f} s, "
        f"{r['attackers_during']} attackers at n0 and n1 meanwhile (load {r['load']})"
    )
    print("| figure | pbxfw | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| failure line → own kernel, database down, p50 / p99 | "
        f"{r['local_down_p50_ms']:.1f} / {r['local_down_p99_ms']:.1f} ms | database up: "
        f"{r['local_up_p50_ms']:.1f} / {r['local_up_p99_ms']:.1f} ms | "
        f"{r['local_down_p99_ms'] / r['local_up_p99_ms']:.2f}x (p99) |"  # type: ignore[operator]
    )
    print(
        f"| spooled at n0 and n1 when the server came back | {r['spooled']} "
        f"(exactly their attackers: {r['spools_match']}) | — | — |"
    )
    print(
        f"| server back → every node has every ban | "
        f"{'not within 60 s' if back is None else f'{back:.2f} s'} "
        f"(missing pairs {r['missing_pairs']}) | target 5 s | — |"
    )
    print(
        f"| lost / duplicated | {r['lost']} / {r['duplicated_rows']} rows, "
        f"{r['duplicated_counts']} counts | — | — |"
    )
    print(
        f"| agent CPU while the database is down | "
        f"{r['agents_cpu_s_per_node_s_down'] * 100:.1f} % of a core per node | — | — |"
    )
    print(
        f"| spool entries left / outage logged per node | {r['spools_left']} / "
        f"{r['outage_logged']} | — | — |"
    )


if __name__ == "__main__":
    main()
