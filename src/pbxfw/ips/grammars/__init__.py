"""The grammars of the logs pbxfw reads: one module, one rule table, per source.

========================  ==========================  =====================================
kind                      module                      rows (``TABLE``)
========================  ==========================  =====================================
``asterisk_messages``     :mod:`.asterisk`            one per Asterisk message (NOTICE) or
``asterisk_security``                                 failed SecurityEvent (SECURITY)
``ssh``                   :mod:`.ssh`                 one per sshd / PAM / dropbear message
``web``                   :mod:`.web`                 nginx basic auth, pbxfw's web login
========================  ==========================  =====================================

Both Asterisk kinds accept every Asterisk line form (a ``messages`` file may
carry SECURITY lines and vice versa, depending on ``logger.conf``); they are
separate kinds so that each file gets its own recogniser state.

Each grammar module has ``TABLE`` (its rules: a frozen dataclass per
message), ``TRIGGERS`` (the per-line triggers, computed from the table),
``SCAN_TRIGGERS`` (the coarse triggers the whole-file search looks for) and
``recognise(recogniser, line, lineno)``, which dispatches over the table.
Adding a message of a known program is adding one row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pbxfw.ips.events import Failure
from pbxfw.ips.grammars import asterisk, ssh, web

if TYPE_CHECKING:
    from pbxfw.ips.recognisers import Recogniser

__all__ = [
    "ALL_SCAN_TRIGGERS",
    "ALL_TRIGGERS",
    "KINDS",
    "RECOGNISE",
    "SCAN_TRIGGERS",
    "TRIGGERS",
    "detect_kind",
]

#: The source kinds, in the order auto-detection tries them.
KINDS: tuple[str, ...] = ("asterisk_security", "asterisk_messages", "ssh", "web")

#: kind -> the grammar's ``recognise(recogniser, line, lineno)`` (no trigger
#: test, no MAX_LINE test: the callers make them).
RECOGNISE: dict[str, Callable[[Recogniser, str, int], Failure | None]] = {
    "asterisk_security": asterisk.recognise,
    "asterisk_messages": asterisk.recognise,
    "ssh": ssh.recognise,
    "web": web.recognise,
}

#: kind -> substrings that every line its grammar accepts contains (tested).
#: Used per line (``in``) before any regex runs.
TRIGGERS: dict[str, tuple[str, ...]] = {
    "asterisk_security": asterisk.TRIGGERS,
    "asterisk_messages": asterisk.TRIGGERS,
    "ssh": ssh.TRIGGERS,
    "web": web.TRIGGERS,
}

# Coarser triggers for the whole-file search (ips/scanner.py): one pass over
# the text costs about as much as per-line work on a few thousand lines, so
# each kind gets as few passes as possible. Each hit line then goes through
# the precise per-line triggers above. The coarse triggers of a kind are
# *complete*: every line its grammar accepts contains one (every Asterisk
# failure message is a NOTICE, a failed SecurityEvent is taken only with
# Severity="Error", every ssh message holds one of ssh.SCAN_TRIGGERS and the
# ssh prefix has a space before the program name (ssh.PREFIXED_SCAN_TRIGGERS,
# for the kind detected per line), every web failure line contains one of
# its per-line triggers), so the fast path
# gives exactly what the per-line path gives, whatever text the lines hold.
# Tested.
SCAN_TRIGGERS: dict[str, tuple[str, ...]] = {
    "asterisk_security": asterisk.SCAN_TRIGGERS,
    "asterisk_messages": asterisk.SCAN_TRIGGERS,
    "ssh": ssh.SCAN_TRIGGERS,
    "web": web.SCAN_TRIGGERS,
}

#: The triggers of every kind (kind detected per line). That reads ssh lines
#: only with their syslog prefix, so its coarse ssh triggers are the prefix's.
ALL_TRIGGERS: tuple[str, ...] = tuple(dict.fromkeys(t for ts in TRIGGERS.values() for t in ts))
ALL_SCAN_TRIGGERS: tuple[str, ...] = tuple(
    dict.fromkeys(
        t
        for kind, ts in SCAN_TRIGGERS.items()
        for t in (ssh.PREFIXED_SCAN_TRIGGERS if kind == "ssh" else ts)
    )
)


def detect_kind(line: str) -> str | None:
    """Guess the source kind of one line from cheap markers (None: not a log we read).

    The forms that start with their writer's own prefix (nginx's stamp, an
    sshd / dropbear syslog prefix — RFC 3164's tag or RFC 5424's APP-NAME —,
    pbxfw's web login line) are told by that prefix first, so client text further on the line ("NOTICE" in a Host
    header or an SSH user name) cannot make the line pass for another kind.
    """
    if line[:1] != "[":  # Asterisk's own files: every line starts with "["
        if line[4:5] == "/" and web.NGINX_STAMP.match(line) is not None:
            return "web"
        if line[:1] == "<":
            # RFC 5424: "<PRI>1 TIMESTAMP HOSTNAME APP-NAME ...".
            fields = line.split(" ", 4)
            if len(fields) == 5 and fields[0].endswith(">1") and fields[3] in ssh.PROGRAMS:
                return "ssh"
        # The syslog tag ends at the line's first ": " (a stamp and a host
        # name hold none), so the program is the word before it.
        colon = line.find(": ")
        if colon > 0:
            tag = line[line.rfind(" ", 0, colon) + 1 : colon]
            if tag.partition("[")[0] in ssh.PROGRAMS:
                return "ssh"
            if tag == "pbxfw-web" and web.WEB_LOGIN.match(line) is not None:
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
