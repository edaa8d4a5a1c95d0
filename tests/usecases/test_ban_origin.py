"""Shared bans in the store: each ban's origin, and the incremental reads the
agents make (issue 16, docs/fleet-bans.md). Both engines."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest

from pbxfw.domain.bans import Ban
from pbxfw.domain.nodes import Node
from pbxfw.errors import ValidationError
from pbxfw.ips.events import BanDecision
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.nodes import NodeService

NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


def detected(address: str, node: str = "pbx-a", site: str = "default") -> Ban:
    moment = datetime.fromtimestamp(NOW, UTC)
    decision = BanDecision(
        host=ipaddress.ip_address(address),
        jail="asterisk",
        scope=frozenset({"sip", "iax", "ajam"}),
        time=moment,
        seconds=600,
        failures=5,
        first_failure=moment,
        reason="5 failed registrations",
        offence=1,
    )
    return Ban.from_decision(decision, NOW, node, site)


def service(svc: ConfigService) -> BanService:
    return BanService(svc.store, clock=clock, own_addresses=list)


def test_each_way_of_banning_stores_its_origin(svc: ConfigService) -> None:
    bans = service(svc)
    bans.add("198.51.100.1", jail="ssh", seconds=60)
    bans.import_lines(["198.51.100.2", "203.0.113.0/24"])
    bans.record([detected("198.51.100.3")])
    found = {b.address_text(): (b.origin, b.node, b.site) for b in bans.active()}
    assert found == {
        "198.51.100.1": ("manual", None, None),  # an administrator's, whatever its jail
        "198.51.100.2": ("manual", None, None),
        "203.0.113.0/24": ("manual", None, None),
        "198.51.100.3": ("jail:asterisk", "pbx-a", "default"),
    }
    as_json = next(b.as_json(NOW) for b in bans.active() if b.node)
    assert (as_json["origin"], as_json["node"], as_json["site"]) == (
        "jail:asterisk",
        "pbx-a",
        "default",
    )


def test_changed_since_reads_only_what_was_written_after_a_revision(svc: ConfigService) -> None:
    bans = service(svc)
    first = bans.record([detected("198.51.100.1"), detected("198.51.100.2")])
    everything = bans.changed_since(None)
    assert everything.full and everything.revision == first
    assert len(everything.bans or []) == 2
    assert everything.shares == {}  # no site set it: each shares fleet
    assert bans.changed_since(first).bans is None  # nothing new

    second = bans.record([detected("198.51.100.3", node="pbx-b")])
    delta = bans.changed_since(first)
    assert (delta.revision, delta.full) == (second, False)
    assert [b.address_text() for b in delta.bans or []] == ["198.51.100.3"]

    # A ban written again (renewed by another node) is read again.
    third = bans.record([detected("198.51.100.1", node="pbx-c")])
    delta = bans.changed_since(second)
    assert (delta.revision, delta.full) == (third, False)
    assert [(b.address_text(), b.node) for b in delta.bans or []] == [("198.51.100.1", "pbx-c")]

    # A removal after the revision read: only a full read is right.
    bans.remove("198.51.100.2")
    delta = bans.changed_since(third)
    assert delta.full
    assert sorted(b.address_text() for b in delta.bans or []) == ["198.51.100.1", "198.51.100.3"]
    # ...and once read, incremental again.
    assert bans.changed_since(delta.revision).bans is None


def test_a_whitelist_lift_and_an_ips_share_change_make_the_next_read_full(
    svc: ConfigService,
) -> None:
    bans = service(svc)
    revision = bans.record([detected("198.51.100.1")])
    svc.update_settings({"ips_whitelist": "198.51.100.1"})
    delta = bans.changed_since(revision)
    assert delta.full and delta.bans == []
    svc.update_settings({"ips_share": "site"})
    after = bans.changed_since(delta.revision)
    assert after.full and after.shares == {"default": "site"}


def test_a_database_behind_the_agent_is_read_in_full(svc: ConfigService) -> None:
    """A revision beyond the stored one (a database restored from a backup)."""
    bans = service(svc)
    revision = bans.record([detected("198.51.100.1")])
    delta = bans.changed_since(revision + 10)
    assert delta.full and len(delta.bans or []) == 1


def test_record_writes_a_batch_at_once_and_the_last_of_a_subnet_and_jail_wins(
    svc: ConfigService,
) -> None:
    bans = service(svc)
    batch = [detected(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}") for i in range(10_000)]
    again = detected("10.0.0.5", node="pbx-b")
    revision = bans.record([*batch, again])
    stored = bans.active()
    assert len(stored) == 10_000
    assert next(b for b in stored if b.address_text() == "10.0.0.5").node == "pbx-b"
    delta = bans.changed_since(revision - 1)
    assert not delta.full and len(delta.bans or []) == 10_000
    # Written again: replaced, not doubled.
    bans.record([detected("10.0.0.5", node="pbx-c")])
    assert len(bans.active()) == 10_000


def test_bans_as_a_node_sees_them(svc: ConfigService) -> None:
    """``bans list --node N``: the bans N enforces by ips_share, another
    node's detection reading ``fleet:NODE``; an unknown node is refused."""
    for name in ("pbx-a", "pbx-b"):
        node = Node(name, "default", NOW, NOW, NOW, None, 0, "", 0, "")
        NodeService(svc.store, clock=clock).report(node)
    bans = service(svc)
    bans.record([detected("198.51.100.1", node="pbx-a")])
    bans.add("203.0.113.9", seconds=600)
    seen = {b.address_text(): b.origin for b in bans.seen_from("pbx-b")}
    assert seen == {"198.51.100.1": "fleet:pbx-a", "203.0.113.9": "manual"}
    own = {b.address_text(): b.origin for b in bans.seen_from("pbx-a")}
    assert own == {"198.51.100.1": "jail:asterisk", "203.0.113.9": "manual"}
    svc.update_settings({"ips_share": "off"})
    assert [b.address_text() for b in bans.seen_from("pbx-b")] == ["203.0.113.9"]
    with pytest.raises(ValidationError) as refused:
        bans.seen_from("pbx-z")
    assert refused.value.errors[0].field == "node" and "pbx-z" in refused.value.errors[0].message
