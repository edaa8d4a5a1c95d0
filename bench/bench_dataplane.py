"""The nftables dataplane (issue 4): compile + apply time, and SIP packets/s.

Run as root: ``.venv/bin/python bench/bench_dataplane.py`` (about 2–3 min;
``--seconds``, ``--reps``, ``--apply-runs`` and ``--modes one_flow`` shorten
it; ``--json`` prints the figures as one JSON object instead of the tables,
for bench/compare.py). Everything happens in network
namespaces created here (``tests/kernel/lab.py``) and removed at the end, also
on failure; the host's ruleset is compared before and after.

1. **compile + apply** of 10,000 random networks (``bench_foundation``'s
   generator), then with 100,000 banned addresses as well: ``compile_ruleset``
   + ``NftBackend(netns).apply``, median of a few runs, each replacing the
   previous table. Baselines in the same run: ``nft -f`` of an empty table (the
   floor of any apply through ``ip netns exec nft``) and ``iptables-restore``
   (legacy and nft) of the same networks as a linear chain.
2. **packets/s to udp/5060** from an "Internet" client namespace to a PBX
   namespace, one pair of namespaces per set-up so nothing is reloaded between
   runs, interleaved (none, conntrack only, pbxfw, pbxfw+bans, chain-legacy,
   chain-nft, then the reverse order…), medians reported. "conntrack only"
   (one ``ct state established,related accept`` rule) is the stateful floor:
   what any conntrack-using ruleset pays before its first set lookup.

   - *one flow*: a Python UDP socket bound to the client address, one source
     port. One-way UDP never sees a reply, so conntrack keeps every packet in
     ``ct state new`` (checked below with counters): pbxfw's flow cache
     (``ct mark``, the chain's first rule, docs/nftables.md) accepts each
     packet; only the first one met the ban guards, the port map and the
     allow set;
   - *new flow per packet*: a raw socket writing UDP headers itself, a new
     (source address, source port) for every packet — a conntrack entry is
     created per packet, the worst case for a stateful firewall.

   The linear chain is the MikoPBX way: one ``-s NET -p udp --dport 5060 -j
   ACCEPT|DROP`` rule per network, most specific first (first match = longest
   prefix), the networks containing the client last, so the client's packets
   walk (almost) the whole chain. It is stateless: no conntrack cost.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent))

from tests.kernel.lab import Lab, kernel_available, nft_ruleset, run  # noqa: E402

import pbxfw  # noqa: E402
from bench_foundation import make_networks  # noqa: E402
from pbxfw.compiler import BanElement, compile_ruleset  # noqa: E402
from pbxfw.domain.configuration import Configuration  # noqa: E402
from pbxfw.domain.decision import PolicyIndex, check  # noqa: E402
from pbxfw.domain.networks import Network, Verdict, permanent_networks  # noqa: E402
from pbxfw.domain.settings import Settings  # noqa: E402
from pbxfw.kernel import NftBackend  # noqa: E402

N_NETWORKS = 10_000
N_BANS = 100_000
SIP_PORT = 5060
PBX_ADDR = "192.0.2.1"
PAYLOAD = 32
SETUPS = ("none", "ct_only", "pbxfw", "pbxfw_bans", "chain_legacy", "chain_nft")
LABEL = {
    "none": "no ruleset",
    "ct_only": "conntrack only (one `ct state` rule)",
    "pbxfw": "pbxfw, 10,000 networks",
    "pbxfw_bans": "pbxfw, 10,000 networks + 100,000 bans",
    "chain_legacy": "linear chain, iptables-legacy",
    "chain_nft": "linear chain, iptables-nft",
}
MODES = ("one_flow", "new_flows")
MODE_LABEL = {"one_flow": "one flow", "new_flows": "new flow per packet"}

# Counting receiver: counts datagrams until idle for 0.3 s after the first one
# (the sender has stopped) or until its deadline; prints the count.
_RECEIVER = r"""
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE (root)
s.bind(("0.0.0.0", port))
s.settimeout(0.3)
buf = bytearray(2048)
recv = s.recv_into
n = 0
print("ready", flush=True)
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        for _ in range(4096):
            recv(buf)
            n += 1
    except socket.timeout:
        if n:
            break
print(n, flush=True)
"""

# Senders: as fast as they can for a fixed time; print sent count and time.
_SEND_ONE_FLOW = r"""
import json, socket, sys, time
src, dst, port, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((src, 40000))
s.connect((dst, port))
send, data = s.send, b"x" * int(sys.argv[5])
sent = errors = 0
start = time.monotonic()
end = now = start
end += secs
while now < end:
    for _ in range(256):
        try:
            send(data)
            sent += 1
        except OSError:
            errors += 1
    now = time.monotonic()
print(json.dumps({"sent": sent, "seconds": now - start, "errors": errors}), flush=True)
"""

_SEND_NEW_FLOWS = r"""
import json, socket, struct, sys, time
first, count, dst, port, secs, size, offset = sys.argv[1:8]
first, count, port, secs, size = int(first), int(count), int(port), float(secs), int(size)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # implies IP_HDRINCL
pack = struct.Struct("!BBHHHBBH4s4sHHHH").pack
dstb, addr, data = socket.inet_aton(dst), (dst, 0), b"x" * size
send = r.sendto
i = int(offset)
sent = errors = 0
start = time.monotonic()
end = now = start
end += secs
while now < end:
    for _ in range(256):
        # every packet a new 5-tuple: next source address, and the source
        # port moves on once all addresses are used (the kernel fills in the
        # IP total length, id and checksum; UDP checksum 0 = none)
        src = (first + i % count).to_bytes(4, "big")
        sport = 1024 + (i // count) % 64000
        try:
            send(pack(0x45, 0, 0, 0, 0, 64, 17, 0, src, dstb, sport, port, 8 + size, 0) + data, addr)
            sent += 1
        except OSError:
            errors += 1
        i += 1
    now = time.monotonic()
print(json.dumps({"sent": sent, "seconds": now - start, "errors": errors}), flush=True)
"""


_CT_ONLY = """table inet pbxfwbench {
\tchain input {
\t\ttype filter hook input priority filter - 10; policy accept;
\t\tct state established,related accept
\t}
}
"""


def namespace_pair(
    lab: Lab, i: int, client: ipaddress.IPv4Address, block: ipaddress.IPv4Network
) -> tuple[str, str]:
    """A PBX namespace (PBX_ADDR) and a client namespace (``client``, its
    packets may come from anywhere in ``block``), linked by a veth pair."""
    pbx, cli = lab.namespace(f"p{i}"), lab.namespace(f"c{i}")
    lab.link(pbx, "v0", cli, "v1")
    lab.addr(pbx, "v0", f"{PBX_ADDR}/32")
    lab.addr(cli, "v1", f"{client}/32")
    lab.route(pbx, str(block), "v0")
    lab.route(cli, f"{PBX_ADDR}/32", "v1")
    for key in ("all", "default", "v0"):
        lab.exec(pbx, "sysctl", "-qw", f"net.ipv4.conf.{key}.rp_filter=0")
    return pbx, cli


def client_block(networks: list[Network]) -> ipaddress.IPv4Network:
    """A block (≤ /16) of unicast addresses decided only by the permanent
    Internet network, which allows sip: the client's addresses."""
    index = PolicyIndex(networks)
    segments = sorted(
        (s for s in index.segments(4) if s.network.permanent),
        key=lambda s: s.first - s.last,
    )
    for seg in segments:
        first = ipaddress.IPv4Address(seg.first)
        if not (1 <= first.packed[0] <= 223) or first.packed[0] == 127:
            continue
        blocks = ipaddress.summarize_address_range(first, ipaddress.IPv4Address(seg.last))
        block = max(blocks, key=lambda b: b.num_addresses)
        if block.prefixlen < 16:
            block = next(block.subnets(new_prefix=16))
        return block
    raise RuntimeError("no address of the random networks is left to the Internet network")


def make_bans(n: int, avoid: ipaddress.IPv4Network, seed: int = 11) -> list[BanElement]:
    """``n`` distinct banned addresses: 90 % IPv4, 10 % IPv6; jails asterisk
    (70 %), recidive (20 %), ssh (10 %); one-hour timeouts."""
    rng = random.Random(seed)
    seen: set[int] = set()
    bans: list[BanElement] = []
    while len(bans) < n:
        if rng.random() < 0.9:
            value = rng.randrange(1 << 24, 224 << 24)
            subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.IPv4Network(value)
            if subnet.network_address in avoid:
                continue
        else:
            value = (0x2001 << 112) | rng.getrandbits(112)
            subnet = ipaddress.IPv6Network(value)
        if value in seen:
            continue
        seen.add(value)
        roll = rng.random()
        jail = "asterisk" if roll < 0.7 else "recidive" if roll < 0.9 else "ssh"
        bans.append(BanElement(subnet, jail, 3600))
    return bans


def linear_chains(networks: list[Network], client: ipaddress.IPv4Address) -> tuple[str, str, int]:
    """``iptables-restore`` and ``ip6tables-restore`` input: one rule per
    network in INPUT, and how many rules the client's packets walk."""

    def order(nets: Iterable[Network]) -> list[Network]:
        return sorted(nets, key=lambda n: -n.subnet.prefixlen)

    v4 = [n for n in networks if n.subnet.version == 4]
    holding = [n for n in v4 if client in n.subnet]
    v4_order = order(n for n in v4 if client not in n.subnet) + order(holding)
    v6_order = order(n for n in networks if n.subnet.version == 6)

    def restore(nets: list[Network]) -> str:
        lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
        for n in nets:
            target = "ACCEPT" if n.verdict("sip") is Verdict.ALLOW else "DROP"
            lines.append(f"-A INPUT -s {n.subnet} -p udp --dport {SIP_PORT} -j {target}")
        return "\n".join([*lines, "COMMIT", ""])

    walked = len(v4_order) - len(holding) + 1  # up to the client's first match
    return restore(v4_order), restore(v6_order), walked


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="sending time per sample")
    parser.add_argument("--reps", type=int, default=5, help="interleaved samples per figure")
    parser.add_argument("--apply-runs", type=int, default=5, help="compile + apply runs")
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated traffic kinds to measure, of {', '.join(MODES)}",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object, no tables")
    args = parser.parse_args()
    modes = tuple(m for m in MODES if m in args.modes.split(","))
    if not modes or set(args.modes.split(",")) - set(MODES):
        parser.error(f"--modes: choose from {', '.join(MODES)}")
    why = kernel_available()
    if why is not None:
        print(f"bench_dataplane skipped: {why}")
        return

    networks = [*permanent_networks(), *make_networks(N_NETWORKS)]
    config = Configuration(tuple(networks), (), Settings(firewall_enabled=True))
    block = client_block(networks)
    client = block.network_address + 2
    decision = check(config, client, "sip")
    assert decision.verdict == "allow" and decision.network is not None
    assert decision.network.permanent, decision.reason
    bans = make_bans(N_BANS, block)
    chain_v4, chain_v6, walked = linear_chains(networks, client)
    host_before = nft_ruleset()
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="pbxfw-bench-dp-"))
    (tmp / "chain4.rules").write_text(chain_v4)
    (tmp / "chain6.rules").write_text(chain_v6)
    results: dict[str, float | str] = {}
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    extra: dict[str, object] = {"load_before": load_before}

    with Lab("dp") as lab:
        # -- 1. compile + apply ---------------------------------------------
        scratch = lab.namespace("ap")
        backend = NftBackend(scratch)

        def apply_runs(ban_list: list[BanElement]) -> tuple[float, float, float]:
            compile_s, apply_s, total_s = [], [], []
            for _ in range(args.apply_runs):
                start = time.perf_counter()
                text = compile_ruleset(config, ban_list)
                mid = time.perf_counter()
                backend.apply(text)
                end = time.perf_counter()
                compile_s.append(mid - start)
                apply_s.append(end - mid)
                total_s.append(end - start)
            return (
                statistics.median(compile_s),
                statistics.median(apply_s),
                statistics.median(total_s),
            )

        results["net"] = json.dumps(apply_runs([]))
        results["bans"] = json.dumps(apply_runs(bans))
        listed = backend.list_table(stateless=True) or ""
        extra["ban_elements_in_kernel"] = listed.count("timeout 1h")  # stateless keeps it
        backend.delete_table()
        empty = [
            timed(lambda: lab.nft(scratch, "-f", "-", input="table inet pbxfwbench {\n}\n"))
            for _ in range(args.apply_runs)
        ]
        results["empty"] = statistics.median(empty)
        lab.nft(scratch, "delete", "table", "inet", "pbxfwbench")
        for tool in ("legacy", "nft"):
            runs = []
            for _ in range(args.apply_runs):
                start = time.perf_counter()
                for cmd, rules in (("iptables", "chain4"), ("ip6tables", "chain6")):
                    with open(tmp / f"{rules}.rules") as handle:
                        subprocess.run(
                            ["ip", "netns", "exec", scratch, f"{cmd}-{tool}-restore"],
                            stdin=handle,
                            check=True,
                            timeout=120,
                        )
                runs.append(time.perf_counter() - start)
            results[f"restore_{tool}"] = statistics.median(runs)

        # -- 2. packets per second --------------------------------------------
        pairs: dict[str, tuple[str, str]] = {}
        for i, setup in enumerate(SETUPS):
            pbx, cli = namespace_pair(lab, i, client, block)
            if setup in ("pbxfw", "pbxfw_bans"):
                NftBackend(pbx).apply(
                    compile_ruleset(config, bans if setup == "pbxfw_bans" else ())
                )
                # new-flow runs create an entry per packet: let them lapse fast
                lab.exec(pbx, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=2")
            elif setup == "ct_only":
                # the stateful floor: conntrack on, one rule, no sets
                lab.nft(pbx, "-f", "-", input=_CT_ONLY)
                lab.exec(pbx, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=2")
            elif setup.startswith("chain_"):
                tool = setup.removeprefix("chain_")
                lab.exec(pbx, f"iptables-{tool}-restore", input=chain_v4)
                lab.exec(pbx, f"ip6tables-{tool}-restore", input=chain_v6)
            pairs[setup] = (pbx, cli)

        offset = 0

        def measure(setup: str, mode: str, seconds: float) -> dict[str, float]:
            nonlocal offset
            pbx, cli = pairs[setup]
            rx = lab.spawn(pbx, [sys.executable, "-c", _RECEIVER, str(SIP_PORT), str(seconds + 5)])
            assert rx.stdout is not None
            if rx.stdout.readline().strip() != "ready":
                raise RuntimeError(f"receiver in {pbx} did not start")
            if mode == "one_flow":
                argv = [_SEND_ONE_FLOW, str(client), PBX_ADDR, str(SIP_PORT), str(seconds)]
                argv.append(str(PAYLOAD))
            else:
                argv = [_SEND_NEW_FLOWS, str(int(block.network_address)), str(block.num_addresses)]
                argv += [PBX_ADDR, str(SIP_PORT), str(seconds), str(PAYLOAD), str(offset)]
                offset += 20_000_000
            tx = lab.spawn(cli, [sys.executable, "-c", *argv])
            out, _ = tx.communicate(timeout=seconds + 20)
            sent = json.loads(out)
            got, _ = rx.communicate(timeout=10)
            return {
                "sent": sent["sent"],
                "errors": sent["errors"],
                "seconds": sent["seconds"],
                "received": int(got.strip()),
                "pps": int(got.strip()) / sent["seconds"],
                "sent_pps": sent["sent"] / sent["seconds"],
            }

        # Where do one-flow packets go in pbxfw's chain? A counting table
        # after pbxfw's (priority filter) shows their conntrack state.
        pbx = pairs["pbxfw"][0]
        lab.nft(
            pbx,
            "-f",
            "-",
            input="table inet pbxfwbench_ct {\n chain c {\n  type filter hook input priority filter;\n"
            f"  udp dport {SIP_PORT} ct state new counter\n"
            f"  udp dport {SIP_PORT} ct state established counter\n }}\n}}\n",
        )
        measure("pbxfw", "one_flow", 0.3)
        counters = lab.nft(pbx, "list", "table", "inet", "pbxfwbench_ct")
        lab.nft(pbx, "delete", "table", "inet", "pbxfwbench_ct")
        found = dict(re.findall(r"ct state (\w+) counter packets (\d+)", counters))
        extra["one_flow_ct_state"] = found

        for setup in SETUPS:  # warm-up: ARP, caches, first conntrack entries
            measure(setup, "one_flow", 0.2)
        snmp_before = {s: _rcvbuf_errors(lab, pairs[s][0]) for s in SETUPS}
        conntrack_peak = 0
        for rep in range(args.reps):
            for mode in modes:
                order = SETUPS if rep % 2 == 0 else tuple(reversed(SETUPS))
                for setup in order:
                    samples.setdefault((mode, setup), []).append(measure(setup, mode, args.seconds))
                    if setup.startswith("pbxfw") or setup == "ct_only":
                        count = lab.exec(
                            pairs[setup][0],
                            "cat",
                            "/proc/sys/net/netfilter/nf_conntrack_count",
                        )
                        conntrack_peak = max(conntrack_peak, int(count))
        extra["rcvbuf_errors"] = {
            s: _rcvbuf_errors(lab, pairs[s][0]) - snmp_before[s] for s in SETUPS
        }
        extra["conntrack_peak"] = conntrack_peak

    host_after = nft_ruleset()
    leftovers = [n for n in run(["ip", "netns", "list"]).stdout.split() if n.startswith(lab.prefix)]
    if args.json:
        print(json.dumps(figures(results, samples, extra, host_before == host_after, leftovers)))
        if host_before != host_after or leftovers:
            sys.exit(1)
        return
    report(args, modes, results, samples, extra, walked, client, block, len(bans))
    print()
    print(f"- host `nft list ruleset` unchanged: {'yes' if host_before == host_after else 'NO'}")
    print(f"- namespaces left behind: {', '.join(leftovers) or 'none'}")
    if host_before != host_after or leftovers:
        sys.exit(1)


def _rcvbuf_errors(lab: Lab, ns: str) -> int:
    """UDP datagrams the kernel dropped because the receiver's buffer was full."""
    lines = [line.split() for line in lab.exec(ns, "cat", "/proc/net/snmp").splitlines()]
    udp = [line for line in lines if line and line[0] == "Udp:"]
    header, values = udp[0], udp[1]
    return int(values[header.index("RcvbufErrors")])


def figures(
    results: dict[str, float | str],
    samples: dict[tuple[str, str], list[dict[str, float]]],
    extra: dict[str, object],
    host_unchanged: bool,
    leftovers: list[str],
) -> dict[str, object]:
    """The figures of :func:`report` as plain data: seconds, packets/s and
    each set-up's median delivered rate over the no-ruleset one."""
    c_net, a_net, t_net = json.loads(str(results["net"]))
    c_ban, a_ban, t_ban = json.loads(str(results["bans"]))
    out: dict[str, object] = {
        "pbxfw": pbxfw.__file__,
        "compile_apply_s": t_net,
        "compile_s": c_net,
        "apply_s": a_net,
        "compile_apply_bans_s": t_ban,
        "compile_bans_s": c_ban,
        "apply_bans_s": a_ban,
        "empty_nft_s": results["empty"],
        "restore_legacy_s": results["restore_legacy"],
        "restore_nft_s": results["restore_nft"],
        "host_ruleset_unchanged": host_unchanged,
        "namespaces_left": leftovers,
        **extra,
    }
    modes = sorted({mode for mode, _ in samples}, key=MODES.index)
    for mode in modes:
        med = {s: statistics.median(x["pps"] for x in samples[(mode, s)]) for s in SETUPS}
        out[mode] = {
            "pps": med,
            "ratio": {s: med[s] / med["none"] for s in SETUPS},
            "samples_pps": {s: [x["pps"] for x in samples[(mode, s)]] for s in SETUPS},
        }
    return out


def report(
    args: argparse.Namespace,
    modes: tuple[str, ...],
    results: dict[str, float | str],
    samples: dict[tuple[str, str], list[dict[str, float]]],
    extra: dict[str, object],
    walked: int,
    client: ipaddress.IPv4Address,
    block: ipaddress.IPv4Network,
    n_bans: int,
) -> None:
    c_net, a_net, t_net = json.loads(str(results["net"]))
    c_ban, a_ban, t_ban = json.loads(str(results["bans"]))
    empty = float(results["empty"])
    legacy, nftr = float(results["restore_legacy"]), float(results["restore_nft"])
    med = {key: statistics.median(s["pps"] for s in runs) for key, runs in samples.items()}
    sent = {key: statistics.median(s["sent_pps"] for s in runs) for key, runs in samples.items()}

    print(
        f"## Dataplane: {N_NETWORKS:,} networks, {n_bans:,} bans "
        f"(Linux {os.uname().release}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average {extra['load_before']:.1f} → {os.getloadavg()[0]:.1f})"
    )
    print()
    print("| figure | pbxfw | baseline (same run) | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| compile + apply, {N_NETWORKS:,} networks (median of {args.apply_runs}) "
        f"| {t_net:.2f} s (compile {c_net:.2f} + apply {a_net:.2f}) "
        f"| `nft -f` empty table {empty:.3f} s; linear chain `iptables-restore` + `ip6tables-restore`: "
        f"legacy {legacy:.2f} s, nft {nftr:.2f} s "
        f"| {t_net / legacy:.1f}× legacy restore | ≤ 1 s |"
    )
    print(
        f"| compile + apply, {N_NETWORKS:,} networks + {n_bans:,} bans "
        f"| {t_ban:.2f} s (compile {c_ban:.2f} + apply {a_ban:.2f}) "
        f"| `nft -f` empty table {empty:.3f} s | {t_ban / empty:.0f}× empty | ≤ 2 s |"
    )
    for mode in modes:
        none = med[(mode, "none")]
        for setup in SETUPS[1:]:
            pps = med[(mode, setup)]
            target = {"pbxfw": "≥ 0.9", "ct_only": "stateful floor"}.get(setup, "—")
            if setup.startswith("chain"):
                target = "baseline (≈ 0.07 in TESTING.md)"
            print(
                f"| udp/{SIP_PORT} delivered/s, {MODE_LABEL[mode]}: {LABEL[setup]} "
                f"| {pps:,.0f} | no ruleset {none:,.0f} | {pps / none:.2f} | {target} |"
            )
        pb = med[(mode, "pbxfw")]
        print(
            f"| udp/{SIP_PORT} delivered/s, {MODE_LABEL[mode]}: pbxfw vs linear chain "
            f"| {pb:,.0f} | legacy {med[(mode, 'chain_legacy')]:,.0f}, "
            f"nft {med[(mode, 'chain_nft')]:,.0f} "
            f"| {pb / med[(mode, 'chain_legacy')]:.1f}× / {pb / med[(mode, 'chain_nft')]:.1f}× | — |"
        )
    print()
    print("### Every sample (delivered packets/s; sender's own rate in brackets)")
    print()
    print("| traffic | set-up | samples | median |")
    print("|---|---|---|---|")
    for mode in modes:
        for setup in SETUPS:
            runs = samples[(mode, setup)]
            cells = ", ".join(f"{s['pps']:,.0f} ({s['sent_pps']:,.0f})" for s in runs)
            print(
                f"| {MODE_LABEL[mode]} | {LABEL[setup]} | {cells} "
                f"| {med[(mode, setup)]:,.0f} ({sent[(mode, setup)]:,.0f}) |"
            )
    print()
    print(f"- client {client} (the new-flow sources: {block}), decided by the permanent")
    print(
        f"  Internet network (allows sip); the linear chain's client packets walk {walked:,} rules"
    )
    print(f"- one-flow packets seen after pbxfw's chain, by ct state: {extra['one_flow_ct_state']}")
    print(
        "- ban elements in the kernel after the apply with bans (each ban is in its jail's"
        f" set and in a guard set): {extra['ban_elements_in_kernel']:,}"
    )
    print(f"- receive-buffer drops (UDP RcvbufErrors) per set-up: {extra['rcvbuf_errors']}")
    print(
        f"- peak conntrack entries in a stateful namespace after a run: {extra['conntrack_peak']:,}"
    )
    print(
        f"- {args.reps} interleaved samples of {args.seconds:g} s per figure, payload {PAYLOAD} bytes"
    )


if __name__ == "__main__":
    main()
