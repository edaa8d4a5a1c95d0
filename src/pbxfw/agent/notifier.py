"""The agent's notifications (issue 19): what triggers a message, and the senders.

The agent's loop calls :meth:`Notifier.sync` (what needs the database:
the channels, the nodes, the digest, the senders' status; the part
``agent:notify-store``) and :meth:`Notifier.tick` (what does not, so it goes
on while the database is down; the part ``agent:notify``), each through
agent.health; the intrusion prevention hands it each batch of new
bans (:meth:`Notifier.bans`: counting only, nothing is sent from the ban
path). The triggers:

- **new bans**: counted into one :class:`BanBatch`; at most one message per
  ``batch_seconds`` (60) to every channel, with the count, the count per
  jail and the top sources;
- **an apply rolled back**: a new record in the kernel state's
  ``rollback.json`` (kernel.confirm);
- **the agent unable to apply** (``agent:rules``, ``agent:new-bans``,
  ``agent:ban-sets``) **or to read a log source**: a part failing for
  ``grace_seconds`` (30; a blip is not worth a message), once per episode
  and at most once per ``repeat_seconds`` per part;
- **a fleet node stale**: told by one node of the site only, the first by
  name among those not stale, so N nodes do not send N messages; a node
  stale for more than an hour when noticed is left to the digest; a node
  that takes over from a teller gone stale tells only what that teller may
  not have told (under a node's role the site's nodes are readable for
  this: docs/fleet-roles.md);
- **the daily digest**, to the e-mail channels, by that same node, every
  ``digest_seconds`` counted from when this node first saw the channel.

Sending never blocks the loop: every channel has its own thread and bounded
queue (agent.notify_sender :class:`Sender`); a message that finds the queue full is dropped and
counted; a failing delivery is retried with backoff (2, 4, 8, 16 s) and
then given up (counted). What each channel's sender saw is stored in
``notify_status`` when it changed (``pbxfw notify list``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from pbxfw.agent.health import Health
from pbxfw.agent.notify_sender import NotifyOptions, Send, Sender
from pbxfw.domain.bans import Ban
from pbxfw.domain.nodes import STALE_SECONDS, NodeState, node_state
from pbxfw.domain.notifications import ChannelStatus
from pbxfw.domain.notify_messages import (
    BanBatch,
    Message,
    digest_message,
    failure_message,
    rollback_message,
    stale_message,
)
from pbxfw.kernel.confirm_state import last_rollback
from pbxfw.storage.repository import Store
from pbxfw.usecases.notifications import NotifyService

__all__ = ["PART", "STORE_PART", "Notifier", "NotifyOptions", "Sender"]

#: The agent parts that run the notifier (agent.health): without and with the database.
PART = "agent:notify"
STORE_PART = "agent:notify-store"
#: Parts whose failure means the agent cannot apply.
APPLY_PARTS = ("agent:rules", "agent:new-bans", "agent:ban-sets")

log = logging.getLogger("pbxfw.agent")


#: The rollback record before the first look at the kernel state.
_UNSEEN = object()


class Notifier:
    """The triggers and the senders of one agent (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        health: Health,
        *,
        clock: Callable[[], float],
        node: str,
        state_dir: str,
        netns: str | None,
        options: NotifyOptions | None = None,
        send: Send | None = None,
    ) -> None:
        self.service = NotifyService(store, clock=clock)
        self.health = health
        self.clock = clock
        self.node = node
        self.site = store.site
        self.state_dir = state_dir
        self.netns = netns
        self.options = options or NotifyOptions()
        self._send = send
        self.senders: dict[str, Sender] = {}
        self.batch = BanBatch()
        self._seq = 0
        self._loaded = False
        self._next = {"reload": 0.0, "nodes": 0.0, "rollback": 0.0}
        self._bans_sent_at = float("-inf")
        #: part → (since of the episode told, when told)
        self._told_failing: dict[str, tuple[float, float]] = {}
        self._told_stale: set[str] = set()
        self._rollback_seen: object = _UNSEEN
        self._leader = False
        self._stale: list[str] = []
        #: the last ``sync`` failed (its reads are due at the next attempt)
        self._store_failed = False

    # -- from the ban path: counting only ------------------------------------------
    def bans(self, bans: Iterable[Ban]) -> None:
        """New bans made here (told in the next batch message)."""
        if self.senders or not self._loaded:  # not loaded yet: the channels may come
            self.batch.add(bans)

    # -- the loop's part ------------------------------------------------------------
    def sync(self) -> None:
        """What needs the database (the agent's part ``agent:notify-store``,
        retried with backoff while it fails): the channels read again every
        ``reload_seconds``, the site's nodes, the digest, and the senders'
        status when it changed."""
        now = self.clock()
        # After a failure every read is due at once (agent.health spaces the
        # attempts): a run that skipped them would count as a recovery, and
        # the next failure as a new episode, logged again.
        retry, self._store_failed = self._store_failed, True
        due = self._next
        if retry or now >= due["reload"]:
            due["reload"] = now + self.options.reload_seconds
            self._reload(now)
        if self.senders:
            if retry or now >= due["nodes"]:
                due["nodes"] = now + self.options.nodes_seconds
                self._check_nodes(now)
            if self._leader:
                self._digest(now)
            self._persist()
        self._store_failed = False

    def tick(self) -> None:
        """What needs no database (the part ``agent:notify``), so it goes on
        while the database is down (the agent failing to apply then is told):
        the ban batch, a rollback, the agent's failing parts."""
        now = self.clock()
        due = self._next
        if now >= due["rollback"]:
            due["rollback"] = now + self.options.rollback_seconds
            self._check_rollback(now)
        if not self.senders:
            return
        if self.batch.count and now - self._bans_sent_at >= self.options.batch_seconds:
            self._bans_sent_at = now
            batch, self.batch = self.batch, BanBatch()
            self._broadcast(batch.message(now, self.site, self.node, self._next_seq()))
        self._check_health(now)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the senders (a message under way is not waited for beyond ``timeout``)."""
        for sender in self.senders.values():
            sender.stop()
        for sender in self.senders.values():
            sender.join(timeout)
        self.health.run(STORE_PART, self._persist, force=True)

    # -- the channels -----------------------------------------------------------------
    def _reload(self, now: float) -> None:
        channels = {c.name: c for c in self.service.channels()}
        stored = {}
        if not self._loaded or set(channels) - set(self.senders):
            stored = {s.channel: s for s in self.service.statuses(self.node)}
        for name, sender in list(self.senders.items()):
            if channels.get(name) != sender.channel:
                sender.stop()
                del self.senders[name]
        for name, channel in channels.items():
            if name not in self.senders:
                status = stored.get(name) or ChannelStatus(name, self.node, updated_at=now)
                sender = Sender(channel, status, self.options, self.clock, self._send)
                if status.digest_at is None and channel.kind == "email":
                    sender.set_digest(now)  # the first digest a day from now
                self.senders[name] = sender
        self._loaded = True
        if not self.senders:
            self.batch = BanBatch()

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _broadcast(self, message: Message, email_only: bool = False) -> None:
        for sender in self.senders.values():
            if not email_only or sender.channel.kind == "email":
                sender.put(message)

    def _persist(self) -> None:
        changed = [s.take_changed() for s in self.senders.values()]
        statuses = [s for s in changed if s is not None]
        if statuses:
            try:
                self.service.save_statuses(statuses)
            except Exception:
                for status in statuses:  # written at the next attempt
                    self.senders[status.channel].dirty = True
                raise

    # -- the triggers -------------------------------------------------------------------
    def _check_rollback(self, now: float) -> None:
        record = last_rollback(self.state_dir, self.netns)
        key = None if record is None else (record.get("token"), record.get("time"))
        if self._rollback_seen is _UNSEEN:  # at start: the rollbacks of the past are old news
            self._rollback_seen = key
            return
        if record is not None and key != self._rollback_seen:
            self._rollback_seen = key
            when = record.get("time")
            self._broadcast(
                rollback_message(
                    str(record.get("reason") or ""),
                    float(when) if isinstance(when, int | float) else now,
                    now,
                    self.site,
                    self.node,
                    self._next_seq(),
                )
            )

    def _check_health(self, now: float) -> None:
        options = self.options
        failing = {s.source: s for s in self.health.failing()}
        for part in [p for p in self._told_failing if p not in failing]:
            del self._told_failing[part]  # recovered: the next episode is told again
        for source, status in failing.items():
            if not (status.is_log or source in APPLY_PARTS):
                continue
            if now - status.since < options.grace_seconds:
                continue
            told = self._told_failing.get(source)
            if told is not None and (
                told[0] == status.since or now - told[1] < options.repeat_seconds
            ):
                continue
            self._told_failing[source] = (status.since, now)
            event = "source_failed" if status.is_log else "apply_failed"
            self._broadcast(
                failure_message(
                    event,
                    self.health.label(source),
                    status.error,
                    status.since,
                    now,
                    self.site,
                    self.node,
                    self._next_seq(),
                )
            )

    def _check_nodes(self, now: float) -> None:
        nodes = self.service.nodes()
        fresh = sorted(n.name for n in nodes if node_state(n, now, 0) is not NodeState.STALE)
        # One node tells: the first by name of those still reporting (this one
        # counts as reporting: it is running this code).
        self._leader = min([*fresh, self.node]) == self.node
        stale = [n for n in nodes if n.name not in fresh and n.name != self.node]
        self._stale = [n.name for n in stale]
        self._told_stale &= set(self._stale)
        if not self._leader:
            # The teller tells them. Those it had a whole check to see (it
            # reported that long after they went stale) are not told again
            # when this node takes over from it.
            teller = next(n for n in nodes if n.name == fresh[0])
            self._told_stale.update(
                n.name
                for n in stale
                if n.last_seen + STALE_SECONDS + self.options.nodes_seconds <= teller.last_seen
            )
            return
        for node in stale:
            if node.name in self._told_stale:
                continue
            self._told_stale.add(node.name)
            if now - node.last_seen > 3600:
                continue  # long gone: the digest lists it
            self._broadcast(
                stale_message(
                    node.name, node.last_seen, now, self.site, self.node, self._next_seq()
                )
            )

    def _digest(self, now: float) -> None:
        due = [
            s
            for s in self.senders.values()
            if s.channel.kind == "email"
            and now - (s.status().digest_at or now) >= self.options.digest_seconds
        ]
        if not due:
            return
        facts = self.service.digest_facts(now, self.node)
        message = digest_message(
            facts.bans_24h,
            facts.active,
            facts.failing,
            self._stale,
            now,
            self.site,
            self.node,
            self._next_seq(),
        )
        for sender in due:
            sender.set_digest(now)
            sender.put(message)
