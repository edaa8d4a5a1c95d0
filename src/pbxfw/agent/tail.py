"""Following log files: inotify wake-ups, rotation, truncation, partial lines.

``Tailer`` keeps every followed file open and remembers, per file, the inode
and the offset of the first line it has not handed out yet; the agent stores
them (``log_offsets``) so that a restarted agent continues where it stopped.
The promises (docs/security.md, "Log files and rotation"):

- **Rotation by rename** (logrotate ``create``, or no option): the old file
  stays open and is read to its end, including what the writer still appends
  to it after the rename, before the file that now carries the name is read
  from its start. The old file is given up once it has been quiet for
  ``grace`` seconds (measured with the tailer's ``clock``) after the rename
  was noticed: the time the writer needs to reopen its log (Asterisk's
  ``logger reload``, a HUP to syslog). As the descriptor stays open, an old
  file that is unlinked meanwhile (``compress`` without ``delaycompress``)
  is still read to its end.
- **Restart across a rotation**: a stored inode that the path no longer
  names is looked for in the same folder (``security_log.1``, any name with
  that inode); found, it is finished first, from the stored offset, then the
  new file is read from its start. Not found (compressed, deleted): the new
  file is read from its start and what the old file held after the stored
  offset is lost.
- **copytruncate** (same inode, shrinks): noticed when the file is shorter
  than the offset, or when the bytes just before the offset are no longer
  those read there. What was appended after the last read and before the
  copy is read from the copy (a file of the folder whose name starts with
  the log's name and that holds the same bytes before the offset), then the
  truncated file from its start. Lines written between logrotate's copy and
  its truncation are in neither file: that loss belongs to copytruncate.
- **No line twice**: each byte of a file is handed out once; the stored
  offset always points at the start of a line.
- **Bounded memory**: a line longer than ``MAX_LINE`` (64 KiB) is never
  accumulated: it is skipped (holes of sparse files by ``SEEK_DATA``, data
  in blocks), counted in ``Chunk.bad_lines`` and replaced by an empty line so
  that line numbers stay right; its text never reaches the recognisers (its
  end, where log formats put the address, is what is missing). The last
  line of a finished file that lacks its newline is counted the same way.
- **Errors stay with their file**: a path that cannot be opened (a folder, a
  FIFO, a NUL byte, no permission) is kept in ``TrackedFile.error`` and
  :meth:`Tailer.errors` and retried on every poll; the other files are read
  as usual. :meth:`Tailer.poll` raises the error (the ``OSError`` or
  ``ValueError`` itself: ``IsADirectoryError`` for a folder) only when it has
  no lines to return, so that lines read are never dropped. A path that does
  not exist yet is not an error: it is read from its start when it appears.

Wake-ups come from inotify on the files' folders (Linux, through libc);
where inotify is unavailable the agent simply polls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import select
import stat
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["Chunk", "Inotify", "Tailer", "TrackedFile"]

log = logging.getLogger(__name__)

_IN_MODIFY = 0x002
_IN_ATTRIB = 0x004
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_MASK = (
    _IN_MODIFY
    | _IN_ATTRIB
    | _IN_CLOSE_WRITE
    | _IN_MOVED_FROM
    | _IN_MOVED_TO
    | _IN_CREATE
    | _IN_DELETE
)
#: Read at most this much per file per poll, so one huge backlog cannot
#: starve the other files (the rest comes on the next poll).
MAX_READ = 8 * 1024 * 1024
#: A longer line is skipped and counted as bad (never accumulated).
MAX_LINE = 64 * 1024
#: Seconds a replaced file must stay quiet before its successor is read.
ROTATION_GRACE = 2.0
#: Bytes kept from just before a file's offset, to notice a copytruncate
#: that was followed by enough new lines to hide the shrink, and to find the copy.
_TAIL = 64
#: Read size while skipping an over-long line.
_SKIP_BLOCK = 1024 * 1024
#: Files held per path at once (the current one and those rotated within the grace).
_MAX_HANDLES = 8
#: Files of a folder looked at when searching a rotated file or a copy.
_MAX_CANDIDATES = 200


@dataclass(eq=False)
class _Handle:
    """One open file of a followed path (the path's current file, or a rotated one)."""

    fd: int
    dev: int
    ino: int
    offset: int = 0
    #: The bytes just before ``offset`` (at most ``_TAIL``).
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
    handles: list[_Handle] = field(default_factory=list, repr=False)
    #: A stored (inode, offset) not yet matched to a file.
    resume: tuple[int, int] | None = field(default=None, repr=False)
    #: The position the last chunk reported (None: none to keep up to date).
    reported: tuple[int, int] | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines newly read from one file; ``first_line`` counts from the agent's start.

    ``inode``/``offset``: where to resume after these lines (store them).
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


def _close_all(files: list[TrackedFile]) -> None:
    for f in files:
        for h in f.handles:
            if h.fd >= 0:
                os.close(h.fd)
                h.fd = -1
        f.handles.clear()


@dataclass
class Tailer:
    """Reads what was appended to a set of files since the last call.

    Holds one descriptor per followed file (more for a few seconds after a
    rotation): call :meth:`close` (or use it as a context manager) when done;
    a tailer that is dropped unclosed closes them when collected.
    """

    files: list[TrackedFile] = field(default_factory=list)
    #: Monotonic seconds; the seam tests replace to pass the rotation grace.
    clock: Callable[[], float] = time.monotonic
    grace: float = ROTATION_GRACE

    def __post_init__(self) -> None:
        self._finalizer = weakref.finalize(self, _close_all, self.files)

    @classmethod
    def create(
        cls,
        sources: Iterable[tuple[str, str]],
        offsets: dict[str, tuple[int, int]] | None = None,
        *,
        start_at_end: bool = False,
        clock: Callable[[], float] = time.monotonic,
        grace: float = ROTATION_GRACE,
    ) -> Tailer:
        """Track ``(path, kind)`` pairs, resuming at stored ``offsets`` (path → inode, offset).

        A file with no stored offset is read from its start, or from its end
        when ``start_at_end``. A stored inode that the path no longer names is
        looked for in the path's folder and finished first. Never raises for
        a bad path: see ``TrackedFile.error``.
        """
        offsets = offsets or {}
        tailer = cls([], clock, grace)
        for path, kind in sources:
            f = TrackedFile(path, kind)
            if path in offsets:
                f.inode, f.offset = offsets[path]
                f.resume = f.reported = (f.inode, f.offset)
            tailer.files.append(f)
            try:
                tailer._attach(f, tailer.clock(), start_at_end=start_at_end)
            except (OSError, ValueError) as exc:
                tailer._fail(f, exc)
            if f.handles and f.reported is None:
                f.reported = tailer._position(f)
        return tailer

    def folders(self) -> set[str]:
        return {os.path.dirname(os.path.abspath(f.path)) for f in self.files}

    def errors(self) -> dict[str, str]:
        """Path → why it cannot be read now, for the paths that cannot."""
        return {f.path: f.error for f in self.files if f.error is not None}

    def close(self) -> None:
        """Close every descriptor (idempotent)."""
        self._finalizer()

    def __enter__(self) -> Tailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll(self) -> list[Chunk]:
        """New complete lines of every file (at most MAX_READ bytes read from each).

        Raises the ``OSError``/``ValueError`` of a file that cannot be read
        when no file gave lines in this call; otherwise the lines are
        returned and the error stays in :meth:`errors` (and is raised by a
        later call that has nothing to return).
        """
        if not self._finalizer.alive:
            raise ValueError("poll() on a closed Tailer")
        chunks = []
        failure: OSError | ValueError | None = None
        for f in self.files:
            chunk = self._poll_file(f)
            if chunk is not None:
                chunks.append(chunk)
            if f.failed and failure is None:
                failure = f.exception
        if failure is not None and not chunks:
            raise failure
        return chunks

    # -- one file ----------------------------------------------------------------------
    def _poll_file(self, f: TrackedFile) -> Chunk | None:
        out: list[bytes] = []
        bad_before = f.bad_lines
        f.failed = False
        try:
            self._advance(f, out)
        except (OSError, ValueError) as exc:
            # What was read before the failure is still handed out below.
            self._fail(f, exc)
        if not f.failed and f.error is not None:
            log.info("%s is readable again", f.path)
            f.error, f.exception = None, None
        position = self._position(f)
        if not out and (f.reported is None or f.reported == position):
            return None
        f.reported = position
        text = b"".join(out).decode("utf-8", errors="replace")
        first = f.lines_read + 1
        f.lines_read += text.count("\n")
        bad = f.bad_lines - bad_before
        if bad:
            log.warning(
                "%s: %d line(s) skipped (longer than %d bytes, or cut by a rotation)",
                f.path,
                bad,
                MAX_LINE,
            )
        return Chunk(f.path, f.kind, text, first, f.inode, f.offset, bad)

    def _position(self, f: TrackedFile) -> tuple[int, int]:
        """Where a restart should resume: the first handle, at the start of its unfinished line."""
        if f.handles:
            h = f.handles[0]
            f.inode = h.ino
            f.offset = f.skip_start if f.skipping else h.offset - len(f.partial)
        return f.inode, f.offset

    def _advance(self, f: TrackedFile, out: list[bytes]) -> None:
        now = self.clock()
        if not f.handles:
            self._attach(f, now)
        else:
            self._follow_path(f, now)
        budget = MAX_READ
        # Each round reads, stops, or drops a handle or an offset: a few rounds
        # suffice; the bound only guards against a file that keeps changing.
        for _ in range(2 * _MAX_HANDLES + 4):
            if not f.handles or budget <= 0:
                break
            h = f.handles[0]
            size = self._check_truncation(f, h, out, now)
            if size is None:
                continue  # truncated: the handles changed, look again
            budget -= self._read(f, h, size, budget, out, now)
            if budget <= 0:
                break  # more next time
            if h.rotated_at is None:
                break  # the path's current file, read to its end
            if not h.copy and now - h.rotated_at < self.grace:
                break  # the writer may still append to the old file
            self._finish(f, out)
            if not f.handles:
                self._attach(f, now)

    def _attach(self, f: TrackedFile, now: float, *, start_at_end: bool = False) -> None:
        """Open the path for a file with no handle (first poll, or after its file ended)."""
        h = self._open(f, f.path)
        try:
            self._place(f, h, now, start_at_end)
        except BaseException:
            if h is not None and h not in f.handles:
                os.close(h.fd)
            raise

    def _place(self, f: TrackedFile, h: _Handle | None, now: float, start_at_end: bool) -> None:
        """Where to start: a stored offset (in ``h`` or in the rotated file), or 0 / the end."""
        resume, f.resume = f.resume, None
        if resume is not None:
            ino, offset = resume
            if h is not None and h.ino == ino and self._seek(h, offset):
                f.handles.append(h)
                return
            old = self._find_inode(f, ino, offset)
            if old is not None:
                log.info(
                    "%s was rotated while the agent was down; finishing the old file first",
                    f.path,
                )
                old.rotated_at = now
                f.handles.append(old)
            else:
                log.info(
                    "%s was replaced while the agent was down; reading it from its start", f.path
                )
        elif h is not None and start_at_end:
            self._seek_end(f, h)
        if h is not None:
            f.handles.append(h)

    def _follow_path(self, f: TrackedFile, now: float) -> None:
        """Notice that the path names another file (or none) than the newest handle."""
        last = f.handles[-1]
        try:
            st: os.stat_result | None = os.stat(f.path)
        except FileNotFoundError:
            st = None
        except (OSError, ValueError) as exc:
            # Keep reading the open file; the path's error is reported.
            self._fail(f, exc)
            st = None
        if st is not None and (st.st_dev, st.st_ino) == (last.dev, last.ino):
            return
        if last.rotated_at is None:
            log.info("%s was rotated or removed; finishing the old file first", f.path)
            last.rotated_at = now
        if st is None or len(f.handles) >= _MAX_HANDLES:
            return
        h = self._open(f, f.path)
        if h is None:
            return
        if (h.dev, h.ino) == (last.dev, last.ino):
            # Renamed back between the stat and the open.
            last.rotated_at = None
            os.close(h.fd)
            return
        f.handles.append(h)

    def _check_truncation(
        self, f: TrackedFile, h: _Handle, out: list[bytes], now: float
    ) -> int | None:
        """The handle's size, or None when it was truncated (the handles are then updated)."""
        st = os.fstat(h.fd)
        size, changed = st.st_size, (st.st_size, st.st_mtime_ns) != h.seen
        h.seen = (st.st_size, st.st_mtime_ns)
        if size < h.offset:
            same = False
        elif changed and h.tail:
            # Emptied and written again up to (or past) the offset: the bytes
            # before it are not those read there any more.
            same = os.pread(h.fd, len(h.tail), h.offset - len(h.tail)) == h.tail
        else:
            same = True
        if same:
            return size
        if h.copy:
            # A copy is never written: something else is going on; give it up.
            self._finish(f, out)
            return None
        copy = self._find_copy(f, h)
        if copy is not None:
            log.info("%s was truncated (copytruncate); reading the rest from its copy", f.path)
            copy.offset, copy.tail, copy.copy, copy.rotated_at = h.offset, h.tail, True, now
            f.handles.insert(0, copy)
        else:
            log.info("%s was truncated; reading it again from its start", f.path)
            self._drop_partial(f, out)
        h.offset, h.tail = 0, b""
        return None

    def _read(
        self, f: TrackedFile, h: _Handle, size: int, budget: int, out: list[bytes], now: float
    ) -> int:
        """Read ``h`` up to ``size`` (at most ``budget`` bytes); returns the bytes read."""
        done = 0
        while done < budget and h.offset < size:
            if f.skipping:
                self._skip_hole(h, size)
                if h.offset >= size:
                    break
            want = min(budget - done, size - h.offset)
            if f.skipping:
                want = min(want, _SKIP_BLOCK)
            data = os.pread(h.fd, want, h.offset)
            if not data:
                break
            base = h.offset
            h.offset += len(data)
            h.tail = (h.tail + data[-_TAIL:])[-_TAIL:]
            done += len(data)
            self._split(f, data, base, out)
            if h.rotated_at is not None and not h.copy:
                h.rotated_at = now  # still written to: the writer has not reopened yet
        return done

    def _skip_hole(self, h: _Handle, size: int) -> None:
        """Inside an over-long line, jump over a hole (NUL bytes, no newline) without reading it."""
        try:
            nxt = os.lseek(h.fd, h.offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                return  # no SEEK_DATA here: read through it
            nxt = size  # a hole up to the end
        nxt = min(nxt, size)
        if nxt > h.offset:
            h.tail = (h.tail + bytes(min(_TAIL, nxt - h.offset)))[-_TAIL:]
            h.offset = nxt

    def _split(self, f: TrackedFile, data: bytes, base: int, out: list[bytes]) -> None:
        """Add the complete lines of ``data`` (read at ``base``) to ``out``; keep the rest."""
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

    def _finish(self, f: TrackedFile, out: list[bytes]) -> None:
        """Done with the first handle (a rotated file or a copy): close it, go on with the next."""
        h = f.handles.pop(0)
        os.close(h.fd)
        # Its end is the position to store until the next file is read.
        f.inode, f.offset = h.ino, h.offset
        self._drop_partial(f, out)
        log.info(
            "%s: finished the %s file (inode %d)", f.path, "copied" if h.copy else "rotated", h.ino
        )

    def _drop_partial(self, f: TrackedFile, out: list[bytes]) -> None:
        """An unfinished line that will never finish is a bad line (its end may be what is missing)."""
        if f.partial:
            f.bad_lines += 1
            out.append(b"\n")
        f.partial, f.skipping = b"", False

    # -- files of the folder -----------------------------------------------------------
    def _open(self, f: TrackedFile, path: str, *, report: bool = True) -> _Handle | None:
        """A handle on a regular file at ``path``; None when absent, or not readable
        (then ``f.error`` says why, when ``report``)."""
        try:
            # O_NONBLOCK: opening a FIFO must not hang the agent.
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            if report:
                self._fail(f, exc)
            return None
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            if report:
                self._fail(f, exc)
            return None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            if report:
                if stat.S_ISDIR(st.st_mode):
                    self._fail(f, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path))
                else:
                    self._fail(f, OSError(errno.EINVAL, "not a regular file", path))
            return None
        return _Handle(fd, st.st_dev, st.st_ino)

    def _seek(self, h: _Handle, offset: int) -> bool:
        """Place ``h`` at a stored offset; False when the file no longer fits it
        (shorter, or no line starts there: truncated and written again)."""
        if offset <= 0:
            return True
        try:
            size = os.fstat(h.fd).st_size
            tail = os.pread(h.fd, min(_TAIL, offset), offset - min(_TAIL, offset))
        except OSError:
            return False
        if size < offset or not tail.endswith(b"\n"):
            return False
        h.offset, h.tail = offset, tail
        return True

    def _seek_end(self, f: TrackedFile, h: _Handle) -> None:
        """Place ``h`` at the start of its last, unfinished line (its end when complete)."""
        size = os.fstat(h.fd).st_size
        last = os.pread(h.fd, min(size, MAX_LINE + 1), size - min(size, MAX_LINE + 1))
        nl = last.rfind(b"\n")
        if nl >= 0:
            self._seek(h, size - len(last) + nl + 1)
        elif len(last) > MAX_LINE:
            # Inside an over-long line: skip to its end.
            h.offset, h.tail = size, last[-_TAIL:]
            f.skipping, f.skip_start, f.bad_lines = True, size, f.bad_lines + 1

    def _candidates(self, f: TrackedFile) -> list[os.DirEntry[str]]:
        folder = os.path.dirname(os.path.abspath(f.path))
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

    def _find_inode(self, f: TrackedFile, ino: int, offset: int) -> _Handle | None:
        """The file of the folder with inode ``ino``, placed at ``offset`` (a rotated log)."""
        for entry in self._candidates(f):
            if entry.inode() != ino:
                continue
            h = self._open(f, entry.path, report=False)
            if h is None:
                continue
            if h.ino == ino and self._seek(h, offset):
                return h
            os.close(h.fd)
        return None

    def _find_copy(self, f: TrackedFile, h: _Handle) -> _Handle | None:
        """The copy logrotate's copytruncate made of ``h``: a file of the folder named
        after the log that holds ``h``'s last bytes at the same place and more after them."""
        name = os.path.basename(f.path)
        best: tuple[float, _Handle] | None = None
        for entry in self._candidates(f):
            if not entry.name.startswith(name) or entry.name == name:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_ino == h.ino or st.st_size <= h.offset:
                continue
            c = self._open(f, entry.path, report=False)
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

    # -- errors ------------------------------------------------------------------------
    def _fail(self, f: TrackedFile, exc: OSError | ValueError) -> None:
        f.failed = True
        f.exception = exc
        message = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
        if f.error != message:
            # Debug: the agent logs a source's failure once, with its setting.
            log.debug("cannot read %s: %s", f.path, message)
            f.error = message


class Inotify:
    """Wake-ups when anything changes in the watched folders (no-op fallback)."""

    def __init__(self, folders: Iterable[str]) -> None:
        self.fd = -1
        self._watched: set[str] = set()
        self._wanted = set(folders)
        name = ctypes.util.find_library("c")
        try:
            self._libc = ctypes.CDLL(name, use_errno=True)
            self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            self.fd = -1
        self.rewatch()

    def rewatch(self) -> None:
        """Watch the folders that exist now (a log folder may appear later)."""
        if self.fd < 0:
            return
        for folder in self._wanted - self._watched:
            if os.path.isdir(folder):
                wd = self._libc.inotify_add_watch(self.fd, os.fsencode(folder), _MASK)
                if wd >= 0:
                    self._watched.add(folder)

    def wait(self, timeout: float) -> bool:
        """Block until a change or ``timeout`` seconds; True when woken by a change."""
        if self.fd < 0:
            select.select([], [], [], timeout)
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            while os.read(self.fd, 65536):
                pass
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
