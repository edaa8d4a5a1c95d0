"""The agent survives any failure of one part (issue 13 item 5), in-process.

A log path that is a folder, or holds a NUL byte, used to kill the loop (and
a restarted agent died again, the setting being stored). Now the failing
source is logged once, recorded in ``source_status`` and retried with
backoff, while the other sources keep banning; fixing it is logged once more
and clears the status. The property test beside this file throws random
exceptions from every adapter.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

import pbxfw.usecases.source_status as source_status_usecases
from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.agent.health import Backoff, Health
from pbxfw.agent.inotify import Inotify
from pbxfw.agent.tail import Tailer
from pbxfw.domain.sources import SourceStatus
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage.repository import Repository
from pbxfw.storage.source_status import save_source_statuses
from pbxfw.usecases import ConfigService
from pbxfw.usecases.firewall import FirewallService
from pbxfw.usecases.source_status import source_statuses
from tests.agent.test_agent_unit import failure, setup
from tests.helpers import restoring_signals


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def make_agent(
    svc: ConfigService, tmp_path: Path, backend: DryRunBackend, clock: Clock, **options: object
) -> Agent:
    a = Agent(
        svc.store,
        AgentOptions(state_dir=str(tmp_path / "state"), discover_asterisk=False, **options),  # type: ignore[arg-type]
        backend=backend,
        clock=clock,
    )
    a.start()
    return a


def apply(svc: ConfigService, tmp_path: Path, backend: DryRunBackend) -> None:
    """``pbxfw apply``: the agent follows the applied configuration."""
    FirewallService(svc.store, tmp_path / "state", backend=lambda _ns: backend).apply()  # type: ignore[arg-type,return-value]


def status(svc: ConfigService) -> dict[str, SourceStatus]:
    return {s.source: s for s in source_statuses(svc.store)}


def agent_errors(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "pbxfw.agent" and r.levelno >= logging.ERROR and text in r.getMessage()
    ]


def test_a_log_path_that_is_a_folder_fails_alone_and_recovers(
    svc: ConfigService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pbxfw.agent")
    messages = setup(svc, tmp_path)
    folder = tmp_path / "auth.log"
    folder.mkdir()  # log_ssh (from setup) names a folder
    backend, clock = DryRunBackend(), Clock()
    a = make_agent(svc, tmp_path, backend, clock)
    for _ in range(100):  # 20 s of ticks
        clock.now += 0.2
        a.tick()
    # Logged once, not once per tick; recorded for other processes.
    assert len(agent_errors(caplog, str(folder))) == 1
    row = status(svc)[str(folder)]
    assert row.jail == "ssh" and row.error == "is a folder, not a file (setting log_ssh)"
    assert 4 <= row.failures <= 6  # tried at 1, 2, 4, 8 s… not every tick
    assert status(svc)[str(messages)].ok

    # The other sources still ban.
    with messages.open("a") as f:
        f.write(failure("198.51.100.2") * 3)
    clock.now += 0.2
    a.tick()
    assert ("198.51.100.2/32", "asterisk") in backend.bans

    # Fixed in place: one more line in the log, and the status clears.
    folder.rmdir()
    folder.write_text("")
    clock.now += 61
    a.tick()
    assert status(svc)[str(folder)].ok and status(svc)[str(folder)].failures == 0
    recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert len(recovered) == 1 and str(folder) in recovered[0]


def test_a_fixed_setting_drops_the_failing_source(svc: ConfigService, tmp_path: Path) -> None:
    setup(svc, tmp_path)
    (tmp_path / "folder").mkdir()
    svc.update_settings({"log_ssh": str(tmp_path / "folder")})
    backend, clock = DryRunBackend(), Clock()
    a = make_agent(svc, tmp_path, backend, clock)
    assert not status(svc)[str(tmp_path / "folder")].ok
    svc.update_settings({"log_ssh": str(tmp_path / "auth.log")})
    apply(svc, tmp_path, backend)
    clock.now += 0.2
    a.tick()
    rows = status(svc)
    assert str(tmp_path / "folder") not in rows
    assert all(row.ok for row in rows.values()), rows


def test_a_nul_in_a_path_fails_alone(svc: ConfigService, tmp_path: Path) -> None:
    """Through extra_sources: the settings validator refuses NUL (item 11), so a
    stored NUL can only come from an older database; the agent must survive it."""
    messages = setup(svc, tmp_path)
    bad = str(tmp_path / "x\x00y")
    backend, clock = DryRunBackend(), Clock()
    a = make_agent(svc, tmp_path, backend, clock, extra_sources=[(bad, "ssh")])
    with messages.open("a") as f:
        f.write(failure("198.51.100.3") * 3)
    clock.now += 0.2
    a.tick()
    assert ("198.51.100.3/32", "asterisk") in backend.bans
    assert status(svc)[bad].error == "the path contains a NUL character"


def test_tailer_create_accepts_a_nul_and_poll_reports_it(tmp_path: Path) -> None:
    tailer = Tailer.create([(str(tmp_path / "x\x00y"), "ssh")])
    with pytest.raises(ValueError, match="null"):
        tailer.poll()


def test_a_restarted_agent_with_the_bad_setting_stored_runs(
    svc: ConfigService, tmp_path: Path
) -> None:
    messages = setup(svc, tmp_path)
    (tmp_path / "auth.log").mkdir()
    backend, clock = DryRunBackend(), Clock()
    make_agent(svc, tmp_path, backend, clock)
    second = make_agent(svc, tmp_path, backend, clock)  # as after a restart
    with messages.open("a") as f:
        f.write(failure("198.51.100.4") * 3)
    clock.now += 0.2
    second.tick()
    assert ("198.51.100.4/32", "asterisk") in backend.bans
    # The second agent's own record replaces the first one's.
    assert [s.source for s in source_statuses(svc.store) if not s.ok] == [
        str(tmp_path / "auth.log")
    ]


def test_status_rows_are_written_only_on_change(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(svc, tmp_path)
    (tmp_path / "auth.log").mkdir()
    writes: list[int] = []

    def count_writes(repo: Repository, rows: Iterable[SourceStatus]) -> None:
        writes.append(len(list(rows)))
        save_source_statuses(repo, [])

    monkeypatch.setattr(source_status_usecases, "save_source_statuses", count_writes)
    backend, clock = DryRunBackend(), Clock()
    a = make_agent(svc, tmp_path, backend, clock)
    writes.clear()
    for _ in range(300):  # 60 s of ticks: attempts at 1, 2, 4, 8, 16, 32 s
        clock.now += 0.2
        a.tick()
    assert 4 <= len(writes) <= 7, writes


def test_backoff_doubles_from_one_second_to_a_minute() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(10_000) == 60


def test_health_skips_a_failing_part_until_its_next_attempt() -> None:
    clock = Clock()
    health = Health(clock)
    calls: list[float] = []

    def broken() -> None:
        calls.append(clock.now)
        raise RuntimeError("boom")

    start = clock.now
    for _ in range(32):  # 8 s
        health.run("agent:rules", broken)
        clock.now += 0.25
    assert [round(t - start, 1) for t in calls] == [0.0, 1.0, 3.0, 7.0]
    assert health.failing()[0].error == "RuntimeError: boom"
    assert health.run("agent:rules", lambda: None, force=True)
    assert health.failing() == []


def test_ips_status_names_the_failing_source_and_why(
    svc: ConfigService, tmp_path: Path, cli: Any
) -> None:
    setup(svc, tmp_path)
    (tmp_path / "auth.log").mkdir()
    backend, clock = DryRunBackend(), Clock()
    make_agent(svc, tmp_path, backend, clock)
    answer = cli("ips", "status", "--json")
    assert answer.exit_code == 0
    rows = {s["source"]: s for s in json.loads(answer.stdout)["sources"]}
    bad = rows[str(tmp_path / "auth.log")]
    assert bad["ok"] is False and bad["jail"] == "ssh" and bad["failures"] == 1
    assert bad["error"] == "is a folder, not a file (setting log_ssh)"
    assert rows[str(tmp_path / "messages")]["ok"] is True
    text = cli("ips", "status").stdout
    assert "1 of 4 sources failing" in text
    assert f"{tmp_path / 'auth.log'} (jail ssh): is a folder, not a file (setting log_ssh)" in text


def test_run_keeps_looping_when_inotify_breaks(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run()`` itself: a broken wake-up falls back to sleeping, never ends the loop."""
    setup(svc, tmp_path)

    def broken(self: Inotify, timeout: float) -> bool:
        raise OSError(9, "Bad file descriptor")

    monkeypatch.setattr(Inotify, "wait", broken)
    a = Agent(
        svc.store,
        AgentOptions(
            state_dir=str(tmp_path / "state"), discover_asterisk=False, revision_interval=0.01
        ),
        backend=DryRunBackend(),
    )
    ticks: list[bool] = []
    real_tick = a.tick

    def tick(force_rules: bool = False) -> None:
        real_tick(force_rules)
        ticks.append(force_rules)
        if len(ticks) >= 6:
            a.stop_event.set()

    monkeypatch.setattr(a, "tick", tick)
    restoring_signals(a.run)
    assert len(ticks) == 6
    assert [s.source for s in a.health.failing()] in ([], ["agent:inotify"])
