"""Country rules (issue 17): the validator, the table, and the decision with countries."""

from __future__ import annotations

import ipaddress
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.compiler.elements import allow_intervals
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.countries import (
    CountryRule,
    parse_codes,
    rule_for,
    validate_country_rule,
)
from pbxfw.domain.decision import PolicyIndex, check
from pbxfw.domain.geo import CountryTable, rule_runs, verdict_signature
from pbxfw.domain.networks import Network, Verdict, permanent_networks
from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.domain.settings import Settings
from pbxfw.errors import ValidationError

ON = Settings(firewall_enabled=True)
A, B = Verdict.ALLOW, Verdict.BLOCK


def ip(text: str) -> int:
    return int(ipaddress.ip_address(text))


def span(cidr: str, code: str) -> tuple[int, int, str]:
    n = ipaddress.ip_network(cidr)
    return int(n.network_address), int(n.broadcast_address), code


#: 1.0.0.0/8 DE, 2.0.0.0/8 CN, 3.0.0.0/8 US, 2001:db8::/32 AT; the rest in no country.
TABLE = CountryTable(
    [span("1.0.0.0/8", "DE"), span("2.0.0.0/8", "CN"), span("3.0.0.0/8", "US")],
    [span("2001:db8::/32", "AT")],
)
DACH = CountryRule("DACH", ("AT", "CH", "DE"), {"sip": A}, id=1)
ELSEWHERE = CountryRule("Elsewhere", ("*",), {"sip": B}, id=2)
ASIA = CountryRule("Asia", ("CN",), {"sip": B, "ssh": B}, id=3)


def config(*extra: Network, rules: tuple[CountryRule, ...] = (DACH, ELSEWHERE)) -> Configuration:
    internet = tuple(
        n.with_changes(services={k: A for k in BUILTIN_KEYS}) for n in permanent_networks()
    )
    return Configuration((*internet, *extra), (), ON, rules, TABLE)


def test_codes_are_canonical_and_bad_codes_name_the_field_and_the_fix() -> None:
    assert parse_codes("de, at ch") == ("AT", "CH", "DE")
    assert parse_codes(["*", "Unknown", "cn"]) == ("*", "unknown", "CN")
    with pytest.raises(ValidationError) as err:
        parse_codes("DE,XX")
    assert err.value.errors[0].field == "codes"
    assert "'XX' is not an ISO 3166-1 alpha-2" in err.value.errors[0].message
    with pytest.raises(ValidationError, match="is empty"):
        parse_codes(" , ")


def test_a_code_belongs_to_one_rule_and_names_are_unique() -> None:
    with pytest.raises(ValidationError) as err:
        validate_country_rule("Europe", "DE,FR", {}, [DACH], BUILTIN_KEYS)
    assert err.value.errors[0].field == "codes"
    assert "DE already in country rule 'DACH'" in err.value.errors[0].message
    with pytest.raises(ValidationError, match="exists"):
        validate_country_rule("dach", "FR", {}, [DACH], BUILTIN_KEYS)
    with pytest.raises(ValidationError) as err:
        validate_country_rule("X", "FR", {"nope": A}, [], BUILTIN_KEYS)
    assert err.value.errors[0].field == "allow"
    # The rule being changed does not clash with itself.
    again = validate_country_rule("DACH", "DE,AT", {"sip": A}, [DACH], BUILTIN_KEYS, own_id=1)
    assert again.codes == ("AT", "DE")


def test_rule_for_named_then_every_other_then_unknown() -> None:
    rules = [DACH, ELSEWHERE]
    assert rule_for("DE", rules) is DACH
    assert rule_for("CN", rules) is ELSEWHERE
    assert rule_for(None, rules) is None  # '*' is every country, not the unknown
    unknown = CountryRule("nowhere", ("unknown",), {"sip": B})
    assert rule_for(None, [*rules, unknown]) is unknown


def test_table_lookup_narrower_range_wins_and_gaps_are_unknown() -> None:
    table = CountryTable([span("10.0.0.0/8", "FR"), span("10.1.0.0/16", "BE")], [])
    assert table.code(ipaddress.ip_address("10.1.2.3")) == "BE"
    assert table.code(ipaddress.ip_address("10.2.0.1")) == "FR"
    assert table.code(ipaddress.ip_address("11.0.0.1")) is None
    assert table.count(4) == 3  # FR, BE, FR again
    assert table.find(ipaddress.ip_address("10.1.2.3")) == span("10.1.0.0/16", "BE")


def test_runs_join_countries_of_one_rule() -> None:
    runs = rule_runs(TABLE, [DACH, ELSEWHERE], 4)
    assert [(r[0], r[1], r[2] and r[2].name) for r in runs] == [
        (0, ip("0.255.255.255"), None),
        (ip("1.0.0.0"), ip("1.255.255.255"), "DACH"),
        (ip("2.0.0.0"), ip("3.255.255.255"), "Elsewhere"),
        (ip("4.0.0.0"), 2**32 - 1, None),
    ]


def test_check_names_the_country_rule_that_decided() -> None:
    c = config()
    d = check(c, "2.1.1.1", "sip")
    assert d.verdict == "block"
    assert d.reason.startswith("blocked: country CN, rule 'Elsewhere'")
    assert d.as_json()["country"] == {"code": "CN", "rule": "Elsewhere"}
    assert check(c, "1.2.3.4", "sip").verdict == "allow"
    assert check(c, "2001:db8::1", "sip").verdict == "allow"
    # A service the rule does not name keeps the Internet network's verdict.
    d = check(c, "2.1.1.1", "ssh")
    assert (d.verdict, "country" in d.as_json()) == ("allow", False)
    # An address in no country: no rule but 'unknown' would decide.
    assert check(c, "9.9.9.9", "sip").verdict == "allow"
    c = config(rules=(ASIA, CountryRule("nowhere", ("unknown",), {"sip": B})))
    d = check(c, "9.9.9.9", "sip")
    assert (d.verdict, d.as_json()["country"]) == ("block", {"code": None, "rule": "nowhere"})


def test_every_explicit_network_wins_over_a_country_rule() -> None:
    partner = Network(
        "partner", ipaddress.ip_network("2.2.0.0/16"), {k: A for k in BUILTIN_KEYS}, id=9
    )
    closed = Network("closed", ipaddress.ip_network("1.1.0.0/16"), {k: B for k in BUILTIN_KEYS})
    c = config(partner, closed)
    assert check(c, "2.2.3.4", "sip").verdict == "allow"
    assert check(c, "2.2.3.4", "sip").network == partner
    assert check(c, "1.1.1.1", "sip").verdict == "block"
    assert check(c, "1.2.1.1", "sip").verdict == "allow"


def test_without_rules_the_index_is_the_plain_one() -> None:
    c = config(rules=())
    assert PolicyIndex.of(c).segments(4) == PolicyIndex(c.networks).segments(4)


addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.sampled_from([ip("1.0.0.0"), ip("1.255.255.255"), ip("2.0.0.0"), ip("3.255.255.255")]).map(
        ipaddress.IPv4Address
    ),
)


@settings(max_examples=300, deadline=None)
@given(addresses, st.sampled_from(["sip", "ssh", "web"]))
def test_check_agrees_with_the_compiled_intervals(
    address: ipaddress.IPv4Address, service: str
) -> None:
    partner = Network("partner", ipaddress.ip_network("2.2.0.0/16"), {k: A for k in BUILTIN_KEYS})
    closed = Network("closed", ipaddress.ip_network("1.1.0.0/16"), {k: B for k in BUILTIN_KEYS})
    c = config(partner, closed, rules=(DACH, ELSEWHERE, ASIA))
    index = PolicyIndex.of(c)
    value = int(address)
    allowed = any(a <= value <= b for a, b in allow_intervals(index, service, 4))
    decided = check(c, address, service, index=index)
    assert (decided.verdict == "allow") == allowed
    # Without the refined index (one address, the CLI), the same answer.
    assert check(c, address, service) == decided


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 255), st.integers(0, 3), st.sampled_from(["DE", "CN", "FR", "US"])
        ),
        max_size=12,
    ),
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20),
    st.booleans(),
)
def test_runs_cover_the_space_and_give_each_address_its_verdicts(
    blocks: list[tuple[int, int, str]], probes: list[int], with_unknown: bool
) -> None:
    spans = [(a << 24, (a << 24) + (1 << (24 - 2 * b)) - 1, code) for a, b, code in blocks]
    table = CountryTable(spans, [])
    rules = [DACH, ELSEWHERE, ASIA]
    if with_unknown:
        rules.append(CountryRule("nowhere", ("unknown",), {"sip": B}))
    runs = rule_runs(table, rules, 4)
    assert runs[0][0] == 0 and runs[-1][1] == 2**32 - 1
    sig = verdict_signature
    # Touching runs that decide alike are one run.
    assert all(a[1] + 1 == b[0] and sig(a[2]) != sig(b[2]) for a, b in pairwise(runs))
    for value in [*probes, *(s[0] for s in spans), *(s[1] for s in spans)]:
        run = next(r for r in runs if r[0] <= value <= r[1])
        assert sig(run[2]) == sig(rule_for(table.code(ipaddress.IPv4Address(value)), rules))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 255), st.integers(0, 3), st.sampled_from(["DE", "CN", "FR", "US", "AT"])
        ),
        max_size=12,
    ),
    st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(4, 32), st.sampled_from([A, B])),
        max_size=8,
    ),
)
def test_the_compiler_shortcuts_give_the_plain_walk(
    blocks: list[tuple[int, int, str]], nets: list[tuple[int, int, Verdict]]
) -> None:
    # allow_intervals_by_service reads the networks' own segments for the
    # services no rule names, and joins in C loops; allow_intervals walks
    # every refined segment in Python: the same intervals, and the same text.
    from pbxfw.compiler.elements import allow_intervals_by_service, interval_text, interval_texts

    spans = [(a << 24, (a << 24) + (1 << (24 - 2 * b)) - 1, code) for a, b, code in blocks]
    networks = {
        str(n): Network(f"n{i}", n, {"sip": verdict, "web": verdict})
        for i, (value, prefix, verdict) in enumerate(nets)
        for n in (ipaddress.ip_network((value, prefix), strict=False),)
    }
    c = Configuration(
        (*permanent_networks(), *networks.values()),
        (),
        ON,
        (DACH, ELSEWHERE, ASIA),
        CountryTable(spans, []),
    )
    index = PolicyIndex.of(c)
    keys = list(BUILTIN_KEYS)
    for version in (4, 6):
        fast = allow_intervals_by_service(index, keys, version)
        for key in keys:
            assert fast[key] == allow_intervals(index, key, version), key
            texts = [interval_text(a, b, version) for a, b in fast[key]]
            assert interval_texts(fast[key], version) == texts
