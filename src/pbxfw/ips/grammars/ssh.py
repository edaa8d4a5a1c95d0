"""The failure messages of sshd, sshd-session and dropbear: one row of
:data:`TABLE` per message (kind ``ssh``; docs/ips-formats.md has the table,
with each message's format string and whether it counts).

A line is a syslog prefix (:data:`pbxfw.ips.stamps.SYSLOG_PREFIX` or
:data:`~pbxfw.ips.stamps.SYSLOG_PREFIX_5424`, which name the program; in a
source declared ssh also none at all, :data:`~pbxfw.ips.stamps.BARE_PREFIX`)
and a message, possibly wrapped in rsyslog's ``message repeated N times: [
... ]`` (one failure with ``count`` N). The rows whose first word is the
message's are tried in order, and the first whose pattern matches reads the
line. To recognise a new message, add one :class:`Rule` to
:data:`TABLE` (:mod:`.ssh_rules`; and a fixture line): the per-line triggers
follow from the table.

One SSH attempt gives one failure, one connection at least one: the lines
sshd and PAM write for an attempt after the first, and the end of a
connection that already counted, yield nothing (:mod:`.ssh_attempts`; the
state is per recogniser, i.e. per file, across calls).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pbxfw.ips.events import Failure
from pbxfw.ips.grammars.ssh_attempts import (
    FAILED_PAM,
    PAM_ERROR,
    PAM_UNIX,
    SSH_ATTEMPT_SECONDS,
    SSH_TAG,
    SshAttempts,
    ssh_tag,
)
from pbxfw.ips.grammars.ssh_rules import FAILED_METHODS_PAM, TABLE, Rule
from pbxfw.ips.grammars.users import USER_MAX, cap
from pbxfw.ips.stamps import BARE_PREFIX, SYSLOG_PREFIX, SYSLOG_PREFIX_5424

if TYPE_CHECKING:
    from pbxfw.ips.recognisers import Recogniser

__all__ = [
    "PREFIXED_SCAN_TRIGGERS",
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


#: The rules by the first word of the message they can match, each with the
#: pattern to run: with the user's capture (_BY_WORD_USERS) or without.
_BY_WORD: dict[str, tuple[tuple[re.Pattern[str], Rule], ...]] = {}
_BY_WORD_USERS: dict[str, tuple[tuple[re.Pattern[str], Rule], ...]] = {}
for _rule in TABLE:
    for _word in _rule.words:
        _BY_WORD[_word] = (*_BY_WORD.get(_word, ()), (_rule.plain, _rule))
        _BY_WORD_USERS[_word] = (*_BY_WORD_USERS.get(_word, ()), (_rule.pattern, _rule))
del _rule, _word

#: The per-line triggers, from the table (also in a "message repeated" line,
#: which holds its message).
TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t for rule in TABLE for t in rule.triggers))
#: The coarse triggers of the whole-file search with the kind detected per
#: line, which reads ssh lines only with their syslog prefix: the program's
#: name after the host name or stamp (" sshd" also finds "sshd-session").
PREFIXED_SCAN_TRIGGERS: tuple[str, ...] = (" sshd", " dropbear")
assert all(any(f" {p}".startswith(t) for t in PREFIXED_SCAN_TRIGGERS) for p in PROGRAMS)
#: The coarse triggers of a source declared ssh, which may hold lines without
#: any prefix: its per-line triggers (each long enough for a fast search, and
#: fewer lines to look at than with shorter words: measured).
SCAN_TRIGGERS: tuple[str, ...] = TRIGGERS

#: rsyslog's "message repeated %d times: [%.800s]" around a message of the
#: program (its text keeps the space that followed the tag).
_REPEATED = re.compile(
    r"message repeated (?P<n>\d{1,9}) times: \[ ?(?:(?:error|fatal): (?:PAM: )?)?"
    r"(?P<inner>.*)\]\s*$"
)
#: The most copies one "message repeated N times" line stands for (more
#: would only ever reach ips_maxretry anyway).
_MAX_REPEAT = 1 << 20


def _message(body: str, users: bool) -> tuple[Rule, re.Match[str]] | None:
    """The row ``body`` (a message without prefix) matches, and the match
    (with the group ``user`` when ``users``)."""
    table = _BY_WORD_USERS if users else _BY_WORD
    for pattern, rule in table.get(body[: body.find(" ")], ()):
        found = pattern.match(body)
        if found is not None:
            return rule, found
    return None


def recognise(r: Recogniser, line: str, lineno: int) -> Failure | None:
    """The failure an ssh ``line`` records, or None (the state is ``r``'s)."""
    m = SYSLOG_PREFIX.match(line)
    if m is None and line[:1] == "<":
        m = SYSLOG_PREFIX_5424.match(line)
    if m is not None:
        prog = m.group("prog")
    elif r.kind == "ssh":
        # No syslog prefix: only in a source declared ssh.
        m = BARE_PREFIX.match(line)
        if m is None:  # pragma: no cover - the pattern matches the empty string
            return None
        prog = "dropbear" if m.group("pid") is not None else ""
    else:
        return None
    body = line[m.end() :].rstrip("\r\n")
    count = 1
    if body.startswith("message repeated "):
        repeated = _REPEATED.match(body)
        if repeated is None:
            return None
        count = min(int(repeated.group("n")), _MAX_REPEAT)
        body = repeated.group("inner")
    users = r.users
    matched = _message(body, users)
    if matched is None:
        return None
    rule, found = matched
    if rule.ambiguous is not None and rule.ambiguous(found):
        return None
    stamp = r.stamps.syslog(m)
    if stamp is None:
        return None
    host = r.addresses.get(found.group("addr"), rule.port)
    if host is None:
        return None
    stage = rule.stage
    any_pid = stage == PAM_ERROR
    if stage == FAILED_PAM and not rule.port:  # sshd's "Failed" (not dropbear's PAM line)
        method = found.group("method")
        if method not in FAILED_METHODS_PAM:
            stage = 0  # publickey, none, hostbased ...: PAM is not involved
        any_pid = method == "keyboard-interactive"
    key = ""
    pid = f"{prog}[{m.group('pid') or ''}]"
    attempts = r.ssh_attempts
    if attempts is None:
        # A worker of a parallel scan: the scan pairs in file order.
        key = ssh_tag(stage, pid, any_pid)
    elif attempts.follows(host[1], stage, pid, any_pid, stamp[1]):
        if count == 1:
            return None
        count -= 1  # the first copy continues an attempt; the others count
    if not users:
        user = ""
    elif rule.has_user:
        user = found.group("user")
        # dropbear's own words where it knows no valid user (svr-auth.c
        # "is invalid", svr-authpam.c "<invalid username>"): no name.
        if user in _NO_NAME:
            user = ""
        else:
            if rule.preamble and user.startswith(rule.preamble):
                user = user[len(rule.preamble) :]
            user = user[:USER_MAX]
    elif stage == PAM_UNIX:
        user = _pam_user(body, found.end())
    else:
        user = ""
    return r.make(stamp[0], "ssh", host[0], rule.event, r.file, lineno, key, count, user)


def _pam_user(body: str, end: int) -> str:
    """pam_unix's "user=%s" after rhost (the line's last field; pam_unix
    writes it only when it knows the name)."""
    while body.startswith(" ", end):
        end += 1
    if body.startswith("user=", end):
        return cap(body[end + 5 :].rstrip())
    return ""


_NO_NAME = frozenset({None, "is invalid", "<invalid username>"})
