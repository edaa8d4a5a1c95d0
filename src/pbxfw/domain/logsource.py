"""Where a log setting points: a file, or entries of the systemd journal.

The values of the log settings (``log_ssh``, ``log_web``,
``log_asterisk_messages``, ``log_asterisk_security``) are one of

* ``""``: none;
* an absolute path: the file is followed (agent.tail);
* ``journal:`` and one or more terms separated by spaces, each either a
  unit name (``journal:ssh.service``) or a journal field match
  ``FIELD=value`` (``journal:SYSLOG_IDENTIFIER=sshd``): the entries of the
  journal that match are followed (agent.journal).

Terms combine as journalctl combines matches: terms on the same field are
alternatives (either one), terms on different fields must all hold. A unit
name stands for the journal's trusted field ``_SYSTEMD_UNIT``; the SSH
daemon's unit is matched under both of its names, ``ssh.service`` (Debian,
Ubuntu) and ``sshd.service`` (most others), because Debian's
``sshd.service`` is only an alias and the journal records the real name
(docs/decisions.md, "The journal as a log source"). Values are single words:
a value holding a space cannot be written here.

Pure: no journal is opened here; ``parse_journal`` only checks and splits.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "AUTH_LOG",
    "AUTH_LOG_FRESH_SECONDS",
    "JOURNAL_PREFIX",
    "SSH_JOURNAL",
    "UNIT_ALIASES",
    "JournalSource",
    "is_journal",
    "journal_source_problem",
    "parse_journal",
    "ssh_log_default",
]

JOURNAL_PREFIX = "journal:"
#: Where syslog (rsyslog) writes sshd's lines on Debian.
AUTH_LOG = "/var/log/auth.log"
#: sshd in the journal: Debian 12's ssh.service, sshd-session (OpenSSH >= 9.8)
#: included (it runs under the same unit); other systems' sshd.service too.
SSH_JOURNAL = "journal:ssh.service"
#: auth.log counts as written when it was modified within this many seconds.
AUTH_LOG_FRESH_SECONDS = 7 * 86400
#: Unit names that stand for the same daemon: each matches the others too.
UNIT_ALIASES: dict[str, tuple[str, ...]] = {
    "ssh.service": ("ssh.service", "sshd.service"),
    "sshd.service": ("ssh.service", "sshd.service"),
}
#: systemd's unit name characters (unit_name_is_valid), then a type whose
#: processes write to the journal.
_UNIT = re.compile(r"^[A-Za-z0-9:_.\\-]+(?:@[A-Za-z0-9:_.\\-]*)?\.(?:service|scope|socket)$")
#: journald's field names: upper-case letters, digits and "_", not starting
#: with a digit; "__" starts the journal's own address fields (cursor, times).
_FIELD = re.compile(r"^(?!__)[A-Z_][A-Z0-9_]{0,63}$")
_UNIT_MAX = 256
_VALUE_MAX = 1024
_EXAMPLES = "e.g. journal:ssh.service or journal:SYSLOG_IDENTIFIER=sshd"


@dataclass(frozen=True, slots=True)
class JournalSource:
    """A checked ``journal:`` value: the (field, value) matches to give journalctl."""

    text: str
    matches: tuple[tuple[str, str], ...]

    def arguments(self) -> list[str]:
        """The matches as journalctl's ``FIELD=value`` arguments."""
        return [f"{field}={value}" for field, value in self.matches]


def ssh_log_default(auth_log_age: float | None) -> str:
    """The ``log_ssh`` that ``pbxfw init`` stores, from the age in seconds of
    ``AUTH_LOG`` (its last write; None: absent or not a regular file).

    auth.log when it is written (modified within ``AUTH_LOG_FRESH_SECONDS``:
    sshd writes there through syslog), else the journal: a Debian 12 host
    without rsyslog has no auth.log, and one where rsyslog was removed has a
    stale one.
    """
    if auth_log_age is not None and auth_log_age <= AUTH_LOG_FRESH_SECONDS:
        return AUTH_LOG
    return SSH_JOURNAL


def is_journal(value: str) -> bool:
    """Whether a log setting's value names journal entries (rather than a file)."""
    return value.startswith(JOURNAL_PREFIX)


def _term_problem(term: str) -> str | None:
    if any(unicodedata.category(c)[0] in "CZ" for c in term):
        return f"{term!r} holds a control or invisible character"
    field, eq, value = term.partition("=")
    if not eq:
        if len(term) > _UNIT_MAX or not _UNIT.match(term):
            return (
                f"{term!r} is neither a unit name (such as ssh.service) nor a "
                "FIELD=value match (such as SYSLOG_IDENTIFIER=sshd)"
            )
        return None
    if not _FIELD.match(field):
        return (
            f"{field!r} is not a journal field name: upper-case letters, digits and _ "
            "(such as SYSLOG_IDENTIFIER, _SYSTEMD_UNIT, _COMM)"
        )
    if not value:
        return f"{field}= needs a value, e.g. {field}=sshd"
    if len(value.encode()) > _VALUE_MAX:
        return f"the value of {field} is longer than {_VALUE_MAX} bytes"
    return None


def journal_source_problem(value: str) -> str | None:
    """Why ``value`` (starting with ``journal:``) cannot be a journal source, or None."""
    terms = value[len(JOURNAL_PREFIX) :].split(" ")
    if not any(terms):
        return f"name what to read after journal:, {_EXAMPLES}"
    if any(not t for t in terms):
        return f"separate the terms after journal: by single spaces, {_EXAMPLES}"
    for term in terms:
        problem = _term_problem(term)
        if problem:
            return problem
    return None


def parse_journal(value: str) -> JournalSource:
    """The matches of a ``journal:`` value; raises ValueError (the problem) when invalid."""
    problem = journal_source_problem(value)
    if problem:
        raise ValueError(problem)
    matches: list[tuple[str, str]] = []
    for term in value[len(JOURNAL_PREFIX) :].split(" "):
        field, eq, text = term.partition("=")
        pairs = (
            [(field, text)]
            if eq
            else [("_SYSTEMD_UNIT", u) for u in UNIT_ALIASES.get(term, (term,))]
        )
        for pair in pairs:
            if pair not in matches:
                matches.append(pair)
    return JournalSource(value, tuple(matches))
