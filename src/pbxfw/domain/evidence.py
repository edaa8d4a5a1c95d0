"""The evidence behind a ban: the log lines that caused it and the rule that fired.

A ban made by a jail keeps the last failures that made it (at most
``MAX_LINES`` lines, each cut to ``MAX_LINE_CHARS`` characters), each with
the file (or ``journal:`` source) and the line number the agent read it at,
and the rule: jail, maxretry, findtime. Any other ban says where it came
from instead (its origin, and ``who`` for an administrator's ban).

Stored packed (``pack``: JSON, zlib-compressed): the lines of one attacker
repeat the same format, the same address and mostly the same words, so they
compress about five-fold; 100,000 bans with evidence stay under ~50 MB
(docs/benchmarks.md, bench/bench_evidence.py). Pure: no I/O, no clock.
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
    """``text`` without its line end, cut to ``MAX_LINE_CHARS`` characters."""
    text = text.rstrip("\r\n")
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


def pack(evidence: BanEvidence) -> bytes:
    """The stored form: compact JSON, compressed (``unpack`` reads it)."""
    data = {
        "j": evidence.jail,
        "m": evidence.maxretry,
        "f": evidence.findtime,
        "x": evidence.lost,
        "l": [[x.file, x.line, x.time, x.event, x.text] for x in evidence.lines],
    }
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return zlib.compress(raw, 6)


def unpack(blob: bytes) -> BanEvidence:
    """The evidence ``pack`` stored; raises ValueError on anything else."""
    try:
        data: Any = json.loads(zlib.decompress(blob))
        lines = tuple(
            EvidenceLine(str(f), int(n), str(text), float(t), str(event))
            for f, n, t, event, text in data["l"]
        )
        return BanEvidence(str(data["j"]), int(data["m"]), int(data["f"]), lines, int(data["x"]))
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"stored evidence is unreadable: {exc}") from exc
