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

The database is synthetic by default (the size of a real one: 334,281 IPv4
and 216,282 IPv6 ranges, random codes, random gaps) or a real file
(``--database FILE``: a ``.mmdb`` or ``CIDR,CC`` CSV, read as ``pbxfw geo
import`` reads it). Run as root (network namespace):

    .venv/bin/python bench/bench_countries.py [--database FILE] [--json]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent))

from tests.kernel.lab import Lab, kernel_available  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="a .mmdb or CIDR,CC file instead of synthetic data")
    parser.add_argument("--apply-runs", type=int, default=3)
    parser.add_argument(
        "--narrow",
        action="store_true",
        help="networks no wider than /16 and /32 (the countries decide almost everywhere)",
    )
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
            compile_s, apply_s, total_s = [], [], []
            text = ""
            for _ in range(args.apply_runs):
                t0 = time.perf_counter()
                text = compile_ruleset(config)
                t1 = time.perf_counter()
                backend.apply(text)
                t2 = time.perf_counter()
                compile_s.append(t1 - t0)
                apply_s.append(t2 - t1)
                total_s.append(t2 - t0)
            results[f"{name}_compile_s"] = round(statistics.median(compile_s), 3)
            results[f"{name}_apply_s"] = round(statistics.median(apply_s), 3)
            results[f"{name}_total_s"] = round(statistics.median(total_s), 3)
            results[f"{name}_text_bytes"] = len(text)
            for v in (4, 6):
                results[f"{name}_sip_v{v}_elements"] = set_size(text, f"allow_sip_v{v}")
        backend.delete_table()
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
        f"| `check` median per call, in-process | {results['check_countries_us']} µs | "
        f"{results['check_plain_us']} µs | "
        f"{results['check_countries_us'] / results['check_plain_us']:.2f}× | ≤ 20 µs |"  # type: ignore[operator]
    )
    print(f"| country lookup (`CountryTable.find`) | {results['lookup_us']} µs | — | — | ≤ 20 µs |")
    print(
        f"\nallow_sip_v4/_v6 elements: {results['countries_sip_v4_elements']:,} / "
        f"{results['countries_sip_v6_elements']:,} (without countries "
        f"{results['plain_sip_v4_elements']:,} / {results['plain_sip_v6_elements']:,}); "
        f"networks {'narrow' if args.narrow else 'make_networks'}; "
        f"load {results['load_before']:.1f} before, {os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
