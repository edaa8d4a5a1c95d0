"""What wakes the agent: PostgreSQL notifications, or polling without them.

On PostgreSQL the agent holds one listening connection (storage.notify's
``Listener``): every committed batch of bans and every configuration
change (stored or applied) is notified on the channel ``pbxfw``. Its socket
joins the agent's wait, so a notification ends the wait at once, and the
agent re-reads only what it names: ``bans_revision`` → the ban sets,
``revision``/``applied_revision`` → the configuration and the whitelist.
While it listens, the agent does not poll those revisions at all.

Polling is the fallback: on SQLite, with ``PBXFW_LISTEN=0``, and while the
listening connection is lost, every tick re-reads the revisions as before.
A lost connection is logged once (agent.health, the part ``agent:listen``)
and connected again with the parts' backoff; once it listens again,
everything is read once more (a notification sent meanwhile is not kept
for a connection that was not there).
"""

from __future__ import annotations

import logging
import os

from pbxfw.agent.health import Health
from pbxfw.storage.notify import Listener, listens, payload_site
from pbxfw.storage.repository import Store

__all__ = ["LISTEN_ENV", "LISTEN_PART", "Wake", "listen_enabled"]

log = logging.getLogger("pbxfw.agent")

#: ``PBXFW_LISTEN=0``: never listen, poll (the baseline of bench/bench_fleet.py).
LISTEN_ENV = "PBXFW_LISTEN"
#: The health part of the listening connection.
LISTEN_PART = "agent:listen"


def listen_enabled() -> bool:
    """False when ``PBXFW_LISTEN`` says 0/off/no/false."""
    return os.environ.get(LISTEN_ENV, "1").strip().lower() not in ("0", "off", "no", "false")


class Wake:
    """The listening connection and what it says must be read again.

    ``bans`` and ``config`` start True (everything is read at start) and
    are set again by a notification, a lost connection, a new one, or a
    read that failed (the caller's ``again_*``).
    """

    def __init__(self, store: Store, health: Health, *, enabled: bool = True) -> None:
        self.store = store
        self.health = health
        self.enabled = enabled and listens(store.engine)
        self.listener: Listener | None = None
        self.bans = True
        self.config = True
        #: the next ban read must be a full one (agent.bansync): set when the
        #: listening connection is made again (what it missed is unknown)
        self.full_bans = False

    @property
    def listening(self) -> bool:
        return self.listener is not None

    # -- the connection ---------------------------------------------------------
    def keep(self) -> None:
        """Connect the listening connection when it is due (with backoff)."""
        if self.enabled and self.listener is None:
            self.health.run(LISTEN_PART, self._connect)

    def _connect(self) -> None:
        self.listener = Listener(self.store.engine)
        # What was notified while nobody listened is lost: read everything once.
        self.bans = self.config = self.full_bans = True
        log.info("listening for bans and configuration changes (PostgreSQL LISTEN)")

    def fds(self) -> list[int]:
        """The socket to wait on (none while not listening)."""
        if self.listener is None:
            return []
        try:
            return [self.listener.fileno()]
        except Exception as exc:
            self._lost(exc)
            return []

    def drain(self) -> None:
        """Take the notifications that arrived (never blocks, never raises)."""
        if self.listener is None:
            return
        try:
            payloads = self.listener.received()
        except Exception as exc:
            self._lost(exc)
            return
        for payload in payloads:
            if payload.partition(":")[0] == "bans_revision":
                self.bans = True
            elif payload_site(payload) == self.store.site:
                self.config = True  # another site's change is not ours to read

    def _lost(self, exc: BaseException) -> None:
        """Back to polling; logged once (agent.health), connected again with backoff."""
        broken, self.listener = self.listener, None
        if broken is not None:
            broken.close()
        self.bans = self.config = True
        self.health.failed(LISTEN_PART, exc, hint="polling the database until it listens again")

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    # -- what to read -----------------------------------------------------------
    def take_bans(self) -> bool:
        """Must the ban sets be compared with the stored bans now?"""
        due = self.bans or self.listener is None
        self.bans = False
        return due

    def take_full_bans(self) -> bool:
        """Must the next ban read be a full one (a new listening connection)?"""
        due, self.full_bans = self.full_bans, False
        return due

    def take_config(self) -> bool:
        """Must the configuration revisions be read now?"""
        due = self.config or self.listener is None
        self.config = False
        return due
