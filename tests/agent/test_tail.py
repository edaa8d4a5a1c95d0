"""Following log files: partial lines, rotation, truncation, late files, restarts."""

from __future__ import annotations

import os
from pathlib import Path

from pbxfw.agent.tail import ROTATION_GRACE, Inotify, Tailer


class FakeClock:
    """The tailer's clock seam: time passes only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
    clock = FakeClock()
    tailer = Tailer.create([(str(log), "asterisk_security")], clock=clock)
    assert texts(tailer) == []
    log.write_text("a\n")
    assert texts(tailer) == ["a\n"]
    os.rename(log, tmp_path / "security_log.1")
    log.write_text("b\n")
    # The new file waits until the old one has been quiet for the grace period.
    assert texts(tailer) == []
    clock.now += ROTATION_GRACE
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
    again.close()
    # Rotated while the agent was down (offsets still those after "second"):
    # the old file is finished from the stored offset, then the new file is
    # read from its start.
    os.rename(log, tmp_path / "auth.log.1")
    log.write_text("fresh\n")
    clock = FakeClock()
    with Tailer.create([(str(log), "ssh")], offsets, clock=clock) as third:
        assert texts(third) == ["third\n"]
        clock.now += ROTATION_GRACE
        assert texts(third) == ["fresh\n"]


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
