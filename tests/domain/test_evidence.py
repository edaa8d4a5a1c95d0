"""A ban's evidence: its stored form round-trips, lines are cut, junk is refused."""

from __future__ import annotations

import zlib

import pytest

from pbxfw.domain.evidence import (
    MAX_LINE_CHARS,
    BanEvidence,
    EvidenceLine,
    cut_line,
    pack,
    unpack,
)


def _evidence() -> BanEvidence:
    lines = tuple(
        EvidenceLine(
            "/var/log/asterisk/messages",
            n,
            f"[2026-12-05 03:00:0{n}] NOTICE[1] res_pjsip: failed for '198.51.100.7:5060' ü\x00",
            1_796_000_000.0 + n,
            "InvalidPassword",
        )
        for n in range(1, 6)
    )
    return BanEvidence("asterisk", 5, 3600, lines, lost=1)


def test_pack_and_unpack_round_trip_every_field() -> None:
    evidence = _evidence()
    assert unpack(pack(evidence)) == evidence
    empty = BanEvidence("recidive", 5, 86400)
    assert unpack(pack(empty)) == empty
    mixed = BanEvidence(
        "asterisk",
        3,
        60,
        (
            EvidenceLine("/b", 9, "later", 20.0, "x"),
            EvidenceLine("/a", 3, "", 10.0, "y"),  # another file, an empty line, out of order
        ),
    )
    assert unpack(pack(mixed)) == mixed
    assert evidence.as_json()["rule"] == {"jail": "asterisk", "maxretry": 5, "findtime": 3600}
    assert evidence.as_json()["lost"] == 1
    first = evidence.as_json()["lines"]
    assert isinstance(first, list) and first[0]["line"] == 1


def test_the_stored_form_is_compressed() -> None:
    evidence = _evidence()
    raw = sum(len(line.text.encode()) for line in evidence.lines)
    assert len(pack(evidence)) < raw  # one attacker's lines repeat themselves


def test_a_long_line_is_cut_and_its_end_dropped() -> None:
    assert cut_line("abc\r\n") == "abc"
    assert cut_line("a\nb") == "a b"
    cut = cut_line("x" * 5000)
    assert len(cut) == MAX_LINE_CHARS and cut.endswith("…")


@pytest.mark.parametrize(
    "blob",
    [b"", b"not zlib", zlib.compress(b"[]"), zlib.compress(b'{"j":"a"}'), zlib.compress(b"\xff")],
)
def test_unreadable_evidence_raises_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError, match="stored evidence is unreadable"):
        unpack(blob)
