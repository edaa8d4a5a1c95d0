"""The agent in-process (dry-run backend) following a journal: source in real journal files.

``log_ssh=journal:ssh.service``; the journal files are written by
systemd-journal-remote while the agent follows them. A restarted agent
continues after the stored cursor: the counters and the detector show every
entry counted exactly once, entries written while it was down included.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.agent.journal import JournalReader
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.ips_state import journal_cursors
from pbxfw.usecases.source_status import source_statuses
from tests.agent.journal_files import JournalFiles
from tests.helpers import Cli, restoring_signals

GUESSER = "203.0.113.77"
SOURCE = "journal:ssh.service"


class Pids:
    """A new sshd pid per attempt: a guesser that reconnects for each password."""

    def __init__(self) -> None:
        self.pid = 3000

    def __call__(self) -> int:
        self.pid += 1
        return self.pid


@pytest.fixture
def agents() -> Iterator[list[Agent]]:
    made: list[Agent] = []
    yield made
    for a in made:
        a.ips.close()


def setup(svc: ConfigService, tmp_path: Path) -> None:
    svc.update_settings(
        {
            "ips_maxretry": "3",
            "log_asterisk_messages": "",
            "log_asterisk_security": "",
            "log_ssh": SOURCE,
            "log_web": "",
            "asterisk_config_dir": "",
        }
    )


def start(svc: ConfigService, tmp_path: Path, journal: JournalFiles, made: list[Agent]) -> Agent:
    options = AgentOptions(
        state_dir=str(tmp_path / "state"),
        discover_asterisk=False,
        journal_directory=str(journal.folder),
    )
    a = Agent(svc.store, options, backend=DryRunBackend())
    made.append(a)
    a.start()
    return a


def run_until(a: Agent, done: object, timeout: float = 15.0) -> None:
    """Tick (waiting as the agent's loop does) until ``done()`` holds."""
    assert callable(done)
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        a.ips.wait(0.2)
        a.tick()


def lines_read(a: Agent) -> int:
    reader = a.ips._sources[SOURCE].reader
    assert isinstance(reader, JournalReader)
    return reader.lines_read


def ssh_failures(a: Agent) -> int:
    assert a.ips.detector is not None
    jail = a.ips.detector.stats()["jails"].get("ssh")
    return 0 if jail is None else jail["failures"]


def counters(svc: ConfigService) -> dict[str, int]:
    with svc.store.read() as repo:
        return repo.ips_counters().get("ssh", {"lines": 0, "failures": 0})


def test_restart_continues_at_the_cursor(
    svc: ConfigService, tmp_path: Path, journal: JournalFiles, agents: list[Agent]
) -> None:
    setup(svc, tmp_path)
    pid = Pids()
    failed = f"Failed password for root from {GUESSER} port 50022 ssh2"
    journal.append([journal.sshd(failed, pid()), journal.sshd("Server listening on 0.0.0.0")])
    first = start(svc, tmp_path, journal, agents)
    run_until(first, lambda: lines_read(first) == 2)
    journal.append([journal.sshd(failed, pid())])  # appended while it follows
    run_until(first, lambda: lines_read(first) == 3)
    assert ssh_failures(first) == 2
    assert first.backend.bans == {}  # type: ignore[attr-defined]
    run_until(first, lambda: SOURCE in journal_cursors(svc.store, first.node_name))
    first.flush()
    first.ips.close()
    assert counters(svc)["lines"] == 3 and counters(svc)["failures"] == 2

    # Written while the agent is down: read by the next one, not lost.
    journal.append([journal.sshd(failed, pid())])
    second = start(svc, tmp_path, journal, agents)
    run_until(second, lambda: lines_read(second) == 1)
    for _ in range(5):  # nothing more comes: the old entries are not read again
        second.ips.wait(0.1)
        second.tick()
    assert lines_read(second) == 1
    assert ssh_failures(second) == 1
    second.flush()
    assert counters(svc)["lines"] == 4 and counters(svc)["failures"] == 3

    journal.append([journal.sshd(failed, pid()) for _ in range(2)])
    run_until(second, lambda: bool(second.backend.bans))  # type: ignore[attr-defined]
    assert ssh_failures(second) == 3
    assert (f"{GUESSER}/32", "ssh") in second.backend.bans  # type: ignore[attr-defined]
    assert [b.address_text() for b in BanService(svc.store).active()] == [GUESSER]
    second.flush()
    assert counters(svc)["lines"] == 6 and counters(svc)["failures"] == 5


def test_a_broken_journal_is_shown_as_the_source_s_error(
    svc: ConfigService, tmp_path: Path, journal: JournalFiles, agents: list[Agent], cli: Cli
) -> None:
    setup(svc, tmp_path)
    journal.folder.rmdir()  # journalctl: "Failed to open ...: No such file or directory"
    a = start(svc, tmp_path, journal, agents)

    def failing() -> bool:
        return any(s.source == SOURCE for s in a.health.failing())

    run_until(a, failing)
    status = next(s for s in a.health.failing() if s.source == SOURCE)
    assert status.jail == "ssh"
    assert "journalctl ended (exit status 1)" in status.error
    assert status.error.endswith("(setting log_ssh)")
    a.health.persist(svc.store)
    text = cli("ips", "status").stdout
    assert "1 of 1 sources failing" in text
    assert f"{SOURCE} (jail ssh): journalctl ended (exit status 1)" in text


def test_a_new_entry_wakes_the_agent_s_wait(
    svc: ConfigService, tmp_path: Path, journal: JournalFiles, agents: list[Agent]
) -> None:
    """The loop's wait (inotify + the journal pipes) ends when an entry arrives,
    not when its interval runs out."""
    setup(svc, tmp_path)
    journal.append([journal.sshd("Server listening on 0.0.0.0 port 22.")])
    a = start(svc, tmp_path, journal, agents)
    run_until(a, lambda: lines_read(a) == 1)
    assert a.ips.inotify is not None
    reader = a.ips._sources[SOURCE].reader
    assert isinstance(reader, JournalReader)
    for _ in range(20):  # settle: until nothing (database, pipe) wakes the wait
        if not a.ips.inotify.wait(0.3, [reader.fileno()]):
            break
        a.tick()
    else:
        raise AssertionError("the wait never settled")
    journal.append([journal.sshd(f"Failed password for root from {GUESSER} port 1 ssh2")])
    started = time.monotonic()
    assert a.ips.wait(10.0)  # the agent's own wait: inotify and the journal pipes
    assert time.monotonic() - started < 3.0
    a.tick()
    assert lines_read(a) == 2


def test_a_stop_signal_that_also_ends_journalctl_is_no_source_failure(
    svc: ConfigService,
    tmp_path: Path,
    journal: JournalFiles,
    agents: list[Agent],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C of ``make run`` or ``systemctl stop``: the signal reaches journalctl
    (same process group, same cgroup) while the agent waits. The agent stops
    without recording the journal source as failing (it used to: ``journalctl
    ended (exit status -15)``, shown by ``pbxfw ips status`` after the stop)."""
    setup(svc, tmp_path)
    journal.append([journal.sshd("Server listening on 0.0.0.0")])
    a = start(svc, tmp_path, journal, agents)
    run_until(a, lambda: lines_read(a) == 1)
    reader = a.ips._sources[SOURCE].reader
    assert isinstance(reader, JournalReader)
    run_until(a, lambda: reader._proc is not None and not a.health.failing())
    assert reader._proc is not None
    journalctl = reader._proc
    real_wait = a.ips.wait

    def signalled(interval: float, extra: Sequence[int] = ()) -> bool:
        journalctl.send_signal(signal.SIGTERM)  # what the group's signal does to it
        journalctl.wait(5)
        a.stop_event.set()  # what the agent's own handler does
        return real_wait(interval, extra)  # journalctl's pipe has ended: it wakes at once

    monkeypatch.setattr(a.ips, "wait", signalled)
    monkeypatch.setattr(a, "start", lambda: None)
    restoring_signals(a.run)
    assert journalctl.returncode is not None  # journalctl exits 0 on SIGTERM, or -15
    assert [s.source for s in a.health.failing()] == []
    assert [s.source for s in source_statuses(svc.store) if not s.ok] == []
