"""scan_lines: `pbxfw ips scan`'s output lines, made without Failure objects
(pbxfw.ips.output), serial and by worker processes: the same bytes as the
lines of scan_file's failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxfw.ips.events import Failure
from pbxfw.ips.output import JsonLines, LineFormat, TextLines
from pbxfw.ips.scan import ScanStats, failure_json, scan_file, scan_lines

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def text_line(f: Failure) -> str:
    line = f"{f.file}:{f.line}: {f.jail} {f.host} {f.event}"
    return f"{line} (counts {f.count} times)\n" if f.count != 1 else line + "\n"


def json_line(f: Failure) -> str:
    return json.dumps(failure_json(f), ensure_ascii=False) + "\n"


def output(paths: list[Path], fmt: LineFormat, workers: int, stats: ScanStats | None = None) -> str:
    batches = scan_lines(paths, fmt, reference=REFERENCE, tz=UTC, workers=workers, stats=stats)
    return "".join("".join(batch) for batch in batches)


def expected(paths: list[Path], line: object) -> str:
    assert callable(line)
    found = [f for p in paths for f in scan_file(p, reference=REFERENCE, tz=UTC, workers=1)]
    return "".join(line(f) for f in found)


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
@pytest.mark.parametrize("log", sorted(p.name for p in FIXTURES.glob("*.log")))
def test_lines_equal_the_lines_of_the_failures_on_fixtures(log: str, workers: int) -> None:
    paths = [FIXTURES / log]
    assert output(paths, TextLines(), workers) == expected(paths, text_line)
    assert output(paths, JsonLines(), workers) == expected(paths, json_line)


def test_several_files_in_order() -> None:
    paths = sorted(FIXTURES.glob("*.log"))
    for workers in (1, 3):
        assert output(paths, TextLines(), workers) == expected(paths, text_line)


def test_line_of_a_failure_is_head_number_tail() -> None:
    found = list(scan_file(FIXTURES / "auth.log", reference=REFERENCE, tz=UTC))
    assert found
    for fmt, line in ((TextLines(), text_line), (JsonLines(), json_line)):
        assert [fmt.line(f) for f in found] == [line(f) for f in found]


def sshd(second: int, pid: int, host: str, text: str) -> str:
    return f"Nov 25 11:{second // 60:02d}:{second % 60:02d} pbx sshd[{pid}]: {text}\n"


def test_ssh_attempts_across_the_workers_ranges_are_paired_in_file_order(
    tmp_path: Path,
) -> None:
    # Each attempt: PAM's line, then sshd's Failed line of the same process
    # a second later (one failure), with noise between; a range boundary
    # falls between the two lines of many attempts.
    lines = []
    for i in range(1500):
        host = f"198.51.100.{i % 7 + 1}"
        pid = 2000 + i
        lines.append(
            sshd(
                i,
                pid,
                host,
                "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh"
                f" ruser= rhost={host}  user=root",
            )
        )
        lines.append(sshd(i, 9, "", "Connection closed by 10.0.0.2 port 22 [preauth]"))
        failed = f"Failed password for root from {host} port 50000 ssh2"
        if i % 5 == 0:  # rsyslog's: the first copy pairs, the others count
            failed = f"message repeated 3 times: [ {failed}]"
        lines.append(sshd(i + 1, pid, host, failed))
    log = tmp_path / "auth.log"
    log.write_text("".join(lines), encoding="utf-8")
    serial = expected([log], text_line)
    # Paired: one failure per attempt, and the repeated messages shown too.
    assert serial.count("\n") == 1500 + 300
    assert serial.count("(counts 2 times)") == 300  # the first copy paired
    counted = sum(f.count for f in scan_file(log, reference=REFERENCE, tz=UTC, workers=1))
    for workers in (1, 2, 3, 8):
        stats = ScanStats()
        assert output([log], TextLines(), workers, stats) == serial
        assert serial.count("\n") + stats.repeats == counted
        assert output([log], JsonLines(), workers) == expected([log], json_line)


def test_long_lines_are_counted_by_the_workers_too(tmp_path: Path) -> None:
    failed = (
        b"Nov 25 11:00:03 pbx sshd[1003]: Failed password for root from 198.51.100.41 port 1 ssh2"
    )
    log = tmp_path / "auth.log"
    log.write_bytes((failed + b"\n" + failed + b" " * 70_000 + b"\n") * 20)
    for workers in (1, 2, 3):
        stats = ScanStats()
        assert output([log], TextLines(), workers, stats).count("\n") == 20
        assert stats.long_lines == 20


def test_a_worker_exception_is_raised_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from pbxfw.ips import parallel

    def boom(*args: object) -> None:
        raise ValueError("boom in the worker")

    monkeypatch.setattr(parallel, "_lines_task", lambda *args: boom)
    with pytest.raises(ValueError, match="boom in the worker"):
        output([FIXTURES / "asterisk_messages.log"], TextLines(), 2)


def test_a_pipe_is_read_whole(tmp_path: Path) -> None:
    import os
    import threading

    source = FIXTURES / "asterisk_messages.log"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(source.read_bytes()))
    writer.start()
    try:
        text = output([fifo], TextLines(), 2)
    finally:
        writer.join()
    assert text == expected([source], text_line).replace(str(source), str(fifo))
