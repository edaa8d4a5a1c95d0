"""Rows behind logins: revoked sessions, users' session cutoffs, the login throttle.

Kept apart from :mod:`pbxfw.storage.repository` (the configuration) so that
the web layer's per-request checks stay small queries. An
:class:`AuthRepository` works on the SQLAlchemy session of one unit of work:
``with store.write() as repo: AuthRepository(repo.session).revoke(...)``.

Everything is in the database, not in a process, so every web worker (and
a restarted server) sees the same logouts and the same throttle.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, bindparam, delete, exists, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from pbxfw.domain.login_throttle import FREE_FAILURES, MEMORY, WINDOW, ThrottleRecord
from pbxfw.storage.db import storage_error
from pbxfw.storage.models import LoginThrottleRow, RevokedSessionRow, UserRow

__all__ = ["AuthRepository", "SessionState", "session_state"]


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the database says about one user's token or session.

    ``valid_after`` is None when the user does not exist (any more).
    """

    valid_after: float | None
    revoked: bool


@functools.cache
def _state_query() -> Any:
    revoked = exists().where(
        RevokedSessionRow.sid == bindparam("sid"), RevokedSessionRow.expires_at > bindparam("now")
    )
    return select(UserRow.sessions_valid_after, revoked).where(UserRow.name == bindparam("name"))


def session_state(engine: Engine, user: str, sid: str | None, now: float) -> SessionState:
    """The user's cutoff and whether ``sid`` is revoked: one query on a plain connection.

    Every API request and every page view of a logged-in session asks this,
    so it skips the ORM session (about 60 µs instead of 290 µs on SQLite).
    """
    try:
        with engine.connect() as connection:
            row = connection.execute(
                _state_query(), {"name": user, "sid": (sid or "")[:64], "now": now}
            ).first()
    except (OperationalError, ProgrammingError) as exc:
        # As Store does: a missing table is a database from before 0003.
        if isinstance(exc, ProgrammingError) and getattr(exc.orig, "sqlstate", None) != "42P01":
            raise
        raise storage_error(exc) from None
    if row is None:
        return SessionState(None, False)
    return SessionState(float(row[0] or 0.0), bool(row[1]))


class AuthRepository:
    """Revocations, cutoffs and throttle records on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- sessions and tokens ------------------------------------------------------
    def revoke(self, sid: str, expires_at: float, now: float) -> None:
        """Refuse ``sid`` until ``expires_at``; drop the entries that expired."""
        self.session.execute(delete(RevokedSessionRow).where(RevokedSessionRow.expires_at <= now))
        self.session.merge(RevokedSessionRow(sid=sid[:64], expires_at=expires_at))
        self.session.flush()

    def set_sessions_valid_after(self, user: str, when: float) -> bool:
        """Refuse every session and token of ``user`` issued before ``when``; False: no such user."""
        result = self.session.execute(
            update(UserRow).where(UserRow.name == user).values(sessions_valid_after=when)
        )
        return bool(getattr(result, "rowcount", 0))

    # -- login throttle -----------------------------------------------------------
    def throttle_records(self, keys: Iterable[str]) -> dict[str, ThrottleRecord]:
        rows = self.session.execute(
            select(LoginThrottleRow.__table__).where(LoginThrottleRow.key.in_(list(keys)))
        )
        return {
            r.key: ThrottleRecord(
                r.key, r.failures, r.first_failure, r.last_failure, r.locked_until
            )
            for r in rows
        }

    def all_throttle_records(self) -> list[ThrottleRecord]:
        rows = self.session.execute(select(LoginThrottleRow.__table__))
        return [
            ThrottleRecord(r.key, r.failures, r.first_failure, r.last_failure, r.locked_until)
            for r in rows
        ]

    def save_throttle(self, record: ThrottleRecord) -> None:
        self.session.merge(
            LoginThrottleRow(
                key=record.key,
                failures=record.failures,
                first_failure=record.first_failure,
                last_failure=record.last_failure,
                locked_until=record.locked_until,
            )
        )
        self.session.flush()

    def forget_throttle(self, key: str) -> None:
        self.session.execute(delete(LoginThrottleRow).where(LoginThrottleRow.key == key))

    def prune_throttle(self, now: float) -> int:
        """Forget the records that no longer matter (the rule of ``is_stale``)."""
        table = LoginThrottleRow
        result = self.session.execute(
            delete(table).where(
                table.locked_until <= now,
                ((table.failures < FREE_FAILURES) & (table.first_failure < now - WINDOW))
                | ((table.last_failure < now - MEMORY) & (table.locked_until < now - MEMORY)),
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)
