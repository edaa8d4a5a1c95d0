"""The address pbxfw counts on fail2ban's own annotated sshd and nginx lines.

The fixtures under ``fixtures/fail2ban/`` are lines copied with their
``# failJSON:`` annotations from fail2ban's test logs (see the README
there): sshd (its normal, ddos and extra modes and its RFC 5424 lines),
dropbear and nginx. Each line is read by a fresh recogniser: where fail2ban
says a line is a failure of an address, pbxfw counts that address or, where a
``# pbxfw: not counted`` note says why, nothing; where fail2ban says no
failure, pbxfw counts nothing unless a ``# pbxfw: counted`` note says which
address and why. No line may ever yield any other address.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxfw.ips.recognisers import Recogniser

FIXTURES = Path(__file__).parent / "fixtures" / "fail2ban"
REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Annotated:
    number: int
    line: str
    fail2ban: dict[str, object]
    #: What pbxfw must count: an address, or None for nothing.
    expected: str | None


def _is_address(text: object) -> bool:
    try:
        ipaddress.ip_address(str(text))
    except ValueError:
        return False
    return True


def annotated(name: str) -> list[Annotated]:
    rows: list[Annotated] = []
    annotation: dict[str, object] | None = None
    note: str | None = None
    for number, line in enumerate((FIXTURES / name).read_text("utf-8").splitlines(), 1):
        if line.startswith("# failJSON:"):
            annotation = json.loads(line.removeprefix("# failJSON:"))
            note = None
        elif line.startswith("# pbxfw:"):
            note = line.removeprefix("# pbxfw:").strip()
        elif line.strip() and not line.startswith("#"):
            assert annotation is not None, f"{name}:{number} has no failJSON annotation"
            host = annotation.get("host")
            expected = str(host) if annotation.get("match") and _is_address(host) else None
            if note is not None:
                if note.startswith("not counted"):
                    expected = None
                else:
                    assert note.startswith("counted "), note
                    expected = note.split()[1]
            rows.append(Annotated(number, line, annotation, expected))
            annotation = None
    return rows


SSHD = annotated("sshd.log")
DROPBEAR = annotated("dropbear.log")
NGINX = annotated("nginx-http-auth.log")


@pytest.mark.parametrize(
    ("kind", "row"),
    [("ssh", row) for row in SSHD + DROPBEAR] + [("web", row) for row in NGINX],
    ids=lambda v: str(v.number) if isinstance(v, Annotated) else v,
)
def test_the_address_counted_is_the_one_fail2ban_names(kind: str, row: Annotated) -> None:
    for recogniser_kind in (kind, None):
        failure = Recogniser(recogniser_kind, reference=REFERENCE, tz=UTC).recognise(row.line)
        got = None if failure is None else str(failure.host)
        assert got == row.expected, (row.number, row.line, row.fail2ban)
        if failure is not None:
            assert failure.jail == kind


def test_the_fixtures_cover_every_form_and_the_injection_cases() -> None:
    counted = [row for row in SSHD if row.expected is not None]
    assert len(counted) >= 25
    injections = [
        row for row in SSHD if "nject" in str(row.fail2ban.get("desc", "")) and "Failed" in row.line
    ]
    assert len(injections) == 6
    # fail2ban's injection cases of the "Failed" line are all counted, with the real address.
    assert all(row.expected == row.fail2ban["host"] for row in injections)
    assert sum(row.expected is not None for row in NGINX) == 4
    assert sum(row.expected is not None for row in DROPBEAR) == 6


def test_the_issue_line_counts_the_real_address_not_the_auth_info() -> None:
    line = (
        "Nov 11 08:04:52 redbamboo sshd[2737]: Failed password for invalid user test from"
        " 127.0.0.1 port 58946 ssh2: from 10.10.1.2 port 55555 ssh2"
    )
    failure = Recogniser("ssh", reference=REFERENCE, tz=UTC).recognise(line)
    assert failure is not None
    assert str(failure.host) == "127.0.0.1"
