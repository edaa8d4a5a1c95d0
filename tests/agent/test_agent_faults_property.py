"""Random exceptions from every adapter the agent uses, at random ticks (issue 13 item 5).

Hypothesis draws a schedule: at each tick some adapters raise some exception
(any Exception subclass, before or after doing their work), attackers write
failure lines, time moves on, and now and then an administrator applies a
new configuration. Whatever the schedule:

- ``start()`` and every ``tick()`` return (the loop keeps ticking);
- no ban that reached the kernel leaves it unless an administrator lifted
  it (the fake kernel models a whole table load as replacing the ban sets
  with what was compiled);
- each part's failure is logged once per episode: for every part, error and
  recovery messages alternate, and no other error is logged;
- once the faults stop, within a minute every part has recovered, the status
  table shows nothing failing, and the kernel holds exactly the stored bans.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import pbxfw.agent.daemon as daemon
import pbxfw.agent.rules as rules
import pbxfw.asterisk.pjsip as pjsip
import pbxfw.compiler as compiler
import pbxfw.usecases.config as config_usecases
import pbxfw.usecases.source_status as source_status_usecases
from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.agent.inotify import Inotify
from pbxfw.agent.tail import Tailer
from pbxfw.compiler import BanElement
from pbxfw.errors import KernelError, NotFoundError, PbxfwError, StorageError
from pbxfw.ips.recognisers import Recogniser
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Repository, Store
from pbxfw.storage.source_status import save_source_statuses
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.firewall import FirewallService
from pbxfw.usecases.source_status import source_statuses
from tests.agent.test_agent_unit import failure

EXCEPTIONS: tuple[type[Exception], ...] = (
    ValueError,
    OSError,
    IsADirectoryError,
    PermissionError,
    RuntimeError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    AssertionError,
    PbxfwError,
    KernelError,
    StorageError,
)
ADAPTERS = (
    "poll:messages",  # the tailer of one source
    "poll:security_log",  # the tailer of another
    "recognise",  # the recogniser (at the call, or after the first failure)
    "save_ban",  # the store's write of a ban
    "read_bans",  # the store's read of the bans
    "save_offsets",
    "counters",
    "status",  # the write of source_status itself
    "kernel:apply",  # a whole-table load
    "kernel:add",  # a ban-set update (buffered)
    "kernel:delete",  # an unban (buffered)
    "kernel:commit",  # the buffered changes sent to the kernel
    "kernel:chains",  # the check that the table is intact
    "kernel:structure",
    "pjsip",  # the PJSIP include writer
    "discover",  # reading the Asterisk configuration
    "host",  # this host's addresses
    "inotify",
)
ATTACKERS = [f"198.51.100.{i}" for i in range(1, 5)]


class Faults:
    """Which adapters raise what at the current tick."""

    def __init__(self) -> None:
        self.active: dict[str, tuple[type[Exception], bool]] = {}
        self.kernel: FaultyKernel | None = None

    def check(self, name: str, *, after: bool = False) -> None:
        spec = self.active.get(name)
        if spec is not None and spec[1] == after:
            raise spec[0](f"injected into {name}")


FAULTS = Faults()


@dataclass
class FaultyKernel(DryRunBackend):
    """The dry-run backend with faults; a whole load replaces the ban sets."""

    compiled: dict[tuple[str, str], int | None] = field(default_factory=dict)

    def apply(self, ruleset_text: str) -> None:
        FAULTS.check("kernel:apply")
        super().apply(ruleset_text)
        self.bans = dict(self.compiled)
        FAULTS.check("kernel:apply", after=True)

    def add(
        self,
        bans: Sequence[BanElement],
        guard: Sequence[BanElement] | None = None,
        *,
        refresh: bool = True,
    ) -> None:
        FAULTS.check("kernel:add")
        super().add(bans, guard, refresh=refresh)
        FAULTS.check("kernel:add", after=True)

    def delete(
        self, bans: Sequence[BanElement], unguard: Sequence[BanElement] | None = None
    ) -> None:
        FAULTS.check("kernel:delete")
        super().delete(bans, unguard)
        FAULTS.check("kernel:delete", after=True)

    def commit(self) -> None:
        FAULTS.check("kernel:commit")
        super().commit()
        FAULTS.check("kernel:commit", after=True)

    def chains(self) -> str | None:
        FAULTS.check("kernel:chains")
        return super().chains()

    def structure(self) -> str | None:
        FAULTS.check("kernel:structure")
        return super().structure()


def _faulty(name: str, real: Any, *, result: Any = None, call_real: bool = True) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        FAULTS.check(name)
        value = real(*args, **kwargs) if call_real else result
        FAULTS.check(name, after=True)
        return value

    return wrapper


@pytest.fixture
def faulty_adapters(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every adapter the agent uses, wrapped to raise what ``FAULTS`` says."""
    real_poll = Tailer.poll

    def poll(self: Tailer) -> Any:
        for tracked in self.files:
            FAULTS.check(f"poll:{Path(tracked.path).name}")
        return real_poll(self)

    real_scan = Recogniser.scan_text

    def scan_text(self: Recogniser, text: str, first_line: int = 1) -> Any:
        FAULTS.check("recognise")
        for n, found in enumerate(real_scan(self, text, first_line)):
            if n == 1:
                FAULTS.check("recognise", after=True)  # half way through a chunk
            yield found

    real_compile = compiler.compile_ruleset

    def compile_ruleset(config: Any, elements: list[BanElement]) -> str:
        assert FAULTS.kernel is not None
        FAULTS.kernel.compiled = {(str(e.subnet), e.jail): e.expires_in_seconds for e in elements}
        return real_compile(config, elements)

    monkeypatch.setattr(Tailer, "poll", poll)
    monkeypatch.setattr(Recogniser, "scan_text", scan_text)
    monkeypatch.setattr(Repository, "save_ban", _faulty("save_ban", Repository.save_ban))
    monkeypatch.setattr(Repository, "bans", _faulty("read_bans", Repository.bans))
    monkeypatch.setattr(Repository, "kernel_bans", _faulty("read_bans", Repository.kernel_bans))
    monkeypatch.setattr(
        Repository, "save_log_offset", _faulty("save_offsets", Repository.save_log_offset)
    )
    monkeypatch.setattr(
        Repository, "add_ips_counters", _faulty("counters", Repository.add_ips_counters)
    )
    monkeypatch.setattr(
        source_status_usecases,
        "save_source_statuses",
        _faulty("status", save_source_statuses),
    )
    monkeypatch.setattr(Inotify, "rewatch", _faulty("inotify", Inotify.rewatch))
    monkeypatch.setattr(
        pjsip,
        "write_configured_include",
        _faulty("pjsip", pjsip.write_configured_include),
    )
    monkeypatch.setattr(
        config_usecases,
        "discover_asterisk",
        _faulty("discover", None, result=SimpleNamespace(lines=[]), call_real=False),
    )
    monkeypatch.setattr(daemon, "host_addresses", _faulty("host", None, result=[], call_real=False))
    monkeypatch.setattr(rules, "compile_ruleset", compile_ruleset)
    yield
    FAULTS.active = {}


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def episodes(records: list[logging.LogRecord]) -> dict[str, list[str]]:
    """Per part label: the sequence of "failing" / "recovered" messages.

    Every other error message fails the test: all go through agent.health,
    except what ``_write_pjsip`` logs itself (another engineer's method: it
    logs its own OSError/PbxfwError once per call, and is called once per
    configuration).
    """
    seen: dict[str, list[str]] = {}
    for r in records:
        msg = str(r.msg)
        if msg.startswith("%s: %s; retrying"):
            seen.setdefault(str(r.args[0]), []).append("failing")  # type: ignore[index]
        elif msg.startswith("%s: recovered"):
            seen.setdefault(str(r.args[0]), []).append("recovered")  # type: ignore[index]
        elif r.levelno >= logging.ERROR:
            assert msg.startswith("PJSIP include:"), r.getMessage()
    return seen


@dataclass
class Tick:
    faults: dict[str, tuple[type[Exception], bool]]
    attackers: list[str]
    advance: float
    admin_apply: bool
    #: an administrator lifts this address's bans (``pbxfw bans rm``)
    unban: str | None = None


ticks = st.builds(
    Tick,
    faults=st.dictionaries(
        st.sampled_from(ADAPTERS),
        st.tuples(st.sampled_from(EXCEPTIONS), st.booleans()),
        max_size=5,
    ),
    attackers=st.lists(st.sampled_from(ATTACKERS), max_size=6),
    advance=st.sampled_from([0.05, 0.2, 0.2, 1.0, 3.0, 20.0]),
    admin_apply=st.integers(0, 4).map(lambda n: n == 0),
    unban=st.none() | st.none() | st.sampled_from(ATTACKERS),
)


@settings(
    max_examples=100,
    deadline=None,
    # No shrinking: a failure prints its whole schedule at once instead of
    # minutes later (every example builds a database and runs ~40 ticks).
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schedule=st.lists(ticks, min_size=1, max_size=40))
@example(  # a ban the store refused, then a whole load before the store's retry
    schedule=[
        Tick({}, [], 0.2, False),
        Tick({"save_ban": (StorageError, False)}, ["198.51.100.1"] * 3, 0.2, False),
        Tick({}, [], 0.2, True),
    ]
)
@example(  # the kernel took a ban but said it failed; then the sets are compared again
    schedule=[
        Tick({"kernel:commit": (OSError, True)}, ["198.51.100.2"] * 3, 0.2, False),
        Tick({"save_ban": (RuntimeError, True)}, [], 0.2, False),
        Tick({}, ["198.51.100.3"] * 3, 0.2, True),
    ]
)
@example(  # a sync's transaction landed but said it failed; then its ban is lifted
    schedule=[
        Tick({"kernel:commit": (OSError, False)}, ["198.51.100.3"] * 3, 0.2, False),
        Tick({"kernel:commit": (OSError, True)}, [], 0.2, False),
        Tick({}, [], 0.2, False, unban="198.51.100.3"),
        Tick({}, [], 3.0, False),
    ]
)
def test_the_loop_survives_random_exceptions_from_every_adapter(
    faulty_adapters: None, schedule: list[Tick]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        run_schedule(Path(folder), schedule)


def run_schedule(tmp: Path, schedule: list[Tick]) -> None:
    FAULTS.active = {}
    store = Store.open(database_url(str(tmp / "pbxfw.db")), create=True)
    svc = ConfigService(store)
    svc.init()
    (tmp / "asterisk").mkdir()
    logs = {name: tmp / name for name in ("messages", "security_log")}
    for path in logs.values():
        path.write_text("")
    svc.update_settings(
        {
            "ips_maxretry": "3",
            "log_asterisk_messages": str(logs["messages"]),
            "log_asterisk_security": str(logs["security_log"]),
            "log_ssh": str(tmp / "auth.log"),
            "log_web": str(tmp / "error.log"),
            "asterisk_config_dir": str(tmp / "asterisk"),
            "pjsip_include_path": str(tmp / "asterisk" / "pbxfw_pjsip_nat.conf"),
        }
    )
    kernel = FaultyKernel()
    FAULTS.kernel = kernel
    now = [time.time()]
    records = Records()
    logger = logging.getLogger("pbxfw.agent")
    logger.addHandler(records)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    agent = Agent(
        store,
        AgentOptions(state_dir=str(tmp / "state"), discover_asterisk=True),
        backend=kernel,
        clock=lambda: now[0],
    )
    try:
        FAULTS.active = schedule[0].faults
        agent.start()
        lifted: set[tuple[str, str]] = set()
        for n, step in enumerate(schedule):
            FAULTS.active = {}
            if step.admin_apply:
                svc.add_network(
                    NetworkChange(name=f"Local {n}", subnet=f"192.168.{n}.0/24", local=True)
                )
                FirewallService(store, tmp / "state", backend=DryRunBackend).apply()  # type: ignore[arg-type]
            for attacker in step.attackers:
                line = failure(attacker)
                with logs["messages"].open("a") as f:
                    f.write(line)
            if step.unban is not None:
                with contextlib.suppress(NotFoundError):
                    removed = BanService(store).remove(step.unban)
                    lifted |= {(str(b.subnet), b.jail) for b in removed}
            before = set(kernel.bans)
            now[0] += step.advance
            FAULTS.active = step.faults
            agent.tick()  # never raises
            FAULTS.active = {}
            # Only what an administrator lifted may leave the kernel (at this
            # tick, or later when the removal failed at first).
            lost = before - set(kernel.bans) - lifted
            assert not lost, f"tick {n} took bans out of the kernel: {lost}"
            lifted &= set(kernel.bans)  # those removals are done
            check_alternation(episodes(records.records), final=False)

        # The faults stop: within a minute (the longest backoff) all is well.
        now[0] += 61
        for _ in range(3):
            agent.tick()
            now[0] += 0.2
        assert agent.health.failing() == []
        assert [s for s in source_statuses(store) if not s.ok] == []
        assert agent.rules.unsaved == []
        with store.read() as repo:
            stored = {(str(b.subnet), b.jail) for b in repo.bans(now=now[0])}
        assert set(kernel.bans) == stored
        assert kernel.table is not None
        check_alternation(episodes(records.records), final=True)
    finally:
        FAULTS.active = {}
        logger.removeHandler(records)
        logger.setLevel(old_level)
        if agent.ips.inotify is not None:
            agent.ips.inotify.close()
        store.close()


def check_alternation(seen: dict[str, list[str]], *, final: bool) -> None:
    for label, sequence in seen.items():
        expected = ["failing", "recovered"] * len(sequence)
        assert sequence == expected[: len(sequence)], f"{label}: {sequence}"
        if final:
            assert sequence[-1] == "recovered", f"{label} never recovered: {sequence}"
