"""Following the systemd journal: ``journalctl -o json --follow`` as a child process.

A log setting ``journal:…`` (domain.logsource) is read by a
``JournalReader``: one ``journalctl`` process per source, started with the
source's matches, its JSON entries read without blocking from a pipe. The
promises (docs/ips-formats.md, "Sources: files and the journal"):

- **Same lines as a file**: each entry becomes one syslog-style line,
  ``<__REALTIME_TIMESTAMP as RFC 3339 UTC> <_HOSTNAME> <SYSLOG_IDENTIFIER>[<_PID>]:
  <MESSAGE>``, the form rsyslog writes with ISO stamps, so the recognisers
  read the journal exactly as they read auth.log. The address comes only
  from ``MESSAGE`` (the daemon's text), parsed by the same grammar; the
  trusted ``_PID`` only pairs an attempt's lines. A newline or carriage
  return inside ``MESSAGE`` is written as ``\\n`` / ``\\r``: one entry is
  one line, and no text inside an entry can start a line of its own.
- **No entry twice, none missed**: every chunk carries the cursor of its
  last entry; the agent stores it (``log_offsets.journal_cursor``) once the
  bans it led to are stored, and a reader created with that cursor starts
  ``--after-cursor`` it. A reader whose process ended starts again after
  the last entry it handed out. With no cursor (first start), entries are
  read from ``since`` (the start of the detection window). A stored cursor
  journalctl refuses (a journal from another machine, a damaged cursor) is
  dropped once, with a warning, and reading starts from ``since``.
- **Across boots**: journalctl's ``--follow`` alone shows the current boot
  only; ``--merge`` lifts that, and ``_MACHINE_ID=<this host>`` keeps out
  the entries other hosts sent here (``/var/log/journal/remote``). Reading
  a ``directory`` (tests) reads all of it.
- **Wake-ups**: :meth:`JournalReader.fileno` is the pipe the agent's wait
  selects on (agent.inotify): a new entry wakes the loop at once.
- **Bounded**: at most ``MAX_READ`` bytes per poll; journalctl prints a
  field longer than 4096 bytes as null (we never pass ``--all``), so an
  entry stays small; a longer line or an entry without a text ``MESSAGE``
  is a bad line (an empty line, counted in ``Chunk.bad_lines``).
- **Errors**: journalctl missing, refusing (no permission, no such folder),
  or ending, raises :class:`JournalError` from :meth:`poll` (the agent
  records it for ``pbxfw ips status`` and tries again with backoff); lines
  read before are returned first. A unit that does not exist, or no
  matching entries, is not an error: the reader simply waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import termios
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pbxfw.agent.chunk import Chunk
from pbxfw.domain.logsource import JournalSource
from pbxfw.errors import PbxfwError

__all__ = ["MAX_READ", "JournalError", "JournalReader", "entry_line"]

log = logging.getLogger(__name__)

#: Read at most this much per poll (the rest comes on the next one).
MAX_READ = 8 * 1024 * 1024
#: The fields asked for (journalctl adds the cursor and the time stamps).
_FIELDS = "MESSAGE,SYSLOG_IDENTIFIER,_COMM,_PID,_HOSTNAME"
#: One JSON line longer than this is skipped (fields above 4 KiB are null already).
_MAX_ENTRY = 1024 * 1024
#: The end of journalctl's error output kept for the message.
_MAX_STDERR = 4096
_MACHINE_ID = "/etc/machine-id"
#: What journalctl says when it cannot see the journal it was asked for.
_NO_PERMISSION = (
    "insufficient permissions",
    "not seeing messages from other users",
    "Permission denied",
)
_BAD_CURSOR = "Failed to seek to cursor"


class JournalError(PbxfwError):
    """The journal cannot be read (journalctl missing, refused, or ended)."""


def _word(value: object) -> str:
    """A one-word field (host name, identifier); empty when absent or odd."""
    if not isinstance(value, str) or not value or len(value) > 256:
        return ""
    if any(c.isspace() or c in ":[]" or not c.isprintable() for c in value):
        return ""
    return value


def _text(value: object) -> str | None:
    """A field's text: journalctl gives a string, a list of byte values
    (not UTF-8), or null (longer than 4096 bytes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", errors="replace")
    return None


def entry_line(entry: dict[str, Any]) -> str | None:
    """One journal entry as the syslog line the recognisers read; None when
    it has no text message or no time stamp (a bad line)."""
    message = _text(entry.get("MESSAGE"))
    stamp = entry.get("__REALTIME_TIMESTAMP")
    if message is None or not isinstance(stamp, str) or not stamp.isdigit():
        return None
    try:
        when = datetime.fromtimestamp(int(stamp) / 1e6, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    ident = _word(entry.get("SYSLOG_IDENTIFIER")) or _word(entry.get("_COMM")) or "-"
    pid = entry.get("_PID")
    tag = f"{ident}[{pid}]" if isinstance(pid, str) and pid.isdigit() else ident
    host = _word(entry.get("_HOSTNAME")) or "localhost"
    message = message.replace("\r", "\\r").replace("\n", "\\n")
    return f"{when.isoformat(timespec='microseconds')} {host} {tag}: {message}"


def _machine_id() -> str | None:
    try:
        with open(_MACHINE_ID) as f:
            value = f.read().strip()
    except OSError:
        return None
    return value if len(value) == 32 and all(c in "0123456789abcdef" for c in value) else None


@dataclass
class JournalReader:
    """Reads the journal entries of one ``journal:`` source; see the module docstring.

    Holds one child process while following: call :meth:`close` when done.
    """

    source: JournalSource
    kind: str
    #: Resume after this entry (the stored cursor); updated as entries are handed out.
    cursor: str | None = None
    #: With no cursor: read entries from this epoch second on.
    since: float | None = None
    #: Read the journal files of this folder instead of the system's (tests).
    directory: str | None = None
    journalctl: str = "journalctl"
    lines_read: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _buffer: bytes = field(default=b"", repr=False)
    _skipping: bool = field(default=False, repr=False)
    _stderr: bytes = field(default=b"", repr=False)
    #: An error met after lines were read: raised by the next poll.
    _pending: JournalError | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        """The source as the settings name it (the key of its stored cursor)."""
        return self.source.text

    def command(self) -> list[str]:
        """The journalctl command line for the current position."""
        cmd = [self.journalctl, "--output=json", f"--output-fields={_FIELDS}"]
        cmd += ["--follow", "--no-tail", "--no-pager", "--merge"]
        if self.directory is not None:
            cmd += ["--directory", self.directory]
        if self.cursor is not None:
            cmd += ["--after-cursor", self.cursor]
        elif self.since is not None:
            cmd += ["--since", f"@{max(0, int(self.since))}"]
        matches = self.source.arguments()
        machine = _machine_id() if self.directory is None else None
        if machine is not None:
            matches.append(f"_MACHINE_ID={machine}")
        return [*cmd, "--", *matches]

    def fileno(self) -> int:
        """The pipe to wait on for new entries; -1 while no process runs."""
        proc = self._proc
        return proc.stdout.fileno() if proc is not None and proc.stdout is not None else -1

    def unread_bytes(self) -> int:
        """Bytes journalctl wrote to the pipe that no poll has read yet (0
        while no process runs). Entries journalctl has not printed yet are
        not counted: a lower bound of the lag."""
        fd = self.fileno()
        if fd < 0:
            return 0
        try:
            answer = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return 0
        return int.from_bytes(answer, sys.byteorder, signed=True)

    # -- the process ------------------------------------------------------------------
    def _start(self) -> None:
        try:
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                env={**os.environ, "LC_ALL": "C", "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": ""},
            )
        except FileNotFoundError:
            raise JournalError(
                f"{self.journalctl} not found: install systemd's journalctl, or name a log file "
                "in the setting"
            ) from None
        except OSError as exc:
            raise JournalError(f"cannot run {self.journalctl}: {exc.strerror or exc}") from None
        assert proc.stdout is not None and proc.stderr is not None
        os.set_blocking(proc.stdout.fileno(), False)
        os.set_blocking(proc.stderr.fileno(), False)
        self._proc, self._buffer, self._skipping, self._stderr = proc, b"", False, b""
        log.debug("following the journal: %s", " ".join(self.command()))

    def _stop(self) -> int | None:
        """End the process (if any); its exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        return proc.returncode

    def close(self) -> None:
        """End the journalctl process (idempotent; never raises)."""
        with contextlib.suppress(OSError):
            self._stop()

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _drain(fd: int, budget: int) -> tuple[bytes, bool]:
        """What can be read from ``fd`` now (at most ``budget`` bytes); True at its end."""
        parts: list[bytes] = []
        got = 0
        while got < budget:
            try:
                data = os.read(fd, min(65536, budget - got))
            except BlockingIOError:
                return b"".join(parts), False
            if not data:
                return b"".join(parts), True
            parts.append(data)
            got += len(data)
        return b"".join(parts), False

    def _error_text(self) -> str:
        lines = self._stderr.decode("utf-8", errors="replace").strip().splitlines()
        return " ".join(line.strip() for line in lines[-3:] if line.strip())

    # -- reading ----------------------------------------------------------------------
    def poll(self) -> list[Chunk]:
        """New entries as one chunk (empty list: none yet).

        Raises :class:`JournalError` when the journal cannot be read and no
        entry was read in this call; otherwise the entries are returned and
        the error is raised by the next call.
        """
        pending, self._pending = self._pending, None
        if pending is not None:
            raise pending
        if self._proc is None:
            self._start()
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        data, ended = self._drain(proc.stdout.fileno(), MAX_READ)
        errors, _ = self._drain(proc.stderr.fileno(), 1 << 20)
        self._stderr = (self._stderr + errors)[-_MAX_STDERR:]
        lines, bad = self._split(data)
        failure = self._failure(ended)
        if failure is not None:
            if not lines:
                raise failure
            self._pending = failure
        if not lines:
            return []
        text = "".join(lines)
        first = self.lines_read + 1
        self.lines_read += len(lines)
        if bad:
            log.warning("%s: %d journal entries without a readable message", self.path, bad)
        return [Chunk(self.path, self.kind, text, first, 0, 0, bad, self.cursor)]

    def _split(self, data: bytes) -> tuple[list[str], int]:
        """Complete JSON lines of ``data`` → syslog lines (bad ones empty); the rest is kept."""
        buf = self._buffer + data
        lines: list[str] = []
        bad = 0
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            raw, start = buf[start:nl], nl + 1
            if self._skipping:
                self._skipping = False
                continue
            line = self._entry(raw)
            if line is None:
                bad += 1
                line = ""
            lines.append(line + "\n")
        self._buffer = buf[start:]
        if len(self._buffer) > _MAX_ENTRY:
            # Never accumulated: the rest of that line is skipped.
            self._buffer, self._skipping = b"", True
            bad += 1
            lines.append("\n")
        return lines, bad

    def _entry(self, raw: bytes) -> str | None:
        try:
            entry = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(entry, dict):
            return None
        cursor = entry.get("__CURSOR")
        if isinstance(cursor, str) and cursor:
            self.cursor = cursor
        return entry_line(entry)

    def _failure(self, ended: bool) -> JournalError | None:
        """The error to report now, if any (the process is then stopped)."""
        said = self._error_text()
        if any(hint in said for hint in _NO_PERMISSION):
            self._stop()
            return JournalError(
                f"no permission to read the journal ({said}); run the agent as root "
                "or in the systemd-journal group"
            )
        if not ended:
            return None
        status = self._stop()
        if _BAD_CURSOR in said and self.cursor is not None:
            log.warning(
                "%s: journalctl refused the stored cursor (%s); reading from the start "
                "of the detection window instead",
                self.path,
                said,
            )
            self.cursor = None
            return None  # started again, without the cursor, by the next poll
        return JournalError(f"journalctl ended (exit status {status}): {said or 'no message'}")


def reader_fds(readers: Sequence[JournalReader]) -> list[int]:
    """The pipes of the readers that run now (for the agent's wait)."""
    return [fd for fd in (r.fileno() for r in readers) if fd >= 0]
