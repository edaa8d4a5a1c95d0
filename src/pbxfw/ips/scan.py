"""Offline recognition of failures in log files: ``pbxfw ips scan FILE…`` (DESIGN §5).

Like ``fail2ban-regex``: read whole files, report every recognised failure,
ban nothing. The CLI prints :func:`failure_json` of each failure as one JSON
line. Each file gets its own :class:`~pbxfw.ips.recognisers.Recogniser`
(kind detected per line), so the dedup keys of one file do not depend on the
files scanned before it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo

from pbxfw.ips.events import Failure
from pbxfw.ips.recognisers import Recogniser

__all__ = ["failure_json", "scan_file", "scan_files"]


def scan_file(
    path: str | os.PathLike[str],
    *,
    kind: str | None = None,
    reference: datetime | None = None,
    tz: tzinfo | None = None,
) -> Iterator[Failure]:
    """Failures in one file, in file order, through the whole-file fast path.

    ``reference`` (the time that supplies the year of year-less stamps)
    defaults to the file's modification time: the last line was written
    then, so an old log keeps its own years. Undecodable bytes are replaced
    (a log is not refused for one bad byte). Raises OSError if unreadable.
    """
    name = os.fspath(path)
    with open(name, encoding="utf-8", errors="replace", newline="") as handle:
        if reference is None:
            reference = datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, UTC)
        text = handle.read()
    # newline="" keeps "\r\n" as is; the recognisers strip a trailing "\r".
    recogniser = Recogniser(kind, file=name, reference=reference, tz=tz)
    yield from recogniser.scan_text(text)


def scan_files(
    paths: Iterable[str | os.PathLike[str]],
    reference: datetime | None = None,
    *,
    kind: str | None = None,
    tz: tzinfo | None = None,
) -> Iterator[Failure]:
    """Failures in each of ``paths`` in turn (see :func:`scan_file`)."""
    for path in paths:
        yield from scan_file(path, kind=kind, reference=reference, tz=tz)


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
