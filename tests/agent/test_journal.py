"""agent.journal: journal: sources read from real journal files (systemd-journal-remote).

The reader runs the real journalctl on a folder of journal files, the same
command the agent runs on the system journal but for ``--directory``.
"""

from __future__ import annotations

import select
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxfw.agent.chunk import Chunk
from pbxfw.agent.journal import JournalError, JournalReader, entry_line
from pbxfw.domain.logsource import parse_journal
from pbxfw.ips.recognisers import Recogniser
from tests.agent.journal_files import JournalFiles, require_journal_tools

FAILED = "Failed password for root from {} port 50000 ssh2"


@pytest.fixture
def readers() -> Iterator[list[JournalReader]]:
    made: list[JournalReader] = []
    yield made
    for reader in made:
        reader.close()


def reader_for(
    made: list[JournalReader],
    journal: JournalFiles,
    value: str = "journal:ssh.service",
    **kw: object,
) -> JournalReader:
    reader = JournalReader(parse_journal(value), "ssh", directory=str(journal.folder), **kw)  # type: ignore[arg-type]
    made.append(reader)
    return reader


def read_until(reader: JournalReader, lines: int, timeout: float = 10.0) -> list[Chunk]:
    """Poll (waiting on the reader's pipe) until ``lines`` lines came, or ``timeout``."""
    chunks: list[Chunk] = []
    deadline = time.monotonic() + timeout
    while sum(c.text.count("\n") for c in chunks) < lines and time.monotonic() < deadline:
        chunks += reader.poll()
        fd = reader.fileno()
        if fd >= 0:
            select.select([fd], [], [], 0.2)
    return chunks


def error_of(reader: JournalReader, nothing_read: bool = False) -> JournalError | None:
    """What ``reader.poll()`` raised within 10 s (None: nothing); with
    ``nothing_read``, every poll before it must have returned nothing."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            chunks = reader.poll()
        except JournalError as exc:
            return exc
        assert not nothing_read or chunks == []
        time.sleep(0.05)
    return None


def texts(chunks: list[Chunk]) -> list[str]:
    return [line for c in chunks for line in c.text.splitlines()]


def test_entries_become_syslog_lines_the_ssh_recogniser_reads(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    now = time.time()
    journal.append(
        [journal.sshd(FAILED.format("192.0.2.7"), pid=100 + i) for i in range(3)], when=now
    )
    reader = reader_for(readers, journal)
    chunks = read_until(reader, 3)
    lines = texts(chunks)
    assert len(lines) == 3
    assert lines[0].endswith(" pbx sshd[100]: " + FAILED.format("192.0.2.7"))
    assert lines[0].startswith(time.strftime("%Y-%m-%dT", time.gmtime(now)))
    assert "+00:00 pbx sshd[" in lines[0]
    assert chunks[-1].cursor == reader.cursor and reader.cursor is not None
    assert (chunks[-1].inode, chunks[-1].offset, chunks[-1].path) == (0, 0, "journal:ssh.service")
    failures = list(Recogniser("ssh").scan_text("".join(c.text for c in chunks)))
    assert [str(f.host) for f in failures] == ["192.0.2.7"] * 3
    # The journal's own time: the failure is dated when journald received it.
    assert abs(failures[0].time.timestamp() - now) < 1.0


def test_follows_appended_entries_and_wakes_on_them(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    journal.append([journal.sshd(FAILED.format("192.0.2.1"))])
    reader = reader_for(readers, journal)
    assert len(texts(read_until(reader, 1))) == 1
    assert reader.poll() == []
    fd = reader.fileno()
    assert fd >= 0
    journal.append([journal.sshd(FAILED.format("192.0.2.2")), journal.sshd("Connection closed")])
    start = time.monotonic()
    ready, _, _ = select.select([fd], [], [], 5.0)
    assert ready == [fd], "no wake-up for an appended entry"
    assert time.monotonic() - start < 3.0
    lines = texts(read_until(reader, 2))
    assert [line.split(": ", 1)[1] for line in lines] == [
        FAILED.format("192.0.2.2"),
        "Connection closed",
    ]
    assert reader.lines_read == 3


def test_a_reader_with_the_cursor_continues_after_it(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    journal.append([journal.sshd(FAILED.format(f"192.0.2.{i}")) for i in range(1, 4)])
    first = reader_for(readers, journal)
    assert len(texts(read_until(first, 3))) == 3
    cursor = first.cursor
    first.close()
    journal.append([journal.sshd(FAILED.format(f"192.0.2.{i}")) for i in range(4, 6)])
    second = reader_for(readers, journal, cursor=cursor, since=0.0)
    lines = texts(read_until(second, 2))
    time.sleep(0.3)
    lines += texts(second.poll())
    assert [line.rsplit(" from ", 1)[1] for line in lines] == [
        "192.0.2.4 port 50000 ssh2",
        "192.0.2.5 port 50000 ssh2",
    ]


def test_without_a_cursor_reading_starts_at_since(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    now = time.time()
    journal.append([journal.sshd(FAILED.format("192.0.2.1"))], when=now - 7200)
    journal.append([journal.sshd(FAILED.format("192.0.2.2"))], when=now)
    reader = reader_for(readers, journal, since=now - 3600)
    lines = texts(read_until(reader, 1))
    time.sleep(0.3)
    lines += texts(reader.poll())
    assert len(lines) == 1 and "192.0.2.2" in lines[0]


def test_either_name_of_the_ssh_unit_and_field_matches(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    journal.append(
        [
            journal.sshd("on ssh.service", unit="ssh.service"),
            journal.sshd("on sshd.service", unit="sshd.service"),
            {**journal.sshd("cron's line", unit="cron.service"), "SYSLOG_IDENTIFIER": "CRON"},
            {
                **journal.sshd("from sshd-session", unit="ssh.service"),
                "SYSLOG_IDENTIFIER": "sshd-session",
            },
        ]
    )
    for value, wanted in [
        ("journal:sshd.service", ["on ssh.service", "on sshd.service", "from sshd-session"]),
        ("journal:ssh.service", ["on ssh.service", "on sshd.service", "from sshd-session"]),
        ("journal:SYSLOG_IDENTIFIER=CRON", ["cron's line"]),
        ("journal:SYSLOG_IDENTIFIER=sshd", ["on ssh.service", "on sshd.service"]),
    ]:
        reader = reader_for(readers, journal, value)
        lines = texts(read_until(reader, len(wanted)))
        time.sleep(0.2)
        lines += texts(reader.poll())
        assert [line.split(": ", 1)[1] for line in lines] == wanted, value


def test_one_entry_is_one_line_and_bad_entries_are_counted(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    journal.append(
        [
            journal.sshd("first\nFailed password for root from 198.51.100.9 port 1 ssh2"),
            journal.sshd("x" * 5000),  # journalctl prints a field above 4096 bytes as null
            journal.sshd("last"),
        ]
    )
    reader = reader_for(readers, journal)
    chunks = read_until(reader, 3)
    lines = texts(chunks)
    assert lines[0].endswith(": first\\nFailed password for root from 198.51.100.9 port 1 ssh2")
    assert lines[1] == ""
    assert lines[2].endswith(": last")
    assert sum(c.bad_lines for c in chunks) == 1
    assert list(Recogniser("ssh").scan_text("".join(c.text for c in chunks))) == []


def test_entry_line_takes_the_address_only_from_the_message() -> None:
    line = entry_line(
        {
            "__REALTIME_TIMESTAMP": "1796420198745669",
            "SYSLOG_IDENTIFIER": "sshd",
            "_PID": "7",
            "_HOSTNAME": "192.0.2.99",
            "MESSAGE": FAILED.format("203.0.113.5"),
        }
    )
    assert line is not None
    assert [str(f.host) for f in Recogniser("ssh").scan_text(line + "\n")] == ["203.0.113.5"]
    # An odd identifier or host never shapes the prefix.
    odd = entry_line({"__REALTIME_TIMESTAMP": "1", "SYSLOG_IDENTIFIER": "a b: c", "MESSAGE": "m"})
    assert odd == "1970-01-01T00:00:00.000001+00:00 localhost -: m"
    assert entry_line({"__REALTIME_TIMESTAMP": "1", "MESSAGE": None}) is None
    assert entry_line({"MESSAGE": "no time"}) is None
    binary = entry_line({"__REALTIME_TIMESTAMP": "1", "_COMM": "sshd", "MESSAGE": [104, 255]})
    assert binary == "1970-01-01T00:00:00.000001+00:00 localhost sshd: h\ufffd"


def test_no_entries_and_no_such_unit_are_not_errors(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    journal.append([journal.sshd("only ssh")])
    reader = reader_for(readers, journal, "journal:no-such-unit.service")
    for _ in range(5):
        assert reader.poll() == []
        time.sleep(0.1)
    assert reader.fileno() >= 0  # still following


def test_journalctl_missing_is_a_clear_error(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    reader = reader_for(readers, journal, journalctl="/nonexistent/journalctl")
    with pytest.raises(JournalError, match="journalctl not found"):
        reader.poll()
    assert reader.fileno() == -1


def test_a_folder_journalctl_cannot_open_is_an_error_with_its_words(
    tmp_path: Path, readers: list[JournalReader]
) -> None:
    require_journal_tools()
    reader = JournalReader(
        parse_journal("journal:ssh.service"), "ssh", directory=str(tmp_path / "absent")
    )
    readers.append(reader)
    error = error_of(reader)
    assert error is not None
    assert "journalctl ended (exit status 1)" in str(error)
    assert "No such file or directory" in str(error)
    assert reader.fileno() == -1


def test_no_permission_is_a_clear_error(readers: list[JournalReader], tmp_path: Path) -> None:
    """journalctl run as a user who may not read the files (the agent not root):
    the folder is open to everyone, the journal file (0640, root's) is not."""
    require_journal_tools()
    folder = Path(tempfile.mkdtemp(prefix="pbxfw-journal-"))
    try:
        folder.chmod(0o755)
        journal = JournalFiles(folder)
        journal.append([journal.sshd("secret")])
        wrapper = tmp_path / "journalctl-as-nobody"
        wrapper.write_text(
            "#!/bin/sh\n"
            'exec setpriv --reuid=nobody --regid=nogroup --clear-groups journalctl "$@"\n'
        )
        wrapper.chmod(stat.S_IRWXU)
        reader = reader_for(readers, journal, journalctl=str(wrapper))
        error = error_of(reader, nothing_read=True)
        assert error is not None
        assert "no permission to read the journal" in str(error)
        assert "insufficient permissions" in str(error)
        assert "systemd-journal group" in str(error)
        assert reader.fileno() == -1
    finally:
        shutil.rmtree(folder)


def test_a_cursor_journalctl_refuses_falls_back_to_since(
    journal: JournalFiles, readers: list[JournalReader]
) -> None:
    journal.append([journal.sshd(FAILED.format("192.0.2.1"))])
    reader = reader_for(readers, journal, cursor="not-a-cursor", since=time.time() - 60)
    lines = texts(read_until(reader, 1))
    assert len(lines) == 1 and "192.0.2.1" in lines[0]
    assert reader.cursor is not None and reader.cursor != "not-a-cursor"
