"""The agent's notifications (issue 19): what triggers a message, and the senders.

The agent's loop calls :meth:`Notifier.tick` (through agent.health as the
part ``agent:notify``); the intrusion prevention hands it each batch of new
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
  stale for more than an hour when noticed is left to the digest;
- **the daily digest**, to the e-mail channels, by that same node, every
  ``digest_seconds`` counted from when this node first saw the channel.

Sending never blocks the loop: every channel has its own thread and bounded
queue (:class:`Sender`); a message that finds the queue full is dropped and
counted; a failing delivery is retried with backoff (2, 4, 8, 16 s) and
then given up (counted). What each channel's sender saw is stored in
``notify_status`` when it changed (``pbxfw notify list``).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pbxfw.agent.health import Backoff, Health, describe
from pbxfw.domain.bans import Ban
from pbxfw.domain.nodes import NodeState, node_state
from pbxfw.domain.notifications import Channel, ChannelStatus
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
from pbxfw.usecases.notify_send import deliver, webhook_client

if TYPE_CHECKING:
    import httpx

__all__ = ["PART", "Notifier", "NotifyOptions", "Sender"]

#: The agent part that runs the notifier (agent.health).
PART = "agent:notify"
#: Parts whose failure means the agent cannot apply.
APPLY_PARTS = ("agent:rules", "agent:new-bans", "agent:ban-sets")

log = logging.getLogger("pbxfw.agent")


@dataclass(frozen=True, slots=True)
class NotifyOptions:
    """The notifier's timings and bounds (tests shorten them)."""

    batch_seconds: float = 60.0
    reload_seconds: float = 10.0
    grace_seconds: float = 30.0
    repeat_seconds: float = 600.0
    nodes_seconds: float = 15.0
    rollback_seconds: float = 2.0
    digest_seconds: float = 86400.0
    queue_size: int = 100
    attempts: int = 5
    timeout: float = 10.0
    backoff: Backoff = field(default_factory=lambda: Backoff(first=2.0, longest=60.0))


#: The rollback record before the first look at the kernel state.
_UNSEEN = object()

#: One delivery attempt: ``send(channel, message, timeout)``, raising on failure.
Send = Callable[[Channel, Message, float], None]


class _Delivery:
    """The real :data:`Send` of one sender thread: a webhook's HTTP client is
    made once, in that thread, when it starts (not while bans pour in), and
    kept for every message."""

    def __init__(self) -> None:
        self._client: httpx.Client | None = None

    def prepare(self, channel: Channel) -> None:
        if channel.kind == "webhook":
            self._client = webhook_client()

    def __call__(self, channel: Channel, message: Message, timeout: float) -> None:
        deliver(channel, message, timeout=timeout, client=self._client)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class Sender:
    """One channel's thread and bounded queue; its status is read by the loop."""

    def __init__(
        self,
        channel: Channel,
        status: ChannelStatus,
        options: NotifyOptions,
        clock: Callable[[], float],
        send: Send | None = None,
    ) -> None:
        self.channel = channel
        self.options = options
        self.clock = clock
        #: the real delivery (None: ``send`` given, tests)
        self._delivery: _Delivery | None = None
        if send is None:
            send = self._delivery = _Delivery()
        self._send = send
        self._queue: queue.Queue[Message] = queue.Queue(maxsize=options.queue_size)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._status = status
        self.dirty = False
        self._thread = threading.Thread(
            target=self._run, name=f"pbxfw-notify-{channel.name}", daemon=True
        )
        self._thread.start()

    def put(self, message: Message) -> bool:
        """Queue ``message``; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._update(dropped=self._status.dropped + 1)
            log.debug("notification channel %s: queue full, message dropped", self.channel.name)
            return False
        return True

    def status(self) -> ChannelStatus:
        with self._lock:
            return self._status

    def take_changed(self) -> ChannelStatus | None:
        """The status if it changed since the last call, else None."""
        with self._lock:
            if not self.dirty:
                return None
            self.dirty = False
            return self._status

    def set_digest(self, when: float) -> None:
        self._update(digest_at=when)

    def stop(self) -> None:
        """Stop after the message under way (its retries end at once)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._status = replace(self._status, updated_at=self.clock(), **changes)  # type: ignore[arg-type]
            self.dirty = True

    def _run(self) -> None:
        delivery = self._delivery
        try:
            if delivery is not None:
                delivery.prepare(self.channel)
            while not self._stop.is_set():
                try:
                    message = self._queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                self._deliver(message)
        finally:
            if delivery is not None:
                delivery.close()

    def _deliver(self, message: Message) -> None:
        options = self.options
        for attempt in range(1, options.attempts + 1):
            try:
                self._send(self.channel, message, options.timeout)
            except Exception as exc:
                error = describe(exc)
                if not self._status.last_error:
                    log.error("notification channel %s: %s", self.channel.name, error)
                self._update(last_error=error, last_error_at=self.clock())
                if attempt == options.attempts:
                    self._update(failed=self._status.failed + 1)
                    log.warning(
                        "notification channel %s: %s message given up after %d attempts",
                        self.channel.name,
                        message.event,
                        attempt,
                    )
                    return
                if self._stop.wait(options.backoff.delay(attempt)):
                    return
                continue
            if self._status.last_error:
                log.info("notification channel %s: delivered again", self.channel.name)
            self._update(last_error="", last_sent_at=self.clock(), sent=self._status.sent + 1)
            return


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

    # -- from the ban path: counting only ------------------------------------------
    def bans(self, bans: Iterable[Ban]) -> None:
        """New bans made here (told in the next batch message)."""
        if self.senders or not self._loaded:  # not loaded yet: the channels may come
            self.batch.add(bans)

    # -- the loop's part ------------------------------------------------------------
    def tick(self) -> None:
        now = self.clock()
        due = self._next
        if now >= due["reload"]:
            due["reload"] = now + self.options.reload_seconds
            self._reload(now)
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
        if now >= due["nodes"]:
            due["nodes"] = now + self.options.nodes_seconds
            self._check_nodes(now)
        if self._leader:
            self._digest(now)
        self._persist()

    def close(self, timeout: float = 1.0) -> None:
        """Stop the senders (a message under way is not waited for beyond ``timeout``)."""
        for sender in self.senders.values():
            sender.stop()
        for sender in self.senders.values():
            sender.join(timeout)
        self.health.run("agent:notify-status", self._persist, force=True)

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
        facts = self.service.digest_facts(now)
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
