"""The agent's side of the metrics: its ``/metrics`` server and its drop counters.

``pbxfw agent --metrics 127.0.0.1:9151`` serves the Prometheus text format on
that address (off by default) from a thread of its own
(``prometheus_client``'s WSGI server): a scrape builds the families from the
store and from what the agent holds (usecases.metrics ``PbxfwCollector``), and
never waits for, or slows, the loop: it only reads.

Every DROPS_SECONDS the loop reads the table's drop counters (one
``nft -t -j list table``: no set element is listed) and stores them for the
dashboard and the web server's ``/metrics`` (usecases.dashboard ``record_drops``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from pbxfw.errors import ValidationError
from pbxfw.kernel import Backend, NftBackend
from pbxfw.kernel.counters import Drops, read_drops
from pbxfw.storage.repository import Store
from pbxfw.usecases.dashboard import record_drops

if TYPE_CHECKING:
    from pbxfw.usecases.metrics import LiveState

__all__ = ["DROPS_SECONDS", "AgentMetrics", "parse_listen"]

log = logging.getLogger("pbxfw.agent")

#: How often the loop stores the table's drop counters.
DROPS_SECONDS = 10.0


def parse_listen(text: str, field: str = "--metrics") -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6) → (host, port); ValidationError naming ``field``."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValidationError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9151, [::1]:9151)", field)
    return host, int(port)


class AgentMetrics:
    """What the agent's collector reads, the server thread, and the drop counters."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        *,
        node: str,
        clock: Callable[[], float],
        held: Callable[[], Mapping[tuple[str, str], float]],
        unread: Callable[[], Mapping[str, int]],
        applies: Callable[[], tuple[int, int, float, bool]],
    ) -> None:
        self.store = store
        self.backend = backend
        self.node = node
        self.clock = clock
        self._held, self._unread, self._applies = held, unread, applies
        self.started_at = clock()
        #: when the loop last went round (set by Agent.tick)
        self.last_tick = 0.0
        # The first read DROPS_SECONDS after the start: nothing is added to
        # the start, whose first tick restores the table and its bans.
        self.last_drops = self.started_at
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def live(self) -> LiveState:
        """What the collector reads of this agent (usecases.metrics, imported
        here: prometheus_client is loaded only by an agent that serves)."""
        from pbxfw.usecases.metrics import LiveState

        return LiveState(
            node=self.node,
            started_at=self.started_at,
            last_tick=lambda: self.last_tick,
            held=self._held,
            drops=self.read_drops,
            unread=self._unread,
            applies=self._applies,
        )

    def read_drops(self) -> Drops | None:
        """The table's drop counters now (None: not an nft backend, or no table)."""
        backend = self.backend
        if not isinstance(backend, NftBackend):
            return None
        return read_drops(backend.netns)

    def drops_due(self, now: float) -> bool:
        return now - self.last_drops >= DROPS_SECONDS

    def store_drops(self) -> None:
        """Store the drop counters (every DROPS_SECONDS, from the loop)."""
        self.last_drops = now = self.clock()
        drops = self.read_drops()
        if drops is not None:
            record_drops(self.store, self.node, drops, now)

    def serve(self, host: str, port: int) -> None:
        """Start the ``/metrics`` server on ``host:port`` (a thread of its own)."""
        from prometheus_client import start_http_server

        from pbxfw.usecases.metrics import registry

        try:
            self._server, self._thread = start_http_server(
                port, host, registry=registry(self.store, self.clock, self.live())
            )
        except OSError as exc:
            where = _hostport(host, port)
            raise ValidationError(
                f"cannot serve metrics on {where}: {exc.strerror or exc}", "--metrics"
            ) from exc
        log.info("serving metrics on http://%s/metrics", _hostport(host, port))

    def close(self) -> None:
        """Stop the server (never raises)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
