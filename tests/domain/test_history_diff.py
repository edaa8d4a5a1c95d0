"""The readable diff of two configuration documents (domain.history).

Property: ``diff_documents(a, b)`` is empty exactly when ``a == b``, for
documents shaped as ``document_of`` makes them (and the odd shapes an older
document may have). Examples: the lines an administrator reads.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.domain.history import diff_documents, summary_of

_VERDICT = st.sampled_from(["allow", "block"])
_SERVICES = st.dictionaries(st.sampled_from(["sip", "ssh", "web", "iax", "x1"]), _VERDICT)
_NAME = st.text(min_size=0, max_size=6)


@st.composite
def _networks(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 4))
    ids = draw(st.lists(st.one_of(st.none(), st.integers(1, 6)), min_size=count, max_size=count))
    return [
        {
            "id": ident,
            "name": draw(_NAME),
            "subnet": draw(st.sampled_from(["0.0.0.0/0", "10.0.0.0/8", "::/0", "192.0.2.0/24"])),
            "services": draw(_SERVICES),
            "local": draw(st.booleans()),
            "never_block": draw(st.booleans()),
            "description": draw(_NAME),
        }
        for ident in ids
    ]


_SETTING_VALUES = st.one_of(
    st.integers(-3, 3), st.booleans(), _NAME, st.lists(st.integers(0, 3), max_size=2)
)
_CUSTOM = st.fixed_dictionaries(
    {"key": st.sampled_from(["x1", "x2", "x3"]), "label": _NAME, "tcp": _NAME, "udp": _NAME}
)
_COUNTRY = st.fixed_dictionaries(
    {
        "id": st.one_of(st.none(), st.integers(1, 3)),
        "name": _NAME,
        "codes": st.lists(st.sampled_from(["DE", "FR", "*"]), max_size=2),
        "services": _SERVICES,
    }
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    document: dict[str, Any] = {
        "networks": draw(_networks()),
        "services": draw(st.lists(_CUSTOM, max_size=3)),
        "settings": draw(
            st.dictionaries(st.sampled_from(["a", "b", "ips_maxretry"]), _SETTING_VALUES)
        ),
    }
    if draw(st.booleans()):
        document["countries"] = draw(st.lists(_COUNTRY, max_size=3))
    if draw(st.booleans()):
        document["extra"] = draw(_SETTING_VALUES)
    for key in draw(st.sets(st.sampled_from(["networks", "services", "settings"]))):
        del document[key]  # an older or partial document
    return document


@st.composite
def _nearby(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A document and a small edit of it (equal ones too), where the diff has work to do."""
    a = draw(documents())
    b = copy.deepcopy(a)
    networks = b.get("networks")
    if networks and draw(st.booleans()):
        i = draw(st.integers(0, len(networks) - 1))
        field = draw(st.sampled_from(["name", "services", "never_block", "subnet"]))
        networks[i][field] = draw(
            {
                "name": _NAME,
                "services": _SERVICES,
                "never_block": st.booleans(),
                "subnet": st.sampled_from(["10.0.0.0/8", "198.51.100.0/24"]),
            }[field]
        )
    if "settings" in b and draw(st.booleans()):
        b["settings"][draw(st.sampled_from(["a", "b"]))] = draw(_SETTING_VALUES)
    if draw(st.booleans()) and b.get("networks"):
        b["networks"].reverse()
    return a, b


@settings(max_examples=400, deadline=None)
@given(documents(), documents())
def test_the_diff_is_empty_iff_the_documents_are_equal(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    assert (diff_documents(a, b) == []) == (a == b)
    assert diff_documents(a, a) == []


@settings(max_examples=400, deadline=None)
@given(_nearby())
def test_the_diff_of_an_edit_is_empty_iff_nothing_changed(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    a, b = pair
    assert (diff_documents(a, b) == []) == (a == b)
    assert (diff_documents(b, a) == []) == (a == b)


def _network(ident: int, name: str, subnet: str, **services: str) -> dict[str, Any]:
    return {
        "id": ident,
        "name": name,
        "subnet": subnet,
        "services": services,
        "local": False,
        "never_block": False,
        "description": "",
    }


def test_the_lines_say_what_changed_in_an_administrators_words() -> None:
    office = _network(3, "Office", "10.1.0.0/16", ssh="allow", sip="allow")
    old = _network(4, "Old", "10.2.0.0/16")
    before: dict[str, Any] = {
        "networks": [office, old],
        "services": [],
        "settings": {"ips_maxretry": 5, "firewall_enabled": False},
    }
    after: dict[str, Any] = {
        "networks": [
            {**office, "services": {"ssh": "block", "sip": "allow"}, "never_block": True},
            _network(5, "Lab", "10.9.0.0/16"),
        ],
        "services": [{"key": "x1", "label": "Provisioning", "tcp": "8088", "udp": ""}],
        "settings": {"ips_maxretry": 3, "firewall_enabled": True},
        "countries": [{"id": 1, "name": "Germany", "codes": ["DE"], "services": {}}],
    }
    assert diff_documents(before, after) == [
        "service x1 added",
        "network Old removed",
        "network Office never_block: no → yes",
        "network Office: ssh allow → block",
        "network Lab added (10.9.0.0/16)",
        "country rule Germany added",
        "setting firewall_enabled: no → yes",
        "setting ips_maxretry: 5 → 3",
    ]
    renamed = {**before, "networks": [{**office, "name": "HQ"}, old]}
    assert diff_documents(before, renamed) == ["network Office renamed to HQ"]


def test_the_summary_is_the_first_line_and_a_count() -> None:
    assert summary_of([]) == "no change"
    assert summary_of(["a"]) == "a"
    assert summary_of(["a", "b", "c"]) == "a (and 2 more)"
    assert summary_of(["x" * 500])[-1] == "…"
