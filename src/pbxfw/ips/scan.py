"""Offline recognition of failures in log files: ``pbxfw ips scan FILE…`` (DESIGN §5).

Like ``fail2ban-regex``: read whole files, report every recognised failure,
ban nothing. The CLI prints :func:`failure_json` of each failure as one JSON
line. Each file gets its own :class:`~pbxfw.ips.recognisers.Recogniser`
(kind detected per line), so the dedup keys of one file do not depend on the
files scanned before it.

A big file is scanned in parallel: it is cut into byte ranges on line
boundaries; this process recognises the first range while worker processes
(one per further CPU) recognise the others; their failures come back as plain
tuples and are yielded in file order with their line numbers shifted by the
lines before the range. The only state a range inherits from the one before
is the dedup-key ordinal per (line class, jail, host) of the current second
(see :func:`~pbxfw.ips.recognisers.failure_key`): each worker reports the
keyed failures it saw before its first change of second, and their keys are
renumbered on the running state of the ranges before. The result is exactly
that of the serial scan (tested).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime, tzinfo

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure
from pbxfw.ips.recognisers import Recogniser

__all__ = ["PARALLEL_MIN_BYTES", "failure_json", "scan_file", "scan_files"]

#: Files at least this big are scanned in parallel when ``workers`` is None.
PARALLEL_MIN_BYTES = 32 << 20

# A failure as a worker sends it: the Failure fields but file; line relative
# to the worker's range.
_Row = tuple[datetime, str, IPAddress, str, int, str]
# The ordinal state: (epoch second, {(class, jail, host): ordinal}).
_State = tuple[int, dict[tuple[str, str, str], int]]


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
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            bounds = _bounds(handle.fileno(), status.st_size, workers)
            if len(bounds) > 2:
                yield from _scan_parallel(name, bounds, kind, reference, tz)
                return
        data = handle.read()
    # Bytes: only the hit lines are decoded (UTF-8, errors replaced, "\r\n"
    # kept as is; the recognisers strip a trailing "\r").
    recogniser = Recogniser(kind, file=name, reference=reference, tz=tz)
    yield from recogniser.scan_bytes(data)


def _bounds(fd: int, size: int, parts: int) -> list[int]:
    """Offsets cutting ``size`` bytes into about ``parts`` ranges, each after a newline."""
    bounds = [0]
    for i in range(1, parts):
        target = max(size * i // parts, bounds[-1])
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


def _read_range(fd: int, start: int, end: int) -> bytes:
    chunks = []
    while start < end:
        chunk = os.pread(fd, end - start, start)
        if not chunk:
            break
        chunks.append(chunk)
        start += len(chunk)
    return b"".join(chunks)


def _scan_range(
    name: str, start: int, end: int, kind: str | None, reference: datetime, tz: tzinfo | None
) -> tuple[list[_Row], int, list[tuple[str, str, str, int]], _State]:
    """Worker: the failures of bytes [start, end) of ``name`` as rows; its line
    count; the keyed failures before its first change of second; its final
    ordinal state."""
    with open(name, "rb") as handle:
        data = _read_range(handle.fileno(), start, end)
    recogniser = Recogniser(kind, file=name, reference=reference, tz=tz)
    lead: list[tuple[str, str, str, int]] = []
    recogniser._lead = lead
    rows = [(f.time, f.jail, f.host, f.event, f.line, f.key) for f in recogniser.scan_bytes(data)]
    state = (recogniser._ordinals_epoch, recogniser._ordinals)
    return rows, recogniser.newlines, lead, state


def _scan_parallel(
    name: str, bounds: list[int], kind: str | None, reference: datetime, tz: tzinfo | None
) -> Iterator[Failure]:
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(len(bounds) - 2, mp_context=context) as pool:
        futures: list[Future[tuple[list[_Row], int, list[tuple[str, str, str, int]], _State]]]
        futures = [
            pool.submit(_scan_range, name, bounds[i], bounds[i + 1], kind, reference, tz)
            for i in range(1, len(bounds) - 1)
        ]
        with open(name, "rb") as handle:
            data = _read_range(handle.fileno(), bounds[0], bounds[1])
        recogniser = Recogniser(kind, file=name, reference=reference, tz=tz)
        yield from recogniser.scan_bytes(data)
        del data
        lines = recogniser.newlines
        state: _State = (recogniser._ordinals_epoch, recogniser._ordinals)
        for future in futures:
            rows, newlines, lead, worker_state = future.result()
            keys = [row[5] for row in rows if row[5]]
            if lead and lead[0][3] == state[0]:
                # The range continues the second the ranges before ended in:
                # renumber its first keyed failures on their running ordinals.
                ordinals = dict(state[1])
                for i, (cls, lead_jail, lead_host, epoch) in enumerate(lead):
                    slot = (cls, lead_jail, lead_host)
                    n = ordinals[slot] = ordinals.get(slot, 0) + 1
                    keys[i] = f"{lead_jail}|{lead_host}|{epoch}|{n}"
                state = (state[0], ordinals) if len(lead) == len(keys) else worker_state
            elif keys:
                state = worker_state
            it = iter(keys)
            for time, jail, host, event, line, key in rows:
                yield Failure(time, jail, host, event, name, line + lines, next(it) if key else "")
            lines += newlines


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
