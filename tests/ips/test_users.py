"""The account a failure tried (``Failure.user``): read from the field the
daemon wrote for it, as the program's format puts it there, capped, and
never moving the address (docs/observability.md, "Dashboard")."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxfw.ips.events import USER_MAX
from pbxfw.ips.recognisers import Recogniser, format_web_login_failure, recognise_lines

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
#: Every fixture with an .expected file -> the kind its source is declared
#: as (None: detected per line).
DECLARED: dict[str, str | None] = {
    str(p.relative_to(FIXTURES))[: -len(".expected")]: None for p in FIXTURES.glob("**/*.expected")
}
DECLARED.update(
    {
        "ssh_openssh": "ssh",
        "ssh_dropbear": "ssh",
        "ssh_prefixes": "ssh",
        "ssh_only/bare": "ssh",
        "asterisk_more": "asterisk_messages",
    }
)


def expected_users(name: str) -> dict[int, str]:
    """line -> the user of the row's optional 4th column (JSON), "" without one."""
    table: dict[int, str] = {}
    for row in (FIXTURES / f"{name}.expected").read_text().splitlines():
        if row.strip() and not row.startswith("#"):
            fields = row.split(None, 3)
            table[int(fields[0])] = json.loads(fields[3]) if len(fields) == 4 else ""
    return table


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_fixture_users(name: str) -> None:
    lines = (FIXTURES / f"{name}.log").read_text(encoding="utf-8").splitlines(True)
    kind = DECLARED[name]
    slow = list(recognise_lines(lines, kind, file=name, reference=REFERENCE, tz=UTC))
    fast = Recogniser(kind, file=name, reference=REFERENCE, tz=UTC).scan_text("".join(lines))
    assert {f.line: f.user for f in slow} == expected_users(name)
    assert [f.user for f in fast] == [f.user for f in slow]


def one(line: str, kind: str | None = None) -> tuple[str, str, str]:
    """(host, jail, user) of the one failure ``line`` records."""
    (failure,) = recognise_lines([line], kind, file="t", reference=REFERENCE, tz=UTC)
    return str(failure.host), failure.jail, failure.user


# One line per format: (line, host, jail, user).
FORMATS = [
    # OpenSSH auth.c auth_log: "%s %s%s%s for %s%.100s from %.200s port %d ssh2%s%s"
    (
        "Nov 25 11:00:01 pbx sshd[1]: Failed password for invalid user oracle"
        " from 198.51.100.1 port 40000 ssh2",
        "198.51.100.1",
        "ssh",
        "oracle",
    ),
    (
        "Nov 25 11:00:01 pbx sshd[1]: Failed password for root from 198.51.100.2 port 1 ssh2",
        "198.51.100.2",
        "ssh",
        "root",
    ),
    # auth2.c / auth.c getpwnamallow: "Invalid user %.100s from %.100s port %d"
    (
        "Nov 25 11:00:01 pbx sshd[1]: Invalid user admin from 198.51.100.3 port 1",
        "198.51.100.3",
        "ssh",
        "admin",
    ),
    # pam_unix: "... rhost=%s  user=%s"
    (
        "Nov 25 11:00:01 pbx sshd[1]: pam_unix(sshd:auth): authentication failure;"
        " logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.4  user=pi",
        "198.51.100.4",
        "ssh",
        "pi",
    ),
    # dropbear svr-authpasswd.c: "Bad password attempt for '%s' from %s"
    (
        "Nov 25 11:00:01 pbx dropbear[1]: Bad password attempt for 'ubnt' from 198.51.100.5:5543",
        "198.51.100.5",
        "ssh",
        "ubnt",
    ),
    # dropbear svr-auth.c: "Login attempt for nonexistent user '%s' from %s"
    (
        "Nov 25 11:00:01 pbx dropbear[1]: Login attempt for nonexistent user 'guest'"
        " from 198.51.100.6:1",
        "198.51.100.6",
        "ssh",
        "guest",
    ),
    # dropbear svr-auth.c: "Max auth tries reached - user '%s'", "is invalid" for no user
    (
        "Nov 25 11:00:01 pbx dropbear[1]: Exit before auth from <198.51.100.7:1>:"
        " Max auth tries reached - user 'is invalid'",
        "198.51.100.7",
        "ssh",
        "",
    ),
    # res_pjsip/pjsip_distributor.c: the From URI's user part (the extension tried)
    (
        "[2026-11-25 11:00:01] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER'"
        " from '\"100\" <sip:100@192.0.2.10>' failed for '198.51.100.8:5060' (callid: x)"
        " - No matching endpoint found",
        "198.51.100.8",
        "asterisk",
        "100",
    ),
    # res_security_log: AccountID
    (
        '[2026-11-25 11:00:01] SECURITY[1] res_security_log.c: SecurityEvent="InvalidAccountID",'
        'EventTV="2026-11-25T11:00:01.000+0000",Severity="Error",Service="PJSIP",EventVersion="1",'
        'AccountID="2001",SessionID="abc",LocalAddress="IPV4/UDP/192.0.2.10/5060",'
        'RemoteAddress="IPV4/UDP/198.51.100.9/5060"',
        "198.51.100.9",
        "asterisk",
        "2001",
    ),
    # chan_sip: "Registration from '%s' failed for '%s' - %s" (the To header)
    (
        "[2026-11-25 11:00:01] NOTICE[1] chan_sip.c: Registration from '<sip:301@example.com>'"
        " failed for '198.51.100.10:5060' - Wrong password",
        "198.51.100.10",
        "asterisk",
        "301",
    ),
    # manager.c: "%s failed to authenticate as '%s'"
    (
        "[2026-11-25 11:00:01] NOTICE[1] manager.c: 198.51.100.11"
        " failed to authenticate as 'admin'",
        "198.51.100.11",
        "ami",
        "admin",
    ),
    # res_pjsip_session: the extension dialled (toll fraud: the number tried)
    (
        "[2026-11-25 11:00:01] NOTICE[1] res_pjsip_session.c: Call from 'anonymous'"
        " (UDP:198.51.100.12:5060) to extension '00972592891005' rejected because extension"
        " not found in context 'from-external'.",
        "198.51.100.12",
        "asterisk",
        "00972592891005",
    ),
    # nginx auth_basic: user "%V"
    (
        '2026/11/25 11:30:01 [error] 1#0: *2 user "webadmin": password mismatch,'
        ' client: 198.51.100.13, server: pbx, request: "GET / HTTP/1.1", host: "pbx"',
        "198.51.100.13",
        "web",
        "webadmin",
    ),
]


@pytest.mark.parametrize(("line", "host", "jail", "user"), FORMATS)
def test_each_format_names_its_user(line: str, host: str, jail: str, user: str) -> None:
    assert one(line) == (host, jail, user)


def test_hostile_user_names_keep_the_real_address() -> None:
    # The name holds a forged address field and quotes: the address stays the
    # one the daemon wrote; the user is what the format puts there.
    assert one(
        'Nov 25 11:00:01 pbx sshd[1]: Invalid user a" from 1.2.3.4 port 22'
        " from 198.51.100.20 port 5555"
    ) == ("198.51.100.20", "ssh", 'a" from 1.2.3.4 port 22')
    assert one(
        "Nov 25 11:00:01 pbx sshd[1]: Failed password for invalid user <script>x</script>"
        " from 1.2.3.4 port 22 ssh2 from 198.51.100.21 port 1 ssh2"
    ) == ("198.51.100.21", "ssh", "<script>x</script> from 1.2.3.4 port 22 ssh2")
    assert one(
        "Nov 25 11:00:01 pbx dropbear[1]: Bad password attempt for 'x' from 1.2.3.4:22'"
        " from 198.51.100.22:5555"
    ) == ("198.51.100.22", "ssh", "x' from 1.2.3.4:22")
    assert one(
        "[2026-11-25 11:00:01] NOTICE[1] manager.c: 198.51.100.23 failed to authenticate"
        " as 'it's me' from 1.2.3.4'"
    ) == ("198.51.100.23", "ami", "it's me' from 1.2.3.4")
    line = format_web_login_failure(REFERENCE, 'x" from 1.2.3.4', "198.51.100.24")
    assert one(line) == ("198.51.100.24", "web", 'x" from 1.2.3.4')


def test_a_web_login_line_with_a_deep_json_name_counts_and_keeps_its_chunk() -> None:
    """Another writer in the web log may put anything after ``for user``:
    5,000 brackets (a line far under MAX_LINE) once made json.loads raise
    RecursionError out of the recogniser (the agent then dropped the rest
    of the chunk). The text is taken as written; the failure and the next
    line still count."""
    good = format_web_login_failure(REFERENCE, "admin", "198.51.100.28")
    deep = good.replace('"admin"', "[" * 5_000)
    failures = list(recognise_lines([deep, good], None, file="t", reference=REFERENCE, tz=UTC))
    assert [(str(f.host), f.user) for f in failures] == [
        ("198.51.100.28", "[" * USER_MAX),
        ("198.51.100.28", "admin"),
    ]


def test_an_account_id_with_the_separator_is_not_guessed() -> None:
    # AccountID and SessionID are both unescaped client text: with the
    # separator twice the split is not certain, so no user (the address
    # still counts).
    line = (
        '[2026-11-25 11:00:01] SECURITY[1] res_security_log.c: SecurityEvent="InvalidAccountID",'
        'EventTV="2026-11-25T11:00:01.000+0000",Severity="Error",Service="PJSIP",EventVersion="1",'
        'AccountID="a",SessionID="b",SessionID="c",LocalAddress="IPV4/UDP/192.0.2.10/5060",'
        'RemoteAddress="IPV4/UDP/198.51.100.25/5060"'
    )
    assert one(line) == ("198.51.100.25", "asterisk", "")


def test_a_long_user_name_is_capped() -> None:
    name = "u" * 500
    host, _jail, user = one(
        f"Nov 25 11:00:01 pbx sshd[1]: Invalid user {name} from 198.51.100.26 port 1"
    )
    assert host == "198.51.100.26" and user == "u" * USER_MAX


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_without_users_the_same_failures_and_no_user(name: str) -> None:
    # Recogniser(users=False) (the offline scan) runs each pattern without
    # the user's capture: the same lines, addresses, events and keys.
    text = (FIXTURES / f"{name}.log").read_text(encoding="utf-8")
    kind = DECLARED[name]
    with_users = list(Recogniser(kind, file=name, reference=REFERENCE, tz=UTC).scan_text(text))
    without = list(
        Recogniser(kind, file=name, reference=REFERENCE, tz=UTC, users=False).scan_text(text)
    )
    assert [replace(f, user="") for f in with_users] == without


def test_the_offline_scan_reads_no_users(tmp_path: Path) -> None:
    from pbxfw.ips.scan import scan_file

    text = "".join(
        f"Nov 25 11:{i // 60 % 60:02}:{i % 60:02} pbx sshd[{i}]: Invalid user u{i % 7}"
        f" from 198.51.100.{i % 200} port 1\n"
        for i in range(2000)
    )
    log = tmp_path / "auth.log"
    log.write_text(text)
    for workers in (1, 2):
        found = list(scan_file(log, kind="ssh", reference=REFERENCE, tz=UTC, workers=workers))
        assert len(found) == 2000 and {f.user for f in found} == {""}
