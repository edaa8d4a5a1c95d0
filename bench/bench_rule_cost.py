"""Where a packet's cost goes (issue 4): one rule or set at a time.

Run as root: ``.venv/bin/python bench/bench_rule_cost.py [--seconds S] [--reps R]``
(about a minute). The same one-flow UDP sender and counting receiver as
``bench_dataplane.py``, one pair of namespaces per set-up, interleaved, medians
of delivered packets/s as a ratio of the no-ruleset rate measured in the same
run. Each set-up is one table with one input chain:

- ``udp dport 5060 accept``: the cost of a base chain and a rule;
- ``ct state established,related accept``: connection tracking;
- one interval set lookup (``ip saddr @s accept``) with 1, 30 and 3,000
  intervals: what an allow set of that size costs (pbxfw's 10,000-network
  benchmark makes allow sets of ~3,700 intervals);
- one hash set lookup with 3,000 addresses: what a ban guard costs;
- pbxfw's own ruleset for those 10,000 networks (with its flow cache).

It tells which costs are fixed on this kernel, whatever the ruleset does.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import statistics
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent))

from tests.kernel.lab import Lab, kernel_available  # noqa: E402

import bench_dataplane as dp  # noqa: E402
from bench_foundation import make_networks  # noqa: E402
from pbxfw.compiler import compile_ruleset  # noqa: E402
from pbxfw.domain.configuration import Configuration  # noqa: E402
from pbxfw.domain.networks import permanent_networks  # noqa: E402
from pbxfw.domain.settings import Settings  # noqa: E402


def _table(body: str, sets: str = "") -> str:
    return (
        f"table inet pbxfwcost {{\n{sets} chain input {{\n"
        "  type filter hook input priority filter - 10; policy accept;\n"
        f"{body} }}\n}}\n"
    )


def _interval_set(n: int, client: ipaddress.IPv4Address, rng: random.Random) -> str:
    """``n`` disjoint intervals, one of them holding the client."""
    inside = int(client)
    points = sorted(rng.sample(range(1 << 24, 223 << 24), 2 * (n - 1)))
    spans = [(points[2 * i], points[2 * i + 1]) for i in range(n - 1)]
    spans = [(a, b) for a, b in spans if not a - 256 <= inside <= b + 256]
    spans.append((inside - 1, inside + 1))
    items = ", ".join(
        f"{ipaddress.IPv4Address(a)}-{ipaddress.IPv4Address(b)}" for a, b in sorted(spans)
    )
    return f" set s {{\n  type ipv4_addr\n  flags interval\n  elements = {{ {items} }}\n }}\n"


def setups(client: ipaddress.IPv4Address, pbxfw: str) -> dict[str, str | None]:
    rng = random.Random(5)
    accept = "  udp dport 5060 accept\n"
    lookup = "  udp dport 5060 ip saddr @s accept\n" + accept
    hosts = {str(ipaddress.IPv4Address(v)) for v in rng.sample(range(1 << 24, 223 << 24), 2999)}
    hosts.add(str(client))
    hash_set = f" set s {{\n  type ipv4_addr\n  elements = {{ {', '.join(sorted(hosts))} }}\n }}\n"
    return {
        "no ruleset": None,
        "one rule (`udp dport 5060 accept`)": _table(accept),
        "conntrack (`ct state` rule)": _table("  ct state established,related accept\n"),
        "interval set, 1 interval": _table(lookup, _interval_set(1, client, rng)),
        "interval set, 30 intervals": _table(lookup, _interval_set(30, client, rng)),
        "interval set, 3,000 intervals": _table(lookup, _interval_set(3000, client, rng)),
        "hash set, 3,000 addresses": _table(lookup, hash_set),
        "pbxfw, 10,000 networks": pbxfw,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="sending time per sample")
    parser.add_argument("--reps", type=int, default=5, help="interleaved samples per set-up")
    args = parser.parse_args()
    why = kernel_available()
    if why is not None:
        print(f"bench_rule_cost skipped: {why}")
        return
    networks = [*permanent_networks(), *make_networks(dp.N_NETWORKS)]
    config = Configuration(tuple(networks), (), Settings(firewall_enabled=True))
    block = dp.client_block(networks)
    client = block.network_address + 2
    tables = setups(client, compile_ruleset(config))
    samples: dict[str, list[float]] = {name: [] for name in tables}
    with Lab("cost") as lab:
        pairs = {}
        for i, (name, rules) in enumerate(tables.items()):
            pbx, cli = dp.namespace_pair(lab, i, client, block)
            if rules:
                lab.nft(pbx, "-f", "-", input=rules)
            pairs[name] = (pbx, cli)

        def measure(name: str, seconds: float) -> float:
            pbx, cli = pairs[name]
            port = str(dp.SIP_PORT)
            rx = lab.spawn(pbx, [sys.executable, "-c", dp._RECEIVER, port, str(seconds + 5)])
            assert rx.stdout is not None
            if rx.stdout.readline().strip() != "ready":
                raise RuntimeError(f"receiver in {pbx} did not start")
            argv = [dp._SEND_ONE_FLOW, str(client), dp.PBX_ADDR, port, str(seconds), "32"]
            tx = lab.spawn(cli, [sys.executable, "-c", *argv])
            out, _ = tx.communicate(timeout=seconds + 20)
            got, _ = rx.communicate(timeout=10)
            sent_seconds = float(json.loads(out)["seconds"])
            return int(got.strip()) / sent_seconds

        for name in tables:  # warm-up
            measure(name, 0.2)
        for rep in range(args.reps):
            order = list(tables) if rep % 2 == 0 else list(reversed(tables))
            for name in order:
                samples[name].append(measure(name, args.seconds))
    base = statistics.median(samples["no ruleset"])
    print("## The cost of one rule or set, one UDP flow to port 5060")
    print()
    print("| set-up | delivered/s (median) | ÷ no ruleset | samples ÷ no ruleset |")
    print("|---|---|---|---|")
    for name, values in samples.items():
        median = statistics.median(values)
        each = ", ".join(f"{v / base:.2f}" for v in values)
        print(f"| {name} | {median:,.0f} | {median / base:.3f} | {each} |")
    print()
    print(f"- {args.reps} interleaved samples of {args.seconds} s per set-up; client {client}")


if __name__ == "__main__":
    main()
