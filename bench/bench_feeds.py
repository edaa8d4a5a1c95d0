"""Blocklist feeds (issue 17): a feed of 1,000,000 entries, and a refresh that changes 1 %.

Figures, each against a baseline measured in the same run:

1. cold load: a feed of 1,000,000 entries (995,000 single IPv4 addresses,
   5,000 /24 blocks, a few comments and malformed lines, a never-block
   network inside it) served by a real HTTP server on loopback is fetched,
   parsed, its entries refused and counted, kept in the state folder
   (``refresh_feed``), and loaded into the kernel sets of a running table
   (``send_feed_changes``): target ≤ 5 s. Baseline: ``nft -f`` of the same
   elements into the same empty sets (what a loader without the netlink
   path would pay for the kernel part alone).
2. refresh: the server's list then changes 1 % (5,000 entries gone, 5,000
   new): fetched, parsed, refused, and only the difference sent. Reported:
   the elements sent (must be 10,000: 1 %, not a reload) and the time.
   Baseline: the cold load of figure 1.
3. a full load of the table carrying the feed (every ``apply`` of the
   configuration does it: ``compile_ruleset(..., feeds=...)`` +
   ``NftBackend.apply``). Baseline: the same table without the feed.

Run as root (network namespace):

    .venv/bin/python bench/bench_feeds.py [--entries N] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent))

import httpx  # noqa: E402
from tests.agent.feed_server import FeedServer, Page  # noqa: E402
from tests.kernel.configs import network  # noqa: E402
from tests.kernel.lab import Lab, kernel_available  # noqa: E402

from pbxfw.agent.feeds import refresh_feed  # noqa: E402
from pbxfw.compiler import compile_ruleset  # noqa: E402
from pbxfw.compiler.elements import SetElements, set_commands  # noqa: E402
from pbxfw.compiler.feeds import FeedSet, feed_changes, feed_set_name  # noqa: E402
from pbxfw.domain.configuration import Configuration  # noqa: E402
from pbxfw.domain.feed_lists import FeedList  # noqa: E402
from pbxfw.domain.feeds import Feed  # noqa: E402
from pbxfw.domain.networks import permanent_networks  # noqa: E402
from pbxfw.domain.settings import Settings  # noqa: E402
from pbxfw.kernel import NftBackend  # noqa: E402
from pbxfw.kernel.feedsets import send_feed_changes  # noqa: E402
from pbxfw.kernel.netlink import has_element  # noqa: E402
from pbxfw.storage.feeds import FeedStatus  # noqa: E402


def make_list(entries: int, seed: int = 17) -> tuple[list[str], list[str]]:
    """(addresses, /24 blocks): public-looking, unique, blocks apart from addresses."""
    rng = random.Random(seed)
    nets = max(1, entries // 200)
    hosts = entries - nets
    # Addresses in 1.0.0.0-99.255.255.255, blocks in 100.0.0.0-126.255.255.0.
    values = rng.sample(range(0x01000000, 0x64000000), hosts)
    blocks = rng.sample(range(0x640000, 0x7F0000), nets)
    addresses = [f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}" for v in values]
    cidrs = [f"{b >> 16}.{(b >> 8) & 255}.{b & 255}.0/24" for b in blocks]
    return addresses, cidrs


def body(addresses: list[str], cidrs: list[str]) -> bytes:
    lines = ["# synthetic blocklist", "; DROP style comment", "not-an-address", "0.0.0.0/0"]
    lines += [f"{c} ; SBL{i}" for i, c in enumerate(cidrs)]
    lines += addresses
    return ("\n".join(lines) + "\n").encode()


def config() -> Configuration:
    nets = (*permanent_networks(), network("Office", "10.20.0.0/16", "*", never_block=True))
    return Configuration(nets, (), Settings(firewall_enabled=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    why = kernel_available()
    if why:
        print(f"bench_feeds skipped: {why}")
        return
    addresses, cidrs = make_list(args.entries)
    cfg = config()
    results: dict[str, object] = {"entries": args.entries}
    with FeedServer() as server, Lab("feedb") as lab, tempfile.TemporaryDirectory() as tmp:
        pbx = lab.namespace("pbx")
        backend = NftBackend(pbx)
        feed = Feed("bench", server.url("/list"), "plain", 3600, ("sip",))
        empty = [FeedSet("bench", feed.scope, FeedList())]
        server.serve("/list", Page(body(addresses, cidrs)))

        # Baseline 1: nft -f of the same elements into the empty sets.
        backend.apply(compile_ruleset(cfg, (), feeds=empty))
        with httpx.Client(timeout=60) as client:
            probe = refresh_feed(
                feed, cfg, [], FeedStatus("n", "bench"), Path(tmp) / "b", 0.0, client
            )
        assert probe.entries is not None
        delta = feed_changes("bench", FeedList(), probe.entries)
        hosts = [
            SetElements(feed_set_name("bench", v), v, [(h, h, None) for h in hs])
            for v, hs in delta.add_hosts.items()
            if hs
        ]
        payload = "".join(
            line + "\n"
            for plan in (*hosts, *delta.add_nets)
            for line in set_commands(plan, "add", refresh=False)
        )
        started = time.perf_counter()
        lab.nft(pbx, "-f", "-", input=payload)
        results["nft_f_seconds"] = round(time.perf_counter() - started, 3)

        # Figure 1: fetch + parse + refuse + keep + netlink/nft load, cold.
        backend.apply(compile_ruleset(cfg, (), feeds=empty))
        state = Path(tmp) / "state"
        started = time.perf_counter()
        with httpx.Client(timeout=60) as client:
            done = refresh_feed(feed, cfg, [], FeedStatus("n", "bench"), state, 1.0, client)
        fetched = time.perf_counter() - started
        assert done.entries is not None
        kernel_started = time.perf_counter()
        sent = send_feed_changes(feed_changes("bench", FeedList(), done.entries), pbx)
        results["cold_kernel_seconds"] = round(time.perf_counter() - kernel_started, 3)
        results["cold_seconds"] = round(time.perf_counter() - started, 3)
        results["cold_fetch_parse_refuse_keep_seconds"] = round(fetched, 3)
        results["cold_elements"] = sent
        results["refused"] = done.status.refused

        # Figure 2: 1 % of the list changes.
        change = args.entries // 200  # 0.5 % gone + 0.5 % new = 1 %
        rng = random.Random(5)
        new_addresses = addresses[change:] + [
            f"{rng.randrange(128, 200)}.{rng.randrange(256)}.{rng.randrange(256)}.{i % 250 + 1}"
            for i in range(change)
        ]
        server.serve("/list", Page(body(new_addresses, cidrs)))
        started = time.perf_counter()
        with httpx.Client(timeout=60) as client:
            again = refresh_feed(feed, cfg, [], done.status, state, 2.0, client)
        assert again.entries is not None
        kernel_started = time.perf_counter()
        delta = feed_changes("bench", done.entries, again.entries)
        results["refresh_elements"] = send_feed_changes(delta, pbx)
        results["refresh_kernel_seconds"] = round(time.perf_counter() - kernel_started, 3)
        results["refresh_seconds"] = round(time.perf_counter() - started, 3)
        # The difference landed: sampled in the kernel, one netlink lookup each
        # (listing a million elements with nft takes longer than the load).
        gone, new = delta.del_hosts[4][:100], delta.add_hosts[4][:100]
        name = feed_set_name("bench", 4)
        assert all(has_element(name, v.to_bytes(4, "big"), pbx) for v in new)
        assert not any(has_element(name, v.to_bytes(4, "big"), pbx) for v in gone)
        assert has_element(name, again.entries.hosts[4][0].to_bytes(4, "big"), pbx)

        # Figure 3: a full load carrying the feed, against the same without it.
        full = [FeedSet("bench", feed.scope, again.entries)]
        started = time.perf_counter()
        backend.apply(compile_ruleset(cfg, (), feeds=full))
        results["full_load_with_feed_seconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        backend.apply(compile_ruleset(cfg, (), feeds=empty))
        results["full_load_without_feed_seconds"] = round(time.perf_counter() - started, 3)

    if args.json:
        print(json.dumps(results))
        return
    n = args.entries
    print(f"feed of {n:,} entries; refused: {results['refused']}")
    print("| figure | measured | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    cold, nft_f = float(results["cold_seconds"]), float(results["nft_f_seconds"])  # type: ignore[arg-type]
    print(
        f"| cold: fetch + parse + refuse + keep + kernel | {cold} s | `nft -f` of the same "
        f"elements alone: {nft_f} s | {cold / nft_f:.2f}× | ≤ 5 s |"
    )
    kernel = float(results["cold_kernel_seconds"])  # type: ignore[arg-type]
    print(
        f"| cold, kernel part (netlink, {results['cold_elements']:,} elements) | {kernel} s | "
        f"`nft -f` of the same elements: {nft_f} s | {kernel / nft_f:.2f}× | — |"
    )
    refresh = float(results["refresh_seconds"])  # type: ignore[arg-type]
    print(
        f"| refresh, 1 % changed | {refresh} s, {results['refresh_elements']:,} elements sent | "
        f"the cold load: {cold} s, {results['cold_elements']:,} elements | "
        f"{refresh / cold:.2f}× | only the 1 % |"
    )
    rk = float(results["refresh_kernel_seconds"])  # type: ignore[arg-type]
    print(
        f"| refresh, kernel part (difference + send) | {rk} s | cold kernel part: {kernel} s | "
        f"{rk / kernel:.3f}× | ~1 % |"
    )
    with_feed = float(results["full_load_with_feed_seconds"])  # type: ignore[arg-type]
    without = float(results["full_load_without_feed_seconds"])  # type: ignore[arg-type]
    print(
        f"| full table load carrying the feed | {with_feed} s | without the feed: {without} s | "
        f"{with_feed / without:.1f}× | — |"
    )


if __name__ == "__main__":
    main()
