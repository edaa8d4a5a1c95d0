"""Feeds in the compiled ruleset (issue 17): sets, jumps, drops by scope; the difference."""

from __future__ import annotations

from pbxfw.compiler import compile_ruleset
from pbxfw.compiler.feeds import FeedSet, all_scope_sets, feed_changes
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.feed_lists import FeedList, parse_plain
from pbxfw.domain.networks import permanent_networks
from pbxfw.domain.settings import Settings

CONFIG = Configuration(permanent_networks(), (), Settings(firewall_enabled=True))


def test_no_feed_no_change_in_the_text() -> None:
    assert compile_ruleset(CONFIG, feeds=()) == compile_ruleset(CONFIG)
    assert "feed" not in compile_ruleset(CONFIG)


def test_feeds_have_their_sets_jumps_and_scoped_drops() -> None:
    entries = parse_plain("192.0.2.1\n198.51.100.0/24\n2001:db8::/48\n2001:db8:1::5\n")
    text = compile_ruleset(
        CONFIG, feeds=[FeedSet("voip", ("sip",), entries), FeedSet("drop", ("all",), FeedList())]
    )
    for name in ("feed_voip_v4", "feed_voip_net_v4", "feed_voip_v6", "feed_voip_net_v6"):
        assert f"\tset {name} {{" in text
    assert "elements = {\n\t\t\t192.0.2.1\n" in text
    assert "198.51.100.0/24" in text and "2001:db8::/48" in text and "2001:db8:1::5" in text
    lines = [line.strip() for line in text.splitlines()]
    jump = lines.index("ip saddr @feed_voip_v4 jump feeds")
    bans = next(i for i, x in enumerate(lines) if x.startswith("ip saddr @banned_v4 jump bans"))
    assert bans < jump
    assert jump < lines.index("ct state established,related accept")
    feeds = lines.index("chain feeds {")
    assert lines[feeds + 1 : feeds + 3] == [
        "ip saddr @never_block_v4 return",
        "ip6 saddr @never_block_v6 return",
    ]
    sip_drop = next(x for x in lines if x.startswith("ip saddr @feed_voip_v4 meta l4proto"))
    assert "udp . 5060" in sip_drop and "tcp . 22" not in sip_drop
    assert 'ip saddr @feed_drop_v4 counter drop comment "feed drop"' in lines


def test_the_sets_an_early_drop_takes() -> None:
    feeds = [FeedSet("a", ("all",)), FeedSet("b", ("sip",))]
    assert all_scope_sets(feeds) == [
        ("feed_a_v4", "feed a"),
        ("feed_a_net_v4", "feed a"),
        ("feed_a_v6", "feed a"),
        ("feed_a_net_v6", "feed a"),
    ]


def test_a_refresh_changes_only_the_difference() -> None:
    old = parse_plain("192.0.2.1\n192.0.2.2\n198.51.100.0/24\n2001:db8::1\n")
    new = parse_plain("192.0.2.1\n192.0.2.3\n198.51.100.0/25\n2001:db8::1\n")
    delta = feed_changes("x", old, new)
    assert delta.add_hosts == {4: [0xC0000203], 6: []}
    assert delta.del_hosts == {4: [0xC0000202], 6: []}
    assert [(p.set_name, len(p.spans)) for p in delta.add_nets] == [("feed_x_net_v4", 1)]
    assert [(p.set_name, len(p.spans)) for p in delta.del_nets] == [("feed_x_net_v4", 1)]
    assert delta.count() == 4
    assert feed_changes("x", new, new).count() == 0
