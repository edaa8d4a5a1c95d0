"""What a notification says, and its shape per channel template (issue 19).

A :class:`Message` is made by one of the builders here (new bans, a rollback,
a part of the agent failing, a stale node, the daily digest, a test) and
rendered per channel: :func:`webhook_body` (the JSON of each template) and
:func:`mail_text` (subject and body). docs/observability.md,
"Notifications", shows every shape. Pure: times come in as arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pbxfw.domain.bans import Ban

__all__ = [
    "EVENTS",
    "TOP_SOURCES",
    "BanBatch",
    "Message",
    "digest_message",
    "failure_message",
    "mail_text",
    "probe_message",
    "rollback_message",
    "stale_message",
    "stamp",
    "webhook_body",
]

#: Every event a message can be about.
EVENTS = ("bans", "rollback", "apply_failed", "source_failed", "node_stale", "digest", "test")
#: How many sources a ban message lists.
TOP_SOURCES = 10
#: Discord refuses a ``content`` longer than this.
_DISCORD_LIMIT = 2000
#: A batch keeps at most this many addresses (a storm of bans must not grow it
#: without end); past it, the fewest failures are forgotten (the count stays).
_BATCH_KEEP = 1000


def stamp(when: float) -> str:
    """``2026-12-05T03:50:00Z``: a time in messages (UTC, seconds)."""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: ``lines`` are its text, ``details`` its facts for JSON."""

    event: str
    title: str
    lines: tuple[str, ...]
    time: float
    site: str
    node: str
    #: unique per message: a retried message keeps it (receivers may drop repeats)
    id: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _id(event: str, node: str, when: float, seq: int) -> str:
    return f"{node or 'pbxfw'}-{event}-{int(when * 1000)}-{seq}"


class BanBatch:
    """The bans made since the last ban message: their count, per jail, and the
    addresses with the most failures (bounded; see ``_BATCH_KEEP``)."""

    def __init__(self) -> None:
        self.count = 0
        self.by_jail: dict[str, int] = {}
        self._sources: dict[str, tuple[int, str]] = {}

    def add(self, bans: Iterable[Ban]) -> None:
        sources = self._sources
        for ban in bans:
            self.count += 1
            self.by_jail[ban.jail] = self.by_jail.get(ban.jail, 0) + 1
            key = ban.address_text()
            old = sources.get(key)
            sources[key] = (ban.failures + (old[0] if old else 0), ban.jail)
        if len(sources) > _BATCH_KEEP:
            kept = sorted(sources.items(), key=lambda kv: -kv[1][0])[: _BATCH_KEEP // 2]
            self._sources = dict(kept)

    def top(self, n: int = TOP_SOURCES) -> list[tuple[str, int, str]]:
        """``(source, failures, jail)``, most failures first (then by address)."""
        ranked = sorted(self._sources.items(), key=lambda kv: (-kv[1][0], kv[0]))
        return [(k, v[0], v[1]) for k, v in ranked[:n]]

    def message(self, now: float, site: str, node: str, seq: int = 0) -> Message:
        """The ban message of this batch."""
        jails = ", ".join(f"{j} {n}" for j, n in sorted(self.by_jail.items()))
        top = self.top()
        lines = [f"{self.count} new ban{'s' if self.count != 1 else ''} ({jails})."]
        if top:
            lines.append("Top sources:")
            lines += [f"  {a} ({jail}, {n} failures)" for a, n, jail in top]
        if self.count > len(top):
            lines.append(f"… and {self.count - len(top)} more: pbxfw bans list")
        return Message(
            "bans",
            f"{self.count} new ban{'s' if self.count != 1 else ''} on {node}",
            tuple(lines),
            now,
            site,
            node,
            _id("bans", node, now, seq),
            {
                "count": self.count,
                "by_jail": dict(sorted(self.by_jail.items())),
                "top_sources": [{"source": a, "failures": n, "jail": j} for a, n, j in top],
            },
        )


def rollback_message(
    reason: str, rolled_back_at: float, now: float, site: str, node: str, seq: int = 0
) -> Message:
    return Message(
        "rollback",
        f"A firewall change was rolled back on {node}",
        (
            f"The change was not confirmed in time and the kernel went back to the previous "
            f"ruleset at {stamp(rolled_back_at)}.",
            f"Reason: {reason or 'not given'}.",
            "The stored configuration is back to the last confirmed one.",
        ),
        now,
        site,
        node,
        _id("rollback", node, now, seq),
        {"reason": reason, "rolled_back_at": stamp(rolled_back_at)},
    )


def failure_message(
    event: str, what: str, error: str, since: float, now: float, site: str, node: str, seq: int = 0
) -> Message:
    """``apply_failed`` (the agent cannot apply the table or ban in the kernel)
    or ``source_failed`` (it cannot read a log source)."""
    title = (
        f"The agent on {node} cannot apply the firewall"
        if event == "apply_failed"
        else f"The agent on {node} cannot read a log source"
    )
    return Message(
        event,
        title,
        (f"{what}: {error}", f"Failing since {stamp(since)}; the agent retries with backoff."),
        now,
        site,
        node,
        _id(event, node, now, seq),
        {"part": what, "error": error, "since": stamp(since)},
    )


def stale_message(
    stale: str, last_seen: float, now: float, site: str, node: str, seq: int = 0
) -> Message:
    return Message(
        "node_stale",
        f"Node {stale} stopped reporting",
        (
            f"The agent of node {stale} has not reported since {stamp(last_seen)} "
            f"({int(now - last_seen)} s ago): stopped, hanging, or cut off from the database.",
        ),
        now,
        site,
        node,
        _id("node_stale", node, now, seq),
        {"stale_node": stale, "last_seen": stamp(last_seen)},
    )


def digest_message(
    bans: Sequence[Ban],
    active: int,
    failing: Sequence[tuple[str, str, str]],
    stale: Sequence[str],
    now: float,
    site: str,
    node: str,
    seq: int = 0,
) -> Message:
    """The daily digest: the bans made in the last 24 hours (``bans``), the bans
    active now, what fails on the site's nodes (``(node, part, error)``) and
    the stale nodes."""
    batch = BanBatch()
    batch.add(bans)
    jails = ", ".join(f"{j} {n}" for j, n in sorted(batch.by_jail.items())) or "none"
    lines = [
        f"Bans made in the last 24 hours: {batch.count} ({jails}).",
        f"Bans active now: {active}.",
    ]
    top = batch.top()
    if top:
        lines.append("Top sources:")
        lines += [f"  {a} ({jail}, {n} failures)" for a, n, jail in top]
    told = "; ".join(f"{p} on {n}: {e}" for n, p, e in failing)
    lines.append("Failing: " + (told or "nothing"))
    if stale:
        lines.append("Nodes not reporting: " + ", ".join(stale))
    return Message(
        "digest",
        f"Daily digest of {site}",
        tuple(lines),
        now,
        site,
        node,
        _id("digest", node, now, seq),
        {
            "bans_24h": batch.count,
            "by_jail": dict(sorted(batch.by_jail.items())),
            "active": active,
            "top_sources": [{"source": a, "failures": n, "jail": j} for a, n, j in top],
            "failing": [{"node": n, "part": p, "error": e} for n, p, e in failing],
            "stale_nodes": list(stale),
        },
    )


def probe_message(channel: str, now: float, site: str, node: str) -> Message:
    return Message(
        "test",
        f"Test message for channel {channel}",
        (f"pbxfw can reach the channel {channel}.",),
        now,
        site,
        node,
        _id("test", node, now, 0),
        {"channel": channel},
    )


def webhook_body(template: str, message: Message) -> dict[str, Any]:
    """The JSON a webhook of ``template`` is sent."""
    text = message.text
    if template == "slack":
        return {"text": f"*{message.title}*\n{text}"}
    if template == "mattermost":
        return {"username": "pbxfw", "text": f"#### {message.title}\n{text}"}
    if template == "discord":
        content = f"**{message.title}**\n{text}"
        if len(content) > _DISCORD_LIMIT:
            content = content[: _DISCORD_LIMIT - 1] + "…"
        return {"username": "pbxfw", "content": content}
    return {
        "id": message.id,
        "event": message.event,
        "title": message.title,
        "text": text,
        "time": stamp(message.time),
        "site": message.site,
        "node": message.node,
        "details": dict(message.details),
    }


def mail_text(message: Message) -> tuple[str, str]:
    """The subject and the plain-text body of a message sent by e-mail."""
    subject = f"[pbxfw {message.site}/{message.node}] {message.title}"
    body = (
        f"{message.text}\n\n-- \npbxfw on node {message.node} (site {message.site}), "
        f"{stamp(message.time)}; message {message.id}\n"
    )
    return subject, body
