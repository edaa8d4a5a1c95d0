"""The agent's wake-ups: inotify on the log folders, plus any other readable descriptor.

The agent's loop sleeps in :meth:`Inotify.wait` until a watched folder
changes (a log file grew, was rotated or appeared), one of the ``extra``
descriptors becomes readable (a journal reader's pipe, agent.journal), or
its interval passes. Linux inotify through libc; where inotify is
unavailable the wait still wakes on the extra descriptors, and otherwise
simply sleeps (the agent then polls once per interval).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
from collections.abc import Iterable, Sequence

__all__ = ["Inotify"]

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

    def wait(self, timeout: float, extra: Sequence[int] = ()) -> bool:
        """Block until a change, a readable ``extra`` descriptor, or ``timeout``
        seconds; True when woken by one of them.

        The extra descriptors are only waited on, never read: their owner
        reads them (a readable one left unread wakes the next wait at once).
        """
        fds = [fd for fd in extra if fd >= 0]
        if self.fd < 0:
            if not fds:
                select.select([], [], [], timeout)
                return False
            ready, _, _ = select.select(fds, [], [], timeout)
            return bool(ready)
        ready, _, _ = select.select([self.fd, *fds], [], [], timeout)
        if not ready:
            return False
        if self.fd in ready:
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
