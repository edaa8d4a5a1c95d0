"""What a log reader hands the agent: complete lines of one source and where to resume.

Both readers make them: agent.tail (files: an inode and an offset) and
agent.journal (the systemd journal: a cursor).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Chunk"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines newly read from one source; ``first_line`` counts from the agent's start.

    ``path``: the source as the settings name it (a file's path, or a
    ``journal:`` source). ``inode``/``offset`` (files) or ``cursor`` (the
    journal; then inode and offset are 0): where to resume after these
    lines (store them).
    ``bad_lines``: lines of ``text`` that were skipped (too long, or cut by a
    rotation) and stand there as empty lines. A chunk with no text reports
    a new position only (a truncation, or the next file after a rotation),
    so that a restart does not resume at a position that no longer holds.
    """

    path: str
    kind: str
    text: str
    first_line: int
    inode: int
    offset: int
    bad_lines: int = 0
    #: The journal's cursor of the last entry in ``text`` (None: a file).
    cursor: str | None = None
