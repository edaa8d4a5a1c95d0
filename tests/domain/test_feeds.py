"""Feeds in the domain (issue 17): the validator, the parsers, refusals, the hold-back."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.domain.feed_lists import (
    Protected,
    entry_text,
    held_back,
    parse_apiban_page,
    parse_entry,
    parse_json_list,
    parse_plain,
    refuse,
)
from pbxfw.domain.feeds import every_text, parse_every, validate_feed
from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.errors import ValidationError

KEYS = BUILTIN_KEYS


def field_of(exc: pytest.ExceptionInfo[ValidationError]) -> str:
    return exc.value.errors[0].field


def test_a_feed_is_validated_and_canonical() -> None:
    feed = validate_feed(
        "SpamHaus",
        "https://www.spamhaus.org/drop/drop.txt",
        every="12h",
        scope="sip, iax",
        headers=["Authorization: Bearer K"],
        service_keys=KEYS,
    )
    assert (feed.name, feed.every, feed.scope) == ("spamhaus", 43200, ("iax", "sip"))
    assert feed.headers == (("Authorization", "Bearer K"),)
    assert feed.origin == "feed:spamhaus"
    assert validate_feed("a", "http://x/y", service_keys=KEYS).scope == ("all",)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "", "url": "https://a/"}, "name"),
        ({"name": "9lives", "url": "https://a/"}, "name"),
        ({"name": "a b", "url": "https://a/"}, "name"),
        ({"name": "x" * 25, "url": "https://a/"}, "name"),
        ({"name": "ok", "url": "ftp://a/"}, "url"),
        ({"name": "ok", "url": "https:// a"}, "url"),
        ({"name": "ok", "url": "https://a/", "format": "csv"}, "format"),
        ({"name": "ok", "url": "https://a/", "every": "4m"}, "every"),
        ({"name": "ok", "url": "https://a/", "every": "8d"}, "every"),
        ({"name": "ok", "url": "https://a/", "every": "soon"}, "every"),
        ({"name": "ok", "url": "https://a/", "scope": "sip,all"}, "scope"),
        ({"name": "ok", "url": "https://a/", "scope": "nope"}, "scope"),
        ({"name": "ok", "url": "https://a/", "scope": ""}, "scope"),
        ({"name": "ok", "url": "https://a/", "headers": ["x"]}, "headers[0]"),
        ({"name": "ok", "url": "https://a/", "headers": ["A: b", "B:"]}, "headers[1]"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        validate_feed(service_keys=KEYS, **kwargs)  # type: ignore[arg-type]
    assert field_of(exc) == field


def test_two_feeds_cannot_share_a_name() -> None:
    first = validate_feed("a", "https://a/", service_keys=KEYS).with_changes(id=1)
    with pytest.raises(ValidationError) as exc:
        validate_feed("A", "https://b/", others=[first], service_keys=KEYS)
    assert field_of(exc) == "name"


@pytest.mark.parametrize(("first", "second"), [("spam", "spam_net"), ("spam_net", "spam")])
def test_a_feed_name_cannot_reuse_another_feeds_sets(first: str, second: str) -> None:
    """Feed ``spam``'s block sets are ``feed_spam_net_v4/_v6``: the names of
    feed ``spam_net``'s address sets."""
    stored = validate_feed(first, "https://a/", service_keys=KEYS).with_changes(id=1)
    with pytest.raises(ValidationError, match="feed_<name>_net_v4") as exc:
        validate_feed(second, "https://b/", others=[stored], service_keys=KEYS)
    assert field_of(exc) == "name"
    # The feed itself, edited under its own id, is not its own rival.
    assert validate_feed(first, "https://c/", others=[stored], own_id=1, service_keys=KEYS)


@given(st.integers(min_value=300, max_value=7 * 86400))
def test_every_text_reads_back(seconds: int) -> None:
    assert parse_every(every_text(seconds)) == seconds


def test_plain_lists_with_comments_in_every_style() -> None:
    text = """; Spamhaus DROP List 2026/12/05
; Last-Modified: Fri, 04 Dec 2026
1.10.16.0/20 ; SBL256894
#  FireHOL level1
5.6.7.8	# trailing
   2001:db8::/32   ; v6
9.9.9.9 some second column
"""
    parsed = parse_plain(text)
    assert [entry_text(e) for e in parsed.entries] == [
        "1.10.16.0/20",
        "5.6.7.8",
        "9.9.9.9",
        "2001:db8::/32",
    ]
    assert not parsed.refused


def test_malformed_lines_are_counted_never_raised() -> None:
    parsed = parse_plain("1.2.3.4/33\n1.2.3.4/24\n300.1.1.1\nfoo\n::g\n1.2.3.4/\n")
    assert parsed.entries == []
    assert parsed.refused == {"malformed": 6}


def test_apiban_pages() -> None:
    assert parse_apiban_page('{"ipaddress": ["1.2.3.4"], "ID": "987"}') == (["1.2.3.4"], "987")
    assert parse_apiban_page('{"ipaddress": ["no new bans"], "ID": "none"}') == ([], "none")
    for bad in ('{"ipaddress": []}', "[]", '{"ID": "unauthorized"}', '{"ID": "5"}'):
        with pytest.raises(ValueError):
            parse_apiban_page(bad)


def test_json_lists() -> None:
    parsed = parse_json_list('["1.2.3.4", "10.0.0.0/8", null]')
    assert [entry_text(e) for e in parsed.entries] == ["1.2.3.4", "10.0.0.0/8"]
    assert parsed.refused == {"malformed": 1}
    with pytest.raises(ValueError):
        parse_json_list('{"a": 1}')


def test_the_shrink_rule() -> None:
    assert held_back(100, 9)
    assert not held_back(100, 10)
    assert not held_back(0, 0)
    assert held_back(1, 0)


networks = st.one_of(
    st.builds(
        lambda a, p: ipaddress.ip_network((a, p), strict=False),
        st.integers(0, 2**32 - 1),
        st.integers(4, 32),
    ),
    st.builds(
        lambda a, p: ipaddress.ip_network((a, p), strict=False),
        st.integers(0, 2**128 - 1),
        st.integers(8, 128),
    ),
)
comments = st.sampled_from(["", " # c", " ; SBL1", "\t#x;y"])


@settings(max_examples=200)
@given(st.lists(st.tuples(networks, comments, st.booleans())), st.text(max_size=40))
def test_parse_plain_reads_back_what_a_list_says(
    items: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, bool]], noise: str
) -> None:
    lines = []
    for net, comment, bare in items:
        single = net.prefixlen == net.max_prefixlen
        text = str(net.network_address) if single and bare else str(net)
        lines.append(text + comment)
    lines.append("# " + noise.replace("\n", " ").replace("\r", " "))
    parsed = parse_plain("\n".join(lines))
    assert {parse_entry(entry_text(e)) for e in parsed.entries} == set(parsed.entries)
    assert set(parsed.entries) == {
        (n.version, int(n.network_address), n.prefixlen) for n, _, _ in items
    }
    assert not parsed.refused


@given(st.text())
def test_no_text_makes_a_parser_raise(text: str) -> None:
    parse_plain(text)
    try:
        parse_apiban_page(text)
        parse_json_list(text)
    except ValueError:
        pass  # a clear refusal; json.JSONDecodeError is a ValueError


@settings(max_examples=200)
@given(st.lists(networks, max_size=40), st.lists(networks, max_size=5))
def test_kept_entries_are_disjoint_never_broad_and_never_protected(
    listed: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    protected: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> None:
    parsed = parse_json_list(json.dumps([str(n) for n in listed]))
    guard = Protected(
        (n.version, int(n.network_address), int(n.broadcast_address), "never-block")
        for n in protected
    )
    kept = refuse(parsed, guard)
    nets = [ipaddress.ip_network(entry_text(e)) for e in kept.entries]
    for i, a in enumerate(nets):
        assert a.prefixlen >= (8 if a.version == 4 else 16)
        assert not any(a.version == p.version and a.overlaps(p) for p in protected)
        for b in nets[i + 1 :]:
            assert a.version != b.version or not a.overlaps(b)
    # Every listed address that is not protected or too broad is still covered.
    for n in listed:
        if n.prefixlen < (8 if n.version == 4 else 16):
            continue
        if any(n.version == p.version and n.overlaps(p) for p in protected):
            continue
        assert any(n.version == k.version and n.subnet_of(k) for k in nets)  # type: ignore[arg-type]
    assert sum(kept.refused.values()) + len(kept.entries) <= len(set(listed))
