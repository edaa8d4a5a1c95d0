"""Network names and references: the canonical name, the comparison key, what an id is."""

from __future__ import annotations

import pytest

from pbxfw.domain.networks import (
    ID_MAX,
    name_clash,
    name_key,
    network_id,
    permanent_networks,
    validate_name,
)
from pbxfw.errors import ValidationError


@pytest.mark.parametrize(
    ("typed", "stored"), [("Office", "Office"), ("  Office ", "Office"), ("A  B", "A  B")]
)
def test_surrounding_space_is_dropped(typed: str, stored: str) -> None:
    assert validate_name(typed) == stored


@pytest.mark.parametrize("typed", ["", "   ", "\tOffice", "Office\n", "a\x00b", "x" * 65])
def test_bad_names_are_refused(typed: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_name(typed, "networks[0].name")
    assert caught.value.errors[0].field == "networks[0].name"


def test_the_limit_counts_the_stored_name() -> None:
    assert validate_name(" " + "x" * 64 + " ") == "x" * 64


@pytest.mark.parametrize("other", ["internet", "INTERNET", " Internet ", "ｉｎｔｅｒｎｅｔ"])
def test_spellings_of_one_name_have_one_key(other: str) -> None:
    assert name_key(other) == name_key("Internet")


def test_a_clash_is_found_except_with_itself() -> None:
    internet, internet6 = (n.with_changes(id=i) for i, n in enumerate(permanent_networks(), 1))
    assert name_clash("internet", [internet, internet6]) is internet
    assert name_clash("internet", [internet, internet6], own_id=1) is None
    assert name_clash("Internet IPv4", [internet, internet6]) is None


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (1, 1),
        ("1", 1),
        ("007", 7),
        ("0" * 30 + "7", 7),
        (str(ID_MAX), ID_MAX),
        (ID_MAX, ID_MAX),
        (ID_MAX + 1, None),
        (str(ID_MAX + 1), None),
        ("99999999999999999999", None),
        ("9" * 5000, None),
        (0, None),
        ("0", None),
        (-1, None),
        ("-1", None),
        ("²", None),
        ("١", None),
        ("Office", None),
        (True, None),
    ],
)
def test_what_an_id_is(ref: str | int, expected: int | None) -> None:
    assert network_id(ref) == expected
