"""``pbxfw bans`` and ``pbxfw ips scan`` through the CLI; the whitelist is absolute."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxfw.domain.addresses import parse_subnet
from pbxfw.domain.bans import Ban
from pbxfw.domain.whitelist import Whitelist
from pbxfw.errors import FieldError, ValidationError
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.bans import BanService
from tests.helpers import Cli, dump_database

FIXTURES = Path(__file__).parent.parent / "ips" / "fixtures"


def test_bans_add_list_rm_and_check(cli: Cli) -> None:
    cli("init")
    result = cli("bans", "add", "198.51.100.7", "--jail", "asterisk", "--seconds", "600")
    assert result.exit_code == 0, result.stderr
    bans = json.loads(cli("bans", "list", "--json").stdout)
    assert [(b["address"], b["jail"], b["scope"]) for b in bans] == [
        ("198.51.100.7", "asterisk", ["ajam", "iax", "sip"])
    ]
    assert 590 <= bans[0]["remaining"] <= 600
    decision = json.loads(cli("check", "198.51.100.7", "sip", "--json").stdout)
    assert decision["verdict"] == "banned" and "jail asterisk" in decision["reason"]
    assert json.loads(cli("check", "198.51.100.7", "ssh", "--json").stdout)["verdict"] == "allow"
    assert cli("bans", "rm", "198.51.100.7").exit_code == 0
    assert json.loads(cli("bans", "list", "--json").stdout) == []
    assert cli("bans", "rm", "198.51.100.7").exit_code == 3


def test_whitelisted_addresses_are_never_banned(cli: Cli, db_path: Path, tmp_path: Path) -> None:
    cli("init")
    cli("network", "add", "Office", "10.1.0.0/16", "--never-block")
    cli("settings", "set", "ips_whitelist=192.0.2.0/28")
    before = dump_database(db_path)
    for address, why in (
        ("10.1.2.3", 'never-block network "Office"'),
        ("10.0.0.0/8", 'never-block network "Office"'),
        ("192.0.2.5", "ips_whitelist"),
        ("127.0.0.1", "loopback"),
    ):
        result = cli("bans", "add", address)
        assert result.exit_code == 2 and why in result.stderr, result.stderr
    assert dump_database(db_path) == before
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("# a blocklist\n203.0.113.0/24\n10.1.9.9\n198.51.100.1 # one host\n\n")
    result = cli("bans", "import", str(blocklist))
    assert result.exit_code == 0 and "banned 2" in result.stdout
    assert "skipped 10.1.9.9/32" in result.stderr
    addresses = sorted(b["address"] for b in json.loads(cli("bans", "list", "--json").stdout))
    assert addresses == ["198.51.100.1", "203.0.113.0/24"]


def test_bans_import_with_a_bad_line_bans_nothing(cli: Cli, db_path: Path, tmp_path: Path) -> None:
    cli("init")
    before = dump_database(db_path)
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text("203.0.113.1\n203.0.113.300\n")
    result = cli("bans", "import", str(blocklist))
    assert result.exit_code == 2 and "line 2:" in result.stderr
    assert dump_database(db_path) == before


def test_marking_never_block_lifts_bans_inside(cli: Cli) -> None:
    cli("init")
    cli("network", "add", "Branch", "172.16.0.0/12")
    cli("bans", "add", "172.16.5.5")
    cli("bans", "add", "198.51.100.9")
    cli("network", "set", "Branch", "--never-block")
    addresses = [b["address"] for b in json.loads(cli("bans", "list", "--json").stdout)]
    assert addresses == ["198.51.100.9"]


def test_ips_scan_json_lines(cli: Cli) -> None:
    result = cli("ips", "scan", str(FIXTURES / "asterisk_messages.log"), "--json")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and set(lines[0]) == {"file", "line", "time", "jail", "host", "event"}
    assert all(line["jail"] in ("asterisk", "ami") for line in lines)
    assert cli("ips", "scan", "/nonexistent.log").exit_code == 2


def test_ips_scan_says_a_repeated_line_counts_n_times(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(
        "Nov 25 11:00:00 pbx sshd[7]: Failed password for root from 198.51.100.4 port 1 ssh2\n"
        "Nov 25 11:00:05 pbx sshd[8]: message repeated 4 times:"
        " [ Failed password for root from 198.51.100.5 port 2 ssh2]\n"
    )
    result = cli("ips", "scan", str(log))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{log}:1: ssh 198.51.100.4 ssh failed authentication",
        f"{log}:2: ssh 198.51.100.5 ssh failed authentication (counts 4 times)",
    ]
    assert result.stderr.strip() == "5 failures"


def test_ips_scan_json_is_byte_for_byte_json_dumps_of_failure_json(
    cli: Cli, tmp_path: Path
) -> None:
    """The CLI's fast JSON lines (pbxfw.ips.output) are exactly ``json.dumps(failure_json(f))``:
    every fixture log (each kind), a file name JSON must escape, a failure
    time in another zone, the same address object many times."""
    from datetime import datetime, timedelta, timezone

    from pbxfw.ips.events import Failure
    from pbxfw.ips.output import JsonLines
    from pbxfw.ips.scan import failure_json, scan_files

    odd = tmp_path / 'a "quoted" \\ naïve\tname.log'
    odd.write_bytes((FIXTURES / "asterisk_messages.log").read_bytes())
    logs = [*sorted(FIXTURES.glob("*.log")), odd]
    found = list(scan_files(logs))
    host = found[0].host
    zone = timezone(timedelta(hours=-5))
    found += [
        Failure(datetime(2026, 11, 1, 3, 4, 5, 123456, zone), "ssh", host, 'say "hi" ½\n', "f", 7),
        Failure(datetime(2026, 11, 1, 3, 4, 5, tzinfo=zone), "web", host, "é", "f", 8),
    ]
    expected = "".join(json.dumps(failure_json(f), ensure_ascii=False) + "\n" for f in found)
    fmt = JsonLines()
    assert "".join(fmt.line(f) for f in found) == expected
    result = cli("ips", "scan", *map(str, logs), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "".join(
        json.dumps(failure_json(f), ensure_ascii=False) + "\n" for f in found[:-2]
    )


def test_this_hosts_own_address_is_never_banned(svc: ConfigService) -> None:
    import ipaddress

    import pytest

    from pbxfw.errors import ValidationError
    from pbxfw.usecases.bans import BanService

    own = ipaddress.ip_address("192.0.2.44")
    bans = BanService(svc.store, own_addresses=lambda: [own])
    with pytest.raises(ValidationError, match="this host's own address"):
        bans.add("192.0.2.44")
    with pytest.raises(ValidationError, match="this host's own address"):
        bans.add("192.0.2.0/24")  # a subnet holding it
    assert bans.import_lines(["192.0.2.44", "198.51.100.1"]).skipped == [
        "192.0.2.44/32: 192.0.2.44 is this host's own address"
    ]


# -- the bulk import, checked against the plain per-line definition ----------

_ENTRIES = [
    "198.51.100.1",
    "198.51.100.1/32",
    "198.51.100.2 # a comment",
    "203.0.113.0/24",
    "203.0.113.77/24",
    "10.1.9.9",
    "10.1.0.0/24",
    "10.0.0.0/8",
    "127.0.0.1",
    "127.0.0.0/8",
    "192.0.2.44",
    "192.0.2.0/30",
    "2001:db8::1",
    "2001:db8::/32",
    "::1",
    "::ffff:198.51.100.9",
    "  198.51.100.3  ",
    "",
    "# only a comment",
    "0.0.0.0/0",
]
_BAD = ["10.0.0.256", "banana", "1.2.3.4\x00", "01.2.3.4", "1.2.3.4/33", "::1%lo"]


def _reference_import(lines: list[str], whitelist: Whitelist) -> tuple[list[str], list[str]]:
    """import_lines as it was written before it was made fast: (skipped, banned)."""
    subnets: list[object] = []
    errors: list[FieldError] = []
    for number, raw in enumerate(lines, 1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            subnets.append(parse_subnet(text, f"line {number}"))
        except ValidationError as exc:
            errors += exc.errors
        if len(errors) >= 20:
            break
    if errors:
        raise ValidationError(errors)
    skipped, banned = [], {}
    for subnet in subnets:
        why = whitelist.reason(subnet)  # type: ignore[arg-type]
        if why:
            skipped.append(f"{subnet}: {why}")
        else:
            banned[str(subnet)] = True
    return skipped, list(banned)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.sampled_from(_ENTRIES) | st.ip_addresses(v=4).map(str), max_size=40),
    st.lists(st.tuples(st.integers(0, 40), st.sampled_from(_BAD)), max_size=25) | st.just([]),
)
def test_import_lines_is_the_per_line_definition(
    svc: ConfigService, lines: list[str], bad: list[tuple[int, str]]
) -> None:
    for position, line in bad:
        lines.insert(position, line)
    from sqlalchemy import delete

    from pbxfw.storage.models import BanRow

    if not any(n.name == "Office" for n in svc.networks()):
        svc.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16", never_block=True))
        svc.update_settings({"ips_whitelist": ["203.0.113.64/26", "2001:db8:0:1::/64"]})
    own = [ipaddress.ip_address("192.0.2.44"), ipaddress.ip_address("2001:db8::1")]
    bans = BanService(svc.store, clock=lambda: 1000.0, own_addresses=lambda: own)
    with svc.store.write() as repo:
        repo.session.execute(delete(BanRow))
        whitelist = Whitelist(repo.configuration(), own)
    try:
        skipped, banned = _reference_import(lines, whitelist)
    except ValidationError as expected:
        with pytest.raises(ValidationError) as refused:
            bans.import_lines(lines)
        assert refused.value.errors == expected.errors
        return
    report = bans.import_lines(lines)
    assert report.skipped == skipped
    assert report.added == len(banned)
    stored = bans.active()
    assert [str(b.subnet) for b in stored] == banned
    until = 1000.0 + svc.settings().ips_bantime
    assert all((b.jail, b.reason, b.expires_at) == ("manual", "imported", until) for b in stored)


def test_bans_trust_adds_a_never_block_network_and_lifts_the_ban(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    cli("bans", "add", "198.51.100.9")
    cli("bans", "add", "198.51.100.10")
    result = cli("bans", "trust", "198.51.100.9", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["created"] is True and report["lifted"] == ["198.51.100.9"]
    assert report["network"]["subnet"] == "198.51.100.9/32"
    assert report["network"]["never_block"] is True
    shown = json.loads(cli("network", "show", report["network"]["name"], "--json").stdout)
    assert {k: shown[k] for k in report["network"]} == report["network"]
    addresses = [b["address"] for b in json.loads(cli("bans", "list", "--json").stdout)]
    assert addresses == ["198.51.100.10"]
    # Now refused as a ban, and trusting again changes nothing.
    assert cli("bans", "add", "198.51.100.9").exit_code == 2
    again = json.loads(cli("bans", "trust", "198.51.100.9", "--json").stdout)
    assert again["created"] is False and again["lifted"] == []
    assert again["network"] == report["network"]


def test_bans_trust_marks_the_network_with_that_subnet(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    cli("network", "add", "Branch", "172.16.0.0/12", "--allow", "sip")
    cli("bans", "add", "172.16.5.5")
    result = cli("bans", "trust", "172.16.0.0/12")
    assert result.exit_code == 0, result.stderr
    assert "Branch" in result.stdout and "1 ban(s) lifted" in result.stdout
    branch = json.loads(cli("network", "show", "Branch", "--json").stdout)
    assert branch["never_block"] is True and branch["services"]["sip"] == "allow"
    assert json.loads(cli("bans", "list", "--json").stdout) == []


@pytest.mark.parametrize("address", ["nonsense", "10.0.0.300", "0.0.0.0/0", "::/0", ""])
def test_bans_trust_refuses_a_bad_address_and_stores_nothing(  # type: ignore[no-untyped-def]
    cli, db_path: Path, address: str
) -> None:
    cli("init")
    cli("bans", "add", "198.51.100.9")
    before = dump_database(db_path)
    result = cli("bans", "trust", address)
    assert result.exit_code == 2
    assert "address" in result.stderr
    assert dump_database(db_path) == before


def test_recorded_bans_are_stored_counted_and_bump_the_revision(svc: ConfigService) -> None:
    """``BanService.record``: the agent's way to store the bans its detector decided."""
    bans = BanService(svc.store, clock=lambda: 1_000.0)
    before = bans.revision()
    decided = [
        Ban(parse_subnet("198.51.100.7"), "ssh", frozenset({"ssh"}), "r", 1_000.0, 2_000.0),
        Ban(parse_subnet("198.51.100.8"), "ssh", frozenset({"ssh"}), "r", 1_000.0, 2_000.0),
    ]
    assert bans.record(decided) == before + 1 == bans.revision()
    assert [b.address_text() for b in bans.active()] == ["198.51.100.7", "198.51.100.8"]
    with svc.store.read() as repo:
        assert repo.ips_counters()["ssh"]["bans"] == 2
    bans.lift(bans.active()[:1])
    assert [b.address_text() for b in bans.active()] == ["198.51.100.8"]
    assert bans.revision() == before + 2


def test_ips_scan_text_lines_and_summary(cli: Cli, tmp_path: Path) -> None:
    """``FILE:LINE: JAIL HOST EVENT`` of each failure, in order (a repeated
    message says how many times it counts), and the count on stderr."""
    from pbxfw.ips.scan import scan_files

    odd = tmp_path / "a: naïve name.log"
    odd.write_bytes((FIXTURES / "auth.log").read_bytes())
    logs = [*sorted(FIXTURES.glob("*.log")), odd]
    found = list(scan_files(logs))
    result = cli("ips", "scan", *map(str, logs))
    assert result.exit_code == 0, result.stderr
    lines = [f"{f.file}:{f.line}: {f.jail} {f.host} {f.event}" for f in found]
    assert result.stdout == "".join(
        f"{line} (counts {f.count} times)\n" if f.count != 1 else line + "\n"
        for line, f in zip(lines, found, strict=True)
    )
    assert any(f.count != 1 for f in found)
    assert result.stderr == f"{sum(f.count for f in found)} failures\n"
