"""The state of one followed file and the steps on it: open, place, cut lines, find rotated files.

``agent.tail.Tailer`` decides *when* (rotation, truncation, the grace);
this module does each step on one file: open a regular file without
blocking, place a handle at a stored offset or at the last line, split the
bytes read into complete lines of bounded length (``split_lines``), jump
over the holes of a sparse over-long line, and look in a log's folder for
the file a stored inode now names or for the copy logrotate's
``copytruncate`` made. The promises these steps keep are listed in
agent.tail's docstring.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

__all__ = [
    "COUNT_LIMIT",
    "MAX_LINE",
    "Handle",
    "TrackedFile",
    "close_all",
    "drop_partial",
    "find_copy",
    "find_inode",
    "lines_before",
    "open_file",
    "seek",
    "seek_end",
    "skip_hole",
    "split_lines",
]

#: A longer line is skipped and counted as bad (never accumulated).
MAX_LINE = 64 * 1024
#: Bytes kept from just before a file's offset, to notice a copytruncate
#: that was followed by enough new lines to hide the shrink, and to find the copy.
TAIL = 64
#: Read size while skipping an over-long line.
SKIP_BLOCK = 1024 * 1024
#: Files of a folder looked at when searching a rotated file or a copy.
_MAX_CANDIDATES = 200


@dataclass(eq=False)
class Handle:
    """One open file of a followed path (the path's current file, or a rotated one)."""

    fd: int
    dev: int
    ino: int
    offset: int = 0
    #: The bytes just before ``offset`` (at most ``TAIL``).
    tail: bytes = b""
    #: None while the path names this file; otherwise when it was last seen
    #: replaced or last grew since (the grace counts from there).
    rotated_at: float | None = None
    #: A copytruncate copy: finished at its end, with no grace.
    copy: bool = False
    #: (size, mtime) at the last look: the bytes before ``offset`` are
    #: compared again only when they changed.
    seen: tuple[int, int] = (-1, -1)


@dataclass
class TrackedFile:
    """A followed path. ``inode``/``offset``: the position to store for a restart."""

    path: str
    kind: str
    inode: int = 0
    offset: int = 0
    partial: bytes = b""
    lines_read: int = 0
    #: Over-long lines and unfinished last lines skipped so far.
    bad_lines: int = 0
    #: Why the path cannot be read now (None: fine, or not there yet).
    error: str | None = None
    #: The exception behind ``error`` (raised by ``poll`` when it has nothing else to say).
    exception: OSError | ValueError | None = field(default=None, repr=False)
    failed: bool = field(default=False, repr=False)
    #: Inside an over-long line: skipping to its newline.
    skipping: bool = False
    #: Offset (in the first handle) where the skipped line started.
    skip_start: int = 0
    handles: list[Handle] = field(default_factory=list, repr=False)
    #: A stored (inode, offset) not yet matched to a file.
    resume: tuple[int, int] | None = field(default=None, repr=False)
    #: The position the last chunk reported (None: none to keep up to date).
    reported: tuple[int, int] | None = field(default=None, repr=False)


def split_lines(f: TrackedFile, data: bytes, base: int, out: list[bytes]) -> None:
    """Add the complete lines of ``data`` (read at ``base``) to ``out``; keep the rest.

    A line longer than ``MAX_LINE`` is never accumulated: it becomes an
    empty line in ``out`` (counted in ``f.bad_lines``) and the rest of it is
    skipped up to its newline (``f.skipping``).
    """
    if f.skipping:
        nl = data.find(b"\n")
        if nl < 0:
            return
        f.skipping = False
        data, base = data[nl + 1 :], base + nl + 1
    buf = f.partial + data if f.partial else data
    start = base - len(f.partial)
    p, n = 0, len(buf)
    good = 0  # start of the run of short lines that ends at p
    while p < n:
        # The last newline within reach of a line of MAX_LINE bytes: every
        # line up to it is short enough.
        q = buf.rfind(b"\n", p, p + MAX_LINE + 1)
        if q >= 0:
            p = q + 1
            continue
        if n - p <= MAX_LINE:
            break  # an unfinished line, short enough to keep
        if p > good:
            out.append(buf[good:p])
        f.bad_lines += 1
        out.append(b"\n")
        nl = buf.find(b"\n", p + MAX_LINE + 1)
        if nl < 0:
            f.skipping, f.skip_start = True, start + p
            good = p = n
            break
        good = p = nl + 1
    if p > good:
        out.append(buf[good:p])
    f.partial = buf[p:]


def drop_partial(f: TrackedFile, out: list[bytes]) -> None:
    """An unfinished line that will never finish is a bad line (its end may be what is missing)."""
    if f.partial:
        f.bad_lines += 1
        out.append(b"\n")
    f.partial, f.skipping = b"", False


def close_all(files: list[TrackedFile]) -> None:
    """Close every handle of ``files`` (a tailer's finalizer)."""
    for f in files:
        for h in f.handles:
            if h.fd >= 0:
                os.close(h.fd)
                h.fd = -1
        f.handles.clear()


def skip_hole(h: Handle, size: int) -> None:
    """Inside an over-long line, jump over a hole (NUL bytes, no newline) without reading it."""
    try:
        nxt = os.lseek(h.fd, h.offset, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            return  # no SEEK_DATA here: read through it
        nxt = size  # a hole up to the end
    nxt = min(nxt, size)
    if nxt > h.offset:
        h.tail = (h.tail + bytes(min(TAIL, nxt - h.offset)))[-TAIL:]
        h.offset = nxt


def open_file(path: str) -> Handle | None:
    """A handle on the regular file at ``path``; None when it does not exist.

    Raises ``OSError``/``ValueError`` when it cannot be read: no permission,
    a NUL byte, ``IsADirectoryError`` for a folder, ``EINVAL`` for a FIFO or
    a device (opened without blocking, then refused).
    """
    try:
        # O_NONBLOCK: opening a FIFO must not hang the agent.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        raise OSError(errno.EINVAL, "not a regular file", path)
    return Handle(fd, st.st_dev, st.st_ino)


def _quiet_open(path: str) -> Handle | None:
    """``open_file`` for a file of the folder we merely look at (errors: None)."""
    try:
        return open_file(path)
    except (OSError, ValueError):
        return None


#: Files up to this offset have their lines counted when resumed (``lines_before``).
COUNT_LIMIT = 256 * 1024 * 1024


def lines_before(h: Handle, offset: int) -> int:
    """How many lines end before ``offset`` of ``h``'s file: the number of the
    line there, minus one, so that a resumed file's lines keep the numbers
    the file gives them (a ban's evidence, docs/observability.md). Read once
    per resume, in 1 MiB blocks; 0 (numbers then count from the resume point)
    past ``COUNT_LIMIT`` or when the file cannot be read."""
    if offset > COUNT_LIMIT:
        return 0
    count, at = 0, 0
    try:
        while at < offset:
            block = os.pread(h.fd, min(1 << 20, offset - at), at)
            if not block:
                break
            count += block.count(b"\n")
            at += len(block)
    except OSError:
        return 0
    return count


def seek(h: Handle, offset: int) -> bool:
    """Place ``h`` at a stored offset; False when the file no longer fits it
    (shorter, or no line starts there: truncated and written again)."""
    if offset <= 0:
        return True
    try:
        size = os.fstat(h.fd).st_size
        tail = os.pread(h.fd, min(TAIL, offset), offset - min(TAIL, offset))
    except OSError:
        return False
    if size < offset or not tail.endswith(b"\n"):
        return False
    h.offset, h.tail = offset, tail
    return True


def seek_end(f: TrackedFile, h: Handle) -> None:
    """Place ``h`` at the start of its last, unfinished line (its end when complete)."""
    size = os.fstat(h.fd).st_size
    last = os.pread(h.fd, min(size, MAX_LINE + 1), size - min(size, MAX_LINE + 1))
    nl = last.rfind(b"\n")
    if nl >= 0:
        seek(h, size - len(last) + nl + 1)
    elif len(last) > MAX_LINE:
        # Inside an over-long line: skip to its end.
        h.offset, h.tail = size, last[-TAIL:]
        f.skipping, f.skip_start, f.bad_lines = True, size, f.bad_lines + 1


def _candidates(path: str) -> list[os.DirEntry[str]]:
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with os.scandir(folder) as entries:
            found: list[os.DirEntry[str]] = []
            for entry in entries:
                if len(found) >= _MAX_CANDIDATES:
                    break
                if entry.is_file(follow_symlinks=False):
                    found.append(entry)
            return found
    except (OSError, ValueError):
        return []


def find_inode(path: str, ino: int, offset: int) -> Handle | None:
    """The file of ``path``'s folder with inode ``ino``, placed at ``offset`` (a rotated log)."""
    for entry in _candidates(path):
        if entry.inode() != ino:
            continue
        h = _quiet_open(entry.path)
        if h is None:
            continue
        if h.ino == ino and seek(h, offset):
            return h
        os.close(h.fd)
    return None


def find_copy(path: str, h: Handle) -> Handle | None:
    """The copy logrotate's copytruncate made of ``h``: a file of the folder named
    after the log that holds ``h``'s last bytes at the same place and more after them."""
    name = os.path.basename(path)
    best: tuple[float, Handle] | None = None
    for entry in _candidates(path):
        if not entry.name.startswith(name) or entry.name == name:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if st.st_ino == h.ino or st.st_size <= h.offset:
            continue
        c = _quiet_open(entry.path)
        if c is None:
            continue
        try:
            same = os.pread(c.fd, len(h.tail), h.offset - len(h.tail)) == h.tail
        except OSError:
            same = False
        if not same or (best is not None and best[0] >= st.st_mtime):
            os.close(c.fd)
            continue
        if best is not None:
            os.close(best[1].fd)
        best = (st.st_mtime, c)
    return None if best is None else best[1]
