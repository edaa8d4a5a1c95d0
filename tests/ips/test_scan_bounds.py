"""`pbxfw ips scan` with hostile files: overlong lines, a 1 GB sparse file, a
folder (issue 13, item 11), and SSH attempts paired across a parallel scan's
ranges (item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxfw.ips import reading
from pbxfw.ips.recognisers import MAX_LINE
from pbxfw.ips.scan import ScanStats, scan_file

REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PBXFW = str(Path(sys.executable).with_name("pbxfw"))


def failed(n: int, host: str = "198.51.100.9") -> bytes:
    return (
        f"Nov 25 11:00:{n % 60:02d} pbx sshd[{n}]: Failed password for root from {host}"
        f" port {n} ssh2\n"
    ).encode()


def long_line(size: int, host: str = "203.0.113.66") -> bytes:
    # A recognisable failure padded past the limit: it must not count.
    head = failed(0, host).rstrip(b"\n")
    return head + b" " * (size - len(head)) + b"\n"


@pytest.mark.parametrize("size", [MAX_LINE + 1, 300_000, 5_000_000])
@pytest.mark.parametrize("block", [None, 4096])
def test_a_line_longer_than_the_limit_is_one_bad_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, block: int | None
) -> None:
    if block is not None:
        monkeypatch.setattr(reading, "_BLOCK", block)
    log = tmp_path / "auth.log"
    log.write_bytes(failed(1) + long_line(size) + failed(3) + long_line(size) + failed(5))
    for workers in (1, 2, 3):
        stats = ScanStats()
        found = list(scan_file(log, reference=REFERENCE, tz=UTC, workers=workers, stats=stats))
        assert [(f.line, str(f.host)) for f in found] == [
            (1, "198.51.100.9"),
            (3, "198.51.100.9"),
            (5, "198.51.100.9"),
        ]
        assert stats.long_lines == 2


def test_a_line_at_the_limit_still_counts(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(long_line(MAX_LINE) + long_line(MAX_LINE + 1))
    stats = ScanStats()
    found = list(scan_file(log, reference=REFERENCE, tz=UTC, stats=stats))
    assert [f.line for f in found] == [1]
    assert stats.long_lines == 1


def test_a_long_last_line_without_newline(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(failed(1) + b"x" * 3_000_000)
    stats = ScanStats()
    assert [f.line for f in scan_file(log, reference=REFERENCE, stats=stats)] == [1]
    assert stats.long_lines == 1


def test_lines_after_a_sparse_hole_are_read(tmp_path: Path) -> None:
    # A hole reads as NUL bytes; the scan jumps over it and goes on after it.
    log = tmp_path / "auth.log"
    log.write_bytes(failed(1))
    with log.open("r+b") as handle:
        handle.seek(1 << 30)
        handle.write(b"\n" + failed(3) + b"x" * 10 + b"\n")
    assert log.stat().st_blocks < 1024  # sparse
    for workers in (1, 2):
        stats = ScanStats()
        found = list(scan_file(log, reference=REFERENCE, tz=UTC, workers=workers, stats=stats))
        assert [f.line for f in found] == [1, 3]
        assert stats.long_lines == 1


def test_a_long_line_in_a_pipe(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    data = failed(1) + long_line(3_000_000) + failed(3)
    writer = threading.Thread(target=lambda: fifo.write_bytes(data))
    writer.start()
    stats = ScanStats()
    try:
        found = list(scan_file(fifo, reference=REFERENCE, tz=UTC, stats=stats))
    finally:
        writer.join()
    assert [f.line for f in found] == [1, 3]
    assert stats.long_lines == 1


def test_ssh_attempts_pair_across_the_ranges_of_a_parallel_scan(tmp_path: Path) -> None:
    lines = []
    for n in range(600):
        pid, second = 1000 + n // 3, n % 60
        host = f"198.51.100.{n % 7}"
        lines.append(
            f"Nov 25 11:{n // 60:02d}:{second:02d} pbx sshd[{pid}]: pam_unix(sshd:auth):"
            f" authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={host}"
            "  user=root\n"
        )
        if n % 5:  # some attempts have no sshd line (the client went away)
            lines.append(
                f"Nov 25 11:{n // 60:02d}:{second:02d} pbx sshd[{pid}]: Failed password for"
                f" root from {host} port {n} ssh2\n"
            )
    log = tmp_path / "auth.log"
    log.write_text("".join(lines))
    serial = list(scan_file(log, reference=REFERENCE, tz=UTC, workers=1))
    assert len(serial) == 600  # one per attempt
    for workers in (2, 3, 8, 50):
        assert list(scan_file(log, reference=REFERENCE, tz=UTC, workers=workers)) == serial


# -- the real command ---------------------------------------------------------------------


# Linux keeps a process's peak RSS across exec, and subprocess starts the
# child from this (large, late in a suite) pytest process: measured directly,
# the command's peak would include pytest's. A small interpreter forks the
# command and reports its child's peak instead, which starts from its own few
# MiB.
_PEAK_OF_CHILD = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "with open(sys.argv[1], 'w') as f: f.write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_pbxfw(*args: str, tmp_path: Path) -> tuple[int, str, str, float, int]:
    """Run the real ``pbxfw`` command: exit code, stdout, stderr, seconds, peak RSS (KiB)."""
    out, err, peak = tmp_path / "stdout", tmp_path / "stderr", tmp_path / "peak"
    start = time.monotonic()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        code = subprocess.run(
            [sys.executable, "-S", "-c", _PEAK_OF_CHILD, str(peak), PBXFW, *args],
            stdout=stdout,
            stderr=stderr,
            timeout=120,
        ).returncode
    seconds = time.monotonic() - start
    return code, out.read_text(), err.read_text(), seconds, int(peak.read_text())


def test_a_sparse_gigabyte_is_scanned_in_seconds_with_bounded_memory(tmp_path: Path) -> None:
    log = tmp_path / "huge.log"
    subprocess.run(["truncate", "-s", "1G", str(log)], check=True)
    assert log.stat().st_size == 1 << 30
    assert log.stat().st_blocks == 0  # sparse: no disk used
    code, stdout, stderr, seconds, rss_kib = run_pbxfw("ips", "scan", str(log), tmp_path=tmp_path)
    assert code == 0, stderr
    assert stdout == ""
    assert "0 failures" in stderr
    assert "1 bad line longer than 64 KiB skipped" in stderr
    assert seconds < 30
    assert rss_kib < 200 * 1024


def test_a_long_line_is_reported_by_the_command(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(failed(1) + long_line(100_000) + failed(3))
    code, stdout, stderr, _, _ = run_pbxfw("ips", "scan", "--json", str(log), tmp_path=tmp_path)
    assert code == 0
    assert len(stdout.splitlines()) == 2
    assert "1 bad line longer than 64 KiB skipped" in stderr


def test_a_folder_is_named_as_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    code, stdout, stderr, _, _ = run_pbxfw("ips", "scan", str(folder), tmp_path=tmp_path)
    assert code == 2
    assert stdout == ""
    assert f"{folder} is a folder, not a log file" in stderr
    assert "no such file" not in stderr
    assert "Traceback" not in stderr


def test_a_missing_file_and_a_device(tmp_path: Path) -> None:
    code, _, stderr, _, _ = run_pbxfw("ips", "scan", str(tmp_path / "nope"), tmp_path=tmp_path)
    assert code == 2
    assert "no such file" in stderr
    code, _, stderr, _, _ = run_pbxfw("ips", "scan", "/dev/zero", tmp_path=tmp_path)
    assert code == 2
    assert "not a regular file or a pipe" in stderr
