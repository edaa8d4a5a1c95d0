"""Asterisk's failure messages: one row of :data:`TABLE` per message (kinds
``asterisk_messages`` and ``asterisk_security``).

A line is Asterisk's logger prefix (:meth:`pbxfw.ips.stamps.Stamps.asterisk`:
stamp, level, the module's source file) and a message. A message counts only
together with the module that writes it (``Rule.modules``) and at its level:
dialplan ``Log()``/``NoOp`` lines or other modules may echo client text that
looks like one. To recognise a new message, add one :class:`Rule` to
:data:`TABLE` (and a line to tests/ips/fixtures/ with its ``.expected`` row):
the per-line triggers and the whole-file search follow from the table.

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

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.addresses import Addresses
from pbxfw.ips.events import Failure

if TYPE_CHECKING:
    from pbxfw.ips.recognisers import Recogniser

__all__ = ["SCAN_TRIGGERS", "TABLE", "TRIGGERS", "Rule", "recognise"]

#: What a rule reads from a message: (address, canonical text), event, jail.
Reading = tuple[tuple[IPAddress, str], str, str]
#: How a rule reads a message: (the rule, the message, the address cache) -> reading.
Parse = Callable[["Rule", str, Addresses], Reading | None]

#: An address field as Asterisk writes it (port and brackets allowed).
_ADDR = r"(?P<addr>[0-9A-Fa-f:.\[\]]+)"


def _match(rule: Rule, body: str, addresses: Addresses) -> Reading | None:
    """The default parse: ``rule.pattern`` matched at the message's start, the address
    in its group ``addr``, ``rule.event`` and ``rule.jail`` as they are."""
    assert rule.pattern is not None
    m = rule.pattern.match(body)
    if m is None:
        return None
    host = addresses.port[rule.port][m.group("addr")]
    return None if host is None else (host, rule.event, rule.jail)


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


# ---------------------------------------------------------------------------
# Messages a pattern cannot take alone.

# res_pjsip/pjsip_distributor.c log_failed_request:
# "Request '<method>' from '<From URI as pjsip prints it>' failed for '<addr>'
#  (callid: <Call-ID>) - <reason>[ after N tries in X ms]".
# From and Call-ID are client text on both sides of the address. pjsip prints
# From as ["display" ]<uri>: the display name is a quoted string (inner quotes
# only as \") and the URI has neither space nor "<>" — so the strict grammar
# below admits exactly one split. The method is a SIP token (no quote, no space).
_PJSIP_FAILED_STRICT = re.compile(
    r"Request (?:'(?P<method>[^' ]{1,32})' )?from '(?:\"[^\"\\]*(?:\\.[^\"\\]*)*\" )?<[^\s<>\"]*>' "
    r"failed for '(?P<addr>[0-9A-Fa-f:.\[\]]+)' \(callid: .*\) - "
    r"(?P<reason>No matching endpoint found|Not match Endpoint ACL|Not match Endpoint Contact ACL"
    r"|Failed to authenticate|Error to authenticate)(?: after \d+ tries in [\d.]+ ms)?$"
)
_PJSIP_METHOD = re.compile(r"Request '(?P<method>[A-Z]{1,16})' from '")
_PJSIP_CANDIDATE = re.compile(r"' failed for '(?P<addr>[0-9A-Fa-f:.\[\]]+)' \(callid: ")
_PJSIP_REASON = re.compile(
    r"\) - (?P<reason>No matching endpoint found|Not match Endpoint ACL"
    r"|Not match Endpoint Contact ACL|Failed to authenticate|Error to authenticate)"
    r"(?: after \d+ tries in [\d.]+ ms)?$"
)

#: (rule event, method as captured or None, reason) -> event of a strict match.
_PJSIP_EVENTS: dict[tuple[str, str | None, str], str] = {}


def _pjsip(rule: Rule, body: str, addresses: Addresses) -> Reading | None:
    """``rule.event`` with the SIP method (or "request") and pjsip's reason filled in."""
    m = _PJSIP_FAILED_STRICT.match(body)
    if m is not None:
        method, addr, reason = m.groups()
        event = _PJSIP_EVENTS.get((rule.event, method, reason))
        if event is None:
            # _PJSIP_METHOD's test on the method the strict grammar captured.
            name = method
            if name is None or not (
                len(name) <= 16 and name.isascii() and name.isalpha() and name.isupper()
            ):
                name = "request"
            if len(_PJSIP_EVENTS) > 256:
                _PJSIP_EVENTS.clear()
            event = _PJSIP_EVENTS[rule.event, method, reason] = rule.event.format(
                method=name, reason=reason
            )
    else:
        # The From did not parse as pjsip prints it: accept the line only
        # if it has a single address field reading (no injection possible).
        r = _PJSIP_REASON.search(body)
        if r is None:
            return None
        found = {c.group("addr") for c in _PJSIP_CANDIDATE.finditer(body)}
        if len(found) != 1:
            return None
        addr, reason = found.pop(), r.group("reason")
        named = _PJSIP_METHOD.match(body)
        event = rule.event.format(
            method=named.group("method") if named is not None else "request", reason=reason
        )
    host = addresses.port[None][addr]
    return None if host is None else (host, event, rule.jail)


# chan_sip / res_pjsip_session: "Call from '<who>' (<addr>) to extension '<exten>'
# rejected because extension not found in context '<context>'." — <who> is the
# endpoint/peer name (configuration), <exten> is dialled by the client. PJSIP
# writes "(UDP:1.2.3.4:5060)" or "(UDP:[v6]:5060)", chan_sip "(1.2.3.4:5060)".
_CALL_REJECTED_STRICT = re.compile(
    r"Call from '(?P<who>[^' ]*)' \((?:(?P<transport>[A-Z][A-Z0-9]{1,7}):)?"
    r"(?P<addr>[0-9A-Fa-f:.\[\]]+)\) to extension '.*' "
    r"rejected because extension not found in context '[^']*'\.$"
)
_CALL_REJECTED_CANDIDATE = re.compile(
    r"' \((?:(?P<transport>[A-Z][A-Z0-9]{1,7}):)?(?P<addr>[0-9A-Fa-f:.\[\]]+)\) to extension '"
)


def _call_rejected(rule: Rule, body: str, addresses: Addresses) -> Reading | None:
    # res_pjsip_session ("(UDP:addr)") names the endpoint before the
    # address — configuration, not client text — so the first address
    # field is the real one and a fake one dialled as the extension comes
    # after it. chan_sip may put a client-supplied user name there, so its
    # form is accepted only when every reading names the same address.
    # Older res_pjsip_session writes "(UDP:%s:%d)" with a bare IPv6 address:
    # with a transport the port is always present.
    m = _CALL_REJECTED_STRICT.match(body)
    if m is not None and m.group("transport") is not None:
        host = addresses.get(m.group("addr"), True)
    elif not body.endswith("'."):
        return None
    else:
        found = {
            addresses.get(c.group("addr"), True if c.group("transport") is not None else None)
            for c in _CALL_REJECTED_CANDIDATE.finditer(body)
        }
        host = found.pop() if len(found) == 1 else None
    return None if host is None else (host, rule.event, rule.jail)


# res_security_log: SecurityEvent="X",EventTV="...",Severity="...",Service="...",
# EventVersion="N",AccountID="...",SessionID="...",LocalAddress="IPV4/UDP/a/p",
# RemoteAddress="IPV4/UDP/a/p"[,Key="value"...]. Values are not escaped, and
# AccountID / SessionID (the SIP Call-ID) may hold any text, quotes included.
# The first five fields are the PBX's own with fixed formats (_SECURITY_HEAD).
# The address pair is then searched from the END of the line: the last
# LocalAddress="..",RemoteAddress=".." pair followed by a well-formed tail is
# the real one, so a pair injected into the SessionID (which comes before the
# real pair) is skipped. Fields after the pair that echo client input
# (Response, ReceivedChallenge, ReceivedHash) come from SIP quoted strings, in
# which a quote can only appear escaped (\"), so the tail grammar (no
# unescaped quote inside a value) rejects a pair injected there. Matching the
# pair at a few candidate offsets keeps the work linear in the line length.
_SECURITY_HEAD = re.compile(
    r'SecurityEvent="(?P<event>[A-Za-z]+)",EventTV="[^"]*",Severity="(?P<severity>[A-Za-z]+)",'
    r'Service="(?P<service>[A-Za-z0-9_]+)",EventVersion="\d+",'
)
_SECURITY_PAIR = re.compile(
    r'LocalAddress="IPV[46]/[A-Za-z]+/[0-9A-Fa-f:.]+/\d+",'
    r'RemoteAddress="(?P<addr>IPV[46]/[A-Za-z]+/[0-9A-Fa-f:.]+/\d+)"'
    r'(?:,[A-Za-z]+="[^"\\]*(?:\\.[^"\\]*)*")*\s*$'
)
# _SECURITY_PAIR in two matches, the same language: the pair part can match in
# one way only (every repetition stops at a character its class excludes), and
# the tail without a capture group to save on each repetition is three times
# faster on a ChallengeResponseFailed tail.
_SECURITY_PAIR_ONLY = re.compile(
    _SECURITY_PAIR.pattern[: _SECURITY_PAIR.pattern.index('"(?:,') + 1]
)
_SECURITY_TAIL = re.compile(_SECURITY_PAIR.pattern[len(_SECURITY_PAIR_ONLY.pattern) :])

#: (rule event, service) -> event text.
_SECURITY_EVENTS: dict[tuple[str, str], str] = {}


def _security(rule: Rule, body: str, addresses: Addresses) -> Reading | None:
    """A failed SecurityEvent (``rule.start`` names it): ``rule.event`` with the
    Service filled in; the jail is "ami" for ``Service="AMI"``."""
    s = _SECURITY_HEAD.match(body)
    if s is None:
        return None
    # Asterisk writes two severities: "Informational" for normal signalling
    # and "Error" for every failed event (main/security_events.c).
    _, severity, service = s.groups()
    if severity != "Error":
        return None
    # The RemoteAddress of the last LocalAddress="..",RemoteAddress=".." pair
    # followed by a well-formed tail (see _SECURITY_PAIR); the first candidate
    # is the real pair on every line Asterisk writes.
    head_end = s.end()
    pos = len(body)
    while True:
        pos = body.rfind('LocalAddress="', head_end, pos)
        if pos < 0:
            return None
        if pos == head_end or body.startswith('",', pos - 2):
            m = _SECURITY_PAIR_ONLY.match(body, pos)
            if m is not None and _SECURITY_TAIL.match(body, m.end()) is not None:
                break
    host = addresses.port[None][m.group("addr")]
    if host is None:
        return None
    what = _SECURITY_EVENTS.get((rule.event, service))
    if what is None:
        if len(_SECURITY_EVENTS) > 256:
            _SECURITY_EVENTS.clear()
        what = _SECURITY_EVENTS[rule.event, service] = rule.event.format(service=service)
    return host, what, "ami" if service == "AMI" else rule.jail


def _security_rule(name: str) -> Rule:
    """The row of the failed SecurityEvent ``name``."""
    head = f'SecurityEvent="{name}"'
    return Rule(
        ("res_security_log.c",),
        head + ",",
        (head,),
        f"SecurityEvent {name} ({{service}})",
        parse=_security,
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
        parse=_pjsip,
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
            rf"Registration from '.*' failed for '{_ADDR}' - (?P<reason>{_CHAN_SIP_REASONS})$"
        ),
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
        parse=_call_rejected,
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
    ),
    Rule(
        ("manager.c",),
        "",
        ("tried to authenticate with nonexistent user",),
        "AMI login with nonexistent user",
        "ami",
        re.compile(rf"{_ADDR} tried to authenticate with nonexistent user '"),
        False,
    ),
    Rule(
        ("manager.c",),
        "",
        (" failed to pass IP ACL as '",),
        "AMI login refused by ACL",
        "ami",
        re.compile(rf"{_ADDR} failed to pass IP ACL as '"),
        False,
    ),
    # chan_iax2 (address first, written by Asterisk; the peer name follows).
    Rule(
        ("chan_iax2.c",),
        "Host ",
        (" failed to authenticate as '", " failed MD5 authentication for '"),
        "IAX2 authentication failed",
        pattern=re.compile(rf"Host {_ADDR} failed (?:to authenticate as|MD5 authentication for) '"),
        port=False,
    ),
    # "No registration for peer '<name>' (from <addr>)": the name is client
    # text, the address is last and end-anchored.
    Rule(
        ("chan_iax2.c",),
        "No registration for peer '",
        ("No registration for peer '",),
        "IAX2 registration for unknown peer",
        pattern=re.compile(rf"No registration for peer '.*' \(from {_ADDR}\)$"),
        port=False,
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
            reading = parse(rule, body, r.addresses)
            if reading is not None:
                break
    else:
        return None
    host, event, jail = reading
    key = r.ordinals.key(level, jail, host[1], stamp[1])
    return r.make(stamp[0], jail, host[0], event, r.file, lineno, key, 1)
