"""Scanner fingerprints in the domain: the shipped list, edits, validation, matching."""

from __future__ import annotations

import pytest

from pbxfw.domain.fingerprints import (
    DEFAULT_FINGERPRINTS,
    Fingerprint,
    FingerprintEdit,
    Matcher,
    canonical_header,
    effective_list,
    find,
    plan_add,
    validate_fingerprint,
)
from pbxfw.errors import ConflictError, NotFoundError, ValidationError


def test_the_shipped_list_names_the_scanners_of_the_issue() -> None:
    patterns = {f.pattern for f in DEFAULT_FINGERPRINTS}
    for name in ("friendly-scanner", "sipvicious", "sipcli", "VaxSIPUserAgent", "iWar", "sip-scan"):
        assert name in patterns
    assert all(f.header == "User-Agent" and f.builtin for f in DEFAULT_FINGERPRINTS)


def test_edits_switch_shipped_ones_off_and_add_others() -> None:
    edits = [
        FingerprintEdit("User-Agent", "FRIENDLY-SCANNER", disabled=True),
        FingerprintEdit("From", "sipvicious"),
    ]
    listed = effective_list(edits)
    assert all(f.pattern != "friendly-scanner" for f in listed)
    assert listed[-1] == Fingerprint("From", "sipvicious")
    assert plan_add(edits, Fingerprint("User-Agent", "Friendly-Scanner")) is None  # switch on
    with pytest.raises(ConflictError):
        plan_add(edits, Fingerprint("User-Agent", "SIPCLI"))
    assert find(edits, None, "SIPVICIOUS").header == "User-Agent"
    assert find(edits, "from", "sipvicious") == Fingerprint("From", "sipvicious")
    with pytest.raises(NotFoundError):
        find(edits, None, "friendly-scanner")


def test_validation_names_the_field() -> None:
    assert validate_fingerprint(None, "  x ") == Fingerprint("User-Agent", "x")
    assert validate_fingerprint("f", "y").header == "From"
    assert canonical_header("user-agent") == "User-Agent"
    for header, pattern, field in (
        ("User Agent", "x", "header"),
        ("", "", "pattern"),
        (None, "a" * 129, "pattern"),
        (None, "a\tb", "pattern"),
    ):
        with pytest.raises(ValidationError) as caught:
            validate_fingerprint(header, pattern)
        assert caught.value.errors[0].field == field


def test_matcher_is_a_case_insensitive_substring_of_the_named_header() -> None:
    matcher = Matcher([*DEFAULT_FINGERPRINTS, Fingerprint("From", "sipvicious")])
    assert "user-agent" in matcher.headers and "from" in matcher.headers
    hit = matcher.match({"user-agent": "Friendly-Scanner/0.3"})
    assert hit is not None and hit.pattern == "friendly-scanner"
    assert matcher.match({"user-agent": "Yealink SIP-T46S"}) is None
    assert matcher.match({"from": '"SIPVicious"<sip:1@1.1.1.1>'}) is not None
    assert not Matcher([])
