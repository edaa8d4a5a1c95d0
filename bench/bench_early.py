"""The drop before connection tracking (issue 18): a flood from banned addresses.

Run as root: ``.venv/bin/python bench/bench_early.py [--seconds 10] [--reps 3]``
(about ``2 × reps × seconds`` plus set-up). Everything happens in two network
namespaces created here (``tests/kernel/lab.py``) and removed at the end.

The PBX namespace holds pbxfw's ruleset for a small configuration (the
Internet allows sip) with 50,000 addresses banned in the ``manual`` jail
(every packet). A raw-socket sender (``tests/kernel/spoof.py``) in the client
namespace floods udp/5060 from exactly those 50,000 addresses, round-robin,
as fast as it can, for ``--seconds``. Two set-ups, interleaved:

- **early**: the ruleset as compiled now: the ``early`` chain (prerouting,
  priority raw) drops the packets before connection tracking;
- **input**: the same ruleset without the early chains (what pbxfw loaded
  before issue 18): the ban guard in the ``input`` chain drops them, after
  conntrack has looked each packet up and allocated an entry for it.

Both are loaded with ``sip_notrack`` off (the flood protection is another
figure). On a veth pair the receiving side runs in the sender's system calls
(softirq on the way out of ``sendto``), so the sender's packets per second and
its system CPU seconds per packet hold the firewall's cost: the figures are
packets/s (early ÷ input) and system µs per packet (input ÷ early), the
medians of ``--reps`` runs, plus the namespace's conntrack entry count before
and after each flood (target: unchanged). ``--json`` prints one JSON object.

``--one-flow``: instead, what the early chains cost an allowed flow (issue 4's
"UDP one flow to the SIP port" figure): 10,000 random networks
(``bench_foundation``), a client the Internet network allows for sip, one
flow (one source address and port) to udp/5060 as fast as the sender goes.
Set-ups, one pair of namespaces each, interleaved: no ruleset; pbxfw before
issue 18 (the early chains left out); pbxfw now with ``sip_notrack`` off;
pbxfw now with ``sip_notrack`` on (the flow is not tracked). Packets/s and
system µs per packet, each as a ratio of the no-ruleset set-up.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent))
sys.path.insert(0, str(_HERE.parent / "src"))

from tests.kernel.lab import Lab, kernel_available, nft_ruleset  # noqa: E402
from tests.kernel.spoof import result, spoof_flood  # noqa: E402

from pbxfw.compiler import BanElement, compile_ruleset  # noqa: E402
from pbxfw.domain.configuration import Configuration  # noqa: E402
from pbxfw.domain.networks import permanent_networks  # noqa: E402
from pbxfw.domain.settings import Settings  # noqa: E402

PBX, CLIENT = "10.79.1.1", "10.79.1.2"
BANNED = "100.64.0.0/16"
N_BANNED = 50_000


def rulesets() -> dict[str, str]:
    """The two set-ups' tables: as compiled now, and without the early chains."""
    first = int(ipaddress.IPv4Network(BANNED).network_address)
    bans = [
        BanElement(ipaddress.ip_network(f"{ipaddress.IPv4Address(first + i)}/32"), "manual", 3600)
        for i in range(N_BANNED)
    ]
    settings = Settings().updated({"firewall_enabled": True, "sip_notrack": False})
    config = Configuration(permanent_networks(), (), settings)
    early = compile_ruleset(config, bans)
    # Each chain block starts with "\n\tchain NAME {" and ends with "\n\t}".
    without = re.sub(r"\n\n\tchain early\w* \{.*?\n\t\}", "", early, flags=re.S)
    assert "chain early" in early and "chain early" not in without
    return {"early": early, "input": without}


def one_flow_tables() -> tuple[dict[str, str], ipaddress.IPv4Address]:
    """The one-flow set-ups' tables (no ruleset: empty text) and the client."""
    sys.path.insert(0, str(_HERE))
    from bench_dataplane import N_NETWORKS, client_block
    from bench_foundation import make_networks

    networks = (*permanent_networks(), *make_networks(N_NETWORKS))
    client = client_block(list(networks)).network_address + 2
    tables = {"none": ""}
    for notrack in (False, True):
        settings = Settings().updated({"firewall_enabled": True, "sip_notrack": notrack})
        text = compile_ruleset(Configuration(networks, (), settings))
        if not notrack:
            tables["before"] = re.sub(r"\n\n\tchain early\w* \{.*?\n\t\}", "", text, flags=re.S)
        tables["notrack" if notrack else "tracked"] = text
    return tables, client


def one_flow(args: argparse.Namespace) -> dict[str, object]:
    """The --one-flow figures (module docstring)."""
    tables, client = one_flow_tables()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in tables}
    with Lab("bench-early-flow") as lab:
        pairs = {}
        for i, name in enumerate(tables):
            pbx, cli = lab.namespace(f"p{i}"), lab.namespace(f"c{i}")
            lab.link(pbx, "v0", cli, "v1")
            lab.addr(pbx, "v0", f"{PBX}/32")
            lab.addr(cli, "v1", f"{client}/32")
            lab.route(pbx, f"{client}/32", "v0")
            lab.route(cli, f"{PBX}/32", "v1")
            lab.listen(pbx, udp=[5060])
            if tables[name]:
                lab.nft(pbx, "-f", "-", input=tables[name])
            pairs[name] = cli
        for rep in range(args.reps):
            names = list(tables) if rep % 2 == 0 else list(reversed(tables))
            for name in names:
                flood = spoof_flood(
                    lab,
                    pairs[name],
                    sources=f"{client}/32",
                    dst=PBX,
                    seconds=args.seconds,
                    sport=40000,
                    payload="x" * 32,
                )
                out = result(flood, timeout=args.seconds + 60)
                runs[name].append(
                    {
                        "pps": out["sent"] / out["seconds"],
                        "sys_us_per_packet": 1e6 * out["stime"] / out["sent"],
                    }
                )
    med = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in runs.items()
    }
    return {"client": str(client), "median": med, "runs": runs}


def conntrack_count(lab: Lab, ns: str) -> int:
    return int(lab.exec(ns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"))


def one_run(lab: Lab, pbx: str, client: str, text: str, seconds: float) -> dict[str, float]:
    lab.nft(pbx, "-f", "-", input="table inet pbxfw {}\ndelete table inet pbxfw\n" + text)
    before = conntrack_count(lab, pbx)
    flood = spoof_flood(
        lab, client, sources=BANNED, count=N_BANNED, dst=PBX, seconds=seconds, payload="x" * 64
    )
    out = result(flood, timeout=seconds + 60)
    after = conntrack_count(lab, pbx)
    return {
        "pps": out["sent"] / out["seconds"],
        "sys_us_per_packet": 1e6 * out["stime"] / out["sent"],
        "cpu_us_per_packet": 1e6 * (out["stime"] + out["utime"]) / out["sent"],
        "conntrack_before": before,
        "conntrack_after": after,
        "sent": out["sent"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one-flow", action="store_true", help="the allowed one-flow cost")
    args = parser.parse_args()
    why = kernel_available()
    if why:
        print(why, file=sys.stderr)
        return 2
    host_before = nft_ruleset()
    if args.one_flow:
        flow = one_flow(args)
        assert nft_ruleset() == host_before, "the host's ruleset changed"
        if args.json:
            print(json.dumps(flow, indent=1))
            return 0
        med = flow["median"]
        assert isinstance(med, dict)
        base = med["none"]
        print(f"one flow to udp/5060 from {flow['client']}, {args.seconds:g} s, {args.reps} reps")
        print(f"{'set-up':8} {'pkt/s':>10} {'÷ none':>7} {'sys µs/pkt':>11} {'÷ none':>7}")
        for name, m in med.items():
            print(
                f"{name:8} {m['pps']:>10.0f} {m['pps'] / base['pps']:>7.2f} "
                f"{m['sys_us_per_packet']:>11.2f} "
                f"{m['sys_us_per_packet'] / base['sys_us_per_packet']:>7.2f}"
            )
        return 0
    tables = rulesets()
    runs: dict[str, list[dict[str, float]]] = {"early": [], "input": []}
    with Lab("bench-early") as lab:
        pbx, client = lab.namespace("pbx"), lab.namespace("cli")
        lab.link(pbx, "c0", client, "p0")
        lab.addr(pbx, "c0", f"{PBX}/24")
        lab.addr(client, "p0", f"{CLIENT}/24")
        lab.route(pbx, BANNED, "c0")
        lab.listen(pbx, udp=[5060])
        for rep in range(args.reps):
            order = ("early", "input") if rep % 2 == 0 else ("input", "early")
            for name in order:
                runs[name].append(one_run(lab, pbx, client, tables[name], args.seconds))
                time.sleep(0.5)
    assert nft_ruleset() == host_before, "the host's ruleset changed"
    med = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in runs.items()
    }
    figures = {
        "seconds": args.seconds,
        "reps": args.reps,
        "banned_sources": N_BANNED,
        "median": med,
        "runs": runs,
        "pps_early_over_input": med["early"]["pps"] / med["input"]["pps"],
        "sys_per_packet_input_over_early": med["input"]["sys_us_per_packet"]
        / med["early"]["sys_us_per_packet"],
    }
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    print(f"flood from {N_BANNED} banned addresses, {args.seconds:g} s, {args.reps} reps")
    print(
        f"{'set-up':8} {'pkt/s':>10} {'sys µs/pkt':>11} {'cpu µs/pkt':>11} {'ct before':>10} "
        f"{'ct after':>9}"
    )
    for name in ("early", "input"):
        m = med[name]
        print(
            f"{name:8} {m['pps']:>10.0f} {m['sys_us_per_packet']:>11.2f} "
            f"{m['cpu_us_per_packet']:>11.2f} {m['conntrack_before']:>10.0f} "
            f"{m['conntrack_after']:>9.0f}"
        )
    print(f"packets/s early ÷ input: {figures['pps_early_over_input']:.2f}")
    print(f"system µs per packet input ÷ early: {figures['sys_per_packet_input_over_early']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
