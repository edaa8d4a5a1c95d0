"""A big file scanned by several processes (``pbxfw ips scan``, see :mod:`pbxfw.ips.scan`).

The file is cut into byte ranges on line boundaries; this process recognises
the first range while forked worker processes (one per further CPU)
recognise a few consecutive ranges each; a worker pickles each range's
failures as columns of plain values into an anonymous file as soon as it has
them (it never waits for this process), and this process builds the
Failures in file order with their line numbers shifted by the lines before
the range. The only state a range inherits from the one before is the
dedup-key ordinal per (line class, jail, host) of the current second (see
:func:`~pbxfw.ips.keys.failure_key`): each range reports the
keyed failures it saw before its first change of second, and their keys are
renumbered on the running state of the ranges before. The lines of one SSH
attempt are paired in file order by this process (the workers tag them), as
the serial scan pairs them. The result is exactly that of the serial scan
(tested).
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, tzinfo
from itertools import repeat
from operator import add
from typing import cast

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure
from pbxfw.ips.grammars.ssh import SSH_TAG
from pbxfw.ips.reading import ScanStats, scan_blocks
from pbxfw.ips.recognisers import Recogniser

__all__ = ["bounds", "scan_parallel"]

# A worker's failures as columns: time, jail, host, event, line relative to
# the worker's range, key (a list: this process renumbers some keys), count.
_Columns = tuple[
    tuple[datetime, ...],
    tuple[str, ...],
    tuple[IPAddress, ...],
    tuple[str, ...],
    tuple[int, ...],
    list[str],
    tuple[int, ...],
]
# The ordinal state: (epoch second, {(class, jail, host): ordinal}).
_State = tuple[int, dict[tuple[str, str, str], int]]
# What a worker returns for one range (see _scan_range): columns, newlines,
# lead, ordinal state, (index, tag) of the SSH lines left to pair, long lines.
_Result = tuple[_Columns, int, list[tuple[str, str, str, int]], _State, list[tuple[int, str]], int]


def bounds(fd: int, size: int, workers: int) -> list[int]:
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
        limit = target + _BOUND_SEARCH
        while True:
            block = os.pread(fd, 1 << 16, target)
            if not block or target >= limit:
                # The end, or a line so long that it is skipped anyway: no
                # cut here (the range before runs on).
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
#: Ranges per worker process (see bounds).
_TASKS_PER_WORKER = 4
#: How far past its target _bounds looks for a newline to cut a range at.
_BOUND_SEARCH = 4 << 20


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
    keyed failures before its first change of second; its final ordinal state;
    the (index, tag) of the SSH lines it left for this process to pair (the
    attempts under way cross ranges); its long lines."""
    lead: list[tuple[str, str, str, int]] = []
    # Plain tuples stand in for Failures here (the cast): the parent builds
    # the Failures once, and columns pickle several times faster than rows.
    make = cast("Callable[..., Failure]", _row)
    recogniser = Recogniser(
        kind, file=name, reference=reference, tz=tz, make=make, lead=lead, pair_ssh=False
    )
    stats = ScanStats()
    rows = list(scan_blocks(recogniser, fd, start, end, stats))
    tags: list[tuple[int, str]] = []
    if rows:
        times, jails, hosts, events, _, lines, keyed, counts = zip(*rows, strict=True)
        keys = list(keyed)
        for i, key in enumerate(keys):
            if key.startswith(SSH_TAG):
                tags.append((i, key))
                keys[i] = ""
        columns: _Columns = (times, jails, hosts, events, lines, keys, counts)
    else:
        columns = ((), (), (), (), (), [], ())
    state = recogniser.ordinal_state()
    return columns, recogniser.newlines, lead, state, tags, stats.long_lines


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


def scan_parallel(
    name: str,
    bounds: list[int],
    workers: int,
    kind: str | None,
    reference: datetime,
    tz: tzinfo | None,
    stats: ScanStats,
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
            yield from scan_blocks(recogniser, handle.fileno(), bounds[0], bounds[1], stats)
        lines = recogniser.newlines
        attempts = recogniser.ssh_attempts
        assert attempts is not None
        state: _State = recogniser.ordinal_state()
        for child in children:
            while child.pending:
                columns, newlines, lead, worker_state, tags, long_lines = child.result()
                times, jails, hosts, events, numbers, keys, counts = columns
                stats.long_lines += long_lines
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
                failures = map(
                    Failure,
                    times,
                    jails,
                    hosts,
                    events,
                    repeat(name),
                    map(add, numbers, repeat(lines)),
                    keys,
                    counts,
                )
                if tags:
                    yield from _paired(failures, dict(tags), attempts.follows_tag)
                else:
                    yield from failures
                lines += newlines
            child.close()
    finally:
        for child in children:
            child.close()


def _paired(
    failures: Iterable[Failure],
    tags: dict[int, str],
    follows: Callable[[str, IPAddress, int], bool],
) -> Iterator[Failure]:
    """``failures`` without the tagged SSH lines that continue an attempt
    already counted, paired in file order (as the serial scan does)."""
    for i, failure in enumerate(failures):
        tag = tags.get(i)
        if tag is not None and follows(tag, failure.host, int(failure.time.timestamp())):
            # It continues an attempt already counted; of a "message repeated
            # N times" line the other copies count (as in the serial scan).
            if failure.count > 1:
                yield replace(failure, count=failure.count - 1)
            continue
        yield failure
