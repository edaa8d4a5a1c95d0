"""Following log files: partial lines, rotation, truncation, late files, restarts."""

from __future__ import annotations

import gc
import os
import random
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.agent.inotify import Inotify
from pbxfw.agent.tail import MAX_LINE, MAX_READ, ROTATION_GRACE, Chunk, Tailer
from pbxfw.usecases import ConfigService


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
    # No line, but a new position (offset 0) for the agent to store: a
    # restart must not resume at the old offset in the emptied file.
    (chunk,) = tailer.poll()
    assert (chunk.text, chunk.offset) == ("", 0)
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


# -- rotation (issue 13, item 10) ---------------------------------------------------------


class Reader:
    """Polls a tailer and keeps every line it hands out, in order."""

    def __init__(self, tailer: Tailer, clock: FakeClock | None = None) -> None:
        self.tailer, self.clock = tailer, clock
        self.lines: list[str] = []
        self.bad = 0
        self.chunks: list[Chunk] = []

    def poll(self) -> list[str]:
        new: list[str] = []
        for chunk in self.tailer.poll():
            self.chunks.append(chunk)
            self.bad += chunk.bad_lines
            new += chunk.text.splitlines()
        self.lines += new
        return new

    def settle(self) -> list[str]:
        """Poll past the rotation grace (fake clock), as the agent would over a few seconds."""
        assert self.clock is not None
        new = self.poll()
        for _ in range(3):
            self.clock.now += ROTATION_GRACE
            new += self.poll()
        return new


def numbered(start: int, stop: int) -> str:
    return "".join(f"line {n}\n" for n in range(start, stop))


def append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_issue_reproduction_no_line_lost_at_rotation(tmp_path: Path) -> None:
    """5 lines read, 3 appended, rename, 1 more to the renamed file, a new file
    with 2 lines: all 11 lines are seen, none twice (4 were lost before)."""
    log = tmp_path / "security_log"
    log.write_text(numbered(1, 6))
    clock = FakeClock()
    with Tailer.create([(str(log), "asterisk_security")], clock=clock) as tailer:
        reader = Reader(tailer, clock)
        assert reader.poll() == [f"line {n}" for n in range(1, 6)]
        append(log, numbered(6, 9))
        os.rename(log, tmp_path / "security_log.1")
        append(tmp_path / "security_log.1", numbered(9, 10))  # the writer has not reopened yet
        log.write_text(numbered(10, 12))
        # The old file is read to its end before the new one.
        assert reader.poll() == [f"line {n}" for n in range(6, 10)]
        reader.settle()
        assert reader.lines == [f"line {n}" for n in range(1, 12)]
        assert reader.bad == 0


def test_the_old_file_is_followed_while_its_writer_still_appends(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text("a\n")
    clock = FakeClock()
    with Tailer.create([(str(log), "asterisk_messages")], clock=clock) as tailer:
        reader = Reader(tailer, clock)
        reader.poll()
        with log.open("a") as writer:  # a daemon's open log
            os.rename(log, tmp_path / "messages.1")
            log.write_text("new 1\n")
            for n in range(5):
                # Each write restarts the grace: the writer has not reopened.
                clock.now += ROTATION_GRACE / 2
                writer.write(f"old {n}\n")
                writer.flush()
                assert reader.poll() == [f"old {n}"]
        clock.now += ROTATION_GRACE
        assert reader.poll() == ["new 1"]
        append(log, "new 2\n")
        assert reader.poll() == ["new 2"]


def test_an_unlinked_old_file_is_still_read_to_its_end(tmp_path: Path) -> None:
    """`compress` without `delaycompress`: the old file is gzipped and removed at once;
    the tailer's descriptor still reads what the writer appended to it."""
    log = tmp_path / "auth.log"
    log.write_text("one\n")
    clock = FakeClock()
    with Tailer.create([(str(log), "ssh")], clock=clock) as tailer:
        reader = Reader(tailer, clock)
        reader.poll()
        with log.open("a") as writer:
            writer.write("two\n")
            writer.flush()
            os.rename(log, tmp_path / "auth.log.1")
            writer.write("three\n")
            writer.flush()
            os.unlink(tmp_path / "auth.log.1")
            log.write_text("four\n")
            writer.write("five\n")  # still before the writer reopens
        reader.settle()
        assert reader.lines == ["one", "two", "three", "five", "four"]


def test_rotations_closer_than_the_grace_are_read_in_order(tmp_path: Path) -> None:
    log = tmp_path / "security_log"
    log.write_text("")
    clock = FakeClock()
    with Tailer.create([(str(log), "asterisk_security")], clock=clock) as tailer:
        reader = Reader(tailer, clock)
        for n in range(4):
            append(log, f"file {n}\n")
            reader.poll()
            os.rename(log, tmp_path / f"security_log.{n}")
            log.write_text("")
            reader.poll()
            clock.now += ROTATION_GRACE / 3
        append(log, "last\n")
        reader.settle()
        assert reader.lines == [f"file {n}" for n in range(4)] + ["last"]


def test_restart_finishes_the_rotated_file_first(svc: ConfigService, tmp_path: Path) -> None:
    """Offsets persisted in the database; the file is rotated while the agent is down;
    the new tailer finds the old inode as security_log.1 and reads it first."""
    log = tmp_path / "security_log"
    sources = [(str(log), "asterisk_security")]
    log.write_text(numbered(1, 6))
    with Tailer.create(sources) as tailer:
        chunks = tailer.poll()
    with svc.store.write() as repo:
        for chunk in chunks:
            repo.save_log_offset(chunk.path, chunk.inode, chunk.offset, 0.0)
    # While the agent is down: 3 lines, rotation, 1 late line, the new file.
    append(log, numbered(6, 9))
    os.rename(log, tmp_path / "security_log.1")
    append(tmp_path / "security_log.1", numbered(9, 10))
    log.write_text(numbered(10, 12))
    with svc.store.read() as repo:
        offsets = repo.log_offsets()
    clock = FakeClock()
    with Tailer.create(sources, offsets, clock=clock) as tailer:
        reader = Reader(tailer, clock)
        assert reader.poll() == [f"line {n}" for n in range(6, 10)]
        # What a restart now would store: still the old file, at its end.
        last = reader.chunks[-1]
        assert last.inode == os.stat(tmp_path / "security_log.1").st_ino
        assert last.offset == os.stat(tmp_path / "security_log.1").st_size
        reader.settle()
        assert reader.lines == [f"line {n}" for n in range(6, 12)]
        assert reader.chunks[-1].inode == os.stat(log).st_ino


def test_restart_when_the_old_file_is_gone_reads_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("old\n")
    with Tailer.create([(str(log), "ssh")]) as tailer:
        (chunk,) = tailer.poll()
    os.rename(log, tmp_path / "auth.log.1")
    os.unlink(tmp_path / "auth.log.1")  # compressed away
    # The new file may get the freed inode number: no line starting at the
    # stored offset shows that it is not the file the offset belongs to.
    log.write_text("fresh line\n")
    offsets = {chunk.path: (chunk.inode, chunk.offset)}
    with Tailer.create([(str(log), "ssh")], offsets) as tailer:
        assert texts(tailer) == ["fresh line\n"]


def test_restart_after_truncate_and_rewrite_reads_from_the_start(tmp_path: Path) -> None:
    """Same inode, now longer than the stored offset, but no line starts there."""
    log = tmp_path / "auth.log"
    log.write_text("first line\n")
    with Tailer.create([(str(log), "ssh")]) as tailer:
        (chunk,) = tailer.poll()
    with log.open("r+") as f:
        f.truncate(0)
        f.write("a much longer new first line\n")
    offsets = {chunk.path: (chunk.inode, chunk.offset)}
    with Tailer.create([(str(log), "ssh")], offsets) as tailer:
        assert texts(tailer) == ["a much longer new first line\n"]


def copytruncate(log: Path, copy: Path) -> None:
    """What logrotate's copytruncate does: copy the file, then truncate it in place."""
    shutil.copyfile(log, copy)
    os.truncate(log, 0)


def test_copytruncate_reads_the_rest_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text(numbered(1, 6))
    with Tailer.create([(str(log), "asterisk_messages")]) as tailer:
        reader = Reader(tailer)
        reader.poll()
        append(log, numbered(6, 9))  # not read before the copy
        copytruncate(log, tmp_path / "messages.1")
        append(log, numbered(9, 11))
        reader.poll()
        assert reader.lines == [f"line {n}" for n in range(1, 11)]


def test_copytruncate_hidden_by_more_new_lines_is_noticed(tmp_path: Path) -> None:
    """After the truncation the file grew past the old offset: the bytes before the
    offset changed, so the shrink is still noticed (no line skipped or read twice)."""
    log = tmp_path / "messages"
    log.write_text(numbered(1, 3))
    with Tailer.create([(str(log), "asterisk_messages")]) as tailer:
        reader = Reader(tailer)
        reader.poll()
        append(log, numbered(3, 4))
        copytruncate(log, tmp_path / "messages.1")
        append(log, numbered(100, 120))
        reader.poll()
        assert reader.lines == [f"line {n}" for n in [1, 2, 3, *range(100, 120)]]


# -- long lines and sparse files (issue 13, item 11) --------------------------------------


def test_a_line_longer_than_64_kib_is_skipped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("")
    with Tailer.create([(str(log), "ssh")]) as tailer:
        reader = Reader(tailer)
        (f,) = tailer.files
        append(log, "before\n" + "x" * MAX_LINE + "\n")  # exactly at the limit: kept
        assert reader.poll() == ["before", "x" * MAX_LINE]
        # Fed in pieces, as a writer would: the kept part never exceeds the limit.
        for _ in range(40):
            append(log, "y" * 10_000)
            reader.poll()
            assert len(f.partial) <= MAX_LINE
        append(log, "\nafter\n")
        reader.poll()
        assert reader.lines[2:] == ["", "after"]  # the bad line stands as an empty one
        assert reader.bad == 1
        # Line numbers stay right: "after" is line 4.
        assert reader.chunks[-1].first_line + reader.chunks[-1].text.count("\n") - 1 == 4


def test_several_long_lines_in_one_read(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    long = "z" * (MAX_LINE + 1)
    log.write_text(f"a\n{long}\nb\n{long}\n{long}\nc\n")
    with Tailer.create([(str(log), "ssh")]) as tailer:
        (chunk,) = tailer.poll()
    assert chunk.text == "a\n\nb\n\n\nc\n"
    assert chunk.bad_lines == 3


def read_until_after(log: Path, polls: int) -> tuple[Reader, int]:
    """Tail ``log`` until the line "after" (at most ``polls`` polls); the reader
    and the peak of memory traced meanwhile."""
    tracemalloc.start()
    try:
        with Tailer.create([(str(log), "asterisk_messages")]) as tailer:
            reader = Reader(tailer)
            for _ in range(polls):
                reader.poll()
                if "after" in reader.lines:
                    break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return reader, peak


def test_a_1_gib_sparse_file_is_skipped_fast_in_bounded_memory(tmp_path: Path) -> None:
    """One 'line' of 1 GiB of NUL bytes (`truncate -s 1G`) costs one bad line,
    a few milliseconds and a few MiB, not GiBs and minutes."""
    log = tmp_path / "messages"
    log.write_text("before\n")
    os.truncate(log, 1 << 30)
    append(log, "\nafter\n")
    started = time.monotonic()
    reader, peak = read_until_after(log, polls=5)
    assert reader.lines == ["before", "", "after"]
    assert reader.bad == 1
    assert time.monotonic() - started < 10
    assert peak < 4 * MAX_READ  # one read's worth, not the line


def test_a_long_line_of_real_data_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    with log.open("wb") as f:
        f.write(b"before\n")
        block = b"A" * (1 << 20)
        for _ in range(64):
            f.write(block)
        f.write(b"\nafter\n")
    reader, peak = read_until_after(log, polls=20)  # 8 MiB per poll
    assert reader.lines == ["before", "", "after"]
    assert peak < 4 * MAX_READ


def test_start_at_end_skips_what_is_there(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("old\nunfinished")
    with Tailer.create([(str(log), "ssh")], start_at_end=True) as tailer:
        assert texts(tailer) == []
        append(log, " line\nnew\n")
        assert texts(tailer) == ["unfinished line\nnew\n"]


# -- errors and descriptors -----------------------------------------------------------------


def test_a_bad_path_is_reported_and_the_other_files_are_read(tmp_path: Path) -> None:
    good = tmp_path / "messages"
    good.write_text("fine\n")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    fifo = tmp_path / "a-fifo"
    os.mkfifo(fifo)
    sources = [
        (str(folder), "ssh"),
        (str(tmp_path / "nul\x00byte"), "web"),
        (str(fifo), "nginx"),
        (str(good), "asterisk_messages"),
        (str(tmp_path / "not-yet"), "asterisk_security"),
    ]
    with Tailer.create(sources) as tailer:
        assert texts(tailer) == ["fine\n"]
        errors = tailer.errors()
        assert set(errors) == {str(folder), str(tmp_path / "nul\x00byte"), str(fifo)}
        assert errors[str(folder)] == "Is a directory"
        assert errors[str(fifo)] == "not a regular file"
        assert "null" in errors[str(tmp_path / "nul\x00byte")]
        # Nothing else to return: the first file's error is raised.
        with pytest.raises(IsADirectoryError):
            tailer.poll()
        # Fixed: the error goes away and the file is read.
        folder.rmdir()
        folder.write_text("now a file\n")
        assert texts(tailer) == ["now a file\n"]
        assert str(folder) not in tailer.errors()


def open_fds(folder: Path) -> int:
    """Descriptors of this process open on files of ``folder`` (removed ones too)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(f"{folder}/")
    return count


def test_descriptors_are_closed(tmp_path: Path) -> None:
    log = tmp_path / "security_log"
    log.write_text("a\n")
    before = open_fds(tmp_path)
    assert before == 0
    clock = FakeClock()
    tailer = Tailer.create([(str(log), "asterisk_security")], clock=clock)
    tailer.poll()
    os.rename(log, tmp_path / "security_log.1")
    log.write_text("b\n")
    tailer.poll()
    assert open_fds(tmp_path) == before + 2  # the old file and its successor
    clock.now += ROTATION_GRACE
    tailer.poll()
    assert open_fds(tmp_path) == before + 1
    tailer.close()
    tailer.close()
    assert open_fds(tmp_path) == before
    with pytest.raises(ValueError):
        tailer.poll()
    # A tailer dropped without close() (the agent replacing it) closes them too.
    Tailer.create([(str(log), "asterisk_security")])
    gc.collect()
    assert open_fds(tmp_path) == before


def test_a_single_bad_path_raises_on_poll(tmp_path: Path) -> None:
    """The agent runs one tailer per source and records what poll() raises."""
    with Tailer.create([(str(tmp_path / "x\x00y"), "ssh")]) as tailer:
        with pytest.raises(ValueError, match="null"):
            tailer.poll()
        assert tailer.errors()


# -- a model: random writes, rotations, copytruncates, polls and restarts -------------------

OPS = st.lists(
    st.sampled_from(
        [
            "line",
            "line",
            "line",
            "half",
            "poll",
            "poll",
            "rotate",
            "copytruncate",
            "tick",
            "restart",
        ]
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops=OPS, seed=st.integers(0, 2**16))
def test_model_every_line_exactly_once(ops: list[str], seed: int) -> None:
    """Whatever the order of writes, rotations (rename + create, the writer
    reopening a little later), copytruncates, polls and agent restarts, every
    line is handed out exactly once, in the order written to each file.

    The model keeps to what the tailer promises (docs/security.md, "Log files
    and rotation"): at most one rotation between two polls; the writer
    reopens before the grace can pass (the clock only moves while it writes
    to the current file); no copytruncate before a whole line of the file was
    read or during a rotation's grace; a restart does not fall on a
    copytruncate not yet noticed, on a chain of rotations, or on a rotated
    file with nothing stored. 3,000 examples ran clean several times; the
    suite runs 200.
    """
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "security_log"
        log.write_text("")
        clock = FakeClock()
        sources = [(str(log), "asterisk_security")]
        tailer = Tailer.create(sources, clock=clock)
        writer = log.open("a")
        on_old = False  # the writer still writes to a rotated file
        unpolled = False  # a rotation or copytruncate the tailer has not seen yet
        rotations = 0
        written = 0
        seen: list[int] = []
        stored: dict[str, tuple[int, int]] = {}
        half = 0  # characters of the current line already written

        def poll() -> None:
            nonlocal unpolled
            for chunk in tailer.poll():
                assert chunk.bad_lines == 0
                seen.extend(int(x) for x in chunk.text.split())
                stored[chunk.path] = (chunk.inode, chunk.offset)
            unpolled = False

        try:
            for op in ops:
                if op in ("line", "half"):
                    if half:  # finish the line begun
                        writer.write(f"{written:05d}"[half:] + "\n")
                        half = 0
                    else:
                        written += 1
                        if op == "half":  # a line written in two pieces
                            half = rng.randint(1, 4)
                            writer.write(f"{written:05d}"[:half])
                        else:
                            writer.write(f"{written:05d}\n")
                    writer.flush()
                elif op == "poll":
                    poll()
                elif op == "rotate" and not half:
                    if unpolled:
                        poll()
                    if on_old:  # the writer reopens (postrotate) before the next rotation
                        writer.close()
                        writer = log.open("a")
                        on_old = False
                    rotations += 1
                    os.rename(log, f"{log}.{rotations}")
                    log.write_text("")
                    on_old, unpolled = True, True
                elif op == "copytruncate" and not half and not on_old:
                    if unpolled:
                        poll()
                    f = tailer.files[0]
                    if len(f.handles) > 1 or f.handles[0].offset == len(f.partial):
                        # Still in a rotation's grace, or not a whole line read
                        # yet: nothing to tell old bytes from new (documented).
                        continue
                    rotations += 1
                    copytruncate(log, Path(f"{log}.{rotations}"))
                    unpolled = True
                elif op == "tick":
                    if on_old and not half:
                        writer.close()
                        writer = log.open("a")
                        on_old = False
                    if not on_old:
                        clock.now += rng.choice([0.1, 1.0, ROTATION_GRACE, 5.0])
                elif (
                    op == "restart"
                    and not unpolled
                    and len(tailer.files[0].handles) <= (2 if stored else 1)
                ):
                    # With nothing stored the new tailer cannot know an old file.
                    tailer.close()
                    tailer = Tailer.create(sources, dict(stored), clock=clock)
            # The end: the writer finishes its line and reopens; time passes.
            if half:
                writer.write(f"{written:05d}"[half:] + "\n")
            writer.close()
            for _ in range(4):
                poll()
                clock.now += ROTATION_GRACE
            poll()
        finally:
            tailer.close()
    assert seen == list(range(1, written + 1))


def test_a_truncation_is_stored_even_without_new_lines(tmp_path: Path) -> None:
    """Found by the model above: truncated, nothing new read, then a line
    written and the agent restarted — the stored offset must not skip it."""
    log = tmp_path / "messages"
    log.write_text("00001\n")
    with Tailer.create([(str(log), "asterisk_messages")]) as tailer:
        stored = {c.path: (c.inode, c.offset) for c in tailer.poll()}
        copytruncate(log, tmp_path / "messages.1")
        stored.update({c.path: (c.inode, c.offset) for c in tailer.poll()})
    append(log, "00002\n")
    with Tailer.create([(str(log), "asterisk_messages")], stored) as tailer:
        assert texts(tailer) == ["00002\n"]
