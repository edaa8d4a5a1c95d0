"""Following log files: rotation, truncation, partial lines.

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

The steps on one file (open, place, cut lines, find a rotated file or a
copy) are in agent.tailfiles; wake-ups come from agent.inotify (inotify on
the files' folders; where it is unavailable the agent simply polls).
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pbxfw.agent.chunk import Chunk
from pbxfw.agent.tailfiles import (
    MAX_LINE,
    SKIP_BLOCK,
    TAIL,
    Handle,
    TrackedFile,
    close_all,
    drop_partial,
    find_copy,
    find_inode,
    lines_before,
    open_file,
    seek,
    seek_end,
    skip_hole,
    split_lines,
)

__all__ = ["MAX_LINE", "MAX_READ", "ROTATION_GRACE", "Chunk", "Tailer", "TrackedFile"]

log = logging.getLogger(__name__)

#: Read at most this much per file per poll, so one huge backlog cannot
#: starve the other files (the rest comes on the next poll).
MAX_READ = 8 * 1024 * 1024
#: Seconds a replaced file must stay quiet before its successor is read.
ROTATION_GRACE = 2.0
#: Files held per path at once (the current one and those rotated within the grace).
_MAX_HANDLES = 8


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
        self._finalizer = weakref.finalize(self, close_all, self.files)

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

    def unread_bytes(self) -> int:
        """Bytes written to the followed files that no poll has read yet: for
        each open file (a rotated one within the grace too), its size minus
        the offset read. One ``fstat`` per open file; a file that cannot be
        looked at counts 0."""
        total = 0
        for f in self.files:
            for h in f.handles:
                try:
                    size = os.fstat(h.fd).st_size
                except OSError:
                    continue
                total += max(0, size - h.offset)
        return total

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

    def _place(self, f: TrackedFile, h: Handle | None, now: float, start_at_end: bool) -> None:
        """Where to start: a stored offset (in ``h`` or in the rotated file), or 0 / the end."""
        resume, f.resume = f.resume, None
        if resume is not None:
            ino, offset = resume
            if h is not None and h.ino == ino and seek(h, offset):
                f.handles.append(h)
                f.lines_read = lines_before(h, offset)  # the file's own line numbers
                return
            old = find_inode(f.path, ino, offset)
            if old is not None:
                f.lines_read = lines_before(old, offset)
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
            seek_end(f, h)
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
        self, f: TrackedFile, h: Handle, out: list[bytes], now: float
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
        copy = find_copy(f.path, h)
        if copy is not None:
            log.info("%s was truncated (copytruncate); reading the rest from its copy", f.path)
            copy.offset, copy.tail, copy.copy, copy.rotated_at = h.offset, h.tail, True, now
            f.handles.insert(0, copy)
        else:
            log.info("%s was truncated; reading it again from its start", f.path)
            drop_partial(f, out)
        h.offset, h.tail = 0, b""
        return None

    def _read(
        self, f: TrackedFile, h: Handle, size: int, budget: int, out: list[bytes], now: float
    ) -> int:
        """Read ``h`` up to ``size`` (at most ``budget`` bytes); returns the bytes read."""
        done = 0
        while done < budget and h.offset < size:
            if f.skipping:
                skip_hole(h, size)
                if h.offset >= size:
                    break
            want = min(budget - done, size - h.offset)
            if f.skipping:
                want = min(want, SKIP_BLOCK)
            data = os.pread(h.fd, want, h.offset)
            if not data:
                break
            base = h.offset
            h.offset += len(data)
            h.tail = (h.tail + data[-TAIL:])[-TAIL:]
            done += len(data)
            split_lines(f, data, base, out)
            if h.rotated_at is not None and not h.copy:
                h.rotated_at = now  # still written to: the writer has not reopened yet
        return done

    def _finish(self, f: TrackedFile, out: list[bytes]) -> None:
        """Done with the first handle (a rotated file or a copy): close it, go on with the next."""
        h = f.handles.pop(0)
        os.close(h.fd)
        # Its end is the position to store until the next file is read.
        f.inode, f.offset = h.ino, h.offset
        drop_partial(f, out)
        log.info(
            "%s: finished the %s file (inode %d)", f.path, "copied" if h.copy else "rotated", h.ino
        )

    def _open(self, f: TrackedFile, path: str) -> Handle | None:
        """A handle on the regular file at ``path``; None when absent, or not
        readable (then ``f.error`` says why)."""
        try:
            return open_file(path)
        except (OSError, ValueError) as exc:
            self._fail(f, exc)
            return None

    # -- errors ------------------------------------------------------------------------
    def _fail(self, f: TrackedFile, exc: OSError | ValueError) -> None:
        f.failed = True
        f.exception = exc
        message = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
        if f.error != message:
            # Debug: the agent logs a source's failure once, with its setting.
            log.debug("cannot read %s: %s", f.path, message)
            f.error = message
