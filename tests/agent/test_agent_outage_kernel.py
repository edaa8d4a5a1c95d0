"""The database goes away under the real agent (issue 16, "The database can go away").

The real ``pbxfw agent`` in a test namespace with real nftables, its SQLite
database on a small tmpfs of its own. The tmpfs is then filled to the last
page: every write of the agent fails in SQLite itself ("database or disk is
full", which the store raises as ``StorageError``, as it does for a stopped
PostgreSQL), while reads still work. This is a real way to make the store
raise for a process running as root (a chmod does not stop root, and an
open SQLite connection keeps the file it opened whatever happens to its
name); a full disk is also a real outage. An attacker fails meanwhile: it
is dropped by the kernel at once and its ban is in the agent's spool, not
in the database. The agent is killed with SIGKILL and the table deleted;
restarted with the disk still full, it loads the table again with the
spooled ban, which keeps waiting; killed again; the disk gets room; the
restarted agent writes the spooled ban: stored exactly once, in the
kernel, the spool empty.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pbxfw.agent.spool import SPOOL_NAME, scan
from tests.agent.agent_process import stop_agent, wait_until
from tests.agent.test_agent_kernel import (  # noqa: F401 - env is a fixture
    ATTACKER,
    Env,
    env,
)

pytestmark = pytest.mark.kernel


@contextlib.contextmanager
def small_disk(folder: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted on ``folder`` (unmounted afterwards)."""
    folder.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "pbxfw-test", str(folder)], check=True
    )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until its file system is full; the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1 << 8, 1):
            chunk = b"\0" * size
            while True:
                try:
                    f.write(chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
                written += size
        os.fsync(f.fileno())
    return written


def stored(e: Env) -> list[str]:
    answer = e.pbxfw("bans", "list", "--json")
    assert answer.returncode == 0, answer.stderr
    return [b["address"] for b in json.loads(answer.stdout)]


@pytest.mark.sqlite_only  # SQLite's own file on a full disk (PostgreSQL: issue 16's fleet tests)
def test_a_ban_made_while_the_database_cannot_be_written_survives_kill_9(
    env: Env,  # noqa: F811
    tmp_path: Path,
    db_path: Path,
) -> None:
    disk = tmp_path / "disk"
    with small_disk(disk):
        shutil.copy2(db_path, disk / "pbxfw.db")  # the CLI closed it: no -wal left
        e = replace(env, db=str(disk / "pbxfw.db"))
        log = e.tmp / "agent.log"
        spool = e.tmp / "state" / f"netns-{e.pbx}" / SPOOL_NAME
        agent = e.agent()
        try:
            took = wait_until(lambda: "pbxfw" in e.lab.nft(e.pbx, "list", "tables"), 10)
            assert took is not None, log.read_text()[-3000:]
            time.sleep(1.5)  # the first counters and statuses are written

            fill(disk / "filler")
            errors_before = log.read_text().count(" ERROR ")
            e.fail(ATTACKER, 5)
            took = wait_until(lambda: ATTACKER in e.banned(), 1.0)
            assert took is not None, "not banned in the kernel within 1 s"
            took = wait_until(lambda: spool.exists() and bool(scan(spool.read_bytes()).pending), 2)
            assert took is not None, log.read_text()[-3000:]
            [record] = scan(spool.read_bytes()).pending.values()
            assert str(record.ban.subnet) == f"{ATTACKER}/32"
            time.sleep(3)  # several retries
            text = log.read_text()
            assert "database or disk is full" in text, text[-3000:]
            # The outage is logged once, whichever parts fail.
            assert text.count(" ERROR ") - errors_before == 1, text[-3000:]
            assert stored(e) == []  # reads work; the write never happened
            assert ATTACKER in e.banned() and agent.poll() is None

            # kill -9 and a restart while the disk is still full: the table
            # is loaded again with the spooled ban, which still waits.
            agent.send_signal(signal.SIGKILL)
            agent.wait(5)
            e.lab.nft(e.pbx, "delete", "table", "inet", "pbxfw")
            agent = e.agent()
            took = wait_until(lambda: "pbxfw" in e.lab.nft(e.pbx, "list", "tables"), 10)
            assert took is not None, log.read_text()[-3000:]
            assert wait_until(lambda: ATTACKER in e.banned(), 2.0) is not None
            time.sleep(2)
            assert agent.poll() is None, log.read_text()[-3000:]
            assert [str(r.ban.subnet) for r in scan(spool.read_bytes()).pending.values()] == [
                f"{ATTACKER}/32"
            ]
            assert stored(e) == []

            agent.send_signal(signal.SIGKILL)
            agent.wait(5)
            (disk / "filler").unlink()
            agent = e.agent()
            took = wait_until(lambda: stored(e) == [ATTACKER], 10, step=0.2)
            assert took is not None, (stored(e), log.read_text()[-3000:])
            took = wait_until(lambda: spool.stat().st_size == 0, 5)
            assert took is not None, spool.read_bytes()
            assert ATTACKER in e.banned()
            time.sleep(1.5)  # the re-read log lines ban nothing twice
            assert stored(e) == [ATTACKER]
            status = json.loads(e.pbxfw("ips", "status", "--json").stdout)
            assert status["jails"]["asterisk"]["bans"] == 1, status["jails"]
            assert agent.poll() is None
        finally:
            stop_agent(agent)
            print(log.read_text()[-3000:])
