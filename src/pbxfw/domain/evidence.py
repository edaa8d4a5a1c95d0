"""The evidence behind a ban: the log lines that caused it and the rule that fired.

A ban made by a jail keeps the last failures that made it (at most
``MAX_LINES`` lines, each cut to ``MAX_LINE_CHARS`` characters), each with
the file (or ``journal:`` source) and the line number the agent read it at,
and the rule: jail, maxretry, findtime. Any other ban says where it came
from instead (its origin, and ``who`` for an administrator's ban).

Stored packed (``pack``: a small JSON head and the texts, zlib-compressed
with a preset dictionary of the logs' words): the lines of one attacker
repeat the same format, the same address and mostly the same words, so
they compress several-fold; 100,000 bans with evidence stay within ~50 MB
(docs/benchmarks.md, bench/bench_evidence.py). Times are kept in whole
seconds (the detector's unit). Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_LINES",
    "MAX_LINE_CHARS",
    "BanEvidence",
    "EvidenceLine",
    "cut_line",
    "pack",
    "unpack",
]

#: At most this many lines are kept per ban (the last ones).
MAX_LINES = 20
#: A kept line is cut to this many characters (a log line is rarely longer).
MAX_LINE_CHARS = 1024


def cut_line(text: str) -> str:
    """``text`` without its line end, cut to ``MAX_LINE_CHARS`` characters;
    a newline inside (none in a log line) becomes a space."""
    text = text.rstrip("\r\n")
    if "\n" in text:
        text = text.replace("\n", " ")
    return text if len(text) <= MAX_LINE_CHARS else text[: MAX_LINE_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class EvidenceLine:
    """One failure: where it was read, its text, its time (epoch seconds,
    the log's own) and the event the recogniser named."""

    file: str
    line: int
    text: str
    time: float
    event: str

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "time": self.time,
            "event": self.event,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class BanEvidence:
    """What made one ban: the rule (``jail``, ``maxretry``, ``findtime``,
    0 when not a jail's count) and the lines, oldest first.

    ``lost``: failures the ban counted whose lines were not kept (the agent
    restarted in the window, or its evidence memory was full)."""

    jail: str
    maxretry: int
    findtime: int
    lines: tuple[EvidenceLine, ...] = ()
    lost: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "rule": {"jail": self.jail, "maxretry": self.maxretry, "findtime": self.findtime},
            "lines": [line.as_json() for line in self.lines],
            "lost": self.lost,
        }


#: The first byte of the stored form: its version (``_DICTIONARY`` is part of it).
_FORMAT = b"\x01"
#: Words of the logs pbxfw reads, given to zlib as a preset dictionary, so
#: that even one ban's few lines compress well (the first line costs little
#: more than the next ones). Never change it: stored evidence depends on it;
#: a new one goes with a new ``_FORMAT``.
_DICTIONARY = (
    b"/var/log/asterisk/messages/var/log/asterisk/security_log/var/log/auth.log"
    b"/var/log/nginx/error.log journal:ssh.service sshd[]: Failed password for invalid user "
    b"from port ssh2 Invalid user Connection closed by authenticating user [preauth] "
    b"Disconnected from maximum authentication attempts exceeded for "
    b"dropbear[]: Bad password attempt for Login attempt for nonexistent user "
    b'SecurityEvent="ChallengeResponseFailed",EventTV="",Severity="Error",Service="PJSIP",'
    b'EventVersion="1",AccountID="",SessionID="",LocalAddress="IPV4/UDP/",'
    b'RemoteAddress="IPV4/UDP/",Challenge="",Response="",ExpectedResponse="" '
    b'SecurityEvent="InvalidAccountID",SecurityEvent="InvalidPassword",SecurityEvent="FailedACL",'
    b"NOTICE[] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '\"\" <sip:@>' failed "
    b"for '' (callid: ) - No matching endpoint found - Failed to authenticate "
    b"chan_sip.c: Registration from '' failed for '' - Wrong password "
    b"manager.c: failed to authenticate as '' [] WARNING[] VERBOSE[] ERROR[] "
)


def pack(evidence: BanEvidence) -> bytes:
    """The stored form (``unpack`` reads it): a version byte, then zlib
    (with ``_DICTIONARY``) of a JSON head and the lines' texts. The head keeps
    files and events once each, and line numbers and times as steps from
    the line before (whole seconds: the detector's unit), small numbers."""
    files: dict[str, int] = {}
    events: dict[str, int] = {}
    rows: list[list[int]] = []
    line, when = 0, int(evidence.lines[0].time) if evidence.lines else 0
    first = when
    for x in evidence.lines:
        f = files.setdefault(x.file, len(files))
        e = events.setdefault(x.event, len(events))
        rows.append([f, x.line - line, int(x.time) - when, e])
        line, when = x.line, int(x.time)
    head = {
        "j": evidence.jail,
        "m": evidence.maxretry,
        "f": evidence.findtime,
        "x": evidence.lost,
        "F": list(files),
        "E": list(events),
        "t": first,
        "r": rows,
    }
    raw = json.dumps(head, separators=(",", ":"), ensure_ascii=False).encode()
    text = "\n".join(cut_line(x.text) for x in evidence.lines).encode("utf-8", "surrogatepass")
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _DICTIONARY)
    return _FORMAT + packer.compress(raw + b"\0" + text) + packer.flush()


def unpack(blob: bytes) -> BanEvidence:
    """The evidence ``pack`` stored; raises ValueError on anything else."""
    try:
        if blob[:1] != _FORMAT:
            raise ValueError("unknown format")
        unpacker = zlib.decompressobj(-15, _DICTIONARY)
        raw = unpacker.decompress(blob[1:]) + unpacker.flush()
        head_bytes, _, text = raw.partition(b"\0")
        head: Any = json.loads(head_bytes)
        texts = text.decode("utf-8", "surrogatepass").split("\n") if head["r"] else []
        files, events = [str(f) for f in head["F"]], [str(e) for e in head["E"]]
        lines = []
        line, when = 0, int(head["t"])
        for (f, step, wait, e), body in zip(head["r"], texts, strict=True):
            line, when = line + int(step), when + int(wait)
            lines.append(EvidenceLine(files[f], line, body, float(when), events[e]))
        return BanEvidence(
            str(head["j"]), int(head["m"]), int(head["f"]), tuple(lines), int(head["x"])
        )
    except (zlib.error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"stored evidence is unreadable: {exc}") from exc
