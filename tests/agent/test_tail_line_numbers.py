"""A resumed file keeps its own line numbers (a ban's evidence names file:line).

A Tailer that resumes a real file at a stored offset numbers the next line
as the file does (the lines before the offset are counted once); past
``COUNT_LIMIT`` it counts from the resume point instead; a rotated file
found by its inode while the agent was down is numbered the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pbxfw.agent import tailfiles
from pbxfw.agent.tail import Tailer

LINES = [f"line {n}\n" for n in range(1, 8)]


def _offset_of(line: int) -> int:
    """The byte offset where line number ``line`` starts."""
    return sum(len(text) for text in LINES[: line - 1])


def test_a_resumed_file_is_numbered_as_the_file_is(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text("".join(LINES))
    inode = os.stat(log).st_ino
    with Tailer.create([(str(log), "asterisk")], {str(log): (inode, _offset_of(5))}) as tailer:
        [chunk] = tailer.poll()
    assert chunk.first_line == 5
    assert chunk.text.splitlines()[0] == "line 5"


def test_past_the_count_limit_numbers_start_at_the_resume_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tailfiles, "COUNT_LIMIT", 10)
    log = tmp_path / "messages"
    log.write_text("".join(LINES))
    inode = os.stat(log).st_ino
    with Tailer.create([(str(log), "asterisk")], {str(log): (inode, _offset_of(5))}) as tailer:
        [chunk] = tailer.poll()
    assert (chunk.first_line, chunk.text.splitlines()[0]) == (1, "line 5")


def test_a_file_rotated_while_down_is_numbered_as_it_is(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text("".join(LINES))
    inode = os.stat(log).st_ino
    log.rename(tmp_path / "messages.1")
    log.write_text("new 1\n")
    with Tailer.create([(str(log), "asterisk")], {str(log): (inode, _offset_of(6))}) as tailer:
        [chunk] = tailer.poll()
    assert chunk.first_line == 6
    assert chunk.text.splitlines()[:2] == ["line 6", "line 7"]
