"""Real journal files for tests: export-format entries written by systemd-journal-remote.

``systemd-journal-remote -o FILE -`` reads the journal export format on
stdin and writes a real journal file; run again with the same output it
appends to that file (a reader following the folder sees the new entries).
The entries carry the fields journald would set for sshd under systemd:
``_SYSTEMD_UNIT``, ``SYSLOG_IDENTIFIER``, ``_PID``, ``_HOSTNAME`` and the
time stamps; ``MESSAGE`` is the daemon's text.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["JOURNAL_REMOTE", "JournalFiles", "require_journal_tools"]

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_ID = "0123456789abcdef0123456789abcdef"


def require_journal_tools() -> None:
    """Skip without journalctl and systemd-journal-remote — but FAIL under ``CI=true``
    (scripts/install-system.sh installs them)."""
    missing = [name for name in ("journalctl", JOURNAL_REMOTE) if shutil.which(name) is None]
    if not missing:
        return
    why = f"{', '.join(missing)} not installed (apt-get install systemd-journal-remote)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why} (CI=true: journal tests must run)", pytrace=False)
    pytest.skip(why)


def export_entry(fields: dict[str, str], when: float) -> bytes:
    """One entry in the journal export format; a value holding a newline is
    written in the format's binary form (name, newline, 64-bit length, data)."""
    usec = int(when * 1e6)
    out = f"__REALTIME_TIMESTAMP={usec}\n__MONOTONIC_TIMESTAMP={usec}\n_BOOT_ID={BOOT_ID}\n"
    data = out.encode()
    for key, value in fields.items():
        raw = value.encode()
        if b"\n" in raw:
            data += key.encode() + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
        else:
            data += key.encode() + b"=" + raw + b"\n"
    return data + b"\n"


@dataclass
class JournalFiles:
    """A folder holding one journal file that tests append entries to."""

    folder: Path
    name: str = "remote.journal"
    written: int = field(default=0)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def append(self, entries: list[dict[str, str]], when: float | None = None) -> None:
        """Append ``entries`` (one journal-remote run), a microsecond apart."""
        start = time.time() if when is None else when
        data = b"".join(export_entry(e, start + i * 1e-6) for i, e in enumerate(entries))
        result = subprocess.run(
            [JOURNAL_REMOTE, "-o", str(self.folder / self.name), "-"],
            input=data,
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        self.written += len(entries)

    def sshd(self, message: str, pid: int = 4242, unit: str = "ssh.service") -> dict[str, str]:
        """An entry as journald records a message of Debian's sshd."""
        return {
            "_SYSTEMD_UNIT": unit,
            "SYSLOG_IDENTIFIER": "sshd",
            "_COMM": "sshd",
            "_PID": str(pid),
            "_HOSTNAME": "pbx",
            "PRIORITY": "6",
            "SYSLOG_FACILITY": "4",
            "MESSAGE": message,
        }
