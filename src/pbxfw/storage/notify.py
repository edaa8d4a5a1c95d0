"""Change notifications: PostgreSQL ``LISTEN/NOTIFY`` on the channel ``pbxfw``.

Every write of a watched revision (``revision``: the stored configuration,
``applied_revision``: the configuration the kernels must hold,
``bans_revision``: the active bans) sends ``NOTIFY pbxfw, '<key>:<value>'``
(another site's than ``default``: ``'<key>:<value>:<site>'``, docs/fleet-sites.md)
in the same transaction (:func:`notify`, called by ``Repository.set_meta``
and ``Repository.bump_revision``). PostgreSQL delivers a notification only
when its transaction commits, once per distinct payload, in commit order;
a rolled-back write sends nothing. The agents hold one listening connection
each (:class:`Listener`, agent.wake) and re-read what changed at once
instead of polling the revisions (docs/fleet.md, "Propagation").

On SQLite (one PBX, one agent beside its file) nothing is sent and nothing
listens: the agent polls the revisions as it always did.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, text

from pbxfw.domain.sites import DEFAULT_SITE
from pbxfw.errors import StorageError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["CHANNEL", "WATCHED", "Listener", "listens", "notify", "payload", "payload_site"]

#: The one channel pbxfw notifies on.
CHANNEL = "pbxfw"
#: The meta keys whose writes are notified.
WATCHED = frozenset({"revision", "applied_revision", "bans_revision"})
#: Seconds to wait for the listening connection before failing.
CONNECT_TIMEOUT = 10


def listens(engine: Engine) -> bool:
    """Can this engine notify (PostgreSQL)?"""
    return engine.dialect.name == "postgresql"


def notify(session: Session, key: str, value: object, site: str = "") -> None:
    """Inside a write: notify ``key:value`` (``key:value:site`` for a site's
    value) when this transaction commits (PostgreSQL; nothing on SQLite)."""
    if key not in WATCHED or session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": payload(key, value, site)},
    )


def payload(key: str, value: object, site: str = "") -> str:
    """The text of a notification: small, naming the site a change is of
    (none for the site ``default``, as before sites, and for the fleet's values)."""
    return f"{key}:{value}:{site}" if site not in ("", DEFAULT_SITE) else f"{key}:{value}"


def payload_site(text: str) -> str:
    """The site a configuration notification is of (no site named: ``default``)."""
    parts = text.split(":", 2)
    return parts[2] if len(parts) == 3 else DEFAULT_SITE


class Listener:
    """One autocommit psycopg connection that LISTENs on :data:`CHANNEL`.

    Not pooled and never used for anything else: its socket (``fileno``)
    joins the agent's ``select``; when it is readable, :meth:`received`
    returns the payloads that arrived, without blocking. A lost connection
    (server stopped, ``pg_terminate_backend``) raises ``StorageError`` from
    :meth:`received`, as does a connection that cannot be made; the caller
    closes it and connects a new one later.
    """

    def __init__(self, engine: Engine) -> None:
        import psycopg

        # The same connection arguments SQLAlchemy gives psycopg for this URL.
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
        kwargs["application_name"] = "pbxfw-listen"
        try:
            self.connection: Any = psycopg.connect(*args, **kwargs, autocommit=True)
        except psycopg.Error as exc:
            raise _unreachable("cannot listen for changes", exc) from None
        # A listener dropped without close() (an agent a test let go) closes its connection.
        self._finalizer = weakref.finalize(self, _close_quietly, self.connection)
        try:
            self.connection.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            self.close()
            raise _unreachable("cannot listen for changes", exc) from None

    def fileno(self) -> int:
        return int(self.connection.fileno())

    def backend_pid(self) -> int:
        """The server process of this connection (tests end it to cut the connection)."""
        return int(self.connection.info.backend_pid)

    def received(self) -> list[str]:
        """The payloads that arrived (possibly none); raises ``StorageError``
        when the connection is lost."""
        import psycopg
        from psycopg.pq import ConnStatus

        pgconn = self.connection.pgconn
        try:
            pgconn.consume_input()  # raises when the socket is gone
        except psycopg.Error as exc:
            raise _unreachable("the listening connection was lost", exc) from None
        payloads: list[str] = []
        while (note := pgconn.notifies()) is not None:
            payloads.append(note.extra.decode("utf-8", "replace"))
        if pgconn.status != ConnStatus.OK:
            why = pgconn.get_error_message().decode("utf-8", "replace").strip()
            raise StorageError(f"the listening connection was lost: {why or 'closed'}")
        return payloads

    def close(self) -> None:
        self._finalizer()


def _unreachable(what: str, exc: BaseException) -> StorageError:
    """A StorageError, as any other part's unreachable database: the agent
    logs an outage once, whichever part notices it first (agent.health)."""
    return StorageError(f"{what}: {' '.join(str(exc).split())}")


def _close_quietly(connection: Any) -> None:
    # Closing a broken connection: nothing to report.
    with contextlib.suppress(Exception):
        connection.close()
