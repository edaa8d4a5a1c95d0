"""One notification channel's sender: its own thread and bounded queue (issue 19).

The agent's notifier (agent.notifier) puts messages on the queue and never
waits: a message that finds the queue full is dropped and counted. The
thread delivers each message (usecases.notify_send), retrying a failed
delivery with backoff (``NotifyOptions.backoff``) up to ``attempts`` times,
then gives it up (counted). What it saw (last delivery, last error, the
counters) is kept in a :class:`ChannelStatus` that the loop reads and stores
when it changed.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pbxfw.agent.health import Backoff, describe
from pbxfw.domain.notifications import Channel, ChannelStatus
from pbxfw.domain.notify_messages import Message
from pbxfw.usecases.notify_send import deliver, webhook_client

if TYPE_CHECKING:
    import httpx

__all__ = ["NotifyOptions", "Send", "Sender"]

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
