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
renumbered on the running state of the ranges before. The lines of one SSH
attempt are paired in file order by this process (the workers tag them), as
the serial scan pairs them. The result is exactly that of the serial scan
(tested).

Memory is bounded whatever the file holds: a line longer than
:data:`~pbxfw.ips.recognisers.MAX_LINE` is dropped as soon as its start
outgrows that and the reader skips to its end; it is counted in
:class:`ScanStats` as a bad line.
"""

from __future__ import annotations

import errno
import gc
import os
import pickle
import signal
import stat
import struct
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from itertools import repeat
from operator import add
from typing import cast

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure
from pbxfw.ips.recognisers import MAX_LINE, SSH_TAG, Recogniser

__all__ = ["PARALLEL_MIN_BYTES", "ScanStats", "failure_json", "scan_file", "scan_files"]

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
# What a worker returns for one range (see _scan_range): columns, newlines,
# lead, ordinal state, (index, tag) of the SSH lines left to pair, long lines.
_Result = tuple[_Columns, int, list[tuple[str, str, str, int]], _State, list[tuple[int, str]], int]


@dataclass
class ScanStats:
    """What a scan saw besides failures (filled in as it goes)."""

    #: Lines longer than :data:`~pbxfw.ips.recognisers.MAX_LINE` bytes: cut
    #: (never held whole), not recognised, counted here as bad lines.
    long_lines: int = 0


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
    stats: ScanStats | None = None,
) -> Iterator[Failure]:
    """Failures in one file, in file order, through the whole-file fast path.

    ``reference`` (the time that supplies the year of year-less stamps)
    defaults to the file's modification time: the last line was written
    then, so an old log keeps its own years. Undecodable bytes are replaced
    (a log is not refused for one bad byte). ``workers``: processes to use
    (None: one per CPU for files of at least :data:`PARALLEL_MIN_BYTES`,
    else 1). Memory stays bounded whatever the file holds: a line longer
    than :data:`~pbxfw.ips.recognisers.MAX_LINE` is skipped as it is read
    (never held whole) and counted in ``stats.long_lines``. The lines sshd
    and PAM write for one SSH attempt give one failure, as for the agent
    (:class:`~pbxfw.ips.recognisers.SshAttempts`), so the scan reports what
    the detector counts. Raises OSError if unreadable.
    """
    if stats is None:
        stats = ScanStats()
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
                yield from _scan_parallel(name, bounds, workers, kind, reference, tz, stats)
                return
        # Bytes: only the hit lines are decoded (UTF-8, errors replaced,
        # "\r\n" kept as is; the recognisers strip a trailing "\r"). Read to
        # the end of the file, also past the size it had when opened.
        recogniser = Recogniser(kind, file=name, reference=reference, tz=tz)
        if not regular:  # a pipe: no pread
            yield from _scan_reader(recogniser, handle.read, stats)
            return
        yield from _scan_blocks(recogniser, handle.fileno(), 0, sys.maxsize, stats)


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
#: Ranges per worker process (see _bounds).
_TASKS_PER_WORKER = 4
#: How far past its target _bounds looks for a newline to cut a range at.
_BOUND_SEARCH = 4 << 20


def _scan_blocks(
    recogniser: Recogniser, fd: int, start: int, end: int, stats: ScanStats
) -> Iterator[Failure]:
    """``recogniser.scan_bytes`` over bytes [start, end) of ``fd``, read in blocks.

    ``end`` is after a newline or at (or past) the end of the file. The
    blocks are cut after their last newline (a line longer than a block
    extends it, up to :data:`MAX_LINE`), so the lines, their numbers and the
    recogniser's state are those of one scan of the whole range. A line longer
    than :data:`MAX_LINE` is never held whole: it is skipped to its end and
    counted in ``stats``. When exhausted, ``recogniser.newlines`` is the
    range's newline count.
    """
    lines = 0
    while start < end:
        block = os.pread(fd, min(_BLOCK, end - start), start)
        cut = 0
        while block:
            if start + len(block) >= end:
                cut = len(block)
                break
            cut = block.rfind(b"\n") + 1
            if cut or len(block) > MAX_LINE:
                break
            more = os.pread(fd, min(_BLOCK, end - start - len(block)), start + len(block))
            if not more:  # the end of the file
                cut = len(block)
                break
            block += more
        if not block:
            break
        if not cut:  # a line longer than MAX_LINE starts here
            stats.long_lines += 1
            start, newline = _skip_line(fd, start + len(block), end)
            lines += newline
            continue
        stats.long_lines += _long_lines(block, cut)
        yield from recogniser.scan_bytes(block, lines + 1, end=cut)
        lines += recogniser.newlines
        start += cut
    recogniser.newlines = lines


def _skip_line(fd: int, position: int, end: int) -> tuple[int, int]:
    """(offset after the next newline, 1), or (the end, 0) if there is none.

    Reads without keeping anything, and jumps over holes of a sparse file
    (they read as NUL bytes: no newline in them).
    """
    while position < end:
        try:
            position = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole up to the end
                break
            # SEEK_DATA not supported here: read on.
        chunk = os.pread(fd, min(_BLOCK, end - position), position)
        if not chunk:
            break
        newline = chunk.find(b"\n")
        if newline >= 0:
            return position + newline + 1, 1
        position += len(chunk)
    return end, 0


def _scan_reader(
    recogniser: Recogniser, read: Callable[[int], bytes | None], stats: ScanStats
) -> Iterator[Failure]:
    """:func:`_scan_blocks` for a stream (a pipe): everything ``read(n)`` gives.

    Each block is scanned up to its last newline; the rest (the start of a
    line) goes before the next block. A line longer than :data:`MAX_LINE` is
    never held whole: once its start outgrows that it is dropped and the
    reader skips to its end, counting one long line; the recogniser ignores
    the long lines that fit in a block. Memory: a block plus
    :data:`MAX_LINE`. When exhausted, ``recogniser.newlines`` is the newline
    count.
    """
    lines = 0
    pending = b""
    skipping = False
    while True:
        chunk = read(_BLOCK)
        if not chunk:
            break
        if skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            skipping = False
            lines += 1
            chunk = chunk[newline + 1 :]
        block = pending + chunk if pending else chunk
        cut = block.rfind(b"\n") + 1
        if cut:
            stats.long_lines += _long_lines(block, cut)
            yield from recogniser.scan_bytes(block, lines + 1, end=cut)
            lines += recogniser.newlines
        pending = block[cut:]
        if len(pending) > MAX_LINE:
            stats.long_lines += 1
            pending = b""
            skipping = True
    if pending:  # the last line, without a newline
        yield from recogniser.scan_bytes(pending, lines + 1)
    recogniser.newlines = lines


def _long_lines(block: bytes, end: int) -> int:
    """How many lines in ``block[:end]`` (whole lines) are longer than MAX_LINE.

    Such a line holds a newline-free window of MAX_LINE / 2 bytes starting at
    a multiple of that, so only those windows are probed (a ``find`` that
    stops at the first newline) and a line is measured only where one has
    none: a few dozen finds per block.
    """
    step = MAX_LINE // 2
    count = 0
    probe = 0
    while probe + step <= end:
        if block.find(b"\n", probe, probe + step) >= 0:
            probe += step
            continue
        first = block.rfind(b"\n", 0, probe) + 1
        last = block.find(b"\n", probe, end)
        last = end if last < 0 else last
        if last - first > MAX_LINE:
            count += 1
        probe = (last // step + 1) * step
    return count


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
    rows = list(_scan_blocks(recogniser, fd, start, end, stats))
    tags: list[tuple[int, str]] = []
    if rows:
        times, jails, hosts, events, _, lines, keyed = zip(*rows, strict=True)
        keys = list(keyed)
        for i, key in enumerate(keys):
            if key.startswith(SSH_TAG):
                tags.append((i, key))
                keys[i] = ""
        columns: _Columns = (times, jails, hosts, events, lines, keys)
    else:
        columns = ((), (), (), (), (), [])
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


def _scan_parallel(
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
            yield from _scan_blocks(recogniser, handle.fileno(), bounds[0], bounds[1], stats)
        lines = recogniser.newlines
        attempts = recogniser.ssh_attempts
        assert attempts is not None
        state: _State = recogniser.ordinal_state()
        for child in children:
            while child.pending:
                columns, newlines, lead, worker_state, tags, long_lines = child.result()
                times, jails, hosts, events, numbers, keys = columns
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
            continue
        yield failure


def scan_files(
    paths: Iterable[str | os.PathLike[str]],
    reference: datetime | None = None,
    *,
    kind: str | None = None,
    tz: tzinfo | None = None,
    workers: int | None = None,
    stats: ScanStats | None = None,
) -> Iterator[Failure]:
    """Failures in each of ``paths`` in turn (see :func:`scan_file`)."""
    for path in paths:
        yield from scan_file(
            path, kind=kind, reference=reference, tz=tz, workers=workers, stats=stats
        )


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
