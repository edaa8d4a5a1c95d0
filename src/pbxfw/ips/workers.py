"""Forked worker processes for a parallel scan (:mod:`pbxfw.ips.parallel`).

A :class:`Worker` runs a task over some byte ranges of a file, in order, and
pickles each range's result into an anonymous file as soon as it has it
(it never waits for this process, which is busy with its own range until
it asks for the results); a pipe announces each result. An exception in the
worker is raised here; a worker that dies is an error here.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import tempfile
from collections.abc import Callable

__all__ = ["Worker"]

# A worker's message on its pipe: (0: result, 1: exception), offset and size
# of the pickle in its results file.
HEADER = struct.Struct("<BQQ")


class Worker:
    """A forked process running a task over some ranges of a file, in order.

    It pickles each range's result into an anonymous file and announces it
    on a pipe, so it never waits for this process (which is busy with its
    own range until it asks for the results).
    """

    def __init__(
        self, name: str, ranges: list[tuple[int, int]], task: Callable[[int, int, int], object]
    ) -> None:
        """Fork a process that runs ``task(fd, start, end)`` (``fd``: ``name``
        open for reading) for each range and hands back each result."""
        self.name = name
        self.pending = len(ranges)
        self.results = anonymous_file()
        read, write = os.pipe()
        try:
            pid = os.fork()
        except BaseException:
            for fd in (read, write, self.results):
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - the child; its results are tested
            status = 1
            try:
                os.close(read)
                gc.disable()  # short-lived: nothing to collect
                self._serve(ranges, task, write)
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        self.pid: int | None = pid
        self.pipe = read

    def _serve(
        self, ranges: list[tuple[int, int]], task: Callable[[int, int, int], object], pipe: int
    ) -> None:  # pragma: no cover - runs in the child
        offset = 0
        with open(self.name, "rb") as handle:
            for start, end in ranges:
                flag = 0
                try:
                    result = task(handle.fileno(), start, end)
                    payload = pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # re-raised in the parent
                    flag = 1
                    try:
                        payload = pickle.dumps(exc, pickle.HIGHEST_PROTOCOL)
                    except Exception:  # an unpicklable exception
                        payload = pickle.dumps(RuntimeError(repr(exc)))
                view = memoryview(payload)
                while view:
                    view = view[os.write(self.results, view) :]
                os.write(pipe, HEADER.pack(flag, offset, len(payload)))
                offset += len(payload)
                if flag:
                    return

    def result(self) -> object:
        """The next range's result, waiting for it; re-raises the worker's exception."""
        header = b""
        while len(header) < HEADER.size:
            chunk = os.read(self.pipe, HEADER.size - len(header))
            if not chunk:
                raise RuntimeError(f"the scan worker for {self.name} exited unexpectedly")
            header += chunk
        flag, offset, size = HEADER.unpack(header)
        payload = pread_all(self.results, offset, size)
        self.pending -= 1
        value = pickle.loads(payload)
        if flag:
            raise value
        return value

    def close(self) -> None:
        """Reap the process (killed first if it still has ranges to scan) and close its files."""
        if self.pid is not None:
            pid, self.pid = self.pid, None
            try:
                if self.pending:
                    os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ChildProcessError, ProcessLookupError):  # reaped by someone else
                pass
            finally:
                os.close(self.pipe)
                os.close(self.results)


def pread_all(fd: int, offset: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            raise RuntimeError("scan worker results truncated")
        chunks.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("pbxfw-scan", os.MFD_CLOEXEC)
    with tempfile.TemporaryFile() as handle:  # pragma: no cover - not Linux
        return os.dup(handle.fileno())
