"""scan_files / failure_json: the offline `pbxfw ips scan` of DESIGN §5."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxfw.ips.scan import failure_json, scan_file, scan_files

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_scan_files_reports_every_fixture_failure_in_order() -> None:
    paths = [FIXTURES / "asterisk_messages.log", FIXTURES / "auth.log"]
    found = list(scan_files(paths, REFERENCE, tz=UTC))
    assert [f.file for f in found] == sorted(
        [str(paths[0])] * 23 + [str(paths[1])] * 13, key=lambda p: p != str(paths[0])
    )
    lines = [f.line for f in found if f.file == str(paths[0])]
    assert lines == sorted(lines) == list(range(2, 25))


def test_failure_json_shape() -> None:
    found = list(scan_files([FIXTURES / "asterisk_security.log"], REFERENCE, tz=UTC))
    first = failure_json(found[0])
    assert set(first) == {"file", "line", "time", "jail", "host", "event"}
    assert first == {
        "file": str(FIXTURES / "asterisk_security.log"),
        "line": 1,
        "time": "2026-11-01T08:42:15+00:00",
        "jail": "asterisk",
        "host": "198.51.100.5",
        "event": "SecurityEvent InvalidAccountID (PJSIP)",
    }
    assert json.loads(json.dumps(first)) == first
    assert {failure_json(f)["jail"] for f in found} == {"asterisk", "ami"}
    by_line = {f.line: failure_json(f) for f in found}
    assert by_line[10]["host"] == "2001:db8::35"
    assert by_line[7]["jail"] == "ami"


def test_year_comes_from_the_file_modification_time(tmp_path: Path) -> None:
    log = tmp_path / "messages"
    log.write_text(
        "[Dec 31 23:59:59] NOTICE[1]: manager.c:1 a: 198.51.100.1 failed to authenticate as 'a'\n"
    )
    january = datetime(2031, 1, 2, tzinfo=UTC).timestamp()
    os.utime(log, (january, january))
    (failure,) = scan_file(log, tz=UTC)
    assert failure.time == datetime(2030, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_explicit_kind_and_undecodable_bytes(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    shutil.copy(FIXTURES / "auth.log", log)
    with log.open("ab") as handle:
        handle.write(b"Nov 25 11:00:30 pbx sshd[1]: Invalid user \xff\xfe from 198.51.100.70 port 1\n")
    found = list(scan_file(log, kind="ssh", reference=REFERENCE, tz=UTC))
    assert len(found) == 14
    assert str(found[-1].host) == "198.51.100.70"
    assert found[-1].line == 19


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        list(scan_files([tmp_path / "nope.log"]))


def test_empty_file(tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("")
    assert list(scan_files([log], REFERENCE)) == []
