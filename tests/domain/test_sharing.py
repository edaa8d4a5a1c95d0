"""Who enforces a shared ban (``ips_share``), and how a node names its origin."""

from __future__ import annotations

import pytest

from pbxfw.domain.settings import Settings
from pbxfw.domain.sharing import Here, enforced_at, origin_seen_from
from pbxfw.errors import ValidationError

# (origin node, origin site, receiving node, receiving site, origin's share, receiver's share)
CASES = [
    # an administrator's ban: every node, whatever the shares
    ((None, None, "b1", "B", "off", "off"), True),
    ((None, None, "a1", "A", "site", "site"), True),
    # the detecting node always enforces its own ban
    (("a1", "A", "a1", "A", "off", "off"), True),
    # off: nobody else
    (("a1", "A", "a2", "A", "off", "off"), False),
    (("a1", "A", "b1", "B", "off", "fleet"), False),
    # site: the origin's site only
    (("a1", "A", "a2", "A", "site", "site"), True),
    (("a1", "A", "b1", "B", "site", "fleet"), False),
    # fleet: the origin's site, and every site that also shares fleet
    (("a1", "A", "a2", "A", "fleet", "fleet"), True),
    (("a1", "A", "b1", "B", "fleet", "fleet"), True),
    (("a1", "A", "b1", "B", "fleet", "site"), False),
    (("a1", "A", "b1", "B", "fleet", "off"), False),
    # a detected ban without a site (recorded before sites): the receiver's site
    (("a1", None, "a2", "A", "fleet", "fleet"), True),
    (("a1", None, "a2", "A", "off", "off"), False),
]


@pytest.mark.parametrize(("args", "expected"), CASES)
def test_enforced_at_follows_the_table(
    args: tuple[str | None, str | None, str, str, str, str], expected: bool
) -> None:
    assert enforced_at(*args) is expected


def test_here_reads_each_sites_share_with_fleet_by_default() -> None:
    here = Here("b1", "B", {"A": "site"})
    assert not here.enforces("a1", "A")  # A shares only within A
    assert here.enforces("c1", "C")  # C and B share fleet (the default)
    assert here.enforces(None, None)
    assert Here("b1", "B", {"B": "off"}).enforces("b2", "B") is False
    assert Here("b1", "B", {"B": "off"}).enforces("c1", "C") is False


def test_origin_seen_from_a_node() -> None:
    assert origin_seen_from("jail:asterisk", "a1", "b1") == "fleet:a1"
    assert origin_seen_from("jail:asterisk", "a1", "a1") == "jail:asterisk"
    assert origin_seen_from("manual", None, "b1") == "manual"
    assert origin_seen_from("jail:ssh", "a1", None) == "jail:ssh"


def test_ips_share_setting() -> None:
    assert Settings().ips_share == "fleet"
    assert Settings().updated({"ips_share": " Site "}).ips_share == "site"
    assert Settings().updated({"ips_share": "off"}, strict=True).ips_share == "off"
    with pytest.raises(ValidationError) as caught:
        Settings().updated({"ips_share": "everyone"})
    assert caught.value.errors[0].field == "ips_share"
    assert "fleet, site or off" in caught.value.errors[0].message
