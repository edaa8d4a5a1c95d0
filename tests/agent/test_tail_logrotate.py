"""The tailer against Debian's real logrotate, while a writer appends numbered lines.

logrotate is driven for real (``logrotate -f -s STATE CONF``, a configuration
in tmp_path) a few times while a writer process appends one numbered line
every millisecond; then every number is counted. The writer behaves like a
daemon's logger: it keeps its file open (O_APPEND) and reopens the path on
SIGHUP, which the configuration's ``postrotate`` sends (as Debian's Asterisk
package does with ``asterisk -rx 'logger reload'``).
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pbxfw.agent.tail import Tailer

WRITER = """
import signal, sys, time
path, total, pause_ack = sys.argv[1], int(sys.argv[2]), sys.argv[3]
state = {"reopen": False, "paused": False}
signal.signal(signal.SIGHUP, lambda *_: state.update(reopen=True))
signal.signal(signal.SIGUSR1, lambda *_: state.update(paused=True))
signal.signal(signal.SIGUSR2, lambda *_: state.update(paused=False))
log = open(path, "a", buffering=1)  # O_APPEND, one write() per line
print("ready", flush=True)
n = 0
while n < total:
    if state["reopen"]:
        log.close()
        log = open(path, "a", buffering=1)
        state["reopen"] = False
    if state["paused"]:
        open(pause_ack, "w").close()  # no line is being written now
        while state["paused"]:
            time.sleep(0.001)
        continue
    n += 1
    log.write(f"line {n:06d}\\n")
    time.sleep(0.001)
log.close()
"""

TOTAL = 3000
ROTATIONS = 5
#: Short, so the test is quick; the writer reopens within milliseconds of the HUP.
GRACE = 0.5


def logrotate() -> str:
    found = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin:/sbin")
    if found is None:  # scripts/install-system.sh installs it
        pytest.fail("Debian's logrotate is missing: apt-get install logrotate")
    return found


def run_writer(tmp_path: Path, log: Path) -> subprocess.Popen[str]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(log), str(TOTAL), str(tmp_path / "paused")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def config(tmp_path: Path, log: Path, options: str, pid: int) -> Path:
    conf = tmp_path / "logrotate.conf"
    conf.write_text(
        f"{log} {{\n"
        f"    rotate 20\n"
        f"    missingok\n"
        f"{options}"
        f"    postrotate\n"
        f"        kill -HUP {pid}\n"
        f"    endscript\n"
        f"}}\n"
    )
    conf.chmod(0o644)
    return conf


def rotate(conf: Path, state: Path) -> None:
    done = subprocess.run(
        [logrotate(), "-f", "-s", str(state), str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


def pause(proc: subprocess.Popen[str], ack: Path) -> None:
    ack.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    for _ in range(2000):
        if ack.exists():
            return
        time.sleep(0.001)
    pytest.fail("the writer did not pause")


def follow(
    tmp_path: Path, options: str, *, pause_during_rotation: bool
) -> tuple[collections.Counter[int], int]:
    """Rotate ROTATIONS times while the writer writes; the count of each number read."""
    log = tmp_path / "security_log"
    state = tmp_path / "logrotate.state"
    seen: collections.Counter[int] = collections.Counter()
    bad = 0
    proc = run_writer(tmp_path, log)
    try:
        conf = config(tmp_path, log, options, proc.pid)
        with Tailer.create([(str(log), "asterisk_security")], grace=GRACE) as tailer:

            def poll() -> None:
                nonlocal bad
                for chunk in tailer.poll():
                    bad += chunk.bad_lines
                    for line in chunk.text.splitlines():
                        if line:
                            seen[int(line.removeprefix("line "))] += 1

            for _ in range(ROTATIONS):
                for _ in range(15):  # ~0.3 s of writing and reading between rotations
                    poll()
                    time.sleep(0.02)
                if pause_during_rotation:
                    pause(proc, tmp_path / "paused")
                rotate(conf, state)
                if pause_during_rotation:
                    proc.send_signal(signal.SIGUSR2)
            assert proc.wait(timeout=60) == 0
            # Drain: until every line is read, or nothing new came for twice
            # the grace (the rotated files are then finished); bounded.
            deadline = time.monotonic() + 10
            count, quiet_since = -1, time.monotonic()
            while time.monotonic() < deadline and sum(seen.values()) < TOTAL:
                poll()
                if sum(seen.values()) != count:
                    count, quiet_since = sum(seen.values()), time.monotonic()
                elif time.monotonic() - quiet_since > 2 * GRACE:
                    break
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("security_log."))
    assert len(rotated) == ROTATIONS, rotated  # logrotate really rotated each time
    return seen, bad


@pytest.mark.parametrize(
    "options",
    [
        # Debian's usual: the old file stays uncompressed as .1 until the next rotation.
        "    create 0640 root root\n    compress\n    delaycompress\n",
        # The old file is compressed and removed at once, maybe before the writer
        # reopens: the tailer still reads it through the descriptor it holds.
        "    create 0640 root root\n    compress\n",
    ],
    ids=["create-delaycompress", "create-compress"],
)
def test_create_mode_every_line_exactly_once(tmp_path: Path, options: str) -> None:
    seen, bad = follow(tmp_path, options, pause_during_rotation=False)
    assert bad == 0
    assert sorted(seen) == list(range(1, TOTAL + 1)), "lines lost"
    assert max(seen.values()) == 1, "lines read twice"


def test_copytruncate_every_line_exactly_once_when_the_writer_pauses(tmp_path: Path) -> None:
    """copytruncate copies the file and then truncates it: a line written between
    the two is in neither file, whatever reads the log (logrotate's own window).
    With the writer paused during the rotation that window is empty, so the
    tailer's own guarantee shows exactly: the lines appended after its last read
    are read from the copy, the truncated file from its start, none twice."""
    seen, bad = follow(
        tmp_path, "    copytruncate\n    compress\n    delaycompress\n", pause_during_rotation=True
    )
    assert bad == 0
    assert sorted(seen) == list(range(1, TOTAL + 1)), "lines lost"
    assert max(seen.values()) == 1, "lines read twice"


def test_copytruncate_while_writing_loses_only_logrotates_window(tmp_path: Path) -> None:
    """Without a pause: never a line twice; what is missing can only be lines
    written between a copy and its truncation (a run of consecutive numbers per
    rotation, at most); a line cut by the truncation counts as bad."""
    seen, bad = follow(
        tmp_path, "    copytruncate\n    compress\n    delaycompress\n", pause_during_rotation=False
    )
    assert max(seen.values()) == 1, "lines read twice"
    missing = sorted(set(range(1, TOTAL + 1)) - set(seen))
    runs = sum(1 for i, n in enumerate(missing) if i == 0 or missing[i - 1] != n - 1)
    assert runs <= ROTATIONS, missing
    assert bad <= ROTATIONS
    assert len(seen) >= TOTAL - 10 * ROTATIONS, f"{len(missing)} lines lost"
