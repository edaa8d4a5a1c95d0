"""Following log files: inotify wake-ups, rotation, truncation, partial lines.

``Tailer`` keeps one read offset per file (with the file's inode) so that a
restarted agent continues where it stopped: no line is read twice. A file
that is replaced (rotation: new inode) is read from its start; a file that
shrinks (truncation) is read again from its start; a file that does not
exist yet is picked up when it appears; a last line without its newline is
kept until the newline arrives.

Wake-ups come from inotify on the files' folders (Linux, through libc);
where inotify is unavailable the agent simply polls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
from collections.abc import Iterable
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


@dataclass
class TrackedFile:
    path: str
    kind: str
    inode: int = 0
    offset: int = 0
    partial: bytes = b""
    lines_read: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Complete lines newly read from one file; ``first_line`` counts from the agent's start."""

    path: str
    kind: str
    text: str
    first_line: int
    inode: int
    offset: int


@dataclass
class Tailer:
    """Reads what was appended to a set of files since the last call."""

    files: list[TrackedFile] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        sources: Iterable[tuple[str, str]],
        offsets: dict[str, tuple[int, int]] | None = None,
        *,
        start_at_end: bool = False,
    ) -> Tailer:
        """Track ``(path, kind)`` pairs, resuming at stored ``offsets`` (path → inode, offset).

        A file with no stored offset is read from its start, or from its end
        when ``start_at_end``.
        """
        offsets = offsets or {}
        tracked = []
        for path, kind in sources:
            f = TrackedFile(path, kind)
            try:
                st = os.stat(path)
            except (OSError, ValueError):  # ValueError: a NUL in the path; read() reports it
                st = None
            if path in offsets:
                f.inode, f.offset = offsets[path]
                if st is not None and (st.st_ino != f.inode or st.st_size < f.offset):
                    # Rotated or truncated while we were away: start it afresh.
                    f.inode, f.offset = st.st_ino, 0
            elif st is not None:
                f.inode = st.st_ino
                f.offset = st.st_size if start_at_end else 0
            tracked.append(f)
        return cls(tracked)

    def folders(self) -> set[str]:
        return {os.path.dirname(os.path.abspath(f.path)) for f in self.files}

    def poll(self) -> list[Chunk]:
        """New complete lines of every file (at most MAX_READ bytes each)."""
        chunks = []
        for f in self.files:
            chunk = self._read(f)
            if chunk is not None:
                chunks.append(chunk)
        return chunks

    def _read(self, f: TrackedFile) -> Chunk | None:
        try:
            fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if st.st_ino != f.inode:
                if f.inode:
                    log.info("%s was rotated; reading the new file from its start", f.path)
                f.inode, f.offset, f.partial = st.st_ino, 0, b""
            elif st.st_size < f.offset:
                log.info("%s was truncated; reading it again from its start", f.path)
                f.offset, f.partial = 0, b""
            if st.st_size == f.offset:
                return None
            data = os.pread(fd, min(MAX_READ, st.st_size - f.offset), f.offset)
        finally:
            os.close(fd)
        if not data:
            return None
        f.offset += len(data)
        data = f.partial + data
        cut = data.rfind(b"\n") + 1
        f.partial = data[cut:]
        if not cut:
            return None
        text = data[:cut].decode("utf-8", errors="replace")
        first = f.lines_read + 1
        f.lines_read += text.count("\n")
        # The offset stored for a restart excludes the partial line, so it is read again whole.
        return Chunk(f.path, f.kind, text, first, f.inode, f.offset - len(f.partial))


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
