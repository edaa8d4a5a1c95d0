"""Ban lifetimes the kernel must hold: the longest ban (10 years), and bans
stored before lengths were bounded (issue 13 item 6: ``timeout
1000000000000000019884624838656s``, which nft refused, failing the apply).

nft 1.0.6 reads at most 8 digits before ``s``, so a 10-year lifetime is
written ``3650d``; netlink takes it in milliseconds. Both paths, in a namespace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.domain.settings import MAX_BAN_SECONDS
from pbxfw.kernel import NftBackend

from .configs import lab_config
from .lab import Lab, require_kernel

pytestmark = pytest.mark.kernel

LIFETIMES = {
    "192.0.2.1": MAX_BAN_SECONDS,
    "192.0.2.2": 10**8,  # the first lifetime nft would not read as seconds
    "192.0.2.3": 10**30,  # stored by an older pbxfw
    "2001:db8::3": 10**30,
}


@pytest.fixture
def ns() -> Iterator[tuple[Lab, str]]:
    require_kernel()
    with Lab("longban") as lab:
        yield lab, lab.namespace("pbx")


def elements(jail: str, subnets: dict[str, int]) -> list[BanElement]:
    return [BanElement(ipaddress.ip_network(a), jail, ttl) for a, ttl in subnets.items()]


def days(listed: str, address: str) -> int:
    """The days of ``address``'s timeout as nft lists it (``3650d`` or ``1157d9h46m40s``)."""
    after = listed.split(f"{address} timeout ", 1)[1]
    return int(after.split("d", 1)[0])


def test_a_whole_ruleset_with_the_longest_bans_is_applied(ns: tuple[Lab, str]) -> None:
    lab, name = ns
    text = compile_ruleset(lab_config(), elements("ssh", LIFETIMES))
    NftBackend(name).apply(text)
    listed = lab.nft(name, "list", "set", "inet", "pbxfw", "ban_ssh_v4")
    assert days(listed, "192.0.2.1") == 3650
    assert days(listed, "192.0.2.2") == 1157
    assert days(listed, "192.0.2.3") == 3650  # clamped to 10 years
    assert days(lab.nft(name, "list", "set", "inet", "pbxfw", "ban_ssh_v6"), "2001:db8::3") == 3650


def test_the_longest_bans_are_added_one_by_one(ns: tuple[Lab, str]) -> None:
    """The agent's path for a new ban: netlink for addresses, nft for subnets."""
    lab, name = ns
    backend = NftBackend(name)
    backend.apply(compile_ruleset(lab_config()))
    backend.add(elements("asterisk", {**LIFETIMES, "198.51.100.0/24": 10**30}))
    backend.commit()
    listed = lab.nft(name, "list", "set", "inet", "pbxfw", "ban_asterisk_v4")
    assert days(listed, "192.0.2.3") == 3650 and days(listed, "192.0.2.1") == 3650
    subnets = lab.nft(name, "list", "set", "inet", "pbxfw", "ban_asterisk_net_v4")
    assert days(subnets, "198.51.100.0/24") == 3650
