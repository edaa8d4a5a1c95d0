"""Following log files: partial lines, rotation, truncation, late files, restarts."""

from __future__ import annotations

import os
from pathlib import Path

from pbxfw.agent.tail import Inotify, Tailer


def texts(tailer: Tailer) -> list[str]:
    return [chunk.text for chunk in tailer.poll()]


def test_partial_lines_wait_for_their_newline(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text("one\ntw")
    tailer = Tailer.create([(str(log), "asterisk_messages")])
    assert texts(tailer) == ["one\n"]
    with log.open("a") as f:
        f.write("o\nthree")
    assert texts(tailer) == ["two\n"]
    assert texts(tailer) == []


def test_rotation_truncation_and_a_file_that_appears_later(tmp_path: Path) -> None:
    log = tmp_path / "security_log"
    tailer = Tailer.create([(str(log), "asterisk_security")])
    assert texts(tailer) == []
    log.write_text("a\n")
    assert texts(tailer) == ["a\n"]
    os.rename(log, tmp_path / "security_log.1")
    log.write_text("b\n")
    assert texts(tailer) == ["b\n"]
    log.write_text("")  # truncated (copytruncate)
    assert texts(tailer) == []
    log.write_text("c\n")
    assert texts(tailer) == ["c\n"]


def test_restart_resumes_at_the_stored_offset(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("first\nsecond\n")
    tailer = Tailer.create([(str(log), "ssh")])
    chunk = tailer.poll()[0]
    offsets = {chunk.path: (chunk.inode, chunk.offset)}
    with log.open("a") as f:
        f.write("third\n")
    again = Tailer.create([(str(log), "ssh")], offsets)
    assert texts(again) == ["third\n"]
    # Rotated while the agent was down: the new file is read from its start.
    os.rename(log, tmp_path / "auth.log.1")
    log.write_text("fresh\n")
    assert texts(Tailer.create([(str(log), "ssh")], offsets)) == ["fresh\n"]


def test_inotify_wakes_on_append(tmp_path: Path) -> None:
    log = tmp_path / "web.log"
    log.write_text("")
    watcher = Inotify([str(tmp_path)])
    try:
        assert watcher.wait(0.05) is False
        with log.open("a") as f:
            f.write("x\n")
        assert watcher.wait(2.0) is True
    finally:
        watcher.close()
