"""Signed tokens, sessions, CSRF and the record of failed logins.

Bearer tokens (REST API) and session cookies (web page) are the same kind of
object: a JSON payload and an HMAC-SHA256 over it with the application's
secret, so the server keeps no token table. The signature also covers a
*kind* ("api" or "session"), so a session cookie is never accepted as a
bearer token nor the reverse: the API does not accept cookies at all, which
is what keeps it out of reach of cross-site requests.

Every token carries its issue time (``iat``) and a random id (``sid`` for
sessions, ``jti`` for API tokens), so that logins can end before their
expiry without a token table: logging out stores the id in the database
(table ``revoked_sessions``, until the token would have expired anyway), and
``pbxfw user logout NAME`` sets a per-user cutoff (``users.sessions_valid_after``)
before which every session and token of that user is refused. Both live in
the database, so every web worker and a restarted server agree (the checks
are in :class:`pbxfw.web.deps.WebContext`; the rows in
:mod:`pbxfw.storage.sessions`).

A session carries its own CSRF token; every form post must send it back
(synchroniser token pattern).

Failed logins are appended, one line each, to a log file that the ``web``
jail of the intrusion prevention reads (:func:`record_login_failure`), so
brute force against the page is banned like any other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pbxfw.ips.recognisers import format_web_login_failure

__all__ = [
    "API_TOKEN",
    "SESSION",
    "Session",
    "Signer",
    "csrf_matches",
    "issued_at",
    "record_login_failure",
]

log = logging.getLogger(__name__)

#: Token kinds: the signature covers the kind, so one is never taken for the other.
API_TOKEN = "api"
SESSION = "session"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Sign and verify small JSON payloads with an issue time and an expiry.

    ``sign`` returns ``PAYLOAD.SIGNATURE`` (both base64url) and adds ``iat``
    (the issue time, epoch seconds as a float) and ``exp`` (whole seconds) to
    the payload; ``unsign`` returns the payload, or None when the text was
    not signed by this secret for this kind, or has expired by ``clock``.
    Never raises on bad input.
    """

    def __init__(self, secret: bytes, clock: Callable[[], float]) -> None:
        if len(secret) < 16:
            raise ValueError("the secret key must be at least 16 bytes")
        self._secret = secret
        self._clock = clock

    def _mac(self, kind: str, body: str) -> bytes:
        return hmac.new(self._secret, f"{kind}.{body}".encode(), hashlib.sha256).digest()

    def sign(self, kind: str, payload: dict[str, Any], ttl: float) -> str:
        now = self._clock()
        data = {**payload, "iat": now, "exp": int(now + ttl)}
        body = _b64(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{_b64(self._mac(kind, body))}"

    def unsign(self, kind: str, token: str | None) -> dict[str, Any] | None:
        if not token or token.count(".") != 1 or len(token) > 4096:
            return None
        body, signature = token.split(".")
        try:
            given = _unb64(signature)
            data = json.loads(_unb64(body))
        except ValueError:  # binascii.Error and JSONDecodeError are ValueErrors
            return None
        if not hmac.compare_digest(given, self._mac(kind, body)):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("exp"), int):
            return None
        if data["exp"] <= self._clock():
            return None
        return data


@dataclass(frozen=True, slots=True)
class Session:
    """A web page session: ``user`` is empty until someone logs in.

    ``issued`` is when its cookie was signed (0 for a session not yet signed,
    or a cookie from before issue times were recorded).
    """

    sid: str
    user: str
    csrf: str
    expires: int
    issued: float = 0.0

    @classmethod
    def new(cls, user: str = "") -> Session:
        return cls(secrets.token_urlsafe(16), user, secrets.token_urlsafe(32), 0)

    def payload(self) -> dict[str, Any]:
        return {"sid": self.sid, "sub": self.user, "csrf": self.csrf}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Session | None:
        sid, user, csrf = data.get("sid"), data.get("sub"), data.get("csrf")
        if not (isinstance(sid, str) and isinstance(user, str) and isinstance(csrf, str)):
            return None
        return cls(sid, user, csrf, int(data["exp"]), issued_at(data))


def issued_at(data: dict[str, Any]) -> float:
    """The ``iat`` of an unsigned payload; 0 when absent (older than any cutoff)."""
    value = data.get("iat")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def csrf_matches(session: Session | None, submitted: object) -> bool:
    """True when the form's token is this session's (constant time)."""
    if session is None or not isinstance(submitted, str) or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())


def record_login_failure(path: Path, when: float, user: str, address: str) -> None:
    """Append one failed-login line for the ``web`` jail to ``path``.

    The line is the intrusion prevention's own format
    (:func:`pbxfw.ips.recognisers.format_web_login_failure`): UTC time, then
    the client's address as the server socket saw it, then the user name
    JSON-escaped, so no user name can forge the address or add a line.
    A log that cannot be written is reported, never a reason to fail the
    request.
    """
    try:
        # Long names are cut: the line is evidence of an attempt, not a copy of it.
        line = format_web_login_failure(datetime.fromtimestamp(when, UTC), user[:128], address)
    except ValueError:
        # Not an IP address (a Unix socket, a test client): nothing a ban could use.
        log.warning("failed login for %r from a non-IP peer %r", user[:128], address)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
    except OSError as exc:
        log.warning("cannot record a failed login in %s: %s", path, exc)
