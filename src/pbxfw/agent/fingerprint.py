"""The agent's scanner fingerprint part (issue 18): verdicts on new SIP flows, bans.

A thread of its own reads the fingerprint queue (``pbxfw.kernel.nfqueue``)
and answers every packet at once, without waiting on the database or the
agent's loop: the first packet of a new UDP SIP flow (``pbxfw.compiler.
fingerprint``) whose SIP request carries a listed fingerprint is dropped;
everything else is accepted (a packet that is not a well-formed SIP request
too: the log-based jails judge what Asterisk makes of it). A never-block
source is accepted without reading its packet.

The thread only notes the scanner's address and wakes the loop (a pipe in
the loop's wait); the loop bans it in the ``asterisk`` jail with origin
``fingerprint`` through the same steps as a jail's ban (``Ips.ban_now``:
kernel first, then the store and the spool), so the ban lands within one
loop round, a few milliseconds. docs/nftables.md, "Scanner fingerprints".

Fail-open everywhere: no agent (stopped, killed) → the queue rule's
``bypass`` accepts; a full queue → its fail-open flag accepts; an exception
while judging one packet → that packet is accepted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.fingerprints import Fingerprint, Matcher
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.ips.sip import request_headers
from pbxfw.kernel.nfqueue import (
    NF_ACCEPT,
    NF_DROP,
    PacketQueue,
    install_table,
    remove_table,
    udp_payload,
)
from pbxfw.storage.repository import Store
from pbxfw.usecases.fingerprints import FingerprintService

__all__ = ["FINGERPRINT_ORIGIN", "FingerprintGuard", "Hit", "judge"]

log = logging.getLogger("pbxfw.agent.fingerprint")

#: The origin of a ban made by a fingerprint (DESIGN §7's vocabulary).
FINGERPRINT_ORIGIN = "fingerprint"
JAIL = "asterisk"
#: How often the list is read again from the store.
LIST_SECONDS = 2.0
#: An address reported is not reported again for this long (its ban is on its way).
REPORT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Hit:
    """A dropped scanner packet: who sent it, which fingerprint, when (epoch seconds)."""

    address: IPAddress
    fingerprint: Fingerprint
    time: float


def judge(
    data: bytes, matcher: Matcher, exempt: Callable[[IPAddress], bool]
) -> tuple[IPAddress, Fingerprint] | None:
    """The sender and the fingerprint of a scanner's packet (``data`` from
    its IP header on); None: accept it. Never raises on any ``data``."""
    found = udp_payload(data)
    if found is None or not matcher:
        return None
    source, payload = found
    address = ipaddress.ip_address(source)
    if exempt(address):
        return None
    headers = request_headers(payload, matcher.headers)
    if not headers:
        return None
    fingerprint = matcher.match(headers)
    return None if fingerprint is None else (address, fingerprint)


class FingerprintGuard:
    """Binds the queue while intrusion prevention is on and the list is not
    empty; :meth:`setup` each loop round, :meth:`ban_found` when woken."""

    def __init__(
        self,
        store: Store,
        *,
        exempt: Callable[[IPAddress], bool],
        ban: Callable[[list[Ban], float], None],
        node: str,
        site: str,
        netns: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = FingerprintService(store)
        self.exempt = exempt
        self.ban = ban
        self.node, self.site, self.netns = node, site, netns
        self.clock = clock
        self.matcher = Matcher(())
        self.bantime = 600
        self._port: int | None = None
        self._queue: PacketQueue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._reported: dict[IPAddress, float] = {}
        self._read_at = -LIST_SECONDS
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        #: packets judged / dropped since the start (tests, benchmarks)
        self.judged = 0
        self.dropped = 0

    # -- the loop's side --------------------------------------------------------
    def fds(self) -> list[int]:
        """What the loop's wait watches: the wake pipe, while bound."""
        return [self._wake_r] if self._thread is not None else []

    def setup(self, config: Configuration) -> None:
        """Follow the configuration: bound while ``ips_enabled`` and the list
        has a fingerprint, the table made for ``sip_port``; the list read
        again every LIST_SECONDS."""
        settings = config.settings
        self.bantime = settings.ips_bantime
        now = time.monotonic()
        if now - self._read_at >= LIST_SECONDS:
            self._read_at = now
            self.matcher = Matcher(self.service.fingerprints())
        wanted = settings.sip_port if settings.ips_enabled and self.matcher else None
        if wanted == self._port and (wanted is None or self._thread is not None):
            return
        self.close()
        if wanted is not None:
            self.bind(wanted)

    def bind(self, port: int) -> None:
        """Bind the queue, load the table for ``port``, start the thread."""
        queue = PacketQueue(self.netns)  # bound before the rule: no packet waits for nobody
        try:
            install_table(port, self.netns)
        except BaseException:
            queue.close()
            raise
        self._queue, self._port = queue, port
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="pbxfw-fingerprint", daemon=True)
        self._thread.start()
        log.info("scanner fingerprints: checking new SIP flows to udp port %d", port)

    def ban_found(self) -> None:
        """Ban the scanners the thread found since the last call."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass
        with self._lock:
            hits, self._hits = self._hits, []
        if not hits:
            return
        now = self.clock()
        scope = JAIL_SCOPES[JAIL]
        bans = [
            Ban(
                subnet=ipaddress.ip_network(h.address),
                jail=JAIL,
                scope=scope,
                reason=f"scanner fingerprint: {h.fingerprint.header} contains "
                f"{h.fingerprint.pattern!r}",
                created_at=now,
                expires_at=now + self.bantime,
                first_failure=h.time,
                last_failure=h.time,
                failures=1,
                origin=FINGERPRINT_ORIGIN,
                node=self.node,
                site=self.site,
            )
            for h in hits
        ]
        self.ban(bans, now)

    def close(self) -> None:
        """Stop the thread, unbind, delete the table (SIP then flows unchecked)."""
        thread, queue = self._thread, self._queue
        self._thread, self._queue, self._port = None, None, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=5)
        if queue is not None:
            queue.close()
            try:
                remove_table(self.netns)
            except Exception as exc:  # the table's bypass accepts meanwhile
                log.warning("scanner fingerprints: cannot delete the queue table: %s", exc)

    # -- the thread -------------------------------------------------------------
    def _serve(self) -> None:
        queue = self._queue
        assert queue is not None
        while not self._stop.is_set():
            try:
                for packet in queue.packets(0.5):
                    queue.verdict(packet.id, self._verdict(packet.data))
            except OSError as exc:
                if self._stop.is_set():
                    return
                log.warning("scanner fingerprints: queue read failed: %s", exc)
                self._stop.wait(0.5)

    def _verdict(self, data: bytes) -> int:
        self.judged += 1
        try:
            found = judge(data, self.matcher, self.exempt)
        except Exception:  # a packet never stops the queue: accept it
            log.exception("scanner fingerprints: a packet could not be judged")
            return NF_ACCEPT
        if found is None:
            return NF_ACCEPT
        address, fingerprint = found
        self.dropped += 1
        now = self.clock()
        if now - self._reported.get(address, -REPORT_SECONDS) >= REPORT_SECONDS:
            if len(self._reported) > 65536:  # bounded: a scan from many sources
                self._reported.clear()
            self._reported[address] = now
            with self._lock:
                self._hits.append(Hit(address, fingerprint, now))
            # A full pipe: the loop is awake anyway.
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"!")
        return NF_DROP
