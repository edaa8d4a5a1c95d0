"""Reading a log file in blocks for the whole-file search, memory bounded.

A file (or a pipe) is read and scanned in blocks of :data:`_BLOCK` bytes cut
after a newline (the whole-block passes then find the block in the CPU
cache), each through :meth:`~pbxfw.ips.recognisers.Recogniser.scan_bytes`.
A line longer than :data:`~pbxfw.ips.scanner.MAX_LINE` is dropped as soon as
its start outgrows that and the reader skips to its end; it is counted in
:class:`ScanStats` as a bad line.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from pbxfw.ips.events import Failure
from pbxfw.ips.recognisers import Recogniser
from pbxfw.ips.scanner import MAX_LINE

__all__ = ["ScanStats", "batched", "scan_blocks", "scan_reader"]


@dataclass
class ScanStats:
    """What a scan saw besides failures (filled in as it goes)."""

    #: Lines longer than :data:`~pbxfw.ips.recognisers.MAX_LINE` bytes: cut
    #: (never held whole), not recognised, counted here as bad lines.
    long_lines: int = 0
    #: The copies beyond the first of rsyslog's ``message repeated N times``
    #: lines among the failures :func:`~pbxfw.ips.scan.scan_lines` reported
    #: (such a line counts N times; filled by scan_lines only).
    repeats: int = 0


#: Bytes read and scanned at a time: the whole-block passes (sniffing, coarse
#: triggers, line counting) then find the block in the CPU cache; about 10 %
#: faster than one read of the whole range.
_BLOCK = 2 << 20


def scan_blocks(
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


def scan_reader(
    recogniser: Recogniser, read: Callable[[int], bytes | None], stats: ScanStats
) -> Iterator[Failure]:
    """:func:`scan_blocks` for a stream (a pipe): everything ``read(n)`` gives.

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


def batched(items: Iterator[str], size: int = 4096) -> Iterator[list[str]]:
    """``items`` in lists of ``size`` (the last one shorter; no empty list)."""
    while batch := list(islice(items, size)):
        yield batch
