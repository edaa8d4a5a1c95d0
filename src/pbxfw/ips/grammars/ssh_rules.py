"""The rule table of the ssh grammar (:mod:`.ssh`): one :class:`Rule` per
message of sshd, sshd-session and dropbear, each written from the program's
own format string (docs/ips-formats.md has the table: format string, event,
whether it counts, which field is the address). To recognise a new message,
add one row here (and a fixture line).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pbxfw.ips.grammars.ssh_attempts import (
    CONN_END,
    DISCONNECT,
    FAILED_PAM,
    MAXTRIES,
    PAM_ERROR,
    PAM_UNIX,
    POSTPONED,
)
from pbxfw.ips.grammars.users import without_user

__all__ = ["FAILED_METHODS_PAM", "TABLE", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One failure message of sshd / dropbear."""

    #: The first words the message can start with (a rule is tried only on
    #: a message that starts with one of them).
    words: tuple[str, ...]
    #: Anchored at the message's start (after the prefix); the address field
    #: in group ``addr``.
    pattern: re.Pattern[str]
    #: ``Failure.event`` (fixed text).
    event: str
    #: Per-line triggers: every line the rule accepts contains one (tested).
    triggers: tuple[str, ...]
    #: Its place in the lines of one attempt or connection (0: none; see
    #: :mod:`.ssh_attempts`).
    stage: int = 0
    #: Whether the address field ends with ":port" (dropbear).
    port: bool = False
    #: Whether a match has a second reading naming another address: then
    #: the line is ambiguous and yields nothing.
    ambiguous: Callable[[re.Match[str]], bool] | None = None
    #: Text sshd writes before the user inside the group ``user`` ("invalid
    #: user " of auth_log's "%s%.100s"): dropped from the user read. Kept in
    #: the group so that ``plain`` is the pattern as it was before users.
    preamble: str = ""
    #: Whether the pattern reads the user name tried (group ``user``, which
    #: may not take part in a match: then the message names none).
    has_user: bool = field(init=False, default=False)
    #: ``pattern`` without the capture of the user (users.without_user).
    plain: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_user", "user" in self.pattern.groupindex)
        object.__setattr__(self, "plain", without_user(self.pattern))


# OpenSSH format strings (auth.c, auth2.c, auth-pam.c, packet.c, sshd.c):
#   auth_log: "%s %s%s%s for %s%.100s from %.200s port %d ssh2%s%s"
#     (Failed/Postponed, method[/submethod], "invalid user ", user, addr, port,
#     ": ", info)
#   getpwnamallow: "Invalid user %.100s from %.100s port %d"
#   allowed_user: "User %.100s from %.100s not allowed because <reason>"
#   auth_maxtries_exceeded: "maximum authentication attempts exceeded for
#     %s%.100s from %.200s port %d ssh2" (+ " [preauth]")
#   ssh_packet_disconnect: "Disconnecting %s: %.100s" with the connection id
#   sshpkt_vfatal: "Connection closed by %s", "Connection reset by %s",
#     "Disconnected from %s", "Unable to negotiate with %s: %s. Their offer:
#     %s", "%s%sConnection %s %s: %s" (tag "banner exchange")
#   the connection id (sshpkt_fmt_connection_id): "%.200s%s%s port %d", i.e.
#     "[authenticating user <u> |invalid user <u> ]<addr> port <p>"
#   ssh_packet_read_poll2: "Received disconnect from %s: %u: %.400s"
#   sshpam_query: "PAM: %s for %s%.100s from %.100s" ("illegal user ")
# What the client controls: the user name (but never a ":" in it: auth2.c
# cuts "user:style" at the first colon before anything logs it or sets the
# connection id), the method name of a failed request (logged as the client
# sent it), the auth info after "ssh2: " (certificate key ids, hostbased
# client user/host), a disconnect's description, the algorithms offered, the
# protocol identification. So:
# - messages whose text after the address is sshd's own are end-anchored
#   (greedy user: the real, last, address field wins);
# - messages with client text after the address are read from the left, the
#   user as text without ":": the address is the one field that can follow;
# - "Failed": the address field must be followed by ": <info>" or the end.
#   The info starts with the first colon after the user, so no address field
#   inside the info can be taken (the address is the last " from " before
#   that colon), and none in the user either (greedy). The method is read as
#   a plain token (no space, no colon); a client-sent method that holds a
#   whole forged "for ... ssh2: " is caught by _failed_other_reading() below.
FAILED_METHODS_PAM = frozenset({"password", "keyboard-interactive"})
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


def _failed_ambiguous(m: re.Match[str]) -> bool:
    info = m.group("info")
    return info is not None and _failed_other_reading(info)


# sshd's ssh_remote_ipaddr() is numeric, so it holds a "." or a ":" (which
# tells it from a port number read off a client's text); dropbear's
# svr_ses.addrstring is "%s:%s", host and port.
_SSHD_ADDR = r"(?P<addr>[0-9A-Fa-f]*[.:][0-9A-Fa-f:.]*)"
_DROPBEAR_ADDR = r"(?P<addr>[0-9A-Fa-f:.\[\]]+:\d+)"
_PREAUTH = r"(?: \[preauth\])?\s*$"
# The connection id's user preamble: in messages read from the left, the user
# as text without colon; in end-anchored ones, greedy (the last field wins).
_CONN_USER = r"(?:authenticating|invalid) user (?P<user>[^:]*)"
_CONN_USER_END = r"(?:authenticating|invalid) user (?P<user>.*)"

TABLE: tuple[Rule, ...] = (
    Rule(
        ("Failed",),
        re.compile(
            r"Failed (?P<method>[\w@.+-]+)(?:/[\w@.+-]+)? for (?P<user>[^:]*)"
            rf" from {_SSHD_ADDR}"
            r"(?: port \d+(?: ssh[12](?:: (?P<info>.*))?)?)?(?: \[preauth\])?\s*$"
        ),
        "ssh failed authentication",
        ("Failed ",),
        FAILED_PAM,
        ambiguous=_failed_ambiguous,
        preamble="invalid user ",
    ),
    Rule(
        ("Invalid", "invalid"),
        re.compile(rf"[Ii]nvalid user (?P<user>.*) from {_SSHD_ADDR}(?: port \d+)?{_PREAUTH}"),
        "ssh invalid user",
        ("nvalid user ",),
    ),
    Rule(
        ("User",),
        re.compile(
            rf"User (?P<user>.*) from {_SSHD_ADDR} not allowed because (?:not listed in AllowUsers"
            r"|listed in DenyUsers|not in any group|a group is listed in DenyGroups"
            rf"|none of user's groups are listed in AllowGroups){_PREAUTH}"
        ),
        "ssh user not allowed",
        ("not allowed because",),
    ),
    Rule(
        ("maximum",),
        re.compile(
            r"maximum authentication attempts exceeded for (?P<user>.*)"
            rf" from {_SSHD_ADDR}"
            rf" port \d+ ssh2{_PREAUTH}"
        ),
        "ssh too many authentication failures",
        ("maximum authentication attempts",),
        MAXTRIES,
        preamble="invalid user ",
    ),
    Rule(
        ("Disconnecting",),
        re.compile(
            rf"Disconnecting {_CONN_USER_END} {_SSHD_ADDR} port \d+: "
            rf"Too many authentication failures{_PREAUTH}"
        ),
        "ssh too many authentication failures",
        ("Too many authentication failures",),
        DISCONNECT,
    ),
    Rule(
        ("Disconnecting",),
        re.compile(
            rf"Disconnecting {_CONN_USER} {_SSHD_ADDR} port \d+: "
            r"Change of username or service not allowed: .*$"
        ),
        "ssh change of user name",
        ("Change of username",),
    ),
    Rule(
        ("Postponed",),
        re.compile(
            r"Postponed keyboard-interactive(?:/[\w@.+-]+)? for invalid user (?P<user>[^:]*)"
            rf" from {_SSHD_ADDR} port \d+ ssh2{_PREAUTH}"
        ),
        "ssh keyboard-interactive for invalid user",
        ("Postponed keyboard-interactive",),
        POSTPONED,
    ),
    # PAM writes the fields up to rhost itself; none of them can hold a space.
    Rule(
        ("pam_unix(sshd:auth):", "pam_unix(dropbear:auth):"),
        re.compile(
            r"pam_unix\((?:sshd|dropbear):auth\): authentication failure; logname=\S* uid=\d* "
            rf"euid=\d* tty=\S* ruser=\S* rhost={_SSHD_ADDR}(?:\s|$)"
        ),
        "ssh PAM authentication failure",
        ("authentication failure;",),
        PAM_UNIX,
    ),
    # sshd's "PAM: %s for ..." with pam_strerror's wrong-password and
    # unknown-user texts (Linux-PAM "Authentication failure", "User not known
    # to the underlying authentication module"; OpenPAM "authentication
    # error"); macOS adds " via <local address>".
    Rule(
        ("Authentication", "authentication", "User"),
        re.compile(
            r"(?:[Aa]uthentication (?:failure|error)"
            r"|User not known to the underlying authentication module)"
            rf" for (?:illegal user )?(?P<user>.*) from {_SSHD_ADDR}(?: via [0-9A-Fa-f:.]+)?\s*$"
        ),
        "ssh PAM authentication failure",
        ("uthentication failure for", "uthentication error for", "User not known to the"),
        PAM_ERROR,
    ),
    Rule(
        ("Connection", "Disconnected"),
        re.compile(
            rf"(?:Connection (?:closed|reset) by|Disconnected from) {_CONN_USER_END}"
            rf" {_SSHD_ADDR} port \d+ \[preauth\]\s*$"
        ),
        "ssh connection closed before authentication",
        (
            "by authenticating user ",
            "by invalid user ",
            "from authenticating user ",
            "from invalid user ",
        ),
        CONN_END,
    ),
    Rule(
        ("Received",),
        re.compile(
            rf"Received disconnect from (?:{_CONN_USER} )?{_SSHD_ADDR}(?: port \d+)?: ?3: "
            rf".*: Auth fail{_PREAUTH}"
        ),
        "ssh client gave up after failed authentication",
        (": Auth fail",),
        CONN_END,
    ),
    # Scanner signs (docs/ips-formats.md, "Scanner signs"): each counts as a
    # failure under its own event.
    Rule(
        ("Received",),
        re.compile(
            rf"Received disconnect from (?:{_CONN_USER} )?{_SSHD_ADDR}(?: port \d+)?: ?14: "
            rf"No (?:supported )?authentication methods available{_PREAUTH}"
        ),
        "ssh scanner: no authentication method",
        ("authentication methods available",),
        CONN_END,
    ),
    Rule(
        ("Unable",),
        re.compile(
            rf"Unable to negotiate with {_SSHD_ADDR} port \d+: no matching (?:cipher|MAC"
            r"|compression method|key exchange method|host key type) found\. Their offer: .*$"
        ),
        "ssh scanner: no matching algorithm",
        ("Unable to negotiate with",),
    ),
    Rule(
        ("banner",),
        re.compile(
            rf"banner exchange: Connection from {_SSHD_ADDR} port \d+: invalid format{_PREAUTH}"
        ),
        "ssh scanner: invalid banner",
        ("banner exchange:",),
    ),
    Rule(
        ("Did",),
        re.compile(rf"Did not receive identification string from {_SSHD_ADDR}(?: port \d+)?\s*$"),
        "ssh scanner: no identification",
        ("identification string from",),
    ),
    Rule(
        ("Bad",),
        re.compile(
            rf"Bad protocol version identification '.*' from {_SSHD_ADDR}(?: port \d+)?\s*$"
        ),
        "ssh scanner: bad protocol version",
        ("protocol version identification",),
    ),
    # dropbear (svr-auth*.c, svr-session.c): "addr:port", last and
    # end-anchored, or in "from <...>" right after "Exit before auth".
    Rule(
        ("Bad", "bad"),
        re.compile(rf"[Bb]ad password attempt for '(?P<user>.*)' from {_DROPBEAR_ADDR}\s*$"),
        "dropbear bad password",
        ("password attempt for",),
        port=True,
    ),
    Rule(
        ("Bad",),
        re.compile(rf"Bad PAM password attempt for '(?P<user>.*)' from {_DROPBEAR_ADDR}\s*$"),
        "dropbear bad password",
        ("password attempt for",),
        FAILED_PAM,
        port=True,
    ),
    Rule(
        ("Login", "login"),
        re.compile(
            rf"[Ll]ogin attempt for nonexistent user(?: '(?P<user>.*)')? from {_DROPBEAR_ADDR}\s*$"
        ),
        "dropbear invalid user",
        ("ogin attempt for nonexistent",),
        port=True,
    ),
    Rule(
        ("Login",),
        re.compile(rf"Login attempt with wrong user (?P<user>.*) from {_DROPBEAR_ADDR}\s*$"),
        "dropbear user not allowed",
        ("Login attempt with wrong user",),
        port=True,
    ),
    Rule(
        ("Pubkey", "pubkey"),
        re.compile(
            r"[Pp]ubkey auth bad signature for '(?P<user>.*)' with key .*"
            rf" from {_DROPBEAR_ADDR}\s*$"
        ),
        "dropbear bad public key signature",
        ("ubkey auth bad signature",),
        port=True,
    ),
    Rule(
        ("Exit",),
        re.compile(
            rf"Exit before auth from <{_DROPBEAR_ADDR}>: (?:\(user '[^']*', \d+ fails\): )?"
            r"Max auth tries reached - user '(?P<user>[^']*)'\s*$"
        ),
        "dropbear too many authentication failures",
        ("Max auth tries reached",),
        port=True,
    ),
    Rule(
        ("Exit",),
        re.compile(
            r"Exit before auth.*: Max auth tries reached - user '(?P<user>.*)'"
            rf" from {_DROPBEAR_ADDR}\s*$"
        ),
        "dropbear too many authentication failures",
        ("Max auth tries reached",),
        port=True,
    ),
)
