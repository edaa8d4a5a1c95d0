"""The failure messages of sshd, sshd-session and dropbear: one row of
:data:`TABLE` per message (kind ``ssh``).

A line is a syslog prefix (:data:`pbxfw.ips.stamps.SYSLOG_PREFIX`, which
names the program) and a message; the rows are tried in order and the first
whose pattern matches reads the line. To recognise a new message, add one
:class:`Rule` (and a fixture line): the per-line triggers and the whole-file
search follow from the table.

One SSH attempt gives one failure: the lines sshd and PAM write for it after
the first (same sshd pid) yield nothing (:class:`SshAttempts`; the state is
per recogniser, i.e. per file, across calls).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure
from pbxfw.ips.stamps import SYSLOG_PREFIX

if TYPE_CHECKING:
    from pbxfw.ips.recognisers import Recogniser

__all__ = [
    "PROGRAMS",
    "SCAN_TRIGGERS",
    "SSH_ATTEMPT_SECONDS",
    "SSH_TAG",
    "TABLE",
    "TRIGGERS",
    "Rule",
    "SshAttempts",
    "recognise",
]

#: The programs whose lines this grammar reads (the syslog tag).
PROGRAMS = frozenset({"sshd", "sshd-session", "dropbear"})

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


@dataclass(frozen=True, slots=True)
class Rule:
    """One failure message of sshd / dropbear."""

    #: Anchored at the message's start (after the prefix); the address field
    #: in group ``addr``.
    pattern: re.Pattern[str]
    #: ``Failure.event`` (fixed text).
    event: str
    #: Per-line triggers: every line the rule accepts contains one (tested).
    triggers: tuple[str, ...]
    #: Its place in the lines of one attempt (0: none; see SshAttempts).
    stage: int = 0
    #: Whether the address field ends with ":port" (dropbear).
    port: bool = False
    #: Whether a match has a second reading naming another address: then
    #: the line is ambiguous and yields nothing.
    ambiguous: Callable[[re.Match[str]], bool] | None = None


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


def _failed_ambiguous(m: re.Match[str]) -> bool:
    info = m.group("info")
    return info is not None and _failed_other_reading(info)


_SSHD_ADDR = r"(?P<addr>[0-9A-Fa-f:.]+)"
_DROPBEAR_ADDR = r"(?P<addr>[0-9A-Fa-f:.\[\]]+:\d+)"

TABLE: tuple[Rule, ...] = (
    Rule(
        re.compile(
            r"Failed (?P<method>[\w@.+-]+)(?:/[\w@.+-]+)? for [^:]*"
            rf" from {_SSHD_ADDR}"
            r"(?: port \d+(?: ssh[12](?:: (?P<info>.*))?)?)?(?: \[preauth\])?\s*$"
        ),
        "ssh failed authentication",
        ("Failed ",),
        _FAILED_PAM,
        ambiguous=_failed_ambiguous,
    ),
    Rule(
        re.compile(rf"[Ii]nvalid user .* from {_SSHD_ADDR}(?: port \d+)?(?: \[preauth\])?\s*$"),
        "ssh invalid user",
        ("nvalid user ",),
    ),
    Rule(
        re.compile(
            rf"maximum authentication attempts exceeded for .* from {_SSHD_ADDR}"
            r" port \d+ ssh2(?: \[preauth\])?\s*$"
        ),
        "ssh too many authentication failures",
        ("maximum authentication attempts",),
        _MAXTRIES,
    ),
    Rule(
        re.compile(
            rf"Disconnecting (?:authenticating|invalid) user .* {_SSHD_ADDR} port \d+: "
            r"Too many authentication failures(?: \[preauth\])?\s*$"
        ),
        "ssh too many authentication failures",
        ("Too many authentication failures",),
        _DISCONNECT,
    ),
    # PAM writes the fields up to rhost itself; none of them can hold a space.
    Rule(
        re.compile(
            r"pam_unix\((?:sshd|dropbear):auth\): authentication failure; logname=\S* uid=\d* "
            rf"euid=\d* tty=\S* ruser=\S* rhost={_SSHD_ADDR}(?:\s|$)"
        ),
        "ssh PAM authentication failure",
        ("authentication failure;",),
        _PAM_UNIX,
    ),
    Rule(
        re.compile(
            rf"Authentication failure for (?:illegal user )?.* from {_SSHD_ADDR}"
            r"(?: via [0-9A-Fa-f:.]+)?\s*$"
        ),
        "ssh PAM authentication failure",
        ("Authentication failure for",),
        _PAM_ERROR,
    ),
    # dropbear: the user name is in quotes before the address, "addr:port" last.
    Rule(
        re.compile(rf"[Bb]ad password attempt for '.*' from {_DROPBEAR_ADDR}\s*$"),
        "dropbear bad password",
        ("password attempt for",),
        port=True,
    ),
    Rule(
        re.compile(rf"[Ll]ogin attempt for nonexistent user(?: '.*')? from {_DROPBEAR_ADDR}\s*$"),
        "dropbear invalid user",
        ("ogin attempt for nonexistent",),
        port=True,
    ),
    Rule(
        re.compile(
            rf"Exit before auth.*: Max auth tries reached - user '.*' from {_DROPBEAR_ADDR}\s*$"
        ),
        "dropbear too many authentication failures",
        ("Max auth tries reached",),
        port=True,
    ),
)

#: The per-line triggers, from the table.
TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t for rule in TABLE for t in rule.triggers))
#: The coarse triggers of the whole-file search: the program's name after
#: the host name in the prefix (" sshd" also finds "sshd-session").
SCAN_TRIGGERS: tuple[str, ...] = (" sshd", " dropbear")
assert all(any(f" {p}".startswith(t) for t in SCAN_TRIGGERS) for p in PROGRAMS)

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


def recognise(r: Recogniser, line: str, lineno: int) -> Failure | None:
    """The failure an ssh ``line`` records, or None (the state is ``r``'s)."""
    m = SYSLOG_PREFIX.match(line)
    if m is None:
        return None
    body = line[m.end() :].rstrip("\r\n")
    for rule in TABLE:
        found = rule.pattern.match(body)
        if found is not None:
            break
    else:
        return None
    if rule.ambiguous is not None and rule.ambiguous(found):
        return None
    stamp = r.stamps.syslog(m)
    if stamp is None:
        return None
    host = r.addresses.get(found.group("addr"), rule.port)
    if host is None:
        return None
    key = ""
    stage = rule.stage
    if stage and m.group("prog") != "dropbear":
        any_pid = stage == _PAM_ERROR
        if stage == _FAILED_PAM:
            method = found.group("method")
            if method not in _FAILED_METHODS_PAM:
                stage = 0  # publickey, none, hostbased ...: PAM is not involved
            any_pid = method == "keyboard-interactive"
        if stage:
            pid = f"{m.group('prog')}[{m.group('pid') or ''}]"
            attempts = r.ssh_attempts
            if attempts is None:
                # A worker of a parallel scan: the scan pairs in file order.
                key = _ssh_tag(stage, pid, any_pid)
            elif attempts.follows(host[1], stage, pid, any_pid, stamp[1]):
                return None
    return r.make(stamp[0], "ssh", host[0], rule.event, r.file, lineno, key)
