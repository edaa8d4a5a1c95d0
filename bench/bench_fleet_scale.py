"""100,000 shared bans and 50 nodes on one PostgreSQL (issue 16, "Figures").

Run as root: ``.venv/bin/python bench/bench_fleet_scale.py [--agents 10]
[--sims 40] [--bans 100000] [--batches 20] [--joins 3]``. A throw-away
PostgreSQL server (tests/pgserver.py); ``--agents`` real ``pbxfw agent``
processes, each in its own network namespace with its own nftables and state
folder (tests/fleet/nodes.py); ``--sims`` light simulated nodes in one more
process (bench/fleet_sim.py: the agent's protocol on PostgreSQL, LISTEN, the
same ban read, a node report every 5 s, no kernel). All removed afterwards.

- **sharing**: ``--bans`` bans written as ``--batches`` committed batches
  (``BanService.import_lines``: one notification each), one every
  ``--pace`` seconds (back to back when a write takes longer), until
  every real agent's kernel holds every one of them and every simulated node
  has read the last revision. Measured over that window: wall time,
  PostgreSQL's CPU (utime+stime of the postmaster and its backends, reaped
  ones included, from /proc), the real agents' CPU (theirs and their nft
  children's) per ban and agent, the simulated nodes' CPU.
  Baseline in the same run: the floor of this protocol, every node reading
  every ban once (``--agents + --sims`` reads of all the bans with the same
  statement): PostgreSQL's CPU for that (10 reads one after the other,
  scaled).
- **rest**: PostgreSQL's CPU per second over 10 s with the bans stored,
  nothing changing, every node reporting every 5 s.
- **join** (``--joins`` times): a new node's agent started in a fresh
  namespace; seconds from its start until the bans are in its kernel set
  (the whole table is one nftables transaction: one element of the last
  batch present means all are; the count is checked after), and its CPU
  per ban. Baseline in the same run: ``nft -f`` of a file adding the same
  elements to a set with the same type and flags in a fresh namespace.
  Target ≤ 3 s.

``--json``: one JSON object.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from tests.fleet.nodes import Fleet, Node
from tests.kernel.lab import Lab, kernel_available
from tests.pgserver import PgServer, pg_unavailable

import pbxfw
from fleet_sim import ban_query
from pbxfw.compiler.names import ban_set_name
from pbxfw.domain.jails import MANUAL_JAIL
from pbxfw.kernel.netlink import has_element
from pbxfw.storage.repository import Store
from pbxfw.usecases.bans import BanService

__all__ = ["agents_cpu", "cpu_seconds", "measure", "postgres_cpu", "start_agents"]

TICK = os.sysconf("SC_CLK_TCK")
SET = ban_set_name(MANUAL_JAIL, 4)
BENCH = Path(__file__).resolve().parent


def cpu_seconds(pid: int, children: bool = True) -> float:
    """utime+stime of ``pid`` (and of its reaped children), seconds; 0 when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # After the command: state ppid … utime(12) stime(13) cutime(14) cstime(15).
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICK


def postgres_cpu(server: PgServer) -> float:
    """CPU seconds of the server: the postmaster (its reaped backends included)
    and every live child (backends, checkpointer, walwriter…)."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(postmaster)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def agents_cpu(nodes: list[Node]) -> float:
    return sum(cpu_seconds(n.proc.pid) for n in nodes if n.proc is not None)


def addresses(count: int) -> list[str]:
    base = int(ipaddress.ip_address("100.64.0.0"))
    return [str(ipaddress.ip_address(base + 1 + i)) for i in range(count)]


def start_agents(fleet: Fleet, nodes: list[Node], ready: str = "listening for") -> None:
    """Start ``nodes``' agents and wait until each logged ``ready`` (bounded)."""
    for node in nodes:
        fleet.start(node)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if all(node.log.exists() and ready in node.log.read_text() for node in nodes):
            time.sleep(0.5)  # their first reports and statuses are written
            return
        time.sleep(0.1)
    raise SystemExit(f"the agents did not start: {nodes[0].log.read_text()[-2000:]}")


def holds(node: Node, address: str) -> bool:
    return has_element(SET, ipaddress.ip_address(address).packed, node.ns)


def sims_at(status: Path, revision: int) -> bool:
    try:
        seen = json.loads(status.read_text())
    except (OSError, ValueError):
        return False
    return bool(seen) and all(r >= revision for r in seen.values())


def share(
    fleet: Fleet, server: PgServer, store: Store, status: Path, args: argparse.Namespace
) -> dict[str, float]:
    """Write the bans in batches; wait until every node holds / has read them."""
    agents = [n for n in fleet.nodes if n.proc is not None]
    service = BanService(store)
    banned = addresses(args.bans)
    size = -(-args.bans // args.batches)
    batches = [banned[i : i + size] for i in range(0, len(banned), size)]
    samples = [batch[-1] for batch in batches]
    marks = {n.name: len(n.log.read_text()) for n in agents}
    pg0, agents0, wall0 = postgres_cpu(server), agents_cpu(agents), time.monotonic()
    for i, batch in enumerate(batches):
        # Paced, so the figure does not depend on how fast this writer gets the CPU.
        time.sleep(max(0.0, wall0 + i * args.pace - time.monotonic()))
        service.import_lines(batch, jail=MANUAL_JAIL, seconds=86400)
    written = time.monotonic() - wall0
    final = service.revision()
    waiting = list(agents)
    in_kernels: float | None = None
    while time.monotonic() - wall0 < 600:
        waiting = [n for n in waiting if not all(holds(n, a) for a in samples)]
        if not waiting and in_kernels is None:
            in_kernels = time.monotonic() - wall0
            progress(f"in every agent's kernel after {in_kernels:.1f} s")
        if in_kernels is not None and sims_at(status, final):
            break
        time.sleep(0.05)
    else:
        raise SystemExit(f"sharing: not done after 600 s (agents waiting: {len(waiting)})")
    assert in_kernels is not None
    wall = time.monotonic() - wall0
    pg, agent = postgres_cpu(server) - pg0, agents_cpu(agents) - agents0
    # Each ban-set update follows one read of the stored bans (``Rules.sync``):
    # of every active ban, or, with incremental reads, of those written since.
    updates = [n.log.read_text()[marks[n.name] :].count("ban sets: ") for n in agents]
    return {
        "agent_updates_median": statistics.median(updates),
        "write_s": written,
        "in_every_kernel_s": in_kernels,
        "wall_s": wall,
        "postgres_cpu_s": pg,
        "agents_cpu_s": agent,
        "agent_cpu_us_per_ban": agent / len(agents) / args.bans * 1e6,
    }


def floor_reads(server: PgServer, database: str, count: int, sample: int = 10) -> float:
    """PostgreSQL's CPU for ``count`` reads of every active ban: ``sample`` reads
    one after the other, scaled to ``count`` (the server's work is the same
    for each; the bench's own Python fetching the rows is what takes time)."""
    sql = ban_query()
    with psycopg.connect(dbname=database, user="postgres", host=str(server.folder)) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.execute(sql, {"now": time.time()}).fetchall()  # type: ignore[arg-type]  # warm
        conn.commit()
        before = postgres_cpu(server)
        for _ in range(sample):
            with conn.transaction():
                conn.execute(sql, {"now": time.time()}).fetchall()  # type: ignore[arg-type]
        return (postgres_cpu(server) - before) * count / sample


def rest(server: PgServer, seconds: float = 10.0) -> float:
    before = postgres_cpu(server)
    time.sleep(seconds)
    return (postgres_cpu(server) - before) / seconds


def join(fleet: Fleet, name: str, probe: list[str], count: int) -> dict[str, float]:
    node = fleet.add(name)
    start = time.monotonic()
    fleet.start(node)
    assert node.proc is not None
    while time.monotonic() - start < 180:  # bounded; minutes only on a starved machine
        if all(holds(node, a) for a in probe):
            break
        time.sleep(0.01)
    else:
        raise SystemExit(f"join: {name} did not load the bans: {node.log.read_text()[-2000:]}")
    took = time.monotonic() - start
    cpu = cpu_seconds(node.proc.pid)
    progress(f"join {name}: in its kernel after {took:.2f} s, CPU {cpu:.2f} s")
    # The count, as the agent logs it once the table is loaded (after reading
    # it back; listing 100,000 elements with nft here would take as long).
    held, logged = -1, time.monotonic()
    while time.monotonic() - logged < 120 and held != count:
        found = re.search(
            r"applied configuration revision .*: \d+ networks, (\d+) bans", node.log.read_text()
        )
        held = int(found.group(1)) if found else -1
        time.sleep(0.2)
    fleet.stop(node)
    if held != count:
        raise SystemExit(f"join: {name} loaded {held} bans into its kernel, not {count}")
    return {"s": took, "cpu_s": cpu, "cpu_us_per_ban": cpu / count * 1e6}


def progress(text: str) -> None:
    """One line on stderr as each phase ends (a later failure keeps the figures)."""
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def _nft_file(ns: str, banned: list[str]) -> float:
    text = "add element inet b s { " + ", ".join(f"{a} timeout 86400s" for a in banned) + " }\n"
    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
        f.write(text)
    try:
        start = time.monotonic()
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", f.name], check=True, timeout=120)
        return time.monotonic() - start
    finally:
        os.unlink(f.name)


def run(args: argparse.Namespace) -> dict[str, Any]:
    server = PgServer()
    folder = Path(tempfile.mkdtemp(prefix="pbxfw-scale-"))
    sims: subprocess.Popen[str] | None = None
    try:
        server.create_template()
        database = server.create_database()
        url = server.url(database)
        with Lab(f"bs{os.getpid() % 10000}") as lab:
            fleet = Fleet(lab, url, folder)
            store = Store.open(url)
            try:
                fleet.configure()
                start_agents(fleet, [fleet.add(f"n{i}") for i in range(args.agents)])
                status = folder / "sims.json"
                sims = subprocess.Popen(
                    [sys.executable, str(BENCH / "fleet_sim.py"), url, str(args.sims), str(status)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                deadline = time.monotonic() + 60
                while not sims_at(status, 0) and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(1)
                sims_cpu0 = cpu_seconds(sims.pid, children=False)
                progress("agents and simulated nodes started")
                shared = share(fleet, server, store, status, args)
                shared["sims_cpu_s"] = cpu_seconds(sims.pid, children=False) - sims_cpu0
                progress(f"shared: {json.dumps(shared)}; reading the floor")
                shared["floor_postgres_cpu_s"] = floor_reads(
                    server, database, args.agents + args.sims
                )
                progress(f"floor: {shared['floor_postgres_cpu_s']:.2f} s")
                at_rest = rest(server)
                progress(f"at rest: {at_rest:.3f} s/s")
                banned = addresses(args.bans)
                probe = [banned[0], banned[len(banned) // 2], banned[-1]]
                joins = [join(fleet, f"j{k}", probe, args.bans) for k in range(args.joins)]
                nft = [nft_baseline_fresh(lab, banned, k) for k in range(args.joins)]
                progress(f"nft -f: {nft}")
            finally:
                if sims is not None:
                    sims.send_signal(signal.SIGTERM)
                    out, _ = sims.communicate(timeout=30)
                fleet.close()
                store.close()
        summary = json.loads(out.strip().splitlines()[-1]) if sims is not None and out else {}
        if summary.get("errors"):
            raise SystemExit(f"simulated nodes failed: {summary['errors'][:3]}")
        return {
            "version": pbxfw.__version__,
            "agents": args.agents,
            "sims": args.sims,
            "bans": args.bans,
            "batches": args.batches,
            "pace": args.pace,
            "share": shared,
            "sims_reads": summary.get("reads"),
            "postgres_cpu_per_s_at_rest": at_rest,
            "join_s": [j["s"] for j in joins],
            "join_cpu_us_per_ban": [j["cpu_us_per_ban"] for j in joins],
            "nft_s": nft,
            "load": os.getloadavg(),
        }
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def nft_baseline_fresh(lab: Lab, banned: list[str], k: int) -> float:
    ns = lab.namespace(f"nft{k}")
    lab.nft(ns, "-f", "-", input="table inet b {\n set s { type ipv4_addr; flags timeout; }\n}\n")
    return _nft_file(ns, banned)


def measure(
    parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], dict[str, Any]]
) -> tuple[argparse.Namespace, dict[str, Any]] | None:
    """Parse ``parser``'s arguments and ``--json``, stop when the kernel or
    PostgreSQL cannot be used, ``run``; with ``--json`` print the result as
    one JSON object and return None, else return the arguments and the result."""
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = parser.parse_args()
    why = kernel_available() or pg_unavailable()
    if why:
        raise SystemExit(why)
    result = run(args)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return None
    return args, result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--agents", type=int, default=10, help="real agents in namespaces")
    parser.add_argument("--sims", type=int, default=40, help="light simulated nodes")
    parser.add_argument("--bans", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=20, help="committed batches of bans")
    parser.add_argument("--pace", type=float, default=0.5, help="seconds from batch to batch")
    parser.add_argument("--joins", type=int, default=3, help="new nodes joining, one by one")
    measured = measure(parser, run)
    if measured is None:
        return
    args, result = measured
    s = result["share"]
    assert isinstance(s, dict)
    nodes = args.agents + args.sims
    print(
        f"pbxfw {pbxfw.__version__}: {args.bans} bans in {args.batches} batches "
        f"every {args.pace} s, "
        f"{args.agents} agents + {args.sims} simulated nodes (load {result['load']})"
    )
    print("| figure | pbxfw | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    print(
        f"| sharing: in every agent's kernel | {s['in_every_kernel_s']:.1f} s "
        f"(written in {s['write_s']:.1f} s; all {nodes} nodes read in {s['wall_s']:.1f} s) | — | — |"
    )
    print(
        f"| PostgreSQL CPU while sharing | {s['postgres_cpu_s']:.1f} s | every node reads "
        f"every ban once: {s['floor_postgres_cpu_s']:.1f} s | "
        f"{s['postgres_cpu_s'] / s['floor_postgres_cpu_s']:.1f}x |"
    )
    join_cpu = statistics.median(result["join_cpu_us_per_ban"])  # type: ignore[arg-type]
    print(
        f"| agent CPU per ban while sharing | {s['agent_cpu_us_per_ban']:.0f} µs | "
        f"a joining agent's whole load: {join_cpu:.0f} µs | "
        f"{s['agent_cpu_us_per_ban'] / join_cpu:.1f}x |"
    )
    print(
        f"| reads of the bans while sharing | each agent {s['agent_updates_median']:.0f} "
        f"ban-set updates (median); the simulated nodes {result['sims_reads']} reads in all, CPU "
        f"{s['sims_cpu_s']:.1f} s | one per node | — |"
    )
    print(
        f"| PostgreSQL CPU at rest, {nodes} nodes reporting | "
        f"{result['postgres_cpu_per_s_at_rest']:.3f} s/s | — | — |"
    )
    joins, nft = result["join_s"], result["nft_s"]
    assert isinstance(joins, list) and isinstance(nft, list)
    print(
        f"| new node joins: all {args.bans} bans in its kernel (median of {len(joins)}) | "
        f"{statistics.median(joins):.2f} s ({', '.join(f'{j:.2f}' for j in joins)}) | "
        f"`nft -f` of the same elements {statistics.median(nft):.2f} s | "
        f"{statistics.median(joins) / statistics.median(nft):.1f}x |"
    )


if __name__ == "__main__":
    main()
