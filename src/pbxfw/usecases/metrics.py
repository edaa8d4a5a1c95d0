"""Prometheus metrics: what the agent (``pbxfw agent --metrics``) and the web
server (``/metrics`` with a token) expose, read at scrape time.

A custom collector (:class:`PbxfwCollector`) builds every family when
Prometheus scrapes: nothing is counted on the hot path for the metrics. The
counted values come from the aggregate rows the agent already writes in its
periodic flush (migration 0016, agent.tally) and from the node rows; the
agent adds what only it knows (:class:`LiveState`: its kernel ban sets, its
table's nft counters read at the scrape, its last apply, each log source's
unread bytes). Every metric of a node carries the label ``node``, so one
Prometheus scraping the web server of a fleet sees every node.

docs/observability.md, "Metrics", lists them with their meaning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pbxfw.domain.nodes import STALE_SECONDS
from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.aggregates import ban_totals, drop_counters, failure_totals
from pbxfw.storage.nodes import nodes
from pbxfw.storage.repository import Store
from pbxfw.storage.source_status import source_statuses
from pbxfw.usecases.dashboard import cached_active_bans

__all__ = [
    "COUNT_SECONDS",
    "LiveState",
    "PbxfwCollector",
    "StoredMetrics",
    "registry",
    "set_counts",
    "stored_metrics",
]

#: The agent's set counts are made again when its ban sets changed, at most
#: this often (100,000 bans: tens of milliseconds a count, in the scrape's thread).
COUNT_SECONDS = 10.0

#: (reason, jail) → (packets, bytes)
Drops = Mapping[tuple[str, str], tuple[int, int]]


@dataclass(frozen=True, slots=True)
class StoredMetrics:
    """What the database holds for the metrics, read in one unit of work."""

    failures: list[tuple[str, str, str, int]]
    bans_made: list[tuple[str, str, str, int]]
    #: (origin, jail, count) of the active stored bans
    bans_stored: list[tuple[str, str, int]]
    drops: list[tuple[str, str, str, int, int]]
    #: node → (last report, log bytes behind)
    nodes: dict[str, tuple[float, int]]
    failing: list[SourceStatus]


def stored_metrics(store: Store, now: float, *, with_bans: bool = True) -> StoredMetrics:
    """The stored side of the metrics (``with_bans=False``: not the stored
    bans, which the agent shows from its kernel sets instead)."""
    with store.read() as repo:
        return StoredMetrics(
            failures=failure_totals(repo),
            bans_made=ban_totals(repo),
            bans_stored=cached_active_bans(repo, now) if with_bans else [],
            drops=drop_counters(repo),
            nodes={n.name: (n.last_seen, n.log_lag_bytes) for n in nodes(repo)},
            failing=[s for s in source_statuses(repo, None) if not s.ok],
        )


@dataclass(slots=True)
class LiveState:
    """What only the running agent knows, given to its collector."""

    node: str
    started_at: float
    #: when the agent last went round its loop
    last_tick: Callable[[], float] = lambda: 0.0
    #: the kernel's ban sets: (subnet as text, jail) → expiry of each ban held
    #: (BanSets.snapshot: a mapping replaced whole on change, never changed in place)
    held: Callable[[], Mapping[tuple[str, str], float]] = dict
    #: the table's drop counters now (None: no table, or not an nft backend)
    drops: Callable[[], Drops | None] = lambda: None
    #: log source → bytes written and not read yet
    unread: Callable[[], Mapping[str, int]] = dict
    #: (whole-table loads that succeeded, that failed, the last one's
    #: seconds, whether it succeeded)
    applies: Callable[[], tuple[int, int, float, bool]] = lambda: (0, 0, 0.0, True)


def set_counts(held: Mapping[tuple[str, str], float]) -> dict[str, int]:
    """Elements per kernel set: each ban set, and the guard sets (every banned
    address or subnet once, whatever its jails). Bans past their expiry are
    counted until the agent's next sync forgets them (the kernel already
    dropped them by their own timeout). One pass over the bans (100,000:
    tens of milliseconds; the collector keeps the result, see
    ``COUNT_SECONDS``)."""
    per: Counter[tuple[str, str]] = Counter()
    guards: dict[str, str] = {}
    for subnet, jail in held:
        kind = guards.get(subnet)
        if kind is None:
            if ":" in subnet:
                kind = "v6" if subnet.endswith("/128") else "net_v6"
            else:
                kind = "v4" if subnet.endswith("/32") else "net_v4"
            guards[subnet] = kind
        per[(jail, kind)] += 1
    sets = {f"ban_{jail}_{kind}": n for (jail, kind), n in per.items()}
    for kind, n in Counter(guards.values()).items():
        sets[f"banned_{kind}"] = n
    return sets


class PbxfwCollector(Collector):
    """Every pbxfw metric, built at each scrape from ``store`` (and ``live``)."""

    def __init__(
        self, store: Store, clock: Callable[[], float], live: LiveState | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.live = live
        #: the set counts of the last kernel snapshot seen (recounted only
        #: when the agent's ban sets changed)
        self._counted: tuple[object, dict[str, int], float] | None = None

    def describe(self) -> list[Metric]:
        return []  # built at scrape time only (no read at registration)

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        live = self.live
        stored = stored_metrics(self.store, now, with_bans=live is None)
        mine = (lambda n: n == live.node) if live is not None else (lambda n: True)

        failures = CounterMetricFamily(
            "pbxfw_failures",
            "Failures recognised in the logs, per jail and event.",
            labels=["node", "jail", "event"],
        )
        for node, jail, event, n in stored.failures:
            if mine(node):
                failures.add_metric([node, jail, event], n)
        yield failures

        made = CounterMetricFamily(
            "pbxfw_bans_made",
            "Bans this node made, per jail and origin.",
            labels=["node", "jail", "origin"],
        )
        for node, jail, origin, n in stored.bans_made:
            if mine(node):
                made.add_metric([node, jail, origin], n)
        yield made

        packets = CounterMetricFamily(
            "pbxfw_dropped_packets",
            "Packets the table dropped, per reason (jail, default_deny, rate_limit, "
            "country, feed, other) and jail; reset when the table is loaded again.",
            labels=["node", "reason", "jail"],
        )
        octets = CounterMetricFamily(
            "pbxfw_dropped_bytes",
            "Bytes the table dropped, per reason and jail.",
            labels=["node", "reason", "jail"],
        )
        live_drops = live.drops() if live is not None else None
        if live is not None and live_drops is not None:
            rows = [(live.node, r, j, p, b) for (r, j), (p, b) in sorted(live_drops.items())]
        else:
            rows = [d for d in stored.drops if mine(d[0])]
        for node, reason, jail, p, b in rows:
            packets.add_metric([node, reason, jail], p)
            octets.add_metric([node, reason, jail], b)
        yield packets
        yield octets

        if live is None:
            stored_bans = GaugeMetricFamily(
                "pbxfw_bans_stored",
                "Active bans in the database, per origin and jail.",
                labels=["origin", "jail"],
            )
            for origin, jail, n in stored.bans_stored:
                stored_bans.add_metric([origin, jail], n)
            yield stored_bans
        else:
            yield from self._live(live, now)

        up = GaugeMetricFamily(
            "pbxfw_agent_up",
            "1 while the node's agent reports (its last report is under "
            f"{STALE_SECONDS:.0f} s old), else 0.",
            labels=["node"],
        )
        tick = GaugeMetricFamily(
            "pbxfw_agent_last_tick_timestamp_seconds",
            "When the node's agent last went round its loop (the web server: its last report).",
            labels=["node"],
        )
        unread = GaugeMetricFamily(
            "pbxfw_log_unread_bytes",
            "Bytes written to a log source and not read yet (the web server: "
            'all sources of the node, source="*").',
            labels=["node", "source"],
        )
        if live is not None:
            up.add_metric([live.node], 1)
            tick.add_metric([live.node], live.last_tick())
            for source, n in sorted(live.unread().items()):
                unread.add_metric([live.node, source], n)
        else:
            for node, (seen, lag) in sorted(stored.nodes.items()):
                up.add_metric([node], 1 if now - seen < STALE_SECONDS else 0)
                tick.add_metric([node], seen)
                unread.add_metric([node, "*"], lag)
        yield up
        yield tick
        yield unread

        failing = GaugeMetricFamily(
            "pbxfw_source_failing",
            "1 for each log source or agent part that is failing (agent.health).",
            labels=["node", "source"],
        )
        for status in stored.failing:
            if mine(status.node):
                failing.add_metric([status.node, status.source], 1)
        yield failing

    def _live(self, live: LiveState, now: float) -> Iterator[Metric]:
        held = live.held()
        counted = self._counted
        if counted is None or (counted[0] is not held and now - counted[2] >= COUNT_SECONDS):
            counted = self._counted = (held, set_counts(held), now)
        counts = counted[1]
        active = GaugeMetricFamily(
            "pbxfw_bans_active",
            "Bans the kernel holds, per ban set (ban_<jail>_v4/_v6, ban_<jail>_net_v4/_v6).",
            labels=["node", "set"],
        )
        elements = GaugeMetricFamily(
            "pbxfw_set_elements",
            "Elements of each ban and guard set (banned_v4, banned_net_v4, …).",
            labels=["node", "set"],
        )
        for name, n in sorted(counts.items()):
            if name.startswith("ban_"):
                active.add_metric([live.node, name], n)
            elements.add_metric([live.node, name], n)
        yield active
        yield elements
        applies = CounterMetricFamily(
            "pbxfw_applies",
            "Whole-table loads by the agent, per result (ok, failed).",
            labels=["node", "result"],
        )
        ok, failed, seconds, succeeded = live.applies()
        applies.add_metric([live.node, "ok"], ok)
        applies.add_metric([live.node, "failed"], failed)
        yield applies
        duration = GaugeMetricFamily(
            "pbxfw_apply_duration_seconds",
            "How long the last whole-table load took.",
            labels=["node"],
        )
        duration.add_metric([live.node], seconds)
        yield duration
        success = GaugeMetricFamily(
            "pbxfw_apply_success",
            "1 when the last whole-table load succeeded, else 0.",
            labels=["node"],
        )
        success.add_metric([live.node], 1 if succeeded else 0)
        yield success
        started = GaugeMetricFamily(
            "pbxfw_agent_start_time_seconds", "When the agent started.", labels=["node"]
        )
        started.add_metric([live.node], live.started_at)
        yield started


def registry(
    store: Store, clock: Callable[[], float], live: LiveState | None = None
) -> CollectorRegistry:
    """A registry of its own holding only pbxfw's collector (no process metrics
    of the Python client: they say nothing about the firewall)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(PbxfwCollector(store, clock, live))
    return reg
