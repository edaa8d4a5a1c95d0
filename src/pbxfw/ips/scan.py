"""Offline recognition of failures in log files: ``pbxfw ips scan FILE…`` (DESIGN §5).

Like ``fail2ban-regex``: read whole files, report every recognised failure,
ban nothing. The CLI prints the lines :func:`scan_lines` makes (one per
failure, :mod:`pbxfw.ips.output`; with ``--json`` each is
:func:`failure_json` of the failure). Each file gets its own
:class:`~pbxfw.ips.recognisers.Recogniser` (kind detected per line), so the
dedup keys of one file do not depend on the files scanned before it.

A file is read and scanned in blocks (:mod:`pbxfw.ips.reading`: memory
bounded whatever the file holds, a line longer than
:data:`~pbxfw.ips.scanner.MAX_LINE` is skipped and counted in
:class:`ScanStats` as a bad line); a big file is scanned by several
processes (:mod:`pbxfw.ips.parallel`) with exactly the serial scan's result.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from typing import cast

from pbxfw.ips.events import Failure, new_failure
from pbxfw.ips.keys import NoKeys
from pbxfw.ips.output import LineFormat
from pbxfw.ips.reading import ScanStats, batched, scan_blocks, scan_reader
from pbxfw.ips.recognisers import Recogniser

__all__ = [
    "PARALLEL_MIN_BYTES",
    "ScanStats",
    "failure_json",
    "scan_file",
    "scan_files",
    "scan_lines",
]

#: Files at least this big are scanned in parallel when ``workers`` is None.
PARALLEL_MIN_BYTES = 32 << 20


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
    than :data:`~pbxfw.ips.scanner.MAX_LINE` is skipped as it is read
    (never held whole) and counted in ``stats.long_lines``. The lines sshd
    and PAM write for one SSH attempt give one failure, as for the agent
    (:class:`~pbxfw.ips.grammars.ssh.SshAttempts`), so the scan reports what
    the detector counts. Every ``Failure.user`` is "": the offline scan
    does not read the accounts tried (the agent does). Raises OSError if
    unreadable.
    """
    return cast(
        "Iterator[Failure]", _scan(path, kind, reference, tz, workers, stats or ScanStats(), None)
    )


def scan_lines(
    paths: Iterable[str | os.PathLike[str]],
    fmt: LineFormat,
    *,
    kind: str | None = None,
    reference: datetime | None = None,
    tz: tzinfo | None = None,
    workers: int | None = None,
    stats: ScanStats | None = None,
) -> Iterator[list[str]]:
    """``fmt.line(f)`` of each failure :func:`scan_files` finds, in order, in
    batches: ``pbxfw ips scan``'s output.

    The same text, byte for byte (tested), made faster: no Failure is built
    (the recognisers make each line), and a parallel scan's workers make the
    text of their own failures (:func:`~pbxfw.ips.parallel.lines_parallel`).
    """
    stats = stats or ScanStats()
    for path in paths:
        yield from cast(
            "Iterator[list[str]]", _scan(path, kind, reference, tz, workers, stats, fmt)
        )


def _scan(
    path: str | os.PathLike[str],
    kind: str | None,
    reference: datetime | None,
    tz: tzinfo | None,
    workers: int | None,
    stats: ScanStats,
    fmt: LineFormat | None,
) -> Iterator[Failure] | Iterator[list[str]]:
    """:func:`scan_file` (``fmt`` None) or one file of :func:`scan_lines`."""
    name = os.fspath(path)
    with open(name, "rb") as handle:
        status = os.fstat(handle.fileno())
        if reference is None:
            reference = datetime.fromtimestamp(status.st_mtime, UTC)
        if workers is None:
            workers = _cpus() if status.st_size >= PARALLEL_MIN_BYTES else 1
        regular = stat.S_ISREG(status.st_mode)
        if workers > 1 and regular and hasattr(os, "fork"):
            from pbxfw.ips.parallel import bounds, lines_parallel, scan_parallel

            cuts = bounds(handle.fileno(), status.st_size, workers, lines=fmt is not None)
            if len(cuts) > 2:
                if fmt is None:
                    yield from scan_parallel(name, cuts, workers, kind, reference, tz, stats)
                else:
                    yield from lines_parallel(name, cuts, workers, kind, reference, tz, stats, fmt)
                return
        # Bytes: only the hit lines are decoded (UTF-8, errors replaced,
        # "\r\n" kept as is; the recognisers strip a trailing "\r"). Read to
        # the end of the file, also past the size it had when opened.
        make = (
            new_failure if fmt is None else cast("Callable[..., Failure]", fmt.maker(name, stats))
        )
        # No user names: the offline scan's output shows none (reading them
        # costs a few % of the scan; the agent reads them for the dashboard).
        recogniser = Recogniser(kind, file=name, reference=reference, tz=tz, make=make, users=False)
        if fmt is not None:  # the lines show no key
            recogniser.ordinals = NoKeys()
        if not regular:  # a pipe: no pread
            found = scan_reader(recogniser, handle.read, stats)
        else:
            found = scan_blocks(recogniser, handle.fileno(), 0, sys.maxsize, stats)
        if fmt is None:
            yield from found
        else:
            yield from batched(cast("Iterator[str]", found))


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
