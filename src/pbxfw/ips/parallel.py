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

:func:`lines_parallel` is the same scan for ``pbxfw ips scan``'s output
(:func:`pbxfw.ips.scan.scan_lines`): the workers send the text of their
failures' lines instead of columns, and no Failure is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, tzinfo
from itertools import repeat
from operator import add
from typing import cast

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure, new_failure
from pbxfw.ips.grammars.ssh import SSH_TAG, SshAttempts
from pbxfw.ips.keys import NoKeys
from pbxfw.ips.output import LineFormat
from pbxfw.ips.reading import ScanStats, batched, scan_blocks
from pbxfw.ips.recognisers import Recogniser
from pbxfw.ips.workers import Worker

__all__ = ["bounds", "lines_parallel", "scan_parallel"]

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


def bounds(fd: int, size: int, workers: int, *, lines: bool = False) -> list[int]:
    """Offsets cutting ``size`` bytes into ranges for ``workers`` processes, each after a newline.

    The first range is this process's, :data:`_FIRST_SHARE` (``lines``:
    :data:`_LINES_FIRST_SHARE`, for :func:`lines_parallel`) of a worker
    process's share; each worker's share is cut into :data:`_TASKS_PER_WORKER`
    ranges so that its failures come back while it scans the next.
    """
    bounds = [0]
    first = _LINES_FIRST_SHARE if lines else _FIRST_SHARE
    total = first + workers - 1
    tasks = (workers - 1) * _TASKS_PER_WORKER
    for i in range(tasks):
        target = size * (first + i / _TASKS_PER_WORKER) / total
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
#: The same for lines_parallel, where this process only joins the text the
#: workers made (measured: both processes then finish together).
_LINES_FIRST_SHARE = 1.0
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
        kind,
        file=name,
        reference=reference,
        tz=tz,
        make=make,
        lead=lead,
        pair_ssh=False,
        users=False,
    )
    stats = ScanStats()
    rows = list(scan_blocks(recogniser, fd, start, end, stats))
    tags: list[tuple[int, str]] = []
    if rows:
        # (users=False: the ninth column, the user, is always "")
        times, jails, hosts, events, _, lines, keyed, counts, _ = zip(*rows, strict=True)
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


def _parts(bounds: list[int], workers: int) -> list[list[tuple[int, int]]]:
    """Ranges 1.. for workers - 1 processes, each a contiguous run of them
    (this process reads the results in file order)."""
    ranges = [(bounds[i], bounds[i + 1]) for i in range(1, len(bounds) - 1)]
    count = min(workers - 1, len(ranges))
    return [ranges[len(ranges) * i // count : len(ranges) * (i + 1) // count] for i in range(count)]


def scan_parallel(
    name: str,
    bounds: list[int],
    workers: int,
    kind: str | None,
    reference: datetime,
    tz: tzinfo | None,
    stats: ScanStats,
) -> Iterator[Failure]:
    def task(fd: int, start: int, end: int) -> _Result:
        return _scan_range(fd, start, end, name, kind, reference, tz)

    children: list[Worker] = []
    try:
        for part in _parts(bounds, workers):
            children.append(Worker(name, part, task))
        recogniser = Recogniser(kind, file=name, reference=reference, tz=tz, users=False)
        with open(name, "rb") as handle:
            yield from scan_blocks(recogniser, handle.fileno(), bounds[0], bounds[1], stats)
        lines = recogniser.newlines
        attempts = recogniser.ssh_attempts
        assert attempts is not None
        state: _State = recogniser.ordinal_state()
        for child in children:
            while child.pending:
                result = cast(_Result, child.result())
                columns, newlines, lead, worker_state, tags, long_lines = result
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
                    new_failure,
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


# (index, tag, (time, jail, host, event, count)) of an SSH line a worker left
# to pair.
_Tag = tuple[int, str, tuple[datetime, str, IPAddress, str, int]]
# What a worker returns for one range in lines_parallel: the tails of its
# failures' lines, their line numbers relative to the range, its newline
# count, its SSH lines to pair, its long lines, its repeats (ScanStats).
_Lines = tuple[list[str], list[int], int, list[_Tag], int, int]


def _lines_task(
    name: str, kind: str | None, reference: datetime, tz: tzinfo | None, fmt: LineFormat
) -> Callable[[int, int, int], _Lines]:
    """A worker's task for :func:`lines_parallel`: ``task(fd, start, end)`` is
    what it needs of bytes [start, end) of ``name``.

    One Recogniser serves all the ranges of a worker: they are consecutive,
    and its caches of stamps and addresses (pure: a text's value never
    changes) then stay warm from one range to the next (~20,000 attackers
    are parsed once per worker, not once per range); the rest of its state
    is off (no SSH pairing, no keys), so a range's result does not depend on
    the ranges before."""
    recogniser = Recogniser(
        kind, file=name, reference=reference, tz=tz, pair_ssh=False, users=False
    )
    recogniser.ordinals = NoKeys()
    tail = fmt.tail

    def task(fd: int, start: int, end: int) -> _Lines:  # pragma: no cover - in the workers
        numbers: list[int] = []
        tags: list[_Tag] = []
        number = numbers.append
        stats = ScanStats()

        def make(
            time: datetime,
            jail: str,
            host: IPAddress,
            event: str,
            _file: str,
            line: int,
            key: str,
            count: int,
            _user: str = "",
        ) -> str:
            if key.startswith(SSH_TAG):
                tags.append((len(numbers), key, (time, jail, host, event, count)))
            elif count != 1:
                stats.repeats += count - 1
            number(line)
            return tail(time, jail, host, event, count)

        recogniser.make = cast("Callable[..., Failure]", make)
        tails = cast("list[str]", list(scan_blocks(recogniser, fd, start, end, stats)))
        return tails, numbers, recogniser.newlines, tags, stats.long_lines, stats.repeats

    return task


def lines_parallel(
    name: str,
    bounds: list[int],
    workers: int,
    kind: str | None,
    reference: datetime,
    tz: tzinfo | None,
    stats: ScanStats,
    fmt: LineFormat,
) -> Iterator[list[str]]:
    """:func:`scan_parallel` giving ``fmt``'s lines in batches (see
    :func:`pbxfw.ips.scan.scan_lines`): no Failure is built, the workers make
    the tails of their lines and this process joins them to their heads and
    line numbers. Keys are not output, so they are not made (:class:`NoKeys`)."""
    children: list[Worker] = []
    try:
        for part in _parts(bounds, workers):
            children.append(Worker(name, part, _lines_task(name, kind, reference, tz, fmt)))
        make = cast("Callable[..., Failure]", fmt.maker(name, stats))
        recogniser = Recogniser(kind, file=name, reference=reference, tz=tz, make=make, users=False)
        recogniser.ordinals = NoKeys()
        with open(name, "rb") as handle:
            found = scan_blocks(recogniser, handle.fileno(), bounds[0], bounds[1], stats)
            yield from batched(cast("Iterator[str]", found))
        lines = recogniser.newlines
        attempts = recogniser.ssh_attempts
        assert attempts is not None
        head = fmt.head(name)
        for child in children:
            while child.pending:
                result = cast(_Lines, child.result())
                tails, numbers, newlines, tags, long_lines, repeats = result
                stats.long_lines += long_lines
                stats.repeats += repeats
                if tags:
                    tails, numbers = _paired_lines(tails, numbers, tags, attempts, fmt, stats)
                texts = map(str, map(add, numbers, repeat(lines)))
                if tails:
                    yield list(map("".join, zip(repeat(head), texts, tails, strict=False)))
                lines += newlines
            child.close()
    finally:
        for child in children:
            child.close()


def _paired_lines(
    tails: list[str],
    numbers: list[int],
    tags: list[_Tag],
    attempts: SshAttempts,
    fmt: LineFormat,
    stats: ScanStats,
) -> tuple[list[str], list[int]]:
    """The lines of a worker's range with its SSH lines paired in file order,
    as the serial scan pairs them: a line that continues an attempt already
    counted is not shown, unless it is a ``message repeated N times`` line,
    whose other N - 1 copies count (its tail says so)."""
    drop = set()
    for i, tag, (time, jail, host, event, count) in tags:
        if attempts.follows_tag(tag, host, int(time.timestamp())):
            if count == 1:
                drop.add(i)
                continue
            count -= 1
            tails[i] = fmt.tail(time, jail, host, event, count)
        stats.repeats += count - 1
    if not drop:
        return tails, numbers
    keep = [i for i in range(len(tails)) if i not in drop]
    return [tails[i] for i in keep], [numbers[i] for i in keep]
