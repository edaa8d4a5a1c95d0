"""scan_files / failure_json: the offline `pbxfw ips scan` of DESIGN §5."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Generator
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
        handle.write(
            b"Nov 25 11:00:30 pbx sshd[1]: Invalid user \xff\xfe from 198.51.100.70 port 1\n"
        )
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


# Parallel scan (byte ranges in worker processes) must equal the serial scan.

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("workers", [2, 3, 5])
@pytest.mark.parametrize("log", sorted(p.name for p in FIXTURES.glob("*.log")))
def test_parallel_scan_equals_serial_on_fixtures(log: str, workers: int) -> None:
    path = FIXTURES / log
    serial = list(scan_file(path, reference=REFERENCE, tz=UTC, workers=1))
    assert list(scan_file(path, reference=REFERENCE, tz=UTC, workers=workers)) == serial


def test_parallel_scan_equals_serial_on_a_generated_log(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(BENCH))
    try:
        from gen_asterisk_log import generate
    finally:
        sys.path.remove(str(BENCH))
    text, failures = generate(20_000, seed=11)
    log = tmp_path / "messages"
    log.write_text(text, encoding="utf-8")
    serial = list(scan_file(log, tz=UTC, workers=1))
    assert len(serial) == failures
    for workers in (2, 4, 7):
        assert list(scan_file(log, tz=UTC, workers=workers)) == serial


def test_parallel_keys_continue_across_range_boundaries(tmp_path: Path) -> None:
    # One host failing hundreds of times in one second, NOTICE and SECURITY
    # lines interleaved, then in the next second: every range boundary falls
    # inside a second, so the workers' ordinals must be renumbered.
    notice = (
        "[2026-11-01 08:42:{s:02d}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER'"
        " from '<sip:1@192.0.2.10>' failed for '198.51.100.{h}:5060' (callid: x)"
        " - Failed to authenticate\n"
    )
    security = (
        '[2026-11-01 08:42:{s:02d}] SECURITY[2] res_security_log.c: SecurityEvent="InvalidPassword",'
        'EventTV="x",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="1",'
        'SessionID="x",LocalAddress="IPV4/UDP/192.0.2.10/5060",'
        'RemoteAddress="IPV4/UDP/198.51.100.{h}/5060"\n'
    )
    lines = []
    for second in (1, 1, 2):
        for i in range(300):
            lines.append((notice if i % 3 else security).format(s=second, h=1 + i % 2))
            if i % 50 == 0:
                lines.append("[2026-11-01 08:42:01] VERBOSE[3] pbx.c: noise\n")
    log = tmp_path / "messages"
    log.write_text("".join(lines), encoding="utf-8")
    serial = list(scan_file(log, reference=REFERENCE, tz=UTC, workers=1))
    assert len(serial) == 900
    assert len({f.key for f in serial}) == 600  # max(NOTICE, SECURITY) per host and second
    for workers in (2, 3, 8, 50):
        assert list(scan_file(log, reference=REFERENCE, tz=UTC, workers=workers)) == serial


def test_scan_bytes_equals_scan_text_with_bad_bytes() -> None:
    from pbxfw.ips.recognisers import Recogniser

    data = b"".join(
        (FIXTURES / log).read_bytes() for log in sorted(p.name for p in FIXTURES.glob("*.log"))
    )
    data = data.replace(b"NOTICE[1638]", b"NOTICE[1638]\xff").replace(b"Request", b"\xe2Request")
    data += b"[2026-11-01 08:42:11] NOTICE[1] chan_sip.c: Registration from '\xc3' failed for "
    data += b"'198.51.100.99' - Wrong password\r\n\xf0\x9f"
    text = data.decode("utf-8", "replace")
    by_text = list(Recogniser(None, reference=REFERENCE, tz=UTC).scan_text(text))
    by_bytes = list(Recogniser(None, reference=REFERENCE, tz=UTC).scan_bytes(data))
    assert by_bytes == by_text
    assert str(by_text[-1].host) == "198.51.100.99"


# Reading in blocks and the worker processes.


@pytest.mark.parametrize("block", [16, 300, 4096])
def test_block_reads_equal_one_scan_of_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    # Blocks smaller than a line, about a line, several lines; serial and parallel.
    from pbxfw.ips import reading
    from pbxfw.ips.recognisers import Recogniser

    text = "".join(
        (FIXTURES / log).read_text(encoding="utf-8")
        for log in sorted(p.name for p in FIXTURES.glob("*.log"))
    )
    text += "[2026-11-01 08:42:16] NOTICE[1] manager.c: 198.51.100.1 failed to authenticate as 'a'"
    log = tmp_path / "mixed.log"
    log.write_text(text, encoding="utf-8")
    # The offline scan reads no user names (users=False).
    whole = list(
        Recogniser(None, file=str(log), reference=REFERENCE, tz=UTC, users=False).scan_text(text)
    )
    assert str(whole[-1].host) == "198.51.100.1"
    monkeypatch.setattr(reading, "_BLOCK", block)
    for workers in (1, 2, 3):
        assert list(scan_file(log, reference=REFERENCE, tz=UTC, workers=workers)) == whole


def test_a_worker_exception_is_raised_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from pbxfw.ips import parallel

    def boom(*args: object) -> None:
        raise ValueError("boom in the worker")

    monkeypatch.setattr(parallel, "_scan_range", boom)
    with pytest.raises(ValueError, match="boom in the worker"):
        list(scan_file(FIXTURES / "asterisk_messages.log", reference=REFERENCE, workers=2))


def test_a_worker_that_dies_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from pbxfw.ips import parallel

    monkeypatch.setattr(parallel, "_scan_range", lambda *args: os._exit(3))
    with pytest.raises(RuntimeError, match="exited unexpectedly"):
        list(scan_file(FIXTURES / "asterisk_messages.log", reference=REFERENCE, workers=3))


def test_closing_the_scan_early_reaps_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from pbxfw.ips.workers import Worker

    pids: list[int] = []
    close = Worker.close

    def record(self: Worker) -> None:
        if self.pid is not None:
            pids.append(self.pid)
        close(self)

    monkeypatch.setattr(Worker, "close", record)
    found = scan_file(FIXTURES / "asterisk_messages.log", reference=REFERENCE, workers=3)
    assert isinstance(found, Generator)
    next(found)
    found.close()
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_a_pipe_is_read_whole(tmp_path: Path) -> None:
    import threading

    source = FIXTURES / "asterisk_messages.log"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()))
    writer.start()
    try:
        found = list(scan_file(fifo, reference=REFERENCE, tz=UTC, workers=2))
    finally:
        writer.join()
    expected = list(scan_file(source, reference=REFERENCE, tz=UTC, workers=1))
    assert [(f.line, f.host, f.key) for f in found] == [(f.line, f.host, f.key) for f in expected]
