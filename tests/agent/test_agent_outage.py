"""The database goes away (issue 16), in-process: the agent keeps its rules,
bans in its kernel at once, spools the bans, logs the outage once, and
writes every spooled ban exactly once when the database answers again,
also after a restart in between. The real agent: test_agent_outage_kernel.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network
from pathlib import Path

import pytest

from pbxfw.agent.config_cache import CONFIG_CACHE_NAME
from pbxfw.agent.daemon import Agent
from pbxfw.agent.spool import SPOOL_NAME, BanSpool
from pbxfw.domain.bans import Ban
from pbxfw.errors import StorageError
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage.repository import Repository, Store
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.bans import BanService
from tests.agent.test_agent_survives import Clock, agent_errors, apply, make_agent
from tests.agent.test_agent_unit import failure, setup

ATTACKER = "198.51.100.7"
OTHER = "203.0.113.9"
NODE_B = "192.0.2.77"


class Outage:
    """Every read and write of ``store`` raises what Store raises when the
    database cannot be reached, while ``down``."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch, down: bool = False) -> None:
        self.down = down
        read, write = store.read, store.write

        def guarded(real: object) -> object:
            @contextmanager
            def unit() -> Iterator[Repository]:
                if self.down:
                    raise StorageError("database error: unable to open database file")
                with real() as repo:  # type: ignore[operator]
                    yield repo

            return unit

        monkeypatch.setattr(store, "read", guarded(read))
        monkeypatch.setattr(store, "write", guarded(write))


def stored(svc: ConfigService) -> list[tuple[str, str]]:
    with svc.store.read() as repo:
        return sorted((str(b.subnet), b.jail) for b in repo.bans())


def ban_counter(svc: ConfigService) -> int:
    with svc.store.read() as repo:
        return repo.ips_counters().get("asterisk", {}).get("bans", 0)


def spooled(tmp_path: Path) -> list[str]:
    spool = BanSpool(tmp_path / "state" / "host" / SPOOL_NAME)
    return sorted(str(r.ban.subnet) for r in spool.load())


def started(svc: ConfigService, tmp_path: Path) -> tuple[DryRunBackend, Clock, Agent]:
    """The stored configuration applied to a dry-run kernel, and an agent following it."""
    backend, clock = DryRunBackend(), Clock()
    apply(svc, tmp_path, backend)
    return backend, clock, make_agent(svc, tmp_path, backend, clock)


def append(log: Path, lines: str) -> None:
    with log.open("a") as f:
        f.write(lines)


def ticks(agent: Agent, clock: Clock, seconds: float, step: float = 0.5) -> None:
    for _ in range(int(seconds / step)):
        clock.now += step
        agent.tick()


def test_bans_during_an_outage_are_enforced_at_once_and_stored_once_after_it(
    svc: ConfigService,
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pbxfw.agent")
    messages = setup(svc, tmp_path)
    backend, clock, agent = started(svc, tmp_path)
    outage = Outage(svc.store, monkeypatch, down=True)
    ticks(agent, clock, 5)

    append(messages, failure(ATTACKER) * 3)
    clock.now += 0.2
    agent.tick()
    assert (f"{ATTACKER}/32", "asterisk") in backend.bans  # in the kernel at once
    assert spooled(tmp_path) == [f"{ATTACKER}/32"]  # and on disk
    ticks(agent, clock, 150)  # minutes of outage, a tick every 0.5 s
    append(messages, failure(OTHER) * 3)
    ticks(agent, clock, 1)
    assert (f"{OTHER}/32", "asterisk") in backend.bans
    assert spooled(tmp_path) == [f"{ATTACKER}/32", f"{OTHER}/32"]
    # The outage is logged once (not once per part, nor per attempt: each
    # part retries with backoff, 1, 2, 4 … 60 s).
    assert len(agent_errors(caplog, "")) == 1, agent_errors(caplog, "")
    assert "unable to open database file" in agent_errors(caplog, "")[0]
    assert "delete_table" not in backend.calls
    assert backend.table is not None

    # Another node bans an address meanwhile (its own connection works).
    elsewhere = Store.open(db_url)
    BanService(elsewhere, clock=clock).add(NODE_B, seconds=3600)
    elsewhere.close()

    outage.down = False
    ticks(agent, clock, 3)  # the database is tried at least every 2 s
    assert stored(svc) == [
        (f"{NODE_B}/32", "manual"),
        (f"{ATTACKER}/32", "asterisk"),
        (f"{OTHER}/32", "asterisk"),
    ]
    assert (f"{NODE_B}/32", "manual") in backend.bans  # the ban it missed
    assert ban_counter(svc) == 2
    assert spooled(tmp_path) == []
    assert (tmp_path / "state" / "host" / SPOOL_NAME).stat().st_size == 0
    assert agent.rules.unsaved == []
    assert (f"{ATTACKER}/32", "asterisk") in backend.bans
    recovered = [
        r.getMessage()
        for r in caplog.records
        if "recovered" in r.getMessage() and r.levelno >= logging.INFO
    ]
    assert len(recovered) == 1, recovered


def test_a_restart_during_the_outage_loses_and_duplicates_no_ban(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = setup(svc, tmp_path)
    backend, clock, agent = started(svc, tmp_path)
    outage = Outage(svc.store, monkeypatch, down=True)
    append(messages, failure(ATTACKER) * 3 + failure(OTHER) * 3)
    ticks(agent, clock, 2)
    assert spooled(tmp_path) == [f"{ATTACKER}/32", f"{OTHER}/32"]
    agent.ips.close()  # kill -9: nothing flushed, nothing stored

    # Restarted while the database is still down: it keeps the kernel as it is.
    agent = make_agent(svc, tmp_path, backend, clock)
    ticks(agent, clock, 30)
    assert {k[0] for k in backend.bans} == {f"{ATTACKER}/32", f"{OTHER}/32"}
    assert "delete_table" not in backend.calls

    outage.down = False
    ticks(agent, clock, 61)
    assert stored(svc) == [(f"{ATTACKER}/32", "asterisk"), (f"{OTHER}/32", "asterisk")]
    # The log lines were read again (their offsets could not be stored), and
    # banned nothing twice: the spooled bans seeded the detector.
    assert ban_counter(svc) == 2
    assert spooled(tmp_path) == []
    assert {k[0] for k in backend.bans} == {f"{ATTACKER}/32", f"{OTHER}/32"}


def test_a_spooled_ban_stored_just_before_a_crash_is_not_written_again(
    svc: ConfigService, tmp_path: Path
) -> None:
    """kill -9 between the database's commit and the spool's acknowledgement."""
    setup(svc, tmp_path)
    backend, clock, agent = started(svc, tmp_path)
    append(tmp_path / "messages", failure(ATTACKER) * 3)
    clock.now += 0.2
    agent.tick()
    assert stored(svc) == [(f"{ATTACKER}/32", "asterisk")]
    [ban] = BanService(svc.store, clock=clock).active()
    agent.ips.close()
    spool = BanSpool(tmp_path / "state" / "host" / SPOOL_NAME)
    spool.load()
    from dataclasses import replace

    spool.append([replace(ban, id=None)])  # as if the acknowledgement never happened
    revision = BanService(svc.store).revision()

    agent = make_agent(svc, tmp_path, backend, clock)
    ticks(agent, clock, 2)
    assert stored(svc) == [(f"{ATTACKER}/32", "asterisk")]
    assert ban_counter(svc) == 1
    assert BanService(svc.store).revision() == revision  # not even rewritten
    assert spooled(tmp_path) == []


def test_a_lapsed_spooled_ban_is_dropped_at_start(svc: ConfigService, tmp_path: Path) -> None:
    setup(svc, tmp_path)
    backend, clock = DryRunBackend(), Clock()
    apply(svc, tmp_path, backend)
    spool = BanSpool(tmp_path / "state" / "host" / SPOOL_NAME)
    spool.load()
    BanService(svc.store, clock=clock).add(ATTACKER, seconds=60)
    [ban] = BanService(svc.store, clock=clock).active()
    BanService(svc.store).remove(ATTACKER)
    spool.append([ban])
    clock.now += 61
    agent = make_agent(svc, tmp_path, backend, clock)
    ticks(agent, clock, 2)
    assert stored(svc) == [] and spooled(tmp_path) == []
    assert agent.rules.unsaved == []


def test_an_unreachable_store_never_drops_the_rules_or_the_bans(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules part cannot read the configuration nor the bans: the kernel
    keeps its table and sets; a table deleted meanwhile comes back with the
    bans the kernel held, from memory."""
    setup(svc, tmp_path)
    backend, clock = DryRunBackend(), Clock()
    BanService(svc.store, clock=clock).add(ATTACKER, seconds=3600)
    apply(svc, tmp_path, backend)
    agent = make_agent(svc, tmp_path, backend, clock)
    ticks(agent, clock, 1)
    table, bans = backend.table, dict(backend.bans)
    assert table is not None and ATTACKER in table
    calls = len(backend.calls)
    outage = Outage(svc.store, monkeypatch, down=True)
    ticks(agent, clock, 120)
    assert backend.table == table and backend.bans == bans
    assert not [c for c in backend.calls[calls:] if c.startswith(("delete", "apply"))]

    backend.table = None  # someone deleted the table during the outage
    ticks(agent, clock, 2)
    assert backend.table is not None and ATTACKER in backend.table
    assert not [c for c in backend.calls[calls:] if c.startswith("delete")]

    outage.down = False
    BanService(svc.store, clock=clock).add(OTHER, seconds=3600)  # missed meanwhile
    ticks(agent, clock, 61)
    assert (f"{OTHER}/32", "manual") in backend.bans


def test_bans_made_elsewhere_during_the_outage_are_not_skipped_by_our_own_write(
    svc: ConfigService, tmp_path: Path
) -> None:
    """Our write bumps the ban revision; when others bumped it meanwhile, the
    next ban-set sync must still read every stored ban."""
    setup(svc, tmp_path)
    backend, clock, agent = started(svc, tmp_path)
    BanService(svc.store, clock=clock).add(NODE_B, seconds=3600)  # not synced yet
    mine = Ban(
        ip_network(f"{ATTACKER}/32"), "asterisk", frozenset({"sip"}), "x", clock(), clock() + 60
    )
    agent.rules.unsaved.append(mine)
    agent.outbox.save()
    agent.rules.sync()
    assert (f"{NODE_B}/32", "manual") in backend.bans


def test_a_spool_that_cannot_be_read_at_start_is_read_once_it_can(
    svc: ConfigService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup(svc, tmp_path)
    backend, clock = DryRunBackend(), Clock()
    apply(svc, tmp_path, backend)
    path = tmp_path / "state" / "host" / SPOOL_NAME
    spool = BanSpool(path)
    mine = Ban(
        ip_network(f"{ATTACKER}/32"), "asterisk", frozenset({"sip"}), "x", clock(), clock() + 600
    )
    spool.append([mine])
    path.rename(path.with_name("aside"))
    path.mkdir()  # a folder where the spool should be
    agent = make_agent(svc, tmp_path, backend, clock)
    assert len(agent_errors(caplog, "local ban spool")) == 1
    ticks(agent, clock, 3)
    assert stored(svc) == []
    path.rmdir()
    path.with_name("aside").rename(path)
    ticks(agent, clock, 70)
    assert stored(svc) == [(f"{ATTACKER}/32", "asterisk")]
    assert spooled(tmp_path) == []


def test_an_agent_started_during_the_outage_follows_its_kept_configuration(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 and a restart while the database is down: the restarted agent
    follows the configuration it kept, leaves the kernel's table as it is,
    bans at once (never in a never-block network), and loads the stored
    state when the database answers."""
    messages = setup(svc, tmp_path)
    svc.add_network(NetworkChange(name="Office", subnet="10.20.0.0/16", never_block=True))
    backend, clock = DryRunBackend(), Clock()
    BanService(svc.store, clock=clock).add(NODE_B, seconds=3600)
    apply(svc, tmp_path, backend)
    agent = make_agent(svc, tmp_path, backend, clock)
    ticks(agent, clock, 1)
    assert (tmp_path / "state" / "host" / CONFIG_CACHE_NAME).exists()
    table = backend.table
    assert table is not None and NODE_B in table
    agent.ips.close()  # kill -9

    outage = Outage(svc.store, monkeypatch, down=True)
    loads = backend.calls.count("apply")
    agent = make_agent(svc, tmp_path, backend, clock)
    ticks(agent, clock, 2)
    assert agent.rules.from_cache
    assert backend.table == table and backend.calls.count("apply") == loads  # kept as it is
    append(messages, failure("10.20.0.5") * 5 + failure(ATTACKER) * 3)
    ticks(agent, clock, 1)
    assert (f"{ATTACKER}/32", "asterisk") in backend.bans  # at once
    assert ("10.20.0.5/32", "asterisk") not in backend.bans  # never-block, as kept
    assert spooled(tmp_path) == [f"{ATTACKER}/32"]
    ticks(agent, clock, 20)
    assert backend.table == table and "delete_table" not in backend.calls

    outage.down = False
    ticks(agent, clock, 3)
    assert not agent.rules.from_cache
    assert backend.calls.count("apply") == loads + 1  # the stored state, whole
    assert stored(svc) == [(f"{NODE_B}/32", "manual"), (f"{ATTACKER}/32", "asterisk")]
    assert backend.table is not None and ATTACKER in backend.table and NODE_B in backend.table
    assert spooled(tmp_path) == []


def test_a_kept_configuration_that_cannot_be_read_is_no_configuration(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(svc, tmp_path)
    backend, clock, agent = started(svc, tmp_path)
    agent.ips.close()
    cache = tmp_path / "state" / "host" / CONFIG_CACHE_NAME
    cache.write_text(cache.read_text()[:100])  # torn
    outage = Outage(svc.store, monkeypatch, down=True)
    agent = make_agent(svc, tmp_path, backend, clock)
    ticks(agent, clock, 5)
    assert agent.rules.config is None and not agent.rules.from_cache
    assert backend.table is not None and "delete_table" not in backend.calls
    outage.down = False
    ticks(agent, clock, 3)
    assert agent.rules.config is not None


def test_a_reboot_during_the_outage_loads_the_kept_configuration_and_the_spooled_bans(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = setup(svc, tmp_path)
    _, clock, agent = started(svc, tmp_path)
    Outage(svc.store, monkeypatch, down=True)  # down until the test ends
    append(messages, failure(ATTACKER) * 3)
    ticks(agent, clock, 1)
    assert spooled(tmp_path) == [f"{ATTACKER}/32"]
    agent.ips.close()

    rebooted = DryRunBackend()  # no table, no sets
    agent = make_agent(svc, tmp_path, rebooted, clock)
    ticks(agent, clock, 1)
    assert rebooted.table is not None and ATTACKER in rebooted.table
    assert agent.rules.from_cache


def test_the_healthy_path_writes_no_spool(
    svc: ConfigService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ban the database takes is never spooled: its commit is the record
    (and the log offset is stored after it, so a crash before the commit
    re-reads the lines). The sync costs the agent's one thread ~8 ms."""
    messages = setup(svc, tmp_path)
    backend, clock, agent = started(svc, tmp_path)
    appended: list[int] = []
    real_append = BanSpool.append

    def counting(self: BanSpool, bans: list[Ban]) -> object:
        appended.append(len(bans))
        return real_append(self, bans)

    monkeypatch.setattr(BanSpool, "append", counting)
    ticks(agent, clock, 1)
    append(messages, failure(ATTACKER) * 3)
    ticks(agent, clock, 1)
    assert (f"{ATTACKER}/32", "asterisk") in backend.bans
    assert stored(svc) == [(f"{ATTACKER}/32", "asterisk")]
    assert appended == []
    assert spooled(tmp_path) == []
