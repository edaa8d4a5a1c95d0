"""Recognise failure events in PBX, SSH and web logs (DESIGN §4).

A *recogniser* turns log lines into :class:`~pbxfw.ips.events.Failure`
objects. Each source kind has one:

========================  ==============================================  ==========
kind                      lines                                            jail
========================  ==============================================  ==========
``asterisk_messages``     Asterisk ``messages`` (NOTICE lines of          ``asterisk``
                          chan_sip, res_pjsip, chan_iax2, manager.c)      / ``ami``
``asterisk_security``     Asterisk ``security_log`` (res_security_log     ``asterisk``
                          ``SecurityEvent=`` lines)                       / ``ami``
``ssh``                   sshd / sshd-session / dropbear in auth.log      ``ssh``
``web``                   nginx ``error.log`` auth failures and           ``web``
                          pbxfw's own web login failure lines
========================  ==============================================  ==========

Both Asterisk kinds accept every Asterisk line form (a ``messages`` file may
carry SECURITY lines and vice versa, depending on ``logger.conf``); they are
separate kinds so that each file gets its own recogniser state.

Contract
--------
* The address is taken **only** from the field the program wrote for the
  remote party, never from text the client controls (SIP From/To, display
  names, Call-ID, User-Agent, account or session ids, dialled extension, the
  SSH user name, HTTP request) and never from ``LocalAddress``. Where the
  client controls text on *both* sides of the address field the line is
  parsed against the exact grammar the program writes; a line that still has
  two readings naming different addresses is ambiguous and yields nothing
  (we would rather miss one attempt than ban a third party).
* Normal signalling (``ChallengeSent``, ``SuccessfulAuth``, any
  ``Severity="Informational"`` event) is never a failure.
* ``Failure.time`` is the log's own time stamp as an aware UTC datetime.
  Stamps without a zone are local time of ``tz`` (default: the host's zone);
  stamps without a year get the year that puts them nearest ``reference``
  (so a December line read in January lands in the previous year).
* ``Failure.key`` pairs the NOTICE and the SECURITY line that Asterisk writes
  for one PJSIP/chan_sip/AMI failure so the detector counts it once; see
  :func:`failure_key` and docs/ips-formats.md.
* ``Failure.event`` is a fixed description chosen here, never text copied
  from the line, so it is safe to show anywhere.
* One SSH attempt gives one failure: the lines sshd and PAM write for it
  after the first (same sshd pid) yield nothing (:class:`SshAttempts`; the
  state is per recogniser, i.e. per file, across calls).
* A line longer than :data:`MAX_LINE` is never a failure.

Speed: a line is first tested with plain substring checks; a regex runs only
on lines that contain a trigger, and :meth:`Recogniser.scan_text` /
:meth:`Recogniser.scan_bytes` find the coarse triggers in a whole text with
``find`` or a regex search so that lines without one cost no Python work at
all (scan_bytes does not even decode them). With the kind detected per line,
a text whose lines all start with "[" is searched for the Asterisk triggers
only (see _NOT_BRACKET). The usual ``[YYYY-MM-DD HH:MM:SS]`` Asterisk stamp
is sliced and cached per second instead of parsed; addresses are cached by
field text and by bare address. Figures: docs/benchmarks-ips.md.
"""

from __future__ import annotations

import ipaddress
import operator
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, AnyStr

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure

__all__ = [
    "KINDS",
    "MAX_LINE",
    "SSH_ATTEMPT_SECONDS",
    "SSH_TAG",
    "WEB_LOGIN_FAILURE_FORMAT",
    "Recogniser",
    "SshAttempts",
    "detect_kind",
    "failure_key",
    "format_web_login_failure",
    "infer_year",
    "parse_remote_address",
    "recognise_lines",
    "recognise_text",
]

#: Lines longer than this (bytes for :meth:`Recogniser.scan_bytes`, characters
#: otherwise) are never a failure: no program we read writes one (nginx cuts
#: its error lines at 2 KiB, syslog daemons at a few KiB), and a regex over an
#: unbounded line is unbounded work.
MAX_LINE = 64 << 10

#: The source kinds, in the order auto-detection tries them.
KINDS: tuple[str, ...] = ("asterisk_security", "asterisk_messages", "ssh", "web")

#: The line pbxfw's web layer writes for a failed login (one per attempt).
#: ``{time}`` is ISO 8601 UTC with seconds, ``{address}`` the client's
#: address as seen by the server socket, ``{user}`` the name typed, JSON
#: string-escaped (quotes included). The address comes *before* the
#: client-controlled user name so that no user name can move it.
WEB_LOGIN_FAILURE_FORMAT = "{time} pbxfw-web: login failed from {address} for user {user}"


def format_web_login_failure(time: datetime, user: str, addr: IPAddress | str) -> str:
    """The web login failure line (without newline) that :class:`Recogniser` parses.

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


# ---------------------------------------------------------------------------
# Time stamps

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


#: How far a year-less stamp may lie after the reference time (clock skew,
#: time zones) before it is taken to belong to the year before.
_FUTURE_TOLERANCE = timedelta(days=2)


def infer_year(month: int, day: int, reference: datetime) -> int:
    """The year of a year-less stamp ``month``/``day`` read at ``reference``.

    A log line is written before it is read, so the stamp is the latest
    ``month``/``day`` that is not after ``reference`` (plus two days of
    tolerance for clock skew and zones): a ``Dec 31`` line read on 2 January
    is last year's, a ``Mar 24`` line read in January too, and a ``Jan 1``
    line read at 23:59 on 31 December (the writer's clock slightly ahead)
    is next year's. ``Feb 29`` goes back to the latest leap year.
    """
    ref = reference.replace(tzinfo=None)
    for year in range(ref.year + 1, ref.year - 9, -1):
        try:
            candidate = ref.replace(year=year, month=month, day=day)
        except ValueError:  # Feb 29 in a common year
            continue
        if candidate - ref <= _FUTURE_TOLERANCE:
            return year
    return ref.year


# ---------------------------------------------------------------------------
# Addresses


def _ip(text: str) -> IPAddress | None:
    """One bare address (brackets allowed), ``::ffff:a.b.c.d`` mapped to IPv4."""
    if ":" not in text:
        # inet_pton is strict (four decimal octets, no leading zeros) and an
        # order of magnitude faster than ipaddress's own parser.
        try:
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
        except OSError:
            return None
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if "%" in text:  # zone index: a link-local peer, not something to ban
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_remote_address(text: str, *, port: bool | None = None) -> IPAddress | None:
    """Parse an address field as PBX, SSH and web logs write it; None if it is not one.

    Accepted: ``1.2.3.4``, ``1.2.3.4:5060``, ``2001:db8::1``, ``[2001:db8::1]``,
    ``[2001:db8::1]:5060``, ``IPV4/UDP/1.2.3.4/5060``, ``IPV6/TCP/2001:db8::1/5061``;
    ``::ffff:a.b.c.d`` forms give the IPv4 address. ``port`` says whether an
    unbracketed IPv6 text ends with ``:port`` (dropbear's ``::ffff:1.2.3.4:22``):
    True: it does; False: never; None: only when there is exactly one colon.
    """
    bare = _bare_address(text, port)
    return None if bare is None else _ip(bare)


def _bare_address(text: str, port: bool | None) -> str | None:
    """The address part of an address field (port and ``IPVn/proto/`` removed), or None.

    ``parse_remote_address(text, port=port)`` is ``_ip(_bare_address(text, port))``;
    the split lets :class:`Recogniser` cache by the bare address, which repeats
    across the many source ports of one attacker.
    """
    if text.startswith(("IPV4/", "IPV6/")):
        parts = text.split("/")
        return parts[2] if len(parts) == 4 and parts[3].isdigit() else None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return None
        rest = text[close + 1 :]
        if rest and not (rest[0] == ":" and rest[1:].isdigit()):
            return None
        return text[1:close]
    colons = text.count(":")
    if colons == 1 or (port and colons > 1):
        head, _, tail = text.rpartition(":")
        if not tail.isdigit():
            return None
        return head
    if port and colons == 0:
        return None
    return text


# ---------------------------------------------------------------------------
# Line grammars. Every regex is anchored and matched only after a substring
# prefilter has said the line may be interesting.

# Asterisk logger prefix: "[2026-11-01 08:42:16] NOTICE[123][C-0001] chan_sip.c: ",
# "[Nov  1 08:42:16] NOTICE[123]: manager.c:2350 authenticate: ",
# "[2016-06-09 00:01:02] NOTICE [22382] manager.c: " and the syslog form
# "Nov  4 18:30:40 host asterisk[32229]: NOTICE[32257]: chan_sip.c:23417 in fn: ".
_ASTERISK_PREFIX = re.compile(
    r"(?:\[(?P<date>\d{4}-\d\d-\d\d)[ T](?P<time>\d\d:\d\d:\d\d)(?:[.,]\d+)?\]"
    r"|\[(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<ytime>\d\d:\d\d:\d\d)(?:[.,]\d+)?\]"
    r"|(?P<smon>[A-Z][a-z]{2}) {1,2}(?P<sday>\d{1,2}) (?P<stime>\d\d:\d\d:\d\d)"
    r" \S+ asterisk(?:\[\d+\])?:"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ asterisk(?:\[\d+\])?:)"
    r" ?(?P<level>NOTICE|SECURITY) ?\[\d+\](?:\[[^\]\s]*\])?:? "
    r"(?P<src>[\w./-]+\.c)(?::\d+)?(?: in)?(?: \w+)?: "
)

# chan_sip: "Registration from '<To header>' failed for '<addr>' - <reason>"; the
# header is raw client text, everything after the address is chan_sip's own,
# so the end-anchored greedy match takes the real (last) address field.
_SIP_REGISTRATION = re.compile(
    r"Registration from '.*' failed for '(?P<addr>[0-9A-Fa-f:.\[\]]+)' - (?P<reason>[^']+)$"
)

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

_CALL_SOURCES = frozenset({"chan_sip.c", "res_pjsip_session.c", "chan_pjsip.c"})

# chan_iax2 (address first, written by Asterisk; the peer name follows):
_IAX_HOST = re.compile(
    r"Host (?P<addr>[0-9A-Fa-f:.\[\]]+) failed (?:to authenticate as|MD5 authentication for) '"
)
# "No registration for peer '<name>' (from <addr>)": the name is client text,
# the address is last and end-anchored.
_IAX_NO_REGISTRATION = re.compile(
    r"No registration for peer '.*' \(from (?P<addr>[0-9A-Fa-f:.\[\]]+)\)$"
)

# manager.c: "<addr> tried to authenticate with nonexistent user '<user>'",
# "<addr> failed to authenticate as '<user>'" (address first).
_AMI_LOGIN = re.compile(
    r"(?P<addr>[0-9A-Fa-f:.\[\]]+) (?P<what>tried to authenticate with nonexistent user"
    r"|failed to authenticate as|failed to pass IP ACL as) '"
)

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
_FAILED_SECURITY_EVENTS = frozenset(
    {"FailedACL", "InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword"}
)

# syslog prefix of sshd / sshd-session (OpenSSH >= 9.8) / dropbear, in BSD
# ("Nov  1 08:42:16 host sshd[1]: ") or RFC 3339 form; Solaris adds
# "[ID 800047 auth.info] "; dropbear may repeat "[pid] Mon dd hh:mm:ss " inside
# the message (journal). The pid pairs the lines sshd writes for one attempt.
_SSH_PREFIX = re.compile(
    r"(?:(?P<smon>[A-Z][a-z]{2}) {1,2}(?P<sday>\d{1,2}) (?P<stime>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?))"
    r" \S+ (?P<prog>sshd|sshd-session|dropbear)(?:\[(?P<pid>\d+)\])?: "
    r"(?:\[ID \d+ [a-z]+\.[a-z]+\] )?"
    r"(?:\[\d+\] [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?"
    r"(?:(?:error|fatal): (?:PAM: )?)?"
)

# Stages of the lines OpenSSH writes for one attempt (see SshAttempts): the
# tens are the family, the units the order within it. A PAM host writes, for
# one password attempt, pam_unix's line and then sshd's "Failed password"
# (both from the per-connection process: same pid); keyboard-interactive/pam
# adds sshd's "PAM: Authentication failure" in between, and pam_unix then runs
# in a child process (another pid). The last try of a connection writes
# "maximum authentication attempts exceeded" and then "Disconnecting ...: Too
# many authentication failures", same pid.
_PAM_UNIX, _PAM_ERROR, _FAILED_PAM, _MAXTRIES, _DISCONNECT = 11, 12, 13, 21, 22
#: The stage that closes each family.
_LAST_STAGE = {1: 3, 2: 2}
#: Seconds within which a later line of an attempt follows its first one
#: (pam_unix delays a failure by 2 s ± 25 %; pam_faildelay may add more).
SSH_ATTEMPT_SECONDS = 30

# OpenSSH format strings (auth.c, auth2.c, auth-pam.c, packet.c):
#   auth_log: "%s %s%s%s for %s%.100s from %.200s port %d ssh2%s%s"
#     (Failed, method[/submethod], "invalid user ", user, addr, port, ": ", info)
#   getpwnamallow: "Invalid user %.100s from %.100s port %d"
#   auth_maxtries_exceeded: "maximum authentication attempts exceeded for
#     %s%.100s from %.200s port %d ssh2" (+ " [preauth]")
#   ssh_packet_disconnect: "Disconnecting %s: %.100s" with the connection id
#     "authenticating user %s %s port %d" / "invalid user %s %s port %d"
#   sshpam: "PAM: %s for %s%.100s from %.100s" ("illegal user ")
# What the client controls: the user name (but never a ":" in it: auth2.c
# cuts "user:style" at the first colon before anything logs it), the method
# name of a failed request (logged as the client sent it), and the auth info
# after "ssh2: " (certificate key ids, hostbased client user/host). So:
# - messages whose text after the address is sshd's own are end-anchored
#   (greedy user: the real, last, address field wins);
# - "Failed": the user is matched as text without ":" and the address field
#   must be followed by ": <info>" or the end. The info starts with the first
#   colon after the user, so no address field inside the info can be taken
#   (the address is the last " from " before that colon), and none in the user
#   either (greedy). The method is read as a plain token (no space, no colon);
#   a client-sent method that holds a whole forged "for ... ssh2: " is caught
#   by _failed_other_reading() below.
_FAILED_METHODS_PAM = frozenset({"password", "keyboard-interactive"})
# The other reading of a "Failed" line with auth info: the method a client
# sent for a method sshd does not know is logged as sent and may hold
# "x for invalid user a from VICTIM port 1 ssh2: y"; such a request carries
# no auth info, so its line ends with sshd's real "for <user> from <addr> port
# <n> ssh2". If the info read by the first reading ends so, the line has two
# readings: it is not counted.
_FAILED_TAIL = re.compile(r" from [0-9A-Fa-f:.]+ port \d+ ssh[12](?: \[preauth\])?\s*$")


def _failed_other_reading(info: str) -> bool:
    """Whether ``info`` ends like sshd's ``for <user> from <addr> port <n> ssh2``.

    That is ``(?:.* )?for [^:]* from <addr> port <n> ssh2$``, decided in
    linear time (the info is client text): the tail fixes where " from" is;
    "for " must then start after the last colon before it.
    """
    tail = _FAILED_TAIL.search(info)
    if tail is None:
        return False
    at = tail.start()
    colon = info.rfind(":", 0, at)
    if colon < 0 and at >= 4 and info.startswith("for "):
        return True
    return info.find(" for ", colon + 1, at) >= 0


_SSH_RULES: tuple[tuple[re.Pattern[str], str, int], ...] = (
    (
        re.compile(
            r"Failed (?P<method>[\w@.+-]+)(?:/[\w@.+-]+)? for [^:]*"
            r" from (?P<addr>[0-9A-Fa-f:.]+)"
            r"(?: port \d+(?: ssh[12](?:: (?P<info>.*))?)?)?(?: \[preauth\])?\s*$"
        ),
        "ssh failed authentication",
        _FAILED_PAM,
    ),
    (
        re.compile(
            r"[Ii]nvalid user .* from (?P<addr>[0-9A-Fa-f:.]+)(?: port \d+)?(?: \[preauth\])?\s*$"
        ),
        "ssh invalid user",
        0,
    ),
    (
        re.compile(
            r"maximum authentication attempts exceeded for .* from (?P<addr>[0-9A-Fa-f:.]+)"
            r" port \d+ ssh2(?: \[preauth\])?\s*$"
        ),
        "ssh too many authentication failures",
        _MAXTRIES,
    ),
    (
        re.compile(
            r"Disconnecting (?:authenticating|invalid) user .* (?P<addr>[0-9A-Fa-f:.]+) port \d+: "
            r"Too many authentication failures(?: \[preauth\])?\s*$"
        ),
        "ssh too many authentication failures",
        _DISCONNECT,
    ),
    (
        # PAM writes the fields up to rhost itself; none of them can hold a space.
        re.compile(
            r"pam_unix\((?:sshd|dropbear):auth\): authentication failure; logname=\S* uid=\d* "
            r"euid=\d* tty=\S* ruser=\S* rhost=(?P<addr>[0-9A-Fa-f:.]+)(?:\s|$)"
        ),
        "ssh PAM authentication failure",
        _PAM_UNIX,
    ),
    (
        re.compile(
            r"Authentication failure for (?:illegal user )?.* from (?P<addr>[0-9A-Fa-f:.]+)"
            r"(?: via [0-9A-Fa-f:.]+)?\s*$"
        ),
        "ssh PAM authentication failure",
        _PAM_ERROR,
    ),
    # dropbear: the user name is in quotes before the address, "addr:port" last.
    (
        re.compile(r"[Bb]ad password attempt for '.*' from (?P<paddr>[0-9A-Fa-f:.\[\]]+:\d+)\s*$"),
        "dropbear bad password",
        0,
    ),
    (
        re.compile(
            r"[Ll]ogin attempt for nonexistent user(?: '.*')? from "
            r"(?P<paddr>[0-9A-Fa-f:.\[\]]+:\d+)\s*$"
        ),
        "dropbear invalid user",
        0,
    ),
    (
        re.compile(
            r"Exit before auth.*: Max auth tries reached - user '.*' from "
            r"(?P<paddr>[0-9A-Fa-f:.\[\]]+:\d+)\s*$"
        ),
        "dropbear too many authentication failures",
        0,
    ),
)
_SSH_TRIGGERS: tuple[str, ...] = (
    "Failed ",
    "nvalid user ",
    "maximum authentication attempts",
    "Too many authentication failures",
    "authentication failure;",
    "Authentication failure for",
    "password attempt for",
    "ogin attempt for nonexistent",
    "Max auth tries reached",
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
_SSH_PROGRAMS = frozenset({"sshd", "sshd-session", "dropbear"})
_NGINX_STAMP = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[")
_NGINX_AUTH = re.compile(
    r"(?P<date>\d{4}/\d\d/\d\d) (?P<time>\d\d:\d\d:\d\d) \[error\] \d+#\d+: \*\d+ "
    r'user "[^:]*"(?:(?P<mismatch>: password mismatch)| was not found in "[^"]*")'
    r", client: (?P<addr>[0-9A-Fa-f:.]+), server: "
)

_WEB_LOGIN = re.compile(
    r"(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
    r"pbxfw-web: login failed from (?P<addr>[0-9A-Fa-f:.]+) for user "
)

# Substrings that a recognised line of each kind must contain. Used per line
# (``in``) and per file (``str.find``) before any regex runs.
_ASTERISK_TRIGGERS: tuple[str, ...] = (  # any hit counts; the usual ones first
    "' failed for '",
    'SecurityEvent="InvalidAccountID"',
    'SecurityEvent="ChallengeResponseFailed"',
    'SecurityEvent="InvalidPassword"',
    'SecurityEvent="FailedACL"',
    "rejected because extension not found",
    " failed to authenticate as '",
    "tried to authenticate with nonexistent user",
    " failed to pass IP ACL as '",
    "No registration for peer '",
    " failed MD5 authentication for '",
)
_WEB_TRIGGERS: tuple[str, ...] = (
    "password mismatch",
    "was not found in",
    "pbxfw-web: login failed",
)

_TRIGGERS: dict[str, tuple[str, ...]] = {
    "asterisk_security": _ASTERISK_TRIGGERS,
    "asterisk_messages": _ASTERISK_TRIGGERS,
    "ssh": _SSH_TRIGGERS,
    "web": _WEB_TRIGGERS,
}
_ALL_TRIGGERS: tuple[str, ...] = tuple(
    dict.fromkeys(_ASTERISK_TRIGGERS + _SSH_TRIGGERS + _WEB_TRIGGERS)
)

# Coarser triggers for the whole-file fast path: one pass over the text costs
# about as much as per-line work on a few thousand lines, so each kind gets as
# few passes as possible. Each hit line then goes through the precise per-line
# triggers above. The coarse triggers of a kind are *complete*: every line its
# recogniser accepts contains one (every Asterisk failure message is a NOTICE,
# a failed SecurityEvent is taken only with Severity="Error", the ssh prefix
# has a space before the program name, every web failure line contains one of
# its per-line triggers), so the fast path gives exactly what the per-line
# path gives, whatever text the lines hold. Tested.
_SCAN_TRIGGERS: dict[str, tuple[str, ...]] = {
    "asterisk_security": ('Severity="Error"', "NOTICE"),
    "asterisk_messages": ('Severity="Error"', "NOTICE"),
    "ssh": (" sshd", " dropbear"),
    "web": _WEB_TRIGGERS,
}
_ALL_SCAN_TRIGGERS: tuple[str, ...] = tuple(
    dict.fromkeys(t for triggers in _SCAN_TRIGGERS.values() for t in triggers)
)

# How the fast path looks for a coarse trigger: a needle of 12 characters or
# more with str/bytes.find (its skip table makes it fast), a shorter one with
# the regex engine's literal-prefix search (faster than find for short
# needles: 45 against 70-85 ms on 164 MB), matching on to the end of the line.
_Needle = str | re.Pattern[str]
_NeedleB = bytes | re.Pattern[bytes]


def _needles(triggers: tuple[str, ...]) -> tuple[tuple[_Needle, ...], tuple[_NeedleB, ...]]:
    text: list[_Needle] = []
    raw: list[_NeedleB] = []
    for trigger in triggers:
        if len(trigger) >= 12:
            text.append(trigger)
            raw.append(trigger.encode("ascii"))
        else:
            text.append(re.compile(re.escape(trigger) + r"[^\n]*"))
            raw.append(re.compile(re.escape(trigger).encode("ascii") + rb"[^\n]*"))
    return tuple(text), tuple(raw)


#: kind (None: every kind) -> the coarse triggers for str and for bytes.
_NEEDLES: dict[str | None, tuple[tuple[_Needle, ...], tuple[_NeedleB, ...]]] = {
    kind: _needles(triggers) for kind, triggers in _SCAN_TRIGGERS.items()
}
_NEEDLES[None] = _needles(_ALL_SCAN_TRIGGERS)
#: kind (None: every kind) -> the per-line triggers as str and as bytes.
_FINE: dict[str | None, tuple[tuple[str, ...], tuple[bytes, ...]]] = {
    kind: (triggers, tuple(t.encode("ascii") for t in triggers))
    for kind, triggers in [*_TRIGGERS.items(), (None, _ALL_TRIGGERS)]
}

# Kind detected per line (kind None): a line that starts with "[" can only be
# an Asterisk failure (every ssh and web grammar starts with a digit or a
# month name), so where few lines start otherwise only the Asterisk coarse
# triggers are searched and those few lines are looked at one by one.
_NOT_BRACKET = re.compile(r"\n(?=[^\[])")
_NOT_BRACKET_B = re.compile(rb"\n(?=[^\[])")
#: At most one line in this many bytes may start without "[" for that.
_BYTES_PER_OTHER_LINE = 1024


def _security_remote_address(body: str, head_end: int) -> str | None:
    """The RemoteAddress value of a SecurityEvent body (see _SECURITY_PAIR)."""
    pos = len(body)
    while True:
        pos = body.rfind('LocalAddress="', head_end, pos)
        if pos < 0:
            return None
        if pos == head_end or body.startswith('",', pos - 2):
            m = _SECURITY_PAIR_ONLY.match(body, pos)
            if m is not None and _SECURITY_TAIL.match(body, m.end()) is not None:
                return m.group("addr")


#: The stamp between the brackets of the usual Asterisk prefix (first branch
#: of _ASTERISK_PREFIX without fraction), and the rest of that prefix.
_DATED = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
_ASTERISK_REST = re.compile(
    r" ?(?P<level>NOTICE|SECURITY) ?\[\d+\](?:\[[^\]\s]*\])?:? "
    r"(?P<src>[\w./-]+\.c)(?::\d+)?(?: in)?(?: \w+)?: "
)
assert _ASTERISK_PREFIX.pattern.endswith(_ASTERISK_REST.pattern)
#: Cache marker: not a "[YYYY-MM-DD HH:MM:SS]" prefix (compared by identity).
_NOT_DATED: tuple[datetime, int] = (datetime(1970, 1, 1, tzinfo=UTC), -1)
#: Cache marker: not in the cache (compared by identity; a cached value may be None).
_MISSING: Any = object()

#: (method as captured or None, reason) -> event text of a strict PJSIP match.
_PJSIP_EVENTS: dict[tuple[str | None, str], str] = {}


def _pjsip_event(method: str, reason: str) -> str:
    return f"PJSIP {method}: {reason}"


def _pjsip_strict_event(method: str | None, reason: str) -> str:
    """The event of a strict PJSIP match, added to _PJSIP_EVENTS."""
    # _PJSIP_METHOD's test on the method the strict grammar captured.
    name = method
    if name is None or not (
        len(name) <= 16 and name.isascii() and name.isalpha() and name.isupper()
    ):
        name = "request"
    if len(_PJSIP_EVENTS) > 256:
        _PJSIP_EVENTS.clear()
    event = _PJSIP_EVENTS[method, reason] = _pjsip_event(name, reason)
    return event


_SECURITY_WHAT: dict[tuple[str, str], str] = {}


def _security_what(event: str, service: str) -> str:
    if len(_SECURITY_WHAT) > 256:
        _SECURITY_WHAT.clear()
    what = _SECURITY_WHAT[event, service] = f"SecurityEvent {event} ({service})"
    return what


def detect_kind(line: str) -> str | None:
    """Guess the source kind of one line from cheap markers (None: not a log we read).

    The forms that start with their writer's own prefix (nginx's stamp, an
    sshd / dropbear syslog prefix, pbxfw's web login line) are told by that
    prefix first, so client text further on the line ("NOTICE" in a Host
    header or an SSH user name) cannot make the line pass for another kind.
    """
    if line[:1] != "[":  # Asterisk's own files: every line starts with "["
        if line[4:5] == "/" and _NGINX_STAMP.match(line) is not None:
            return "web"
        # The syslog tag ends at the line's first ": " (a stamp and a host
        # name hold none), so the program is the word before it.
        colon = line.find(": ")
        if colon > 0:
            tag = line[line.rfind(" ", 0, colon) + 1 : colon]
            if tag.partition("[")[0] in _SSH_PROGRAMS:
                return "ssh"
            if tag == "pbxfw-web" and _WEB_LOGIN.match(line) is not None:
                return "web"
    if "SECURITY" in line and "SecurityEvent=" in line:
        return "asterisk_security"
    if "NOTICE" in line:
        return "asterisk_messages"
    if "sshd" in line or "dropbear" in line:
        return "ssh"
    if "[error]" in line or "pbxfw-web:" in line:
        return "web"
    return None


def failure_key(jail: str, host: IPAddress, epoch: int, ordinal: int) -> str:
    """The dedup key of the ``ordinal``-th failure of ``host`` in second ``epoch``.

    Asterisk writes one PJSIP/chan_sip/AMI failure twice — a NOTICE line in
    ``messages`` and a SecurityEvent in ``security_log`` — in the same second.
    Each stream numbers its failures per (line class, jail, host, second);
    the n-th NOTICE and the n-th SECURITY failure of one host in one second get
    the same key, so the detector (which drops a repeated key) counts
    max(NOTICEs, SECURITY events) per host and second: one per attempt, even
    when a tool fires many attempts per second with one reused Call-ID. The
    Call-ID is not part of the key: it is client text and constant per tool.
    """
    return f"{jail}|{host}|{epoch}|{ordinal}"


#: Marks the key of an ssh failure that a parallel scan's worker leaves to
#: the scan to pair (see Recogniser(pair_ssh=False)); never seen outside it.
SSH_TAG = "\x00ssh|"


def _ssh_tag(stage: int, pid: str, any_pid: bool) -> str:
    return f"{SSH_TAG}{stage}|{int(any_pid)}|{pid}"


class SshAttempts:
    """Counts one SSH attempt once although sshd and PAM write several lines for it.

    Per host, the attempts under way: (stage, "prog[pid]", epoch) of the last
    line seen of each. A line whose stage comes later in the same family than
    an attempt under way of the same host — from the same process, or from
    any process when PAM ran in a child (keyboard-interactive) — within
    :data:`SSH_ATTEMPT_SECONDS` continues that attempt (oldest first): the
    caller does not count it. Any other line starts an attempt and counts, so
    a PAM line without its sshd line still counts, and a host's count never
    falls below the number of its PAM (or sshd) lines. Bounded: at most 64
    attempts per host, and hosts with nothing recent are dropped in sweeps.
    """

    __slots__ = ("_hosts", "_newest")

    #: Hosts kept before a sweep drops those with nothing recent.
    MAX_HOSTS = 8192

    def __init__(self) -> None:
        self._hosts: dict[str, list[tuple[int, str, int]]] = {}
        self._newest = 0

    def follows(self, host: str, stage: int, pid: str, any_pid: bool, epoch: int) -> bool:
        """Whether this line continues an attempt already counted; records it."""
        if epoch > self._newest:
            self._newest = epoch
        family, order = divmod(stage, 10)
        last = order == _LAST_STAGE[family]
        entries = self._hosts.get(host)
        if entries is not None:
            for i, (seen, seen_pid, seen_epoch) in enumerate(entries):
                if (
                    seen // 10 == family
                    and seen % 10 < order
                    and (seen_pid == pid or (any_pid and seen % 10 == 1))
                    and -SSH_ATTEMPT_SECONDS <= epoch - seen_epoch <= SSH_ATTEMPT_SECONDS
                ):
                    if last:
                        del entries[i]
                    else:
                        entries[i] = (stage, pid, epoch)
                    return True
        if not last:
            if entries is None:
                if len(self._hosts) >= self.MAX_HOSTS:
                    self._sweep()
                entries = self._hosts[host] = []
            else:
                # Attempts that can no longer be continued.
                entries[:] = [e for e in entries if epoch - e[2] <= SSH_ATTEMPT_SECONDS][-63:]
            entries.append((stage, pid, epoch))
        return False

    def follows_tag(self, tag: str, host: IPAddress, epoch: int) -> bool:
        """:meth:`follows` for a failure a parallel scan's worker tagged (key ``tag``)."""
        stage, any_pid, pid = tag[len(SSH_TAG) :].split("|", 2)
        return self.follows(str(host), int(stage), pid, any_pid == "1", epoch)

    def _sweep(self) -> None:
        horizon = self._newest - SSH_ATTEMPT_SECONDS
        self._hosts = {
            host: entries
            for host, entries in self._hosts.items()
            if entries and entries[-1][2] >= horizon
        }
        if len(self._hosts) >= self.MAX_HOSTS:  # a flood of fresh hosts: start over
            self._hosts = {}


class Recogniser:
    """Recognise failures in one log stream of one kind; keeps per-stream state.

    Create one per file being read (the agent keeps it for the life of the
    tail). ``reference`` is the time the stream is read at — it supplies the
    year of year-less stamps; ``tz`` is the zone of stamps written without one
    (None: the host's local zone). ``kind`` None recognises every kind,
    detecting it per line. Not thread-safe.
    """

    __slots__ = (
        "_addr_cache",
        "_attempts",
        "_dated_cache",
        "_host_cache",
        "_lead",
        "_make",
        "_ordinals",
        "_ordinals_epoch",
        "_stamp_cache",
        "file",
        "kind",
        "newlines",
        "reference",
        "scan_triggers",
        "triggers",
        "tz",
    )

    def __init__(
        self,
        kind: str | None,
        *,
        file: str = "",
        reference: datetime | None = None,
        tz: tzinfo | None = None,
        make: Callable[..., Failure] = Failure,
        lead: list[tuple[str, str, str, int]] | None = None,
        pair_ssh: bool = True,
    ) -> None:
        """``make`` builds each failure from its fields (the parallel scan's
        workers make plain tuples); ``lead``, when a list, collects the
        (class, jail, host, epoch) of each keyed failure up to the first
        change of second (parallel scans repair keys across chunks).
        ``pair_ssh`` False (a parallel scan's worker) leaves the lines of one
        SSH attempt unpaired, tagged in ``key`` (:data:`SSH_TAG`), for the
        scan to pair in file order with :attr:`ssh_attempts`."""
        if kind is not None and kind not in _TRIGGERS:
            raise ValueError(f"unknown log kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.file = file
        self.reference = reference if reference is not None else datetime.now(UTC)
        self.tz = tz
        self.triggers: tuple[str, ...] = _TRIGGERS[kind] if kind is not None else _ALL_TRIGGERS
        self.scan_triggers: tuple[str, ...] = (
            _SCAN_TRIGGERS[kind] if kind is not None else _ALL_SCAN_TRIGGERS
        )
        # Small caches: the same stamp (second) and the same attacker address
        # repeat on many consecutive lines. Bounded by clearing.
        self._stamp_cache: dict[tuple[str, str, str], tuple[datetime, int] | None] = {}
        # "2026-11-01 08:42:16" (the text between the brackets) -> stamp;
        # _NOT_DATED: not that form, use the general prefix grammar.
        self._dated_cache: dict[str, tuple[datetime, int] | None] = {}
        # field text (or (text, port) for port not None) -> address, canonical text
        self._addr_cache: dict[str | tuple[str, bool], tuple[IPAddress, str] | None] = {}
        # bare address text -> address, canonical text
        self._host_cache: dict[str, tuple[IPAddress, str] | None] = {}
        self._ordinals: dict[tuple[str, str, str], int] = {}
        self._ordinals_epoch = -1
        self._lead = lead
        self._make = make
        self._attempts: SshAttempts | None = SshAttempts() if pair_ssh else None
        #: Newlines seen by the last completed scan_text / scan_bytes.
        self.newlines = 0

    def ordinal_state(self) -> tuple[int, dict[tuple[str, str, str], int]]:
        """(second, ordinals of its keyed failures): where the next chunk of a
        parallel scan picks up the dedup keys."""
        return self._ordinals_epoch, self._ordinals

    @property
    def ssh_attempts(self) -> SshAttempts | None:
        """The SSH attempts under way (None with ``pair_ssh`` False): a
        parallel scan pairs its workers' tagged lines with it, in file order."""
        return self._attempts

    # -- helpers ------------------------------------------------------------

    def _address(self, text: str, port: bool | None = None) -> tuple[IPAddress, str] | None:
        """The address and its canonical text (for keys), cached: attackers repeat."""
        cache = self._addr_cache
        key: str | tuple[str, bool] = text if port is None else (text, port)
        found: tuple[IPAddress, str] | None = cache.get(key, _MISSING)
        if found is not _MISSING:
            return found
        if len(cache) > 8192:
            cache.clear()
        bare = _bare_address(text, port)
        found = None
        if bare is not None:
            hosts = self._host_cache
            found = hosts.get(bare, _MISSING)
            if found is _MISSING:
                if len(hosts) > 8192:
                    hosts.clear()
                address = _ip(bare)
                if address is None:
                    found = None
                elif address.version == 4 and ":" not in bare:
                    found = (address, bare)  # inet_pton accepted it: already canonical
                else:
                    found = (address, str(address))
                hosts[bare] = found
        cache[key] = found
        return found

    def _local(self, kind: str, a: str, b: str) -> tuple[datetime, int] | None:
        """A stamp without zone as (UTC time, epoch second), cached.

        ("D", "2026-11-01", "08:42:16") or ("Nov", "1", "08:42:16").
        """
        cache = self._stamp_cache
        key = (kind, a, b)
        try:
            return cache[key]
        except KeyError:
            pass
        if len(cache) > 4096:
            cache.clear()
        try:
            if kind == "D":  # ISO date, possibly with "/" (nginx)
                y, mo, d = (int(x) for x in a.replace("/", "-").split("-"))
            else:
                mo = _MONTHS[kind]
                d = int(a)
                y = infer_year(mo, d, self.reference)
            hh, mm, ss = (int(x) for x in b.split(":"))
            naive = datetime(y, mo, d, hh, mm, ss)
        except (KeyError, ValueError):
            cache[key] = None
            return None
        stamp = cache[key] = self._utc(naive)
        return stamp

    def _utc(self, naive: datetime) -> tuple[datetime, int]:
        """A naive local stamp (zone ``tz``) as (UTC time, epoch second)."""
        # A naive datetime's astimezone() reads it as the host's local time.
        local = naive.replace(tzinfo=self.tz) if self.tz is not None else naive.astimezone()
        utc = local.astimezone(UTC)
        return utc, int(utc.timestamp())

    @staticmethod
    def _iso(text: str) -> tuple[datetime, int] | None:
        """An ISO 8601 stamp with zone as (UTC time, epoch second)."""
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if stamp.tzinfo is None:
            return None
        utc = stamp.astimezone(UTC)
        return utc, int(utc.timestamp())

    # -- per kind -------------------------------------------------------------

    def _dated(self, text: str) -> tuple[datetime, int] | None:
        """The stamp "YYYY-MM-DD HH:MM:SS" (or with "T"), None if invalid, or _NOT_DATED."""
        cache = self._dated_cache
        if len(cache) > 4096:
            cache.clear()
        found: tuple[datetime, int] | None
        if _DATED.fullmatch(text) is None:
            found = _NOT_DATED
        else:  # what _local("D", text[:10], text[11:]) gives, without its splitting
            try:
                naive = datetime(
                    int(text[0:4]),
                    int(text[5:7]),
                    int(text[8:10]),
                    int(text[11:13]),
                    int(text[14:16]),
                    int(text[17:19]),
                )
            except ValueError:
                found = None
            else:
                found = self._utc(naive)
        cache[text] = found
        return found

    def _asterisk(self, line: str, lineno: int) -> Failure | None:
        # Fast path for the usual "[YYYY-MM-DD HH:MM:SS] " prefix: the stamp is
        # sliced and cached by its text; the rest of _ASTERISK_PREFIX (whose
        # first branch is exactly this form) is matched from column 21.
        stamp: tuple[datetime, int] | None = _NOT_DATED
        if line[20:21] == "]" and line[:1] == "[":
            text = line[1:20]
            stamp = self._dated_cache.get(text, _MISSING)
            if stamp is _MISSING:
                stamp = self._dated(text)
        if stamp is not _NOT_DATED:
            if stamp is None:
                return None
            m = _ASTERISK_REST.match(line, 21)
            if m is None:
                return None
            level, src = m.groups()
        else:
            m = _ASTERISK_PREFIX.match(line)
            if m is None:
                return None
            date, clock, mon, day, ytime, smon, sday, stime, iso, level, src = m.groups()
            if date is not None:
                stamp = self._local("D", date, clock)
            elif mon is not None:
                stamp = self._local(mon, day, ytime)
            elif smon is not None:
                stamp = self._local(smon, sday, stime)
            else:
                stamp = self._iso(iso)
            if stamp is None:
                return None
        body = line[m.end() :].rstrip("\r\n")
        src = src[src.rfind("/") + 1 :]
        jail = "asterisk"
        if level == "SECURITY":
            if src != "res_security_log.c":
                return None
            s = _SECURITY_HEAD.match(body)
            if s is None:
                return None
            event, severity, service = s.groups()
            # Asterisk writes two severities: "Informational" for normal
            # signalling and "Error" for every failed event (main/security_events.c).
            if severity != "Error" or event not in _FAILED_SECURITY_EVENTS:
                return None
            # _security_remote_address(), whose first candidate (the last
            # LocalAddress field) is the real pair on every line Asterisk
            # writes, tried inline first.
            head_end = s.end()
            pos = body.rfind('LocalAddress="', head_end)
            pair = (
                _SECURITY_PAIR_ONLY.match(body, pos)
                if pos == head_end or (pos > head_end and body.startswith('",', pos - 2))
                else None
            )
            if pair is not None and _SECURITY_TAIL.match(body, pair.end()) is not None:
                addr = pair.group("addr")
            else:
                addr = _security_remote_address(body, head_end)
            if addr is None:
                return None
            host = self._addr_cache.get(addr, _MISSING)
            if host is _MISSING:
                host = self._address(addr)
            if service == "AMI":
                jail = "ami"
            what = _SECURITY_WHAT.get((event, service)) or _security_what(event, service)
        elif src == "manager.c":
            a = _AMI_LOGIN.match(body)
            if a is None:
                return None
            host = self._address(a.group("addr"), False)
            jail = "ami"
            what = {
                "tried to authenticate with nonexistent user": "AMI login with nonexistent user",
                "failed to authenticate as": "AMI login failed",
            }.get(a.group("what"), "AMI login refused by ACL")
        elif body.startswith("Request ") and src == "pjsip_distributor.c":
            p = _PJSIP_FAILED_STRICT.match(body)
            if p is not None:  # _pjsip()'s first case, inline
                method, addr, reason = p.groups()
                what = _PJSIP_EVENTS.get((method, reason)) or _pjsip_strict_event(method, reason)
                host = self._addr_cache.get(addr, _MISSING)
                if host is _MISSING:
                    host = self._address(addr)
            else:
                host, what = self._pjsip(body)
        elif body.startswith("Registration from '") and src == "chan_sip.c":
            r = _SIP_REGISTRATION.match(body)
            if r is None:
                return None
            host = self._address(r.group("addr"))
            what = "chan_sip registration failed"
        elif body.startswith("Call from '") and src in _CALL_SOURCES:
            host = self._call_rejected(body)
            what = "call to an extension not in the context"
        elif src != "chan_iax2.c":
            # The message is matched only together with the module that
            # writes it: dialplan Log()/NoOp lines or other modules may echo
            # client text that looks like one of these messages.
            return None
        elif body.startswith("Host "):
            i = _IAX_HOST.match(body)
            if i is None:
                return None
            host = self._address(i.group("addr"), False)
            what = "IAX2 authentication failed"
        elif body.startswith("No registration for peer '"):
            n = _IAX_NO_REGISTRATION.match(body)
            if n is None:
                return None
            host = self._address(n.group("addr"), False)
            what = "IAX2 registration for unknown peer"
        else:
            return None
        if host is None:
            return None
        # The dedup key (failure_key()): the ordinal of this failure per (line
        # class, jail, host) in its second. Keys only pair lines of the same
        # second, so the state of older seconds is dropped (bounded memory).
        epoch = stamp[1]
        slot = (level, jail, host[1])
        lead = self._lead
        if lead is not None:
            if lead and lead[-1][3] != epoch:
                self._lead = None
            else:
                lead.append((level, jail, host[1], epoch))
        ordinals = self._ordinals
        if epoch != self._ordinals_epoch:
            ordinals.clear()
            self._ordinals_epoch = epoch
        ordinal = ordinals[slot] = ordinals.get(slot, 0) + 1
        key = f"{jail}|{host[1]}|{epoch}|{ordinal}"
        return self._make(stamp[0], jail, host[0], what, self.file, lineno, key)

    def _pjsip(self, body: str) -> tuple[tuple[IPAddress, str] | None, str]:
        m = _PJSIP_FAILED_STRICT.match(body)
        if m is not None:
            method, addr, reason = m.groups()
            event = _PJSIP_EVENTS.get((method, reason)) or _pjsip_strict_event(method, reason)
            return self._address(addr), event
        else:
            # The From did not parse as pjsip prints it: accept the line only
            # if it has a single address field reading (no injection possible).
            r = _PJSIP_REASON.search(body)
            if r is None:
                return None, ""
            found = {c.group("addr") for c in _PJSIP_CANDIDATE.finditer(body)}
            if len(found) != 1:
                return None, ""
            addr, reason = found.pop(), r.group("reason")
        method = _PJSIP_METHOD.match(body)
        name = method.group("method") if method is not None else "request"
        return self._address(addr), _pjsip_event(name, reason)

    def _call_rejected(self, body: str) -> tuple[IPAddress, str] | None:
        # res_pjsip_session ("(UDP:addr)") names the endpoint before the
        # address — configuration, not client text — so the first address
        # field is the real one and a fake one dialled as the extension comes
        # after it. chan_sip may put a client-supplied user name there, so its
        # form is accepted only when every reading names the same address.
        m = _CALL_REJECTED_STRICT.match(body)
        if m is not None and m.group("transport") is not None:
            return self._call_address(m.group("transport"), m.group("addr"))
        if not body.endswith("'."):
            return None
        found = {
            self._call_address(c.group("transport"), c.group("addr"))
            for c in _CALL_REJECTED_CANDIDATE.finditer(body)
        }
        return found.pop() if len(found) == 1 else None

    def _call_address(self, transport: str | None, addr: str) -> tuple[IPAddress, str] | None:
        # Older res_pjsip_session writes "(UDP:%s:%d)" with a bare IPv6
        # address: the port is then always present.
        return self._address(addr, True if transport is not None else None)

    def _ssh(self, line: str, lineno: int) -> Failure | None:
        m = _SSH_PREFIX.match(line)
        if m is None:
            return None
        body = line[m.end() :].rstrip("\r\n")
        r = None
        what = ""
        stage = 0
        for rule, description, rule_stage in _SSH_RULES:
            r = rule.match(body)
            if r is not None:
                what = description
                stage = rule_stage
                break
        if r is None:
            return None
        if stage == _FAILED_PAM:
            info = r.group("info")
            if info is not None and _failed_other_reading(info):
                return None
        if m.group("smon") is not None:
            stamp = self._local(m.group("smon"), m.group("sday"), m.group("stime"))
        else:
            stamp = self._iso(m.group("iso"))
        if stamp is None:
            return None
        if r.re.groupindex.get("paddr"):
            host = self._address(r.group("paddr"), True)
        else:
            host = self._address(r.group("addr"), False)
        if host is None:
            return None
        key = ""
        if stage and m.group("prog") != "dropbear":
            any_pid = stage == _PAM_ERROR
            if stage == _FAILED_PAM:
                method = r.group("method")
                if method not in _FAILED_METHODS_PAM:
                    stage = 0  # publickey, none, hostbased ...: PAM is not involved
                any_pid = method == "keyboard-interactive"
            if stage:
                pid = f"{m.group('prog')}[{m.group('pid') or ''}]"
                attempts = self._attempts
                if attempts is None:
                    # A worker of a parallel scan: the scan pairs in file order.
                    key = _ssh_tag(stage, pid, any_pid)
                elif attempts.follows(host[1], stage, pid, any_pid, stamp[1]):
                    return None
        return self._make(stamp[0], "ssh", host[0], what, self.file, lineno, key)

    def _web(self, line: str, lineno: int) -> Failure | None:
        w = _WEB_LOGIN.match(line)
        if w is not None:
            stamp = self._iso(w.group("iso"))
            host = self._address(w.group("addr"), False)
            what = "pbxfw web login failed"
        else:
            m = _NGINX_AUTH.match(line)
            if m is None:
                return None
            if m.group("mismatch") is not None:
                what = "nginx basic auth password mismatch"
            else:
                what = "nginx basic auth unknown user"
            stamp = self._local("D", m.group("date"), m.group("time"))
            host = self._address(m.group("addr"), False)
        if stamp is None or host is None:
            return None
        return self._make(stamp[0], "web", host[0], what, self.file, lineno, "")

    # -- public -------------------------------------------------------------

    def recognise(self, line: str, lineno: int = 0) -> Failure | None:
        """The failure ``line`` records, or None. ``lineno`` goes into the Failure."""
        for trigger in self.triggers:
            if trigger in line:
                break
        else:
            return None
        return self._dispatch(line, lineno)

    def _dispatch(self, line: str, lineno: int) -> Failure | None:
        if len(line) > MAX_LINE:
            return None
        kind = self.kind if self.kind is not None else detect_kind(line)
        if kind is None:
            return None
        if kind == "ssh":
            return self._ssh(line, lineno)
        if kind == "web":
            return self._web(line, lineno)
        return self._asterisk(line, lineno)

    def lines(self, lines: Iterable[str], first_line: int = 1) -> Iterator[Failure]:
        """Recognise an iterable of lines numbered from ``first_line``."""
        triggers = self.triggers
        dispatch = self._dispatch
        for lineno, line in enumerate(lines, first_line):
            for trigger in triggers:
                if trigger in line:
                    failure = dispatch(line, lineno)
                    if failure is not None:
                        yield failure
                    break

    def scan_text(self, text: str, first_line: int = 1) -> Iterator[Failure]:
        """Recognise a whole text (a file's contents) in file order — the fast path.

        Each coarse trigger is located over the whole text (``str.find`` or
        a regex search); only the lines that contain one are cut out and go
        through the per-line triggers and recognisers, and line numbers are
        counted between hits with ``str.count``. Gives exactly what
        :meth:`lines` gives for the text's ``"\\n"``-separated lines. When
        exhausted, :attr:`newlines` holds the text's newline count.
        """
        return self._scan(text, len(text), first_line, 0, "\n", "[", str)

    def scan_bytes(
        self, data: bytes, first_line: int = 1, *, end: int | None = None
    ) -> Iterator[Failure]:
        """:meth:`scan_text` of ``data[:end].decode("utf-8", "replace")``, decoding only hit lines.

        Same results: every trigger is ASCII, an ASCII byte always decodes to
        itself (also next to invalid bytes, which become U+FFFD) and a newline
        byte is never inside a multi-byte sequence, so the lines, their
        numbers and their trigger hits are those of the decoded text.
        ``end`` (None: ``len(data)``) lets a reader scan a block up to its
        last newline without copying it.
        """
        size = len(data) if end is None else min(end, len(data))
        return self._scan(data, size, first_line, 1, b"\n", b"[", _decode_line)

    def _scan(
        self,
        data: AnyStr,
        size: int,
        first_line: int,
        form: int,
        newline: AnyStr,
        bracket: AnyStr,
        decode: Callable[[AnyStr], str],
    ) -> Iterator[Failure]:
        # form: 0 for str, 1 for bytes (the index into _NEEDLES and _FINE).
        find = data.find
        rfind = data.rfind
        ends: dict[int, int] = {}  # line start -> line end
        kind = self.kind
        needles: tuple[AnyStr | re.Pattern[AnyStr], ...] = _NEEDLES[kind][form]  # type: ignore[assignment]
        if kind is None:
            # Kind detected per line: see _NOT_BRACKET. The lines starting
            # otherwise go to the per-line triggers whatever they contain
            # (the coarse triggers are complete, so that changes nothing).
            limit = size // _BYTES_PER_OTHER_LINE
            others = [] if size == 0 or data[:1] == bracket else [0]
            pattern: re.Pattern[AnyStr] = (_NOT_BRACKET, _NOT_BRACKET_B)[form]  # type: ignore[assignment]
            for m in pattern.finditer(data, 0, size):
                others.append(m.start() + 1)
                if len(others) > limit:
                    break
            if len(others) <= limit:
                needles = _NEEDLES["asterisk_messages"][form]  # type: ignore[assignment]
                for start in others:
                    end = find(newline, start, size)
                    ends[start] = size if end < 0 else end
        for needle in needles:
            if isinstance(needle, re.Pattern):
                # The pattern runs on to the end of the line, so each line is
                # matched once and the next search starts after it.
                for m in needle.finditer(data, 0, size):
                    pos, end = m.span()
                    ends[rfind(newline, 0, pos) + 1] = end
                continue
            pos = find(needle, 0, size)
            while pos >= 0:
                end = find(newline, pos, size)
                if end < 0:
                    ends[rfind(newline, 0, pos) + 1] = size
                    break
                ends[rfind(newline, 0, pos) + 1] = end
                pos = find(needle, end, size)
        # Kind detected per line: a line starting with "[" is recognised as
        # Asterisk directly (what detect_kind() and _dispatch() come to for
        # it), any other line through _dispatch() with every trigger.
        fine: tuple[AnyStr, ...] = _FINE[kind][form]  # type: ignore[assignment]
        general = self._dispatch
        if kind is None:
            dispatch = self._asterisk
            triggers: tuple[AnyStr, ...] = _FINE["asterisk_messages"][form]  # type: ignore[assignment]
        else:
            dispatch = {"ssh": self._ssh, "web": self._web}.get(kind, self._asterisk)
            triggers = fine
        count = data.count
        lineno = first_line
        previous = 0
        for start in sorted(ends):
            lineno += count(newline, previous, start)
            previous = start
            end = ends[start]
            if end - start > MAX_LINE:
                continue  # no program we read writes such a line: not a failure
            raw = data[start:end]
            if kind is None and raw[:1] != bracket:
                for trigger in fine:
                    if trigger in raw:
                        failure = general(decode(raw), lineno)
                        if failure is not None:
                            yield failure
                        break
                continue
            for trigger in triggers:
                if trigger in raw:
                    failure = dispatch(decode(raw), lineno)
                    if failure is not None:
                        yield failure
                    break
        self.newlines = lineno - first_line + count(newline, previous, size)


#: ``raw.decode("utf-8", "replace")`` without a Python-level call.
_decode_line: Callable[[bytes], str] = operator.methodcaller("decode", "utf-8", "replace")


def recognise_lines(
    lines: Iterable[str],
    kind: str | None,
    *,
    file: str,
    reference: datetime,
    tz: tzinfo | None = None,
    first_line: int = 1,
) -> Iterator[Failure]:
    """Failures in ``lines`` (numbered from ``first_line``) of a ``kind`` log.

    ``kind`` None detects the kind per line. See :class:`Recogniser` for
    ``reference`` and ``tz``.
    """
    return Recogniser(kind, file=file, reference=reference, tz=tz).lines(lines, first_line)


def recognise_text(
    text: str,
    kind: str | None,
    *,
    file: str,
    reference: datetime,
    tz: tzinfo | None = None,
) -> Iterator[Failure]:
    """Failures in a whole file's ``text`` (the fast path of :meth:`Recogniser.scan_text`)."""
    return Recogniser(kind, file=file, reference=reference, tz=tz).scan_text(text)
