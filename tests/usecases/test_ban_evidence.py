"""A ban's evidence in the store (issue 19): kept with a jail's ban, replaced when
the ban is renewed, gone with its ban or after ``ips_evidence_days``; an
administrator's ban says who made it. Both engines."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from pbxfw.domain.bans import Ban
from pbxfw.domain.evidence import BanEvidence, EvidenceLine
from pbxfw.errors import NotFoundError, ValidationError
from pbxfw.ips.events import BanDecision
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService

NOW = 1_800_000_000.0
DAY = 86400.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def detected(address: str, seconds: int = 600, lines: int = 5, now: float = NOW) -> Ban:
    moment = datetime.fromtimestamp(now, UTC)
    decision = BanDecision(
        host=ipaddress.ip_address(address),
        jail="asterisk",
        scope=frozenset({"sip", "iax", "ajam"}),
        time=moment,
        seconds=seconds,
        failures=lines,
        first_failure=moment,
        reason=f"{lines} asterisk failures within 3600 s (offence 1: {seconds} s)",
    )
    evidence = BanEvidence(
        "asterisk",
        lines,
        3600,
        tuple(
            EvidenceLine(
                "/var/log/asterisk/messages",
                n,
                f"[x] NOTICE failed for '{address}:5060' attempt {n}",
                now - 10 + n,
                "InvalidPassword",
            )
            for n in range(1, lines + 1)
        ),
    )
    return Ban.from_decision(decision, now, "pbx-a", "default", evidence)


def evidence_rows(svc: ConfigService) -> int:
    with svc.store.engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM ban_evidence")).scalar_one())


@pytest.fixture
def bans(svc: ConfigService) -> BanService:
    return BanService(svc.store, clock=Clock(), own_addresses=lambda: [])


def test_a_jail_ban_keeps_its_lines_and_rule(bans: BanService, svc: ConfigService) -> None:
    bans.record([detected("198.51.100.7"), detected("198.51.100.8", lines=3)])
    [record] = bans.show("198.51.100.7")
    assert record.ban.origin == "jail:asterisk" and record.ban.who is None
    assert record.evidence is not None
    assert (record.evidence.jail, record.evidence.maxretry, record.evidence.findtime) == (
        "asterisk",
        5,
        3600,
    )
    assert [(x.file, x.line) for x in record.evidence.lines] == [
        ("/var/log/asterisk/messages", n) for n in range(1, 6)
    ]
    shown = record.as_json(NOW)
    assert shown["active"] is True and shown["who"] is None
    assert isinstance(shown["evidence"], dict) and len(shown["evidence"]["lines"]) == 5
    assert evidence_rows(svc) == 2


def test_a_renewed_ban_replaces_its_evidence(bans: BanService, svc: ConfigService) -> None:
    bans.record([detected("198.51.100.7", lines=5)])
    bans.record([detected("198.51.100.7", lines=2, now=NOW + 700)])
    [record] = bans.show("198.51.100.7")
    assert record.evidence is not None and len(record.evidence.lines) == 2
    assert evidence_rows(svc) == 1


def test_evidence_goes_with_its_ban(bans: BanService, svc: ConfigService) -> None:
    bans.record([detected("198.51.100.7")])
    bans.remove("198.51.100.7")
    assert evidence_rows(svc) == 0
    with pytest.raises(NotFoundError, match=r"198\.51\.100\.7 has no ban stored"):
        bans.show("198.51.100.7")


def test_old_evidence_and_long_ended_bans_are_pruned(bans: BanService, svc: ConfigService) -> None:
    svc.update_settings({"ips_evidence_days": "7"})
    clock = bans.clock
    assert isinstance(clock, Clock)
    bans.record([detected("198.51.100.7", seconds=600)])  # ends after 10 minutes
    bans.record([detected("198.51.100.8", seconds=30 * 86400)])  # still active in 8 days
    clock.now = NOW + 6 * DAY
    assert bans.prune() == (0, 0)
    [ended] = bans.show("198.51.100.7")  # an ended ban is still shown, with its lines
    assert not ended.ban.active(clock.now) and ended.evidence is not None
    clock.now = NOW + 8 * DAY
    assert bans.prune() == (2, 1)
    with pytest.raises(NotFoundError):
        bans.show("198.51.100.7")
    [kept] = bans.show("198.51.100.8")  # the ban stays; its lines are gone
    assert kept.evidence is None
    assert evidence_rows(svc) == 0


def test_the_agent_prunes_when_it_records_at_most_hourly(
    bans: BanService, svc: ConfigService
) -> None:
    clock = bans.clock
    assert isinstance(clock, Clock)
    bans.record([detected("198.51.100.7")])
    clock.now = NOW + 31 * DAY  # the default keeps 30 days
    bans.record([replace(detected("198.51.100.9", now=clock.now), evidence=None)])
    with pytest.raises(NotFoundError):
        bans.show("198.51.100.7")
    assert bans.pruned_at == clock.now


def test_an_administrator_ban_says_who_made_it(bans: BanService) -> None:
    bans.add("198.51.100.20", reason="seen scanning", who="cli:root (sudo: alice)")
    bans.import_lines(["198.51.100.21", "203.0.113.0/24"], who="rest:admin")
    [made] = bans.show("198.51.100.20")
    assert (made.ban.origin, made.ban.who, made.evidence) == (
        "manual",
        "cli:root (sudo: alice)",
        None,
    )
    assert [r.ban.who for r in bans.show("203.0.113.0/24")] == ["rest:admin"]
    assert bans.show("198.51.100.21")[0].as_json(NOW)["who"] == "rest:admin"


def test_show_refuses_a_bad_address_naming_the_field(bans: BanService) -> None:
    with pytest.raises(ValidationError) as caught:
        bans.show("not-an-address")
    assert caught.value.errors[0].field == "address"


def test_the_evidence_days_setting_is_checked(svc: ConfigService) -> None:
    with pytest.raises(ValidationError) as caught:
        svc.update_settings({"ips_evidence_days": "0"})
    assert caught.value.errors[0].field == "ips_evidence_days"
    assert "1 to 3650" in caught.value.errors[0].message
    assert svc.settings().ips_evidence_days == 30
