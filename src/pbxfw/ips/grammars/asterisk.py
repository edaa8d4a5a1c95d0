"""Asterisk's failure messages: one row of :data:`TABLE` per message (kinds
``asterisk_messages`` and ``asterisk_security``).

A line is Asterisk's logger prefix (:meth:`pbxfw.ips.stamps.Stamps.asterisk`:
stamp, level, the module's source file) and a message. A message counts only
together with the module that writes it (``Rule.modules``) and at its level:
dialplan ``Log()``/``NoOp`` lines or other modules may echo client text that
looks like one. To recognise a new message, add one :class:`Rule` to
:data:`TABLE` (and a line to tests/ips/fixtures/ with its ``.expected`` row):
the per-line triggers and the whole-file search follow from the table. The
messages one pattern cannot take alone are read by the functions of
:mod:`.asterisk_parsers` (a row's ``parse``).

Every PJSIP / chan_sip / AMI failure is written twice in one second, a
NOTICE in ``messages`` and a SecurityEvent in ``security_log``;
:class:`~pbxfw.ips.keys.Ordinals` gives both the same
:func:`~pbxfw.ips.keys.failure_key` so the detector counts the attempt once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pbxfw.ips.addresses import Addresses
from pbxfw.ips.events import Failure
from pbxfw.ips.grammars.asterisk_parsers import (
    Reading,
    call_rejected,
    pjsip_failed,
    security_event,
)
from pbxfw.ips.grammars.users import cap, quoted_tail, sip_user, without_user

if TYPE_CHECKING:
    from pbxfw.ips.recognisers import Recogniser

__all__ = ["SCAN_TRIGGERS", "TABLE", "TRIGGERS", "Rule", "recognise"]

#: How a rule reads a message: (the rule, the message, the address cache,
#: whether to read the user) -> reading.
Parse = Callable[["Rule", str, Addresses, bool], Reading | None]

#: An address field as Asterisk writes it (port and brackets allowed).
_ADDR = r"(?P<addr>[0-9A-Fa-f:.\[\]]+)"

#: How a rule reads the account a message names from its match (and the message).
User = Callable[[re.Match[str], str], str]


def _match(rule: Rule, body: str, addresses: Addresses, users: bool) -> Reading | None:
    """The default parse: ``rule.pattern`` matched at the message's start, the address
    in its group ``addr``, ``rule.event`` and ``rule.jail`` as they are, the
    user as ``rule.user`` reads it (when ``users``)."""
    pattern = rule.pattern if users else rule.plain
    assert pattern is not None
    m = pattern.match(body)
    if m is None:
        return None
    host = addresses.port[rule.port][m.group("addr")]
    if host is None:
        return None
    if rule.user is None or not users:
        return host, rule.event, rule.jail, ""
    return host, rule.event, rule.jail, rule.user(m, body)


def _group(m: re.Match[str], _body: str) -> str:
    """The user in the pattern's group ``user``."""
    return cap(m.group("user"))


def _to_header(m: re.Match[str], _body: str) -> str:
    """The user part of the SIP URI in the pattern's group ``user`` (a header)."""
    return sip_user(m.group("user"))


def _quoted(m: re.Match[str], body: str) -> str:
    """The name quoted from the match's end to the message's last quote."""
    return quoted_tail(body, m.end())


def _iax_peer(m: re.Match[str], body: str) -> str:
    """chan_iax2's peer name: "... as '%s'" (quoted to the end), or "... MD5
    authentication for '%s' (%s != %s)" (up to the last "' (")."""
    if body.rstrip().endswith("'"):
        return quoted_tail(body, m.end())
    end = body.rfind("' (")
    return cap(body[m.end() : end]) if end >= m.end() else ""


@dataclass(frozen=True, slots=True)
class Rule:
    """One failure message of Asterisk."""

    #: Source files of the modules that write it ("chan_sip.c"); any directory
    #: part of the logged file name is dropped before comparing.
    modules: tuple[str, ...]
    #: Text the message starts with ("": any); several rules of one module are
    #: told apart by it, tried in table order.
    start: str
    #: Per-line triggers: every line the rule accepts contains one of them
    #: (tested), so a line with none is never parsed.
    triggers: tuple[str, ...]
    #: ``Failure.event``: fixed text, never copied from the line (a parse
    #: function fills in the ``{...}`` fields from closed sets).
    event: str
    #: The jail (AMI failures: "ami").
    jail: str = "asterisk"
    #: Anchored at the message's start; the address field in group ``addr``.
    pattern: re.Pattern[str] | None = None
    #: The address field's port form (see ``parse_remote_address``).
    port: bool | None = None
    #: How to read the message where one pattern is not enough (client text on
    #: both sides of the address): see :data:`Parse`.
    parse: Parse = field(default=_match)
    #: "NOTICE" (``messages``) or "SECURITY" (res_security_log).
    level: str = "NOTICE"
    #: How the default parse reads the account the message names
    #: (``Failure.user``); None: it names none.
    user: User | None = None
    #: ``pattern`` without the capture of the user (users.without_user).
    plain: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        plain = None if self.pattern is None else without_user(self.pattern)
        object.__setattr__(self, "plain", plain)


def _security_rule(name: str) -> Rule:
    """The row of the failed SecurityEvent ``name``."""
    head = f'SecurityEvent="{name}"'
    return Rule(
        ("res_security_log.c",),
        head + ",",
        (head,),
        f"SecurityEvent {name} ({{service}})",
        parse=security_event,
        level="SECURITY",
    )


# chan_sip.c handle_request_register (Asterisk 18-20; "ACL error (permit/deny)"
# is the wording of older releases, still found in logs).
_CHAN_SIP_REASONS = (
    r"Wrong password|Username/auth name mismatch|No matching peer found|Not a local domain"
    r"|Peer is not supposed to register|Device does not match ACL"
    r"|Device not configured to use this transport type|ACL error \(permit/deny\)"
)

# chan_sip's "Failed to authenticate device %s for %s, code = %d" (older: "...
# device %s", "Sending fake auth rejection for device %s") prints the From
# header, no peer address: no row. An INVITE's SecurityEvent (handle_incoming)
# counts it at RemoteAddress (docs/ips-formats.md).

# ---------------------------------------------------------------------------
# The table. Rows of one module are tried in order.

TABLE: tuple[Rule, ...] = (
    Rule(
        ("pjsip_distributor.c",),
        "Request ",
        ("' failed for '",),
        "PJSIP {method}: {reason}",
        parse=pjsip_failed,
    ),
    # chan_sip: "Registration from '%s' failed for '%s' - %s" (To header, address,
    # reason); the header is client text, the rest chan_sip's own, so the
    # end-anchored greedy match takes the real (last) address field. "RTP
    # initialization failed" / "Unknown failure" are the PBX's faults: nothing.
    Rule(
        ("chan_sip.c",),
        "Registration from '",
        ("' failed for '",),
        "chan_sip registration failed",
        pattern=re.compile(
            rf"Registration from '(?P<user>.*)' failed for '{_ADDR}' - "
            rf"(?P<reason>{_CHAN_SIP_REASONS})$"
        ),
        user=_to_header,
    ),
    # res_security_log (main/security_events.c): the failed events.
    _security_rule("InvalidAccountID"),
    _security_rule("ChallengeResponseFailed"),
    _security_rule("InvalidPassword"),
    _security_rule("FailedACL"),
    Rule(
        ("chan_sip.c", "res_pjsip_session.c", "chan_pjsip.c"),
        "Call from '",
        ("rejected because extension not found",),
        "call to an extension not in the context",
        parse=call_rejected,
    ),
    # manager.c: "<addr> tried to authenticate with nonexistent user '<user>'",
    # "<addr> failed to authenticate as '<user>'" (address first).
    Rule(
        ("manager.c",),
        "",
        (" failed to authenticate as '",),
        "AMI login failed",
        "ami",
        re.compile(rf"{_ADDR} failed to authenticate as '"),
        False,
        user=_quoted,
    ),
    Rule(
        ("manager.c",),
        "",
        ("tried to authenticate with nonexistent user",),
        "AMI login with nonexistent user",
        "ami",
        re.compile(rf"{_ADDR} tried to authenticate with nonexistent user '"),
        False,
        user=_quoted,
    ),
    Rule(
        ("manager.c",),
        "",
        (" failed to pass IP ACL as '",),
        "AMI login refused by ACL",
        "ami",
        re.compile(rf"{_ADDR} failed to pass IP ACL as '"),
        False,
        user=_quoted,
    ),
    # chan_iax2 (address first, written by Asterisk; the peer name follows).
    Rule(
        ("chan_iax2.c",),
        "Host ",
        (" failed to authenticate as '", " failed MD5 authentication for '"),
        "IAX2 authentication failed",
        pattern=re.compile(rf"Host {_ADDR} failed (?:to authenticate as|MD5 authentication for) '"),
        port=False,
        user=_iax_peer,
    ),
    # "No registration for peer '<name>' (from <addr>)": the name is client
    # text, the address is last and end-anchored.
    Rule(
        ("chan_iax2.c",),
        "No registration for peer '",
        ("No registration for peer '",),
        "IAX2 registration for unknown peer",
        pattern=re.compile(rf"No registration for peer '(?P<user>.*)' \(from {_ADDR}\)$"),
        port=False,
        user=_group,
    ),
)

#: A rule as :func:`recognise` tries it: (``rule.start``, ``rule.parse``, the rule).
_Try = tuple[str, Parse, Rule]
#: (level, module) -> its rules, in table order.
_BY_SOURCE: dict[tuple[str, str], tuple[_Try, ...]] = {}
for _rule in TABLE:
    for _module in _rule.modules:
        _BY_SOURCE[_rule.level, _module] = (
            *_BY_SOURCE.get((_rule.level, _module), ()),
            (_rule.start, _rule.parse, _rule),
        )

#: (level, source file as logged) -> its rules, or None (a cache of _BY_SOURCE).
_BY_LOGGED: dict[tuple[str, str], tuple[_Try, ...] | None] = {}
_MISSING: Any = object()

#: The per-line triggers, from the table.
TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t for rule in TABLE for t in rule.triggers))

#: The coarse triggers of the whole-file search, one per level in the table:
#: every message is matched at its level, and a failed SecurityEvent is taken
#: only with Severity="Error" (so client text after it cannot fake one).
_LEVEL_TRIGGER = {"SECURITY": 'Severity="Error"', "NOTICE": "NOTICE"}
SCAN_TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(_LEVEL_TRIGGER[rule.level] for rule in TABLE))


def recognise(r: Recogniser, line: str, lineno: int) -> Failure | None:
    """The failure an Asterisk ``line`` records, or None (the state is ``r``'s)."""
    prefix = r.stamps.asterisk(line)
    if prefix is None:
        return None
    stamp, level, src, end = prefix
    logged = (level, src)
    rules = _BY_LOGGED.get(logged, _MISSING)
    if rules is _MISSING:
        # The source file as logged ("res_pjsip/pjsip_distributor.c"): its
        # rows once per name (few names: the cache is bounded anyway).
        if len(_BY_LOGGED) > 1024:
            _BY_LOGGED.clear()
        rules = _BY_LOGGED[logged] = _BY_SOURCE.get((level, src[src.rfind("/") + 1 :]))
    if rules is None:
        return None
    body = line[end:].rstrip("\r\n")
    for start, parse, rule in rules:
        if body.startswith(start):
            reading = parse(rule, body, r.addresses, r.users)
            if reading is not None:
                break
    else:
        return None
    host, event, jail, user = reading
    key = r.ordinals.key(level, jail, host[1], stamp[1])
    return r.make(stamp[0], jail, host[0], event, r.file, lineno, key, 1, user)
