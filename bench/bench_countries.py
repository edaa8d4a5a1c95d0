"""Country rules (issue 17): compile + apply with every country, and check/lookup speed.

Figures, each against its baseline measured in the same run:

1. compile + apply (``compile_ruleset`` + ``NftBackend(netns).apply``, median
   of ``--apply-runs``) of 10,000 networks plus a country database with every
   country in a rule (one rule per country, verdicts differing between
   neighbours, so the ranges do not join up): target ≤ 3 s. Baseline: the
   same 10,000 networks without country rules.
2. ``check`` and ``CountryTable.find`` (what ``pbxfw country lookup`` does) in
   process with the whole database loaded, median of single calls over random addresses:
   target ≤ 20 µs. Baseline: ``check`` of the same addresses without rules.

3. with ``--packets``: SIP packets/s from a client namespace to a PBX
   namespace, one flow and a new flow per packet (bench_dataplane.py's
   senders and receiver), with every country in rules against the same
   networks without them, interleaved, medians. The client's addresses are a
   /24 that a country rule allows SIP from (so both rulesets accept every
   packet): what is compared is the cost of the lookups, target "unchanged
   within noise".

The database is synthetic by default (the size of a real one: 334,281 IPv4
and 216,282 IPv6 ranges, random codes, random gaps) or a real file
(``--database FILE``: a ``.mmdb`` or ``CIDR,CC`` CSV, read as ``pbxfw geo
import`` reads it). Run as root (network namespace):

    .venv/bin/python bench/bench_countries.py [--database FILE] [--narrow] [--packets] [--json]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent))

from tests.kernel.lab import Lab, kernel_available  # noqa: E402

import bench_dataplane as dataplane  # noqa: E402
import pbxfw  # noqa: E402
from bench_foundation import make_networks  # noqa: E402
from pbxfw.compiler import compile_ruleset  # noqa: E402
from pbxfw.domain.configuration import Configuration  # noqa: E402
from pbxfw.domain.countries import ISO_CODES, CountryRule  # noqa: E402
from pbxfw.domain.decision import PolicyIndex, check  # noqa: E402
from pbxfw.domain.geo import CountryRange, CountryTable  # noqa: E402
from pbxfw.domain.networks import Network, Verdict, permanent_networks  # noqa: E402
from pbxfw.domain.services import BUILTIN_KEYS  # noqa: E402
from pbxfw.domain.settings import Settings  # noqa: E402
from pbxfw.kernel import NftBackend  # noqa: E402
from pbxfw.usecases.geo import read_country_file  # noqa: E402

N_NETWORKS = 10_000
N_V4, N_V6 = 334_281, 216_282
CODES = sorted(ISO_CODES)


def synthetic_table(seed: int = 17) -> CountryTable:
    """Ranges of realistic sizes over the unicast space, a random country each,
    one in ten followed by a gap (addresses in no country)."""
    rng = random.Random(seed)
    v4: list[CountryRange] = []
    pos = 1 << 24
    while len(v4) < N_V4:
        size = 1 << rng.choice((8, 8, 9, 10, 10, 11, 12, 13, 14, 16))
        pos = (pos + size - 1) // size * size
        v4.append((pos, pos + size - 1, rng.choice(CODES)))
        pos += size + (size if rng.random() < 0.1 else 0)
    v6: list[CountryRange] = []
    pos = 0x2000 << 112
    while len(v6) < N_V6:
        size = 1 << (128 - rng.choice((29, 32, 32, 36, 40, 44, 48, 48)))
        pos = (pos + size - 1) // size * size
        v6.append((pos, pos + size - 1, rng.choice(CODES)))
        pos += size + (size if rng.random() < 0.1 else 0)
    return CountryTable(v4, v6)


def narrow_networks(n: int, seed: int = 7) -> list[Network]:
    """Like ``make_networks``, without prefixes shorter than /16 (IPv4) and
    /32 (IPv6): offices, trunks and hosts. ``make_networks`` draws ~890 /8s,
    which cover nearly all of IPv4, so the countries then decide only in
    IPv6; here they decide almost everywhere (the harder case)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Network] = []
    while len(out) < n:
        if rng.random() < 0.8:
            prefix = rng.choice([16, 20, 24, 24, 28, 32, 32])
            subnet: ipaddress.IPv4Network | ipaddress.IPv6Network = ipaddress.ip_network(
                (rng.getrandbits(32), prefix), strict=False
            )
        else:
            prefix = rng.choice([32, 48, 56, 64, 64, 128])
            subnet = ipaddress.ip_network(
                ((0x2001 << 112) | rng.getrandbits(112), prefix), strict=False
            )
        if str(subnet) in seen:
            continue
        seen.add(str(subnet))
        services = {k: rng.choice(list(Verdict)) for k in BUILTIN_KEYS}
        out.append(Network(f"net {len(out)}", subnet, services))
    return out


def every_country_rules(table: CountryTable) -> tuple[CountryRule, ...]:
    """One rule per country of the database; sip/iax/ssh verdicts vary by country."""
    rules = []
    for i, code in enumerate(sorted(c for c in table.codes() if c in ISO_CODES)):
        services = {
            "sip": Verdict.ALLOW if i % 2 else Verdict.BLOCK,
            "iax": Verdict.BLOCK if i % 3 else Verdict.ALLOW,
            "ssh": Verdict.BLOCK,
        }
        rules.append(CountryRule(f"country {code}", (code,), services, id=i + 1))
    return tuple(rules)


def addresses(n: int, seed: int = 5) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    rng = random.Random(seed)
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for i in range(n):
        if i % 2:
            out.append(ipaddress.IPv6Address((0x2000 << 112) | rng.getrandbits(125)))
        else:
            out.append(ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24)))
    return out


def children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (nft)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def set_size(text: str, name: str) -> int:
    """The number of elements of set ``name`` in a compiled ruleset."""
    body = text.split(f"\tset {name} {{\n", 1)[1].split("\n\t}", 1)[0]
    if "elements = {" not in body:
        return 0
    return body.split("elements = {", 1)[1].count(",") + 1


def per_call_us(fn, items) -> float:  # type: ignore[no-untyped-def]
    """The median time of one call, in µs (each call timed on its own)."""
    clock = time.perf_counter
    times = []
    for item in items:
        t0 = clock()
        fn(item)
        times.append(clock() - t0)
    return statistics.median(times) * 1e6


def allowed_block(config: Configuration) -> ipaddress.IPv4Network:
    """A unicast IPv4 /24 decided by a country rule that allows SIP, whole."""
    for segment in PolicyIndex.of(config).segments(4):
        if segment.rule is None or segment.network.services.get("sip") != Verdict.ALLOW:
            continue
        first = (segment.first + 255) // 256 * 256
        if first + 255 <= segment.last and 1 <= first >> 24 <= 223 and first >> 24 != 127:
            return ipaddress.IPv4Network((first, 24))
    raise RuntimeError("no /24 of a country that allows SIP is left to the Internet network")


def packet_rates(
    lab: Lab, plain: Configuration, countries: Configuration, seconds: float, reps: int
) -> dict[str, object]:
    """Received packets/s to udp/5060, with and without the country rules,
    one flow and a new flow per packet, interleaved; medians."""
    block = allowed_block(countries)
    client = block.network_address + 2
    for config in (plain, countries):
        assert check(config, client, "sip").verdict == "allow"
    pairs: dict[str, tuple[str, str]] = {}
    for i, (name, config) in enumerate((("plain", plain), ("countries", countries))):
        pbx, cli = dataplane.namespace_pair(lab, 10 + i, client, block)
        NftBackend(pbx).apply(compile_ruleset(config))
        lab.exec(pbx, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=2")
        pairs[name] = (pbx, cli)
    offset = 0

    def measure(name: str, mode: str, secs: float) -> float:
        nonlocal offset
        pbx, cli = pairs[name]
        receiver = [sys.executable, "-c", dataplane._RECEIVER, str(dataplane.SIP_PORT)]
        rx = lab.spawn(pbx, [*receiver, str(secs + 5)])
        assert rx.stdout is not None
        if rx.stdout.readline().strip() != "ready":
            raise RuntimeError(f"receiver in {pbx} did not start")
        port, size = str(dataplane.SIP_PORT), str(dataplane.PAYLOAD)
        if mode == "one_flow":
            argv = [
                dataplane._SEND_ONE_FLOW,
                str(client),
                dataplane.PBX_ADDR,
                port,
                str(secs),
                size,
            ]
        else:
            argv = [dataplane._SEND_NEW_FLOWS, str(int(block.network_address)), "256"]
            argv += [dataplane.PBX_ADDR, port, str(secs), size, str(offset)]
            offset += 20_000_000
        tx = lab.spawn(cli, [sys.executable, "-c", *argv])
        out, _ = tx.communicate(timeout=secs + 20)
        sent = json.loads(out)
        got, _ = rx.communicate(timeout=10)
        return int(got.strip()) / float(sent["seconds"])

    for name in pairs:  # warm-up: ARP, caches
        measure(name, "one_flow", 0.2)
    samples: dict[str, list[float]] = {}
    for rep in range(reps):
        for mode in ("one_flow", "new_flows"):
            order = ("plain", "countries") if rep % 2 == 0 else ("countries", "plain")
            for name in order:
                samples.setdefault(f"{mode}_{name}", []).append(measure(name, mode, seconds))
    out: dict[str, object] = {"packets_block": str(block)}
    for key, values in samples.items():
        out[f"pps_{key}"] = round(statistics.median(values))
        out[f"pps_{key}_spread"] = [round(min(values)), round(max(values))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="a .mmdb or CIDR,CC file instead of synthetic data")
    parser.add_argument("--apply-runs", type=int, default=3)
    parser.add_argument(
        "--narrow",
        action="store_true",
        help="networks no wider than /16 and /32 (the countries decide almost everywhere)",
    )
    parser.add_argument("--packets", action="store_true", help="also the packet rates")
    parser.add_argument("--seconds", type=float, default=1.5, help="sending time per sample")
    parser.add_argument("--reps", type=int, default=5, help="interleaved samples per figure")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    why = kernel_available()
    if why is not None:
        print(f"bench_countries skipped: {why}")
        return
    start = time.perf_counter()
    if args.database:
        table, _ = read_country_file(Path(args.database))
        source = Path(args.database).name
    else:
        table = synthetic_table()
        source = "synthetic"
    load_s = time.perf_counter() - start
    rules = every_country_rules(table)
    made = narrow_networks(N_NETWORKS) if args.narrow else make_networks(N_NETWORKS)
    networks = (*permanent_networks(), *made)
    on = Settings(firewall_enabled=True)
    plain = Configuration(networks, (), on)
    countries = Configuration(networks, (), on, rules, table)
    results: dict[str, object] = {
        "pbxfw": str(Path(pbxfw.__file__).resolve().parent),
        "source": source,
        "ipv4_ranges": table.count(4),
        "ipv6_ranges": table.count(6),
        "rules": len(rules),
        "read_s": round(load_s, 2),
        "load_before": os.getloadavg()[0],
    }
    with Lab("geo") as lab:
        backend = NftBackend(lab.namespace("ap"))
        for name, config in (("plain", plain), ("countries", countries)):
            compile_s, apply_s, total_s, cpu_s = [], [], [], []
            text = ""
            for _ in range(args.apply_runs):
                # CPU seconds as well (this process compiling, nft's user
                # and system time loading): on a shared machine they move
                # far less with the load than the wall clock does.
                c0, n0 = time.process_time(), children_cpu()
                t0 = time.perf_counter()
                text = compile_ruleset(config)
                t1 = time.perf_counter()
                backend.apply(text)
                t2 = time.perf_counter()
                compile_s.append(t1 - t0)
                apply_s.append(t2 - t1)
                total_s.append(t2 - t0)
                cpu_s.append(time.process_time() - c0 + children_cpu() - n0)
            results[f"{name}_compile_s"] = round(statistics.median(compile_s), 3)
            results[f"{name}_apply_s"] = round(statistics.median(apply_s), 3)
            results[f"{name}_total_s"] = round(statistics.median(total_s), 3)
            results[f"{name}_cpu_s"] = round(statistics.median(cpu_s), 3)
            results[f"{name}_text_bytes"] = len(text)
            for v in (4, 6):
                results[f"{name}_sip_v{v}_elements"] = set_size(text, f"allow_sip_v{v}")
        backend.delete_table()
        if args.packets:
            results |= packet_rates(lab, plain, countries, args.seconds, args.reps)
    sample = addresses(20_000)
    plain_index = PolicyIndex.of(plain)
    country_index = PolicyIndex.of(countries)
    results["check_plain_us"] = round(
        per_call_us(lambda a: check(plain, a, "sip", index=plain_index), sample), 2
    )
    results["check_countries_us"] = round(
        per_call_us(lambda a: check(countries, a, "sip", index=country_index), sample), 2
    )
    results["lookup_us"] = round(per_call_us(table.find, sample), 2)
    if args.json:
        print(json.dumps(results))
        return
    ratio = results["countries_total_s"] / results["plain_total_s"]  # type: ignore[operator]
    print(f"source {source}: {table.count(4):,} IPv4 + {table.count(6):,} IPv6 ranges, ")
    print(
        f"{len(rules)} rules (one per country), {N_NETWORKS:,} networks; read in {load_s:.2f} s\n"
    )
    print("| figure | with every country | baseline: no country rules | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| compile + apply | {results['countries_total_s']} s "
        f"({results['countries_compile_s']} + {results['countries_apply_s']}) | "
        f"{results['plain_total_s']} s ({results['plain_compile_s']} + {results['plain_apply_s']}) "
        f"| {ratio:.1f}× | ≤ 3 s |"
    )
    print(
        f"| compile + apply, CPU seconds (pbxfw + nft) | {results['countries_cpu_s']} s | "
        f"{results['plain_cpu_s']} s | "
        f"{results['countries_cpu_s'] / results['plain_cpu_s']:.1f}× | — |"  # type: ignore[operator]
    )
    print(
        f"| `check` median per call, in-process | {results['check_countries_us']} µs | "
        f"{results['check_plain_us']} µs | "
        f"{results['check_countries_us'] / results['check_plain_us']:.2f}× | ≤ 20 µs |"  # type: ignore[operator]
    )
    print(f"| country lookup (`CountryTable.find`) | {results['lookup_us']} µs | — | — | ≤ 20 µs |")
    for mode, label in (("one_flow", "one flow"), ("new_flows", "new flow per packet")):
        if f"pps_{mode}_plain" not in results:
            continue
        with_c, without = results[f"pps_{mode}_countries"], results[f"pps_{mode}_plain"]
        print(
            f"| SIP packets/s, {label} (median; min–max) | {with_c:,} "
            f"({results[f'pps_{mode}_countries_spread']}) | {without:,} "
            f"({results[f'pps_{mode}_plain_spread']}) | "
            f"{with_c / without:.2f}× | unchanged within noise |"  # type: ignore[operator]
        )
    print(
        f"\nallow_sip_v4/_v6 elements: {results['countries_sip_v4_elements']:,} / "
        f"{results['countries_sip_v6_elements']:,} (without countries "
        f"{results['plain_sip_v4_elements']:,} / {results['plain_sip_v6_elements']:,}); "
        f"networks {'narrow' if args.narrow else 'make_networks'}; "
        f"load {results['load_before']:.1f} before, {os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
