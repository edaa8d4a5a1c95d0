"""Offline recognition of failures in log files: ``pbxfw ips scan FILE…`` (DESIGN §5).

Like ``fail2ban-regex``: read whole files, report every recognised failure,
ban nothing. The CLI prints :func:`failure_json` of each failure as one JSON
line. Each file gets its own :class:`~pbxfw.ips.recognisers.Recogniser`
(kind detected per line), so the dedup keys of one file do not depend on the
files scanned before it.

A file is read and scanned in blocks of :data:`_BLOCK` bytes cut after a
newline (the whole-block passes then find the block in the CPU cache). A big
file is scanned in parallel: it is cut into byte ranges on line boundaries;
this process recognises the first range while forked worker processes (one
per further CPU) recognise a few consecutive ranges each; a worker pickles
each range's failures as columns of plain values into an anonymous file as
soon as it has them (it never waits for this process), and this process builds
the Failures in file order with their line numbers shifted by the lines before
the range. The only state a range inherits from the one before is the
dedup-key ordinal per (line class, jail, host) of the current second (see
:func:`~pbxfw.ips.recognisers.failure_key`): each range reports the keyed
failures it saw before its first change of second, and their keys are
renumbered on the running state of the ranges before. The result is exactly
that of the serial scan (tested).
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import stat
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from itertools import repeat
from operator import add
from typing import cast

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure
from pbxfw.ips.recognisers import Recogniser

__all__ = ["PARALLEL_MIN_BYTES", "failure_json", "scan_file", "scan_files"]

#: Files at least this big are scanned in parallel when ``workers`` is None.
PARALLEL_MIN_BYTES = 32 << 20

# A worker's failures as columns: time, jail, host, event, line relative to
# the worker's range, key (a list: this process renumbers some keys).
_Columns = tuple[
    tuple[datetime, ...],
    tuple[str, ...],
    tuple[IPAddress, ...],
    tuple[str, ...],
    tuple[int, ...],
    list[str],
]
# The ordinal state: (epoch second, {(class, jail, host): ordinal}).
_State = tuple[int, dict[tuple[str, str, str], int]]
# What a worker returns for one range (see _scan_range).
_Result = tuple[_Columns, int, list[tuple[str, str, str, int]], _State]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def scan_file(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    reference: datetime | None = None,
    tz: tzinfo | None = None,
    workers: int | None = None,
) -> Iterator[Failure]:
    """Failures in one file, in file order, through the whole-file fast path.

    ``reference`` (the time that supplies the year of year-less stamps)
    defaults to the file's modification time: the last line was written
    then, so an old log keeps its own years. Undecodable bytes are replaced
    (a log is not refused for one bad byte). ``workers``: processes to use
    (None: one per CPU for files of at least :data:`PARALLEL_MIN_BYTES`,
    else 1). Raises OSError if unreadable.
    """
    name = os.fspath(path)
    with open(name, "rb") as handle:
        status = os.fstat(handle.fileno())
        if reference is None:
            reference = datetime.fromtimestamp(status.st_mtime, UTC)
        if workers is None:
            workers = _cpus() if status.st_size >= PARALLEL_MIN_BYTES else 1
        regular = stat.S_ISREG(status.st_mode)
        if workers > 1 and regular and hasattr(os, "fork"):
            bounds = _bounds(handle.fileno(), status.st_size, workers)
            if len(bounds) > 2:
                yield from _scan_parallel(name, bounds, workers, kind, reference, tz)
                return
        # Bytes: only the hit lines are decoded (UTF-8, errors replaced,
        # "\r\n" kept as is; the recognisers strip a trailing "\r"). Read to
        # the end of the file, also past the size it had when opened.
        recogniser = Recogniser(kind, file=name, reference=reference, tz=tz)
        if not regular:  # a pipe: no pread
            yield from recogniser.scan_bytes(handle.read())
            return
        yield from _scan_blocks(recogniser, handle.fileno(), 0, sys.maxsize)


def _bounds(fd: int, size: int, workers: int) -> list[int]:
    """Offsets cutting ``size`` bytes into ranges for ``workers`` processes, each after a newline.

    The first range is this process's, :data:`_FIRST_SHARE` of a worker
    process's share; each worker's share is cut into :data:`_TASKS_PER_WORKER`
    ranges so that its failures come back while it scans the next.
    """
    bounds = [0]
    total = _FIRST_SHARE + workers - 1
    tasks = (workers - 1) * _TASKS_PER_WORKER
    for i in range(tasks):
        target = size * (_FIRST_SHARE + i / _TASKS_PER_WORKER) / total
        target = max(int(target), bounds[-1])
        while True:
            block = os.pread(fd, 1 << 16, target)
            if not block:
                target = size
                break
            newline = block.find(b"\n")
            if newline >= 0:
                target += newline + 1
                break
            target += len(block)
        if bounds[-1] < target < size:
            bounds.append(target)
    bounds.append(size)
    return bounds


#: This process's share of the file relative to a worker process's: it also
#: builds the Failures of the workers' ranges.
_FIRST_SHARE = 0.92
#: Ranges per worker process (see _bounds).
_TASKS_PER_WORKER = 4


def _scan_blocks(recogniser: Recogniser, fd: int, start: int, end: int) -> Iterator[Failure]:
    """``recogniser.scan_bytes`` over bytes [start, end) of ``fd``, read in blocks.

    ``end`` is after a newline or at (or past) the end of the file. The
    blocks are cut after their last newline (a line longer than a block
    extends it), so the lines, their numbers and the recogniser's state are
    those of one scan of the whole range. When exhausted,
    ``recogniser.newlines`` is the range's newline count.
    """
    lines = 0
    while start < end:
        block = os.pread(fd, min(_BLOCK, end - start), start)
        while block:
            if start + len(block) >= end:
                cut = len(block)
                break
            cut = block.rfind(b"\n") + 1
            if cut:
                break
            more = os.pread(fd, min(_BLOCK, end - start - len(block)), start + len(block))
            if not more:  # the end of the file
                cut = len(block)
                break
            block += more
        if not block:
            break
        yield from recogniser.scan_bytes(block, lines + 1, end=cut)
        lines += recogniser.newlines
        start += cut
    recogniser.newlines = lines


#: Bytes read and scanned at a time: the whole-block passes (sniffing, coarse
#: triggers, line counting) then find the block in the CPU cache; about 10 %
#: faster than one read of the whole range.
_BLOCK = 2 << 20


def _row(*fields: object) -> tuple[object, ...]:
    return fields


def _scan_range(
    fd: int,
    start: int,
    end: int,
    name: str,
    kind: str | None,
    reference: datetime,
    tz: tzinfo | None,
) -> _Result:
    """Worker: the failures of bytes [start, end) of ``name`` (open as ``fd``) as
    columns (lines relative to the range, keys as a list); its line count; the
    keyed failures before its first change of second; its final ordinal state."""
    lead: list[tuple[str, str, str, int]] = []
    # Plain tuples stand in for Failures here (the cast): the parent builds
    # the Failures once, and columns pickle several times faster than rows.
    make = cast("Callable[..., Failure]", _row)
    recogniser = Recogniser(kind, file=name, reference=reference, tz=tz, make=make, lead=lead)
    rows = list(_scan_blocks(recogniser, fd, start, end))
    if rows:
        times, jails, hosts, events, _, lines, keys = zip(*rows, strict=True)
        columns: _Columns = (times, jails, hosts, events, lines, list(keys))
    else:
        columns = ((), (), (), (), (), [])
    state = recogniser.ordinal_state()
    return columns, recogniser.newlines, lead, state


# A worker's message on its pipe: (0: result, 1: exception), offset and size
# of the pickle in its results file.
_HEADER = struct.Struct("<BQQ")


class _Worker:
    """A forked process scanning some ranges of a file, in order.

    It pickles each range's :func:`_scan_range` result into an anonymous file
    and announces it on a pipe, so it never waits for this process (which is
    busy with its own range until it asks for the results).
    """

    def __init__(
        self,
        name: str,
        ranges: list[tuple[int, int]],
        kind: str | None,
        reference: datetime,
        tz: tzinfo | None,
    ) -> None:
        self.name = name
        self.pending = len(ranges)
        self.results = _anonymous_file()
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
                self._serve(ranges, kind, reference, tz, write)
                status = 0
            finally:
                os._exit(status)
        os.close(write)
        self.pid: int | None = pid
        self.pipe = read

    def _serve(
        self,
        ranges: list[tuple[int, int]],
        kind: str | None,
        reference: datetime,
        tz: tzinfo | None,
        pipe: int,
    ) -> None:  # pragma: no cover - runs in the child
        offset = 0
        with open(self.name, "rb") as handle:
            for start, end in ranges:
                flag = 0
                try:
                    result = _scan_range(
                        handle.fileno(), start, end, self.name, kind, reference, tz
                    )
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
                os.write(pipe, _HEADER.pack(flag, offset, len(payload)))
                offset += len(payload)
                if flag:
                    return

    def result(self) -> _Result:
        """The next range's result, waiting for it; re-raises the worker's exception."""
        header = b""
        while len(header) < _HEADER.size:
            chunk = os.read(self.pipe, _HEADER.size - len(header))
            if not chunk:
                raise RuntimeError(f"the scan worker for {self.name} exited unexpectedly")
            header += chunk
        flag, offset, size = _HEADER.unpack(header)
        payload = _pread_all(self.results, offset, size)
        self.pending -= 1
        value = pickle.loads(payload)
        if flag:
            raise value
        result: _Result = value
        return result

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


def _pread_all(fd: int, offset: int, size: int) -> bytes:
    chunks = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            raise RuntimeError("scan worker results truncated")
        chunks.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _anonymous_file() -> int:
    if hasattr(os, "memfd_create"):
        return os.memfd_create("pbxfw-scan", os.MFD_CLOEXEC)
    with tempfile.TemporaryFile() as handle:  # pragma: no cover - not Linux
        return os.dup(handle.fileno())


def _scan_parallel(
    name: str,
    bounds: list[int],
    workers: int,
    kind: str | None,
    reference: datetime,
    tz: tzinfo | None,
) -> Iterator[Failure]:
    # Ranges 1.. go to workers - 1 processes, each a contiguous run of them
    # (this process reads the results in file order).
    ranges = [(bounds[i], bounds[i + 1]) for i in range(1, len(bounds) - 1)]
    count = min(workers - 1, len(ranges))
    children: list[_Worker] = []
    try:
        for i in range(count):
            part = ranges[len(ranges) * i // count : len(ranges) * (i + 1) // count]
            children.append(_Worker(name, part, kind, reference, tz))
        recogniser = Recogniser(kind, file=name, reference=reference, tz=tz)
        with open(name, "rb") as handle:
            yield from _scan_blocks(recogniser, handle.fileno(), bounds[0], bounds[1])
        lines = recogniser.newlines
        state: _State = recogniser.ordinal_state()
        for child in children:
            while child.pending:
                (times, jails, hosts, events, numbers, keys), newlines, lead, worker_state = (
                    child.result()
                )
                keyed = len(keys) - keys.count("")
                if lead and lead[0][3] == state[0]:
                    # The range continues the second the ranges before ended
                    # in: renumber its first keyed failures on their running
                    # ordinals.
                    ordinals = dict(state[1])
                    i = 0
                    for cls, lead_jail, lead_host, epoch in lead:
                        while not keys[i]:
                            i += 1
                        slot = (cls, lead_jail, lead_host)
                        n = ordinals[slot] = ordinals.get(slot, 0) + 1
                        keys[i] = f"{lead_jail}|{lead_host}|{epoch}|{n}"
                        i += 1
                    state = (state[0], ordinals) if len(lead) == keyed else worker_state
                elif keyed:
                    state = worker_state
                yield from map(
                    Failure,
                    times,
                    jails,
                    hosts,
                    events,
                    repeat(name),
                    map(add, numbers, repeat(lines)),
                    keys,
                )
                lines += newlines
            child.close()
    finally:
        for child in children:
            child.close()


def scan_files(
    paths: Iterable[str | os.PathLike[str]],
    reference: datetime | None = None,
    *,
    kind: str | None = None,
    tz: tzinfo | None = None,
    workers: int | None = None,
) -> Iterator[Failure]:
    """Failures in each of ``paths`` in turn (see :func:`scan_file`)."""
    for path in paths:
        yield from scan_file(path, kind=kind, reference=reference, tz=tz, workers=workers)


def failure_json(failure: Failure) -> dict[str, str | int]:
    """The ``pbxfw ips scan --json`` line of one failure.

    ``{"file", "line", "time", "jail", "host", "event"}``; ``time`` is ISO 8601
    in UTC (``2026-11-01T08:42:16+00:00``), ``host`` the canonical address.
    """
    return {
        "file": failure.file,
        "line": failure.line,
        "time": failure.time.astimezone(UTC).isoformat(),
        "jail": failure.jail,
        "host": str(failure.host),
        "event": failure.event,
    }
