"""The agent's tallies reach the dashboard and the metrics (issue 19; migration 0016).

An agent (dry-run kernel, node ``pbx1``) reads failures from a real log file
and bans; its periodic flush writes the aggregates, which the dashboard
(usecases.dashboard) and both collectors (the agent's, with what it holds,
and the web server's, from the database alone) read back. On both engines.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.agent.metrics import parse_listen
from pbxfw.agent.tally import Tally
from pbxfw.errors import ValidationError
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage.aggregates import KEEP_SECONDS, Tallies
from pbxfw.usecases import ConfigService
from pbxfw.usecases.dashboard import read_dashboard, record_tallies
from pbxfw.usecases.metrics import registry
from tests.agent.test_agent_unit import failure, setup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value of a Prometheus text document."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def run_agent(svc: ConfigService, tmp_path: Path) -> Agent:
    log = setup(svc, tmp_path)
    now = time.time()
    log.write_text(failure("198.51.100.1", now) * 3 + failure("198.51.100.2", now))
    options = AgentOptions(state_dir=str(tmp_path / "state"), node="pbx1", discover_asterisk=False)
    agent = Agent(svc.store, options, backend=DryRunBackend())
    agent.start()
    agent.tick()
    agent.flush()
    return agent


def test_the_flush_feeds_the_dashboard_and_both_collectors(
    svc: ConfigService, tmp_path: Path
) -> None:
    agent = run_agent(svc, tmp_path)
    try:
        now = time.time()
        board = read_dashboard(svc.store, now)
        assert sum(board.per_hour.values()) == 4
        assert board.jails == ["asterisk"]
        assert [(t.address, t.failures) for t in board.top] == [
            ("198.51.100.1", 3),
            ("198.51.100.2", 1),
        ]
        assert board.bans_by_origin == [("jail:asterisk", 1)]
        assert [n.name for n in board.nodes] == ["pbx1"] and not board.nodes[0].stale
        # The extension the failures tried (the From URI's user), 24 h and 7 days.
        for tried in (board.extensions_day, board.extensions_week):
            assert [(t.account, t.jail, t.failures) for t in tried] == [("101", "asterisk", 4)]
        assert board.users_day == board.users_week == []

        mine = samples(generate_latest(registry(svc.store, time.time, agent.metrics.live())))
        node = ("node", "pbx1")
        failed = [v for (name, labels), v in mine.items() if name == "pbxfw_failures_total"]
        assert sum(failed) == 4
        assert (
            mine[
                ("pbxfw_bans_made_total", (("jail", "asterisk"), node, ("origin", "jail:asterisk")))
            ]
            == 1
        )
        assert mine[("pbxfw_bans_active", (node, ("set", "ban_asterisk_v4")))] == 1
        assert mine[("pbxfw_set_elements", (node, ("set", "banned_v4")))] == 1
        assert mine[("pbxfw_agent_up", (node,))] == 1
        assert mine[("pbxfw_applies_total", (node, ("result", "ok")))] >= 1
        assert mine[("pbxfw_apply_success", (node,))] == 1
        assert mine[("pbxfw_agent_last_tick_timestamp_seconds", (node,))] > now - 60
        assert any(name == "pbxfw_log_unread_bytes" for name, _ in mine)

        web = samples(generate_latest(registry(svc.store, time.time)))
        assert web[("pbxfw_bans_stored", (("jail", "asterisk"), ("origin", "jail:asterisk")))] == 1
        assert web[("pbxfw_agent_up", (node,))] == 1
        assert sum(v for (n, _), v in web.items() if n == "pbxfw_failures_total") == 4
    finally:
        agent.ips.close()


def test_the_agent_serves_metrics_on_its_address(svc: ConfigService, tmp_path: Path) -> None:
    agent = run_agent(svc, tmp_path)
    port = free_port()
    agent.metrics.serve("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read()
        assert (
            b'pbxfw_bans_made_total{jail="asterisk",node="pbx1",origin="jail:asterisk"} 1.0' in body
        )
        # The address is taken: a clear refusal naming the option.
        with pytest.raises(ValidationError, match=r"--metrics: cannot serve metrics"):
            agent.metrics.serve("127.0.0.1", port)
    finally:
        agent.metrics.close()
        agent.ips.close()


def test_a_failed_flush_keeps_the_tallies_for_the_next(svc: ConfigService, tmp_path: Path) -> None:
    agent = run_agent(svc, tmp_path)
    try:
        with (tmp_path / "messages").open("a") as f:
            f.write(failure("198.51.100.3"))
        agent.tick()

        def broken(*_: object) -> None:
            raise OSError("database away")

        real = agent.ips.store
        agent.ips.store = type("Away", (), {"write": broken})()  # type: ignore[assignment]
        with pytest.raises(OSError):
            agent.ips.flush()
        agent.ips.store = real
        agent.ips.flush()
        board = read_dashboard(svc.store, time.time())
        assert sum(board.per_hour.values()) == 5
        assert ("198.51.100.3", 1) in [(t.address, t.failures) for t in board.top]
    finally:
        agent.ips.close()


def test_old_hours_are_pruned_and_the_totals_kept(svc: ConfigService) -> None:
    now = time.time()
    old = int(now) - KEEP_SECONDS - 7200
    hour = old - old % 3600
    record_tallies(
        svc.store,
        "pbx1",
        Tallies(
            {(hour, "ssh", "e"): 5},
            {(hour - hour % 86400, "192.0.2.1"): ("ssh", 5)},
            {("ssh", "e"): 5},
            {},
        ),
        old,
    )
    record_tallies(
        svc.store,
        "pbx1",
        Tallies({(int(now) - int(now) % 3600, "ssh", "e"): 1}, {}, {("ssh", "e"): 1}, {}),
        now,
    )
    board = read_dashboard(svc.store, now)
    assert sum(board.per_hour.values()) == 1
    web = samples(generate_latest(registry(svc.store, time.time)))
    assert web[("pbxfw_failures_total", (("event", "e"), ("jail", "ssh"), ("node", "pbx1")))] == 6


def test_tally_counts_repeated_lines_and_merges_a_restored_take() -> None:
    from datetime import UTC, datetime
    from ipaddress import ip_address

    from pbxfw.ips.events import Failure

    tally = Tally()
    when = datetime(2026, 12, 5, 3, 30, tzinfo=UTC)
    tally.add(Failure(when, "ssh", ip_address("192.0.2.1"), "invalid_user", count=3))
    taken = tally.take()
    assert not tally
    tally.restore(taken)
    tally.add(Failure(when, "ssh", ip_address("192.0.2.1"), "invalid_user"))
    again = tally.take()
    hour = int(when.timestamp()) // 3600 * 3600
    assert again.hours == {(hour, "ssh", "invalid_user"): 4}
    assert again.sources == {(hour - hour % 86400, "192.0.2.1"): ("ssh", 4)}


def test_tally_counts_the_accounts_tried_within_a_bound() -> None:
    from datetime import UTC, datetime
    from ipaddress import ip_address

    from pbxfw.agent.tally import MAX_USERS
    from pbxfw.ips.events import Failure

    tally = Tally()
    when = datetime(2026, 12, 5, 3, 30, tzinfo=UTC)
    hour = int(when.timestamp()) // 3600 * 3600
    host = ip_address("192.0.2.1")
    tally.add(Failure(when, "ssh", host, "e", count=2, user="root"))
    tally.add(Failure(when, "ssh", host, "e", user="root"))
    tally.add(Failure(when, "ssh", host, "e"))  # names none: not counted here
    taken = tally.take()
    assert taken.users == {(hour, "ssh", "root"): 3}
    tally.restore(taken)
    for i in range(MAX_USERS + 10):
        tally.add(Failure(when, "ssh", host, "e", user=f"u{i}"))
    tally.add(Failure(when, "ssh", host, "e", user="root"))  # known: still counted
    users = tally.take().users
    assert len(users) == MAX_USERS and users[(hour, "ssh", "root")] == 4


@pytest.mark.parametrize("text", ["9151", "localhost", "127.0.0.1:0", "127.0.0.1:99999", ":9151"])
def test_a_bad_metrics_address_is_refused_naming_the_option(text: str) -> None:
    with pytest.raises(ValidationError, match="--metrics"):
        parse_listen(text)


def test_metrics_addresses_parse() -> None:
    assert parse_listen("127.0.0.1:9151") == ("127.0.0.1", 9151)
    assert parse_listen("[::1]:9151") == ("::1", 9151)
