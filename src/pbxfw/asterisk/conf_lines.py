"""One line of Asterisk's configuration: comments, and the files an ``#include`` names.

``strip_comments`` mirrors config.c's comment handling (``;``, ``\\;``,
nested ``;-- --;`` blocks); ``expand_include`` the glob(3) with
GLOB_NOMAGIC|GLOB_BRACE it uses for ``#include`` arguments. Pure but for
the glob.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path

__all__ = ["BLANKS", "expand_include", "strip_comments"]

#: What config.c strips around keys, values and lines.
BLANKS = " \t\r\n\v\f"


def strip_comments(raw: str, depth: int, opened: list[int], number: int) -> tuple[str, int]:
    """The text of one line that is not comment, and the block-comment depth after it.

    Mirrors config.c: ``\\;`` is a literal ``;``; ``;--`` (not ``;---``) opens
    a block comment, ``--;`` closes one; any other ``;`` ends the line.
    """
    kept: list[str] = []
    start: int | None = 0 if depth == 0 else None
    pos = 0
    while True:
        semi = raw.find(";", pos)
        if semi < 0:
            break
        if semi > pos and raw[semi - 1] == "\\":
            if start is not None:
                kept.append(raw[start : semi - 1])
                start = semi  # the ';' itself is kept
            pos = semi + 1
        elif raw[semi + 1 : semi + 3] == "--" and raw[semi + 3 : semi + 4] != "-":
            if start is not None:
                kept.append(raw[start:semi])
                start = None
            depth += 1
            opened.append(number)
            pos = semi + 3
        elif depth and semi >= pos + 2 and raw[semi - 2 : semi] == "--":
            depth -= 1
            opened.pop()
            pos = semi + 1
            if depth == 0:
                start = pos
        elif depth:
            pos = semi + 1
        else:
            # An ordinary comment. ("--;" outside a block comment lands here
            # too: Asterisk would drive its depth negative, a bug not copied.)
            if start is not None:
                kept.append(raw[start:semi])
                start = None
            break
    if start is not None and depth == 0:
        kept.append(raw[start:])
    return "".join(kept), depth


_MAGIC = re.compile(r"[*?\[]")


def expand_include(pattern: str) -> list[Path]:
    """Files an include names, as glob(3) with GLOB_NOMAGIC|GLOB_BRACE gives them.

    A pattern without wildcards is returned as is (its absence is reported by
    the reader); with wildcards, only the matching files, sorted.
    """
    results: list[Path] = []
    for alternative in _braces(pattern):
        if _MAGIC.search(alternative):
            results.extend(Path(p) for p in sorted(glob.glob(alternative)))
        elif "{" not in pattern or Path(alternative).exists():
            results.append(Path(alternative))
    return results


def _braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives, nested ones included, left to right."""
    open_at = pattern.find("{")
    if open_at < 0:
        return [pattern]
    depth = 0
    parts: list[str] = []
    piece_start = open_at + 1
    for index in range(open_at, len(pattern)):
        char = pattern[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                parts.append(pattern[piece_start:index])
                head, tail = pattern[:open_at], pattern[index + 1 :]
                return [expanded for part in parts for expanded in _braces(head + part + tail)]
        elif char == "," and depth == 1:
            parts.append(pattern[piece_start:index])
            piece_start = index + 1
    return [pattern]  # an unbalanced brace is literal, as in glob(3)
