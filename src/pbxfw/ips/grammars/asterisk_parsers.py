"""The Asterisk messages one pattern cannot take alone (the ``parse`` of their
rows in :data:`pbxfw.ips.grammars.asterisk.TABLE`): client text on both
sides of the address, or the address to be found among several candidates.

Each parse function takes (the rule, the message, the address cache,
whether to read the user) and
gives (address, canonical text), event, jail, user, or None (see
:data:`pbxfw.ips.grammars.asterisk.Parse`); the user is the extension or
account the message names (``Failure.user``; "" where it cannot be read
for sure).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.addresses import Addresses
from pbxfw.ips.grammars.users import account_id, cap, uri_user, without_user

if TYPE_CHECKING:
    from pbxfw.ips.grammars.asterisk import Rule

__all__ = ["Reading", "call_rejected", "pjsip_failed", "security_event"]

#: What a rule reads from a message: (address, canonical text), event, jail, user.
Reading = tuple[tuple[IPAddress, str], str, str, str]


# res_pjsip/pjsip_distributor.c log_failed_request:
# "Request '<method>' from '<From URI as pjsip prints it>' failed for '<addr>'
#  (callid: <Call-ID>) - <reason>[ after N tries in X ms]".
# From and Call-ID are client text on both sides of the address. pjsip prints
# From as ["display" ]<uri>: the display name is a quoted string (inner quotes
# only as \") and the URI has neither space nor "<>" — so the strict grammar
# below admits exactly one split. The method is a SIP token (no quote, no space).
_PJSIP_FAILED_STRICT = re.compile(
    r"Request (?:'(?P<method>[^' ]{1,32})' )?from '(?:\"[^\"\\]*(?:\\.[^\"\\]*)*\" )?"
    r"<(?P<user>[^\s<>\"]*)>' "
    r"failed for '(?P<addr>[0-9A-Fa-f:.\[\]]+)' \(callid: .*\) - "
    r"(?P<reason>No matching endpoint found|Not match Endpoint ACL|Not match Endpoint Contact ACL"
    r"|Failed to authenticate|Error to authenticate)(?: after \d+ tries in [\d.]+ ms)?$"
)
_PJSIP_FAILED_PLAIN = without_user(_PJSIP_FAILED_STRICT)
_PJSIP_METHOD = re.compile(r"Request '(?P<method>[A-Z]{1,16})' from '")
_PJSIP_CANDIDATE = re.compile(r"' failed for '(?P<addr>[0-9A-Fa-f:.\[\]]+)' \(callid: ")
_PJSIP_REASON = re.compile(
    r"\) - (?P<reason>No matching endpoint found|Not match Endpoint ACL"
    r"|Not match Endpoint Contact ACL|Failed to authenticate|Error to authenticate)"
    r"(?: after \d+ tries in [\d.]+ ms)?$"
)

#: From URI -> its user part (uri_user), a bounded cache.
_URI_USERS: dict[str, str] = {}
#: (rule event, method as captured or None, reason) -> event of a strict match.
_PJSIP_EVENTS: dict[tuple[str, str | None, str], str] = {}


def pjsip_failed(rule: Rule, body: str, addresses: Addresses, users: bool) -> Reading | None:
    """``rule.event`` with the SIP method (or "request") and pjsip's reason filled in."""
    m = (_PJSIP_FAILED_STRICT if users else _PJSIP_FAILED_PLAIN).match(body)
    if m is not None:
        user = ""
        if not users:
            method, addr, reason = m.groups()
        else:
            # The group "user" holds the whole From URI; its user part is read here.
            method, uri, addr, reason = m.groups()
            # Scanners try a few URIs many times: their users are cached.
            user = _URI_USERS.get(uri, "\x00")
            if user == "\x00":
                if len(_URI_USERS) > 4096:
                    _URI_USERS.clear()
                user = _URI_USERS[uri] = uri_user(uri)
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
        # Where its URI ends is not certain then: no user.
        user = ""
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
    return None if host is None else (host, event, rule.jail, user)


# chan_sip / res_pjsip_session: "Call from '<who>' (<addr>) to extension '<exten>'
# rejected because extension not found in context '<context>'." — <who> is the
# endpoint/peer name (configuration), <exten> is dialled by the client. PJSIP
# writes "(UDP:1.2.3.4:5060)" or "(UDP:[v6]:5060)", chan_sip "(1.2.3.4:5060)".
_CALL_REJECTED_STRICT = re.compile(
    r"Call from '(?P<who>[^' ]*)' \((?:(?P<transport>[A-Z][A-Z0-9]{1,7}):)?"
    r"(?P<addr>[0-9A-Fa-f:.\[\]]+)\) to extension '(?P<user>.*)' "
    r"rejected because extension not found in context '[^']*'\.$"
)
_CALL_REJECTED_PLAIN = without_user(_CALL_REJECTED_STRICT)
_CALL_REJECTED_CANDIDATE = re.compile(
    r"' \((?:(?P<transport>[A-Z][A-Z0-9]{1,7}):)?(?P<addr>[0-9A-Fa-f:.\[\]]+)\) to extension '"
)


def call_rejected(rule: Rule, body: str, addresses: Addresses, users: bool) -> Reading | None:
    # res_pjsip_session ("(UDP:addr)") names the endpoint before the
    # address — configuration, not client text — so the first address
    # field is the real one and a fake one dialled as the extension comes
    # after it. chan_sip may put a client-supplied user name there, so its
    # form is accepted only when every reading names the same address.
    # Older res_pjsip_session writes "(UDP:%s:%d)" with a bare IPv6 address:
    # with a transport the port is always present. The user is the
    # extension dialled, as the strict grammar reads it (the number tried:
    # toll fraud); "" when only the candidates name the address.
    m = (_CALL_REJECTED_STRICT if users else _CALL_REJECTED_PLAIN).match(body)
    exten = "" if m is None or not users else cap(m.group("user"))
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
    return None if host is None else (host, rule.event, rule.jail, exten)


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


def security_event(rule: Rule, body: str, addresses: Addresses, users: bool) -> Reading | None:
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
    # AccountID: the account (AMI: user name; SIP: the From user or the
    # digest user name) as the client sent it.
    user = account_id(body, head_end, pos) if users else ""
    return host, what, "ami" if service == "AMI" else rule.jail, user
