"""``Ban.from_decision``: the detector's decision as a stored ban (issue 14)."""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import pickle
from datetime import UTC, datetime

import pytest

from pbxfw.domain.bans import Ban, new_ban
from pbxfw.ips.events import BanDecision


def test_a_ban_from_a_decision_lasts_its_seconds_from_now() -> None:
    first = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
    last = datetime(2026, 12, 4, 10, 5, 0, tzinfo=UTC)
    decision = BanDecision(
        host=ipaddress.ip_address("2001:db8::7"),
        jail="asterisk",
        scope=frozenset({"sip", "iax"}),
        time=last,
        seconds=600,
        failures=5,
        first_failure=first,
        reason="5 failed registrations",
        offence=2,
    )
    ban = Ban.from_decision(decision, now=1_000.5)
    assert ban == Ban(
        subnet=ipaddress.ip_network("2001:db8::7/128"),
        jail="asterisk",
        scope=frozenset({"sip", "iax"}),
        reason="5 failed registrations",
        created_at=1_000.5,
        expires_at=1_600.5,
        first_failure=first.timestamp(),
        last_failure=last.timestamp(),
        failures=5,
        offence=2,
        origin="jail:asterisk",
    )
    assert (ban.node, ban.site) == (None, None)
    at_node = Ban.from_decision(decision, now=1_000.5, node="pbx-a", site="berlin")
    assert (at_node.origin, at_node.node, at_node.site) == ("jail:asterisk", "pbx-a", "berlin")
    assert ban.address_text() == "2001:db8::7" and ban.remaining(1_000.5) == 600


def test_new_ban_builds_the_same_frozen_ban_as_ban() -> None:
    """The agent's fast constructor (storage reads 100,000 bans with it)."""
    values = (
        ipaddress.ip_network("203.0.113.7/32"),
        "asterisk",
        frozenset({"sip"}),
        "5 failures",
        100.0,
        200.0,
        90.0,
        99.0,
        5,
        2,
        42,
        "jail:asterisk",
        "pbx-a",
        "hq",
    )
    made, plain = new_ban(*values), Ban(*values)
    assert type(made) is Ban
    # ... and the fields it leaves unread: who made it, the evidence it carries.
    assert dataclasses.astuple(made) == (*values, None, None)
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.jail = "ssh"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(made)) == made
    assert copy.copy(made) == made
    assert dataclasses.replace(made, node=None).node is None
