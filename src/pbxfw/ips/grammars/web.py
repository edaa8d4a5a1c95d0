"""Web login failures: nginx's basic auth and pbxfw's own web login (kind
``web``), one row of :data:`TABLE` per message.

Each row's pattern matches the whole line from its start (the stamp is part
of the writer's own prefix); the rows are tried in order. To recognise a new
message, add one :class:`Rule` (and a fixture line).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure
from pbxfw.ips.grammars.users import cap, without_user

if TYPE_CHECKING:
    from pbxfw.ips.recognisers import Recogniser

__all__ = [
    "NGINX_STAMP",
    "SCAN_TRIGGERS",
    "TABLE",
    "TRIGGERS",
    "WEB_LOGIN",
    "WEB_LOGIN_FAILURE_FORMAT",
    "Rule",
    "format_web_login_failure",
    "recognise",
]

#: The line pbxfw's web layer writes for a failed login (one per attempt).
#: ``{time}`` is ISO 8601 UTC with seconds, ``{address}`` the client's
#: address as seen by the server socket, ``{user}`` the name typed, JSON
#: string-escaped (quotes included). The address comes *before* the
#: client-controlled user name so that no user name can move it.
WEB_LOGIN_FAILURE_FORMAT = "{time} pbxfw-web: login failed from {address} for user {user}"


def format_web_login_failure(time: datetime, user: str, addr: IPAddress | str) -> str:
    """The web login failure line (without newline) that the ``web`` grammar parses.

    ``time`` must be aware (it is written in UTC); ``user`` is escaped so that
    it can contain neither a newline nor an unbalanced quote.
    """
    import json  # local: only the web layer calls this

    if time.tzinfo is None:
        raise ValueError("time must be timezone-aware")
    stamp = time.astimezone(UTC).replace(microsecond=0).isoformat()
    address = str(ipaddress.ip_address(str(addr).strip("[]")))
    return WEB_LOGIN_FAILURE_FORMAT.format(
        time=stamp, address=address, user=json.dumps(user, ensure_ascii=True)
    )


@dataclass(frozen=True, slots=True)
class Rule:
    """One web failure message."""

    #: Anchored at the line's start; the address field in group ``addr``, the
    #: stamp in ``iso`` (with zone) or ``date`` and ``time`` (nginx, local).
    pattern: re.Pattern[str]
    #: ``Failure.event`` (fixed text).
    event: str
    #: Per-line triggers: every line the rule accepts contains one (tested).
    triggers: tuple[str, ...]
    #: ``pattern`` without the capture of the user (users.without_user).
    plain: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plain", without_user(self.pattern))


#: pbxfw's own line (WEB_LOGIN_FAILURE_FORMAT).
WEB_LOGIN = re.compile(
    r"(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
    r"pbxfw-web: login failed from (?P<addr>[0-9A-Fa-f:.]+) for user "
)

# nginx error.log (ngx_http_auth_basic_module; the context is appended by
# ngx_http_log_error / ngx_http_log_error_handler in ngx_http_request.c):
#   "2012/04/09 11:53:29 [error] 2865#0: *66647 user "U": password mismatch,
#    client: A, server: S, request: "R", upstream: "…", host: "H", referrer: "F""
#   "… *1 user "U" was not found in "FILE", client: A, server: S, …"
# nginx writes ", client: %V" right after the message, then ", server: %V"
# (the configured server name), then the quoted request line, host and
# referrer, which are client text and may hold anything, ", client: " too. The
# message is the only text before the real client field, and its only client
# part, the Basic-auth user U, never holds a colon: nginx splits the decoded
# "user:password" at the first colon (ngx_http_auth_basic_user). So the
# message is matched with U as text without ":", and the client field is the
# one that follows it — the first ", client: " of the line; a forged one can
# only come later.
NGINX_STAMP = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[")
_NGINX_PREFIX = (
    r"(?P<date>\d{4}/\d\d/\d\d) (?P<time>\d\d:\d\d:\d\d) \[error\] \d+#\d+: \*\d+ "
    r'user "(?P<user>[^:]*)"'
)
_NGINX_CLIENT = r", client: (?P<addr>[0-9A-Fa-f:.]+), server: "

TABLE: tuple[Rule, ...] = (
    Rule(WEB_LOGIN, "pbxfw web login failed", ("pbxfw-web: login failed",)),
    Rule(
        re.compile(_NGINX_PREFIX + ": password mismatch" + _NGINX_CLIENT),
        "nginx basic auth password mismatch",
        ("password mismatch",),
    ),
    Rule(
        re.compile(_NGINX_PREFIX + ' was not found in "[^"]*"' + _NGINX_CLIENT),
        "nginx basic auth unknown user",
        ("was not found in",),
    ),
)

#: The per-line triggers, from the table.
TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t for rule in TABLE for t in rule.triggers))
#: The coarse triggers of the whole-file search: the per-line ones (few lines
#: of other logs hold them).
SCAN_TRIGGERS = TRIGGERS


def recognise(r: Recogniser, line: str, lineno: int) -> Failure | None:
    """The failure a web ``line`` records, or None (the state is ``r``'s)."""
    users = r.users
    for rule in TABLE:
        m = (rule.pattern if users else rule.plain).match(line)
        if m is not None:
            break
    else:
        return None
    iso = m.groupdict().get("iso")
    if iso is not None:
        stamp = r.stamps.iso(iso)
    else:
        stamp = r.stamps.local("D", m.group("date"), m.group("time"))
    host = r.addresses.get(m.group("addr"), False)
    if stamp is None or host is None:
        return None
    if not users:
        user = ""
    else:
        user = _web_login_user(line[m.end() :]) if iso is not None else cap(m.group("user"))
    return r.make(stamp[0], "web", host[0], rule.event, r.file, lineno, "", 1, user)


def _web_login_user(text: str) -> str:
    """The name typed, from the JSON string WEB_LOGIN_FAILURE_FORMAT ends
    with (the text as written when it is not one)."""
    import json  # only on a failure line

    text = text.rstrip("\r\n")
    if not text.startswith('"'):
        return cap(text)  # not the JSON string pbxfw-web writes
    try:
        name = json.loads(text)
    except (ValueError, RecursionError):
        return cap(text)
    return cap(name) if isinstance(name, str) else cap(text)
