"""The agent's ban spool: the bans it decided and the database has not taken yet.

While the database is unreachable (PostgreSQL stopped, the network down,
the SQLite file's disk full) the agent keeps banning in its own kernel at
once; the ban also goes to this spool, a file in the agent's state folder
that survives ``kill -9`` and a restart, and is written to the database
when it answers again (docs/fleet-outage.md).

The file is append-only, one line per record, each line
``<crc32 of the JSON, 8 hex digits> <JSON>\\n``:

- a ban: ``{"id": "<uuid4 hex of its append>-<index in it>", "ban": {...}}``
  (the ``Ban`` fields);
- an acknowledgement: ``{"ack": ["<id>", ...]}``: those bans reached the
  database (or lapsed, or were lifted) and are not replayed.

Guarantees:

- ``append`` returns only once the lines are on disk (``O_APPEND`` and
  ``fdatasync``): the bans are then "stored locally";
- a record is taken only when its line is complete and its checksum holds:
  a line torn by ``kill -9`` or a power cut (a missing end, zeros from a
  file that grew before its data was written) is dropped, never read as a
  ban, never a reason to stop; the torn tail is cut off before the next
  append, so new lines always start on a line of their own;
- each ban has a unique id, so replaying the file is idempotent: an
  acknowledged id is never returned again, and the agent checks a replayed
  ban against the stored ones (agent.outbox);
- when every ban is acknowledged, the file is emptied (``ftruncate``: a
  crash before it leaves acknowledged lines, which replay as nothing);
  when acknowledged lines make up most of a large file it is rewritten
  with only the pending bans (temporary file, ``fsync``, ``rename``,
  ``fsync`` of the folder: the old file or the new one, never half);
- the file never grows beyond ``max_bytes`` (64 MiB by default, some 250,000
  bans): an append that would pass it, even after compaction, raises
  ``SpoolFull`` and writes nothing. The agent logs it (once) and keeps the
  bans in its kernel and memory, retrying the database: no ban is dropped
  silently, but bans decided beyond the limit do not survive a restart.

One agent per file: the file is named after the network namespace inside
the state folder (as the confirmation state is), and opened by one process.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbxfw.domain.bans import Ban
from pbxfw.errors import PbxfwError

__all__ = ["MAX_SPOOL_BYTES", "SPOOL_NAME", "BanSpool", "SpoolFull", "Spooled", "scan"]

log = logging.getLogger("pbxfw.agent")

#: The spool's file name inside the agent's state folder (per namespace).
SPOOL_NAME = "ban-spool.jsonl"
#: The largest the spool may grow (bytes): about 250,000 bans.
MAX_SPOOL_BYTES = 64 * 1024 * 1024
#: Rewrite the file when acknowledged lines are more than this share of it
#: and it is larger than COMPACT_BYTES.
COMPACT_SHARE = 0.5
COMPACT_BYTES = 1024 * 1024


class SpoolFull(PbxfwError):
    """The spool reached its size limit: the ban was not spooled."""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One ban in the spool and the id that makes its replay idempotent."""

    id: str
    ban: Ban


def ban_record(ban: Ban) -> dict[str, Any]:
    """``ban`` as the JSON object of a spool line (no database id: it has none)."""
    return {
        "subnet": str(ban.subnet),
        "jail": ban.jail,
        "scope": sorted(ban.scope),
        "reason": ban.reason,
        "created_at": ban.created_at,
        "expires_at": ban.expires_at,
        "first_failure": ban.first_failure,
        "last_failure": ban.last_failure,
        "failures": ban.failures,
        "offence": ban.offence,
        "origin": ban.origin,
        "node": ban.node,
        "site": ban.site,
    }


def ban_from_record(data: dict[str, Any]) -> Ban:
    """The ``Ban`` of a spool line's ``ban`` object; raises on anything malformed."""

    def number(key: str) -> float:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key} is not a number")
        return float(value)

    def count(key: str) -> int:
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key} is not an integer")
        return value

    scope = data["scope"]
    if not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
        raise ValueError("scope is not a list of names")
    jail, reason = data["jail"], data["reason"]
    if not isinstance(jail, str) or not isinstance(reason, str):
        raise ValueError("jail or reason is not text")
    # A spool written before bans had an origin: the detector's, node unknown.
    origin = data.get("origin", f"jail:{jail}")
    node, site = data.get("node"), data.get("site")
    if not isinstance(origin, str) or not all(isinstance(v, str | None) for v in (node, site)):
        raise ValueError("origin, node or site is not text")
    return Ban(
        subnet=ipaddress.ip_network(str(data["subnet"])),
        jail=jail,
        scope=frozenset(scope),
        reason=reason,
        created_at=number("created_at"),
        expires_at=number("expires_at"),
        first_failure=number("first_failure"),
        last_failure=number("last_failure"),
        failures=count("failures"),
        offence=count("offence"),
        origin=origin,
        node=node,
        site=site,
    )


def encode(obj: dict[str, Any]) -> bytes:
    """One spool line: checksum, space, compact JSON, newline."""
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode(line: bytes) -> dict[str, Any] | None:
    """The object of one complete line (without its newline), or None when
    the line is not one this module wrote whole (torn, zeros, bit rot)."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


@dataclass
class _Scan:
    """What reading the file found."""

    pending: dict[str, Spooled]
    #: lines of records and acks taken (for the compaction decision)
    acked_lines: int
    lines: int
    #: bytes up to the end of the last good line: a torn tail starts here
    good_end: int
    #: bad lines skipped (in the middle: they are not the tail)
    skipped: int


def scan(data: bytes) -> _Scan:
    """Read a spool's bytes: the pending bans, in the order they were spooled."""
    pending: dict[str, Spooled] = {}
    acked: set[str] = set()
    lines = acked_lines = good_end = position = 0
    bad: list[int] = []  # where each bad line starts
    while position < len(data):
        end = data.find(b"\n", position)
        if end < 0:
            break  # no newline: the torn last line
        start, position = position, end + 1
        obj = decode(data[start:end])
        record = _record(obj) if obj is not None else None
        ids = _ack_ids(obj) if obj is not None and record is None else None
        if record is None and ids is None:
            bad.append(start)
            continue
        good_end = position
        lines += 1
        if record is not None:
            if record.id not in acked:
                pending[record.id] = record
            continue
        for ident in ids or ():
            acked.add(ident)
            if pending.pop(ident, None) is not None:
                acked_lines += 1
        acked_lines += 1
    # Bad lines after the last good one are the torn tail, cut off by ``load``.
    skipped = sum(1 for start in bad if start < good_end)
    return _Scan(pending, acked_lines, lines, good_end, skipped)


def _record(obj: dict[str, Any]) -> Spooled | None:
    ident, ban = obj.get("id"), obj.get("ban")
    if not isinstance(ident, str) or not ident or not isinstance(ban, dict):
        return None
    try:
        return Spooled(ident, ban_from_record(ban))
    except (KeyError, TypeError, ValueError):
        return None


def _ack_ids(obj: dict[str, Any]) -> list[str] | None:
    ids = obj.get("ack")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return ids


class BanSpool:
    """The spool file of one agent; see the module docstring.

    ``load`` reads it (once, at start); ``append`` and ``acknowledge`` change
    it. Any ``OSError`` propagates: the agent runs each call through
    agent.health, which logs a failure once and retries.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int = MAX_SPOOL_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._pending: dict[str, Spooled] = {}
        self._size = 0
        self._acked_lines = 0
        self._loaded = False

    # -- reading ----------------------------------------------------------------------
    def load(self) -> list[Spooled]:
        """Read the file: the pending bans, oldest first. A torn tail is cut
        off (logged); a missing file is an empty spool."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        found = scan(data)
        if found.skipped:
            log.warning("%s: skipped %d damaged lines", self.path, found.skipped)
        if found.good_end < len(data):
            log.warning(
                "%s: dropped a torn last record (%d bytes)", self.path, len(data) - found.good_end
            )
            with open(self.path, "r+b") as f:
                f.truncate(found.good_end)
                os.fdatasync(f.fileno())
        self._pending = found.pending
        self._size = found.good_end
        self._acked_lines = found.acked_lines
        self._loaded = True
        return self.pending()

    def pending(self) -> list[Spooled]:
        """The bans spooled and not acknowledged, oldest first."""
        return list(self._pending.values())

    def __len__(self) -> int:
        return len(self._pending)

    # -- writing ----------------------------------------------------------------------
    def append(self, bans: Sequence[Ban]) -> list[Spooled]:
        """Spool ``bans`` (one write, one ``fdatasync``); returns them with
        their ids once they are on disk. Raises ``SpoolFull`` (nothing
        written) when the file would pass ``max_bytes``, ``OSError`` when
        the disk fails."""
        if not self._loaded:
            self.load()
        # One random prefix per append and the position in it: unique across
        # appends and restarts, and cheaper than a uuid4 per ban (a burst of
        # 10,000 bans is one append).
        batch = uuid.uuid4().hex
        records = [Spooled(f"{batch}-{i:x}", ban) for i, ban in enumerate(bans)]
        if not records:
            return []
        data = b"".join(encode({"id": r.id, "ban": ban_record(r.ban)}) for r in records)
        if self._size + len(data) > self.max_bytes and self._acked_lines:
            self.compact()
        if self._size + len(data) > self.max_bytes:
            raise SpoolFull(
                f"the ban spool {self.path} is full ({self._size} bytes, limit "
                f"{self.max_bytes}): {len(records)} bans are kept in the kernel and in "
                "memory only until the database answers"
            )
        self._write(data, sync=True)
        for record in records:
            self._pending[record.id] = record
        return records

    def acknowledge(self, ids: Iterable[str]) -> None:
        """These bans reached the database (or lapsed): never replayed again.

        Empties the file when nothing is left pending; rewrites it when
        acknowledged lines are most of a large file. Unknown ids are ignored.
        """
        done = [i for i in dict.fromkeys(ids) if i in self._pending]
        if not done:
            return
        if len(done) == len(self._pending):
            # Nothing left: empty the file. No sync needed: if the crash comes
            # first, the lines replay and are found stored (idempotent).
            with contextlib.suppress(FileNotFoundError), open(self.path, "r+b") as f:
                f.truncate(0)
            self._pending.clear()
            self._size = self._acked_lines = 0
            return
        # The ack line needs no fdatasync either, for the same reason.
        self._write(encode({"ack": done}), sync=False)
        for ident in done:
            del self._pending[ident]
        self._acked_lines += len(done) + 1
        if self._size > COMPACT_BYTES and self._acked_lines > COMPACT_SHARE * (
            self._acked_lines + len(self._pending)
        ):
            self.compact()

    def compact(self) -> None:
        """Rewrite the file with only the pending bans: a temporary file
        written and synced, renamed over the spool, the folder synced."""
        data = b"".join(
            encode({"id": r.id, "ban": ban_record(r.ban)}) for r in self._pending.values()
        )
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        _sync_folder(self.path.parent)
        self._size = len(data)
        self._acked_lines = 0

    def _write(self, data: bytes, *, sync: bool) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            written = 0
            view = memoryview(data)
            while written < len(data):
                written += os.write(fd, view[written:])
            if sync:
                os.fdatasync(fd)
        except BaseException:
            # A short write (disk full) leaves a torn line: cut it off so the
            # next append starts on a line of its own.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            raise
        finally:
            os.close(fd)
        if created and sync:
            _sync_folder(self.path.parent)  # a file just created: its name too
        self._size += len(data)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
