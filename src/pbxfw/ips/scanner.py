"""The whole-file search: :meth:`Recogniser.scan_text` / :meth:`Recogniser.scan_bytes`.

Each coarse trigger of the kind (``grammars.SCAN_TRIGGERS``, every line the
kind's grammar accepts holds one) is located over the whole text with
``find`` or a regex search, so that lines without one cost no Python work at
all (bytes are not even decoded); only the lines that contain one are cut out
and go through the per-line triggers (``grammars.TRIGGERS``, computed from the
rule tables) and the grammar. Line numbers are counted between hits with
``count``. The result is exactly what :meth:`Recogniser.lines` gives for the
text's ``"\\n"``-separated lines (tested). With the kind detected per line, a
text whose lines all start with "[" is searched for the Asterisk triggers
only (see _NOT_BRACKET). Figures: docs/benchmarks-ips.md.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, AnyStr

from pbxfw.ips.events import Failure
from pbxfw.ips.grammars import ALL_SCAN_TRIGGERS, ALL_TRIGGERS, RECOGNISE, SCAN_TRIGGERS, TRIGGERS

if TYPE_CHECKING:
    from pbxfw.ips.recognisers import Recogniser

__all__ = ["MAX_LINE", "decode_line", "scan"]

#: Lines longer than this (bytes for :meth:`Recogniser.scan_bytes`, characters
#: otherwise) are never a failure: no program we read writes one (nginx cuts
#: its error lines at 2 KiB, syslog daemons at a few KiB), and a regex over an
#: unbounded line is unbounded work.
MAX_LINE = 64 << 10

# How the search looks for a coarse trigger: a needle of 12 characters or
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
    kind: _needles(triggers) for kind, triggers in SCAN_TRIGGERS.items()
}
_NEEDLES[None] = _needles(ALL_SCAN_TRIGGERS)
#: kind (None: every kind) -> the per-line triggers as str and as bytes.
_FINE: dict[str | None, tuple[tuple[str, ...], tuple[bytes, ...]]] = {
    kind: (triggers, tuple(t.encode("ascii") for t in triggers))
    for kind, triggers in [*TRIGGERS.items(), (None, ALL_TRIGGERS)]
}

# Kind detected per line (kind None): a line that starts with "[" can only be
# an Asterisk failure (every ssh and web grammar starts with a digit or a
# month name), so where few lines start otherwise only the Asterisk coarse
# triggers are searched and those few lines are looked at one by one.
_NOT_BRACKET = re.compile(r"\n(?=[^\[])")
_NOT_BRACKET_B = re.compile(rb"\n(?=[^\[])")
#: At most one line in this many bytes may start without "[" for that.
_BYTES_PER_OTHER_LINE = 1024

#: ``raw.decode("utf-8", "replace")`` without a Python-level call.
decode_line: Callable[[bytes], str] = operator.methodcaller("decode", "utf-8", "replace")


def scan(
    recogniser: Recogniser,
    data: AnyStr,
    size: int,
    first_line: int,
    form: int,
    newline: AnyStr,
    bracket: AnyStr,
    decode: Callable[[AnyStr], str],
) -> Iterator[Failure]:
    """The failures in ``data[:size]`` (lines numbered from ``first_line``), in order.

    ``form``: 0 for str, 1 for bytes (the index into _NEEDLES and _FINE);
    ``newline`` and ``bracket`` are "\\n" and "[" in that form, ``decode``
    turns a hit line into str. When exhausted, ``recogniser.newlines`` holds
    the newline count.
    """
    find = data.find
    rfind = data.rfind
    ends: dict[int, int] = {}  # line start -> line end
    kind = recogniser.kind
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
    # Asterisk directly (what detect_kind() and Recogniser.dispatch() come to
    # for it), any other line through dispatch() with every trigger.
    fine: tuple[AnyStr, ...] = _FINE[kind][form]  # type: ignore[assignment]
    general = recogniser.dispatch
    # A plain function called from here (not a partial or bound method): the
    # call stays in the interpreter loop, measurably cheaper per hit line.
    if kind is None:
        recognise = RECOGNISE["asterisk_messages"]
        triggers: tuple[AnyStr, ...] = _FINE["asterisk_messages"][form]  # type: ignore[assignment]
    else:
        recognise = RECOGNISE[kind]
        triggers = fine
    count = data.count
    lineno = first_line
    previous = 0
    for start, end in sorted(ends.items()):
        lineno += count(newline, previous, start)
        previous = start
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
                failure = recognise(recogniser, decode(raw), lineno)
                if failure is not None:
                    yield failure
                break
    recogniser.newlines = lineno - first_line + count(newline, previous, size)
