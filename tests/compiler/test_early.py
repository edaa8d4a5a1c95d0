"""compiler/early.py: which addresses are dropped before conntrack, and the chains' shape."""

from __future__ import annotations

import ipaddress

import pytest

from pbxfw.compiler import compile_ruleset
from pbxfw.compiler.early import early_chains, early_country_intervals, early_jails
from pbxfw.compiler.feeds import FeedSet
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.countries import CountryRule
from pbxfw.domain.decision import PolicyIndex, check
from pbxfw.domain.geo import CountryTable
from pbxfw.domain.networks import Verdict
from pbxfw.domain.settings import Settings
from pbxfw.kernel.counters import reason_of
from tests.kernel.configs import lab_config, network


def _span(cidr: str, code: str) -> tuple[int, int, str]:
    n = ipaddress.ip_network(cidr)
    return int(n.network_address), int(n.broadcast_address), code


def _config(blocked: dict[str, Verdict] | None = None) -> Configuration:
    config = lab_config()
    keys = config.service_keys()
    services = dict.fromkeys(keys, Verdict.BLOCK) if blocked is None else blocked
    rule = CountryRule("CN", ("CN",), services, id=1)
    table = CountryTable([_span("192.0.2.0/24", "CN")], [_span("2001:db8:c0::/48", "CN")])
    nets = (*config.networks, network("Partner", "192.0.2.128/26", "sip"))
    return Configuration(nets, config.custom_services, config.settings, (rule,), table)


def _text(intervals: list[tuple[int, int]], version: int) -> list[str]:
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return [f"{cls(a)}-{cls(b)}" for a, b in intervals]


def test_a_country_blocked_for_every_service_is_dropped_early_but_its_explicit_networks_not() -> (
    None
):
    config = _config()
    index = PolicyIndex.of(config)
    services = config.services()
    assert _text(early_country_intervals(index, services, 4), 4) == [
        "192.0.2.0-192.0.2.127",
        "192.0.2.192-192.0.2.255",
    ]
    assert _text(early_country_intervals(index, services, 6), 6) == [
        "2001:db8:c0::-2001:db8:c0:ffff:ffff:ffff:ffff:ffff"
    ]
    # check agrees: every service blocked there, the partner allowed sip.
    for key in config.service_keys():
        assert check(config, "192.0.2.9", key).verdict == "block"
    assert check(config, "192.0.2.130", "sip").verdict == "allow"


def test_a_rule_that_leaves_a_service_to_the_internet_network_is_not_dropped_early() -> None:
    config = lab_config()
    keys = config.service_keys()
    # Blocks all but icmp, which the rule does not name (the Internet allows it).
    partial = {k: Verdict.BLOCK for k in keys if k != "icmp"}
    config = _config(partial)
    index = PolicyIndex.of(config)
    assert early_country_intervals(index, config.services(), 4) == []
    text = compile_ruleset(config)
    assert "set early_country_v4 {" in text  # declared (country rules exist), empty
    assert "elements" not in text.split("set early_country_v4 {")[1].split("}")[0]


def test_early_jails_are_those_of_every_packet() -> None:
    assert early_jails() == ["manual", "recidive"]


def test_no_chain_when_there_is_nothing_to_do_early() -> None:
    off = Settings().updated({"firewall_enabled": False, "ips_enabled": False})
    assert early_chains(off, countries=False) == []
    text = compile_ruleset(Configuration(settings=off))
    assert "chain early" not in text and "notrack" not in text


def test_extra_sets_are_dropped_early_and_must_name_a_family() -> None:
    a, b = ("feed_a_v4", "feed a"), ("feed_b_v6", "feed b")
    text = compile_ruleset(lab_config(), early_sets=[b, a, a])
    early = text.split("chain early {")[1].split("\n\t}")[0]
    assert early.count("jump early_drop") == 2
    assert early.index("@feed_a_v4") < early.index("@feed_b_v6")
    assert "ip6 saddr @feed_b_v6 jump early_drop" in early
    assert 'ip6 saddr @feed_b_v6 counter drop comment "feed b: before connection tracking"' in text
    with pytest.raises(ValueError, match="_v4 or _v6"):
        compile_ruleset(lab_config(), early_sets=[("feed_a", "feed a")])
    with pytest.raises(ValueError, match="two reasons"):
        compile_ruleset(lab_config(), early_sets=[a, ("feed_a_v4", "feed other")])


@pytest.mark.parametrize("feed", ["spam_net", "spam", "a_net_net", "net"])
def test_a_feeds_early_drops_carry_its_own_name(feed: str) -> None:
    """The reason comes with the set from where it is made (compiler.feeds),
    never from the set's name: feed ``spam_net``'s address set
    ``feed_spam_net_v4`` once counted its drops under feed ``spam``."""
    text = compile_ruleset(lab_config(), feeds=[FeedSet(feed, ("all",))])
    early_drop = text.split("chain early_drop {")[1].split("\n\t}")[0]
    drops = [line.strip() for line in early_drop.splitlines() if "counter drop" in line]
    assert len(drops) == 4  # the addresses and the blocks, v4 and v6
    for line in drops:
        comment = line.split('comment "')[1].rstrip('"')
        assert reason_of("early_drop", comment) == ("feed", feed), line


def test_notrack_only_with_the_firewall_on_and_the_setting() -> None:
    on = compile_ruleset(lab_config(sip_notrack=True))
    assert "chain early_out {" in on
    assert (
        "udp dport { 5060, 10000-10800 } ip saddr @allow_sip_v4 fib daddr type local notrack" in on
    )
    assert "udp sport { 5060, 10000-10800 } ip daddr @allow_sip_v4 notrack" in on
    assert 'accept comment "untracked (flood protection): nothing to remember"' in on
    for config in (lab_config(), lab_config(firewall_enabled=False, sip_notrack=True)):
        text = compile_ruleset(config)
        assert "notrack" not in text and "chain early_out" not in text
        assert "nothing to remember" not in text


def test_the_sip_port_inside_the_rtp_range_is_one_range() -> None:
    text = compile_ruleset(lab_config(sip_port=10010, sip_notrack=True))
    assert "udp dport 10000-10800 ip saddr @allow_sip_v4" in text
