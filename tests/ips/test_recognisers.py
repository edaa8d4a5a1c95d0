"""Recognisers: fixture logs with the expected address per line, injection
cases, both Asterisk stamp forms and syslog, IPv6 and mapped addresses, the
"counts once" keys, and year inference."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.ips.recognisers import (
    KINDS,
    WEB_LOGIN_FAILURE_FORMAT,
    Recogniser,
    detect_kind,
    failure_key,
    format_web_login_failure,
    infer_year,
    parse_remote_address,
    recognise_lines,
    recognise_text,
)

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LOGS = sorted(p.name for p in FIXTURES.glob("*.log"))
#: Addresses only ever written inside client-controlled text in the fixtures.
INJECTED = {"5.6.7.8", "6.6.6.6", "7.7.7.7", "1.1.1.1"}


def expected(log: str) -> dict[int, tuple[str, str]]:
    """line number → (host, jail) from the sibling .expected file."""
    table: dict[int, tuple[str, str]] = {}
    for row in (FIXTURES / log).with_suffix(".expected").read_text().splitlines():
        if row.strip() and not row.startswith("#"):
            number, host, jail = row.split(None, 3)[:3]
            table[int(number)] = (host, jail)
    return table


def test_fixtures_exist() -> None:
    assert {"asterisk_messages.log", "asterisk_security.log", "auth.log", "web.log"} <= set(LOGS)
    assert "injection.log" in LOGS


@pytest.mark.parametrize("log", LOGS)
def test_fixture_line_by_line(log: str) -> None:
    with (FIXTURES / log).open(encoding="utf-8") as lines:
        found = recognise_lines(lines, None, file=log, reference=REFERENCE, tz=UTC)
        got = {f.line: (str(f.host), f.jail) for f in found}
    assert got == expected(log)


@pytest.mark.parametrize("log", LOGS)
def test_fixture_whole_file_fast_path_agrees(log: str) -> None:
    text = (FIXTURES / log).read_text(encoding="utf-8")
    fast = list(recognise_text(text, None, file=log, reference=REFERENCE, tz=UTC))
    slow = list(recognise_lines(text.splitlines(True), None, file=log, reference=REFERENCE, tz=UTC))
    assert fast == slow
    assert {f.line: (str(f.host), f.jail) for f in fast} == expected(log)


@pytest.mark.parametrize(
    ("log", "kind"),
    [
        ("asterisk_messages.log", "asterisk_messages"),
        ("asterisk_security.log", "asterisk_security"),
        ("auth.log", "ssh"),
        ("web.log", "web"),
    ],
)
def test_fixture_with_explicit_kind(log: str, kind: str) -> None:
    text = (FIXTURES / log).read_text(encoding="utf-8")
    got = Recogniser(kind, file=log, reference=REFERENCE, tz=UTC).scan_text(text)
    assert {f.line: (str(f.host), f.jail) for f in got} == expected(log)


def test_injected_addresses_never_come_out() -> None:
    for log in LOGS:
        text = (FIXTURES / log).read_text(encoding="utf-8")
        for failure in recognise_text(text, None, file=log, reference=REFERENCE, tz=UTC):
            assert str(failure.host) not in INJECTED, (log, failure.line)


def test_failure_fields() -> None:
    line = (
        "[2026-11-01 08:42:17] NOTICE[19388] res_pjsip/pjsip_distributor.c: Request 'REGISTER'"
        " from '\"317\" <sip:317@192.0.2.10>' failed for '198.51.100.7:5089' (callid: 1)"
        " - Failed to authenticate"
    )
    f = Recogniser("asterisk_messages", file="m", reference=REFERENCE, tz=UTC).recognise(line, 7)
    assert f is not None
    assert f.time == datetime(2026, 11, 1, 8, 42, 17, tzinfo=UTC)
    assert f.time.tzinfo is UTC
    assert (f.jail, f.file, f.line) == ("asterisk", "m", 7)
    assert f.host == ipaddress.ip_address("198.51.100.7")
    assert f.event == "PJSIP REGISTER: Failed to authenticate"


def test_event_text_never_copies_client_text() -> None:
    line = (
        "[2026-11-01 08:42:17] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'EVIL<script>'"
        " from '<sip:a@b>' failed for '198.51.100.7:5089' (callid: 1) - Failed to authenticate"
    )
    f = Recogniser(None, reference=REFERENCE, tz=UTC).recognise(line)
    assert f is not None
    assert "EVIL" not in f.event and "<" not in f.event


# -- time stamps -----------------------------------------------------------------


STAMPS = [
    "[2026-11-01 08:42:16] NOTICE[1] manager.c: 198.51.100.1 failed to authenticate as 'a'",
    "[Nov  1 08:42:16] NOTICE[1]: manager.c:2350 authenticate: 198.51.100.1 failed to"
    " authenticate as 'a'",
    "Nov  1 08:42:16 pbx asterisk[9]: NOTICE[1]: manager.c:2350 authenticate: 198.51.100.1"
    " failed to authenticate as 'a'",
    "2026-11-01T09:42:16+01:00 pbx asterisk[9]: NOTICE[1]: manager.c:2350 authenticate:"
    " 198.51.100.1 failed to authenticate as 'a'",
]


@pytest.mark.parametrize("line", STAMPS)
def test_stamp_forms(line: str) -> None:
    f = Recogniser(None, reference=REFERENCE, tz=UTC).recognise(line)
    assert f is not None and f.jail == "ami"
    assert f.time == datetime(2026, 11, 1, 8, 42, 16, tzinfo=UTC)


def test_local_stamps_use_the_given_zone() -> None:
    plus2 = timezone(timedelta(hours=2))
    f = Recogniser(None, reference=REFERENCE, tz=plus2).recognise(STAMPS[0])
    assert f is not None
    assert f.time == datetime(2026, 11, 1, 6, 42, 16, tzinfo=UTC)


def test_december_line_read_in_january_is_last_year() -> None:
    line = "[Dec 31 23:59:59] NOTICE[1]: manager.c:1 a: 198.51.100.1 failed to authenticate as 'a'"
    january = datetime(2027, 1, 2, 0, 5, tzinfo=UTC)
    f = Recogniser(None, reference=january, tz=UTC).recognise(line)
    assert f is not None
    assert f.time == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("month", "day", "reference", "year"),
    [
        (12, 31, datetime(2027, 1, 2), 2026),
        (11, 1, datetime(2026, 11, 25), 2026),
        (3, 24, datetime(2026, 1, 5), 2025),  # a log line is never months ahead
        (1, 1, datetime(2026, 12, 31, 23, 59), 2027),  # writer's clock slightly ahead
        (2, 29, datetime(2026, 3, 1), 2024),  # latest leap year
        (2, 29, datetime(2028, 3, 1), 2028),
    ],
)
def test_infer_year(month: int, day: int, reference: datetime, year: int) -> None:
    assert infer_year(month, day, reference.replace(tzinfo=UTC)) == year


# -- addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "port", "address"),
    [
        ("198.51.100.1", None, "198.51.100.1"),
        ("198.51.100.1:5060", None, "198.51.100.1"),
        ("2001:db8::1", None, "2001:db8::1"),
        ("[2001:db8::1]", None, "2001:db8::1"),
        ("[2001:db8::1]:5060", None, "2001:db8::1"),
        ("IPV4/UDP/198.51.100.1/5060", None, "198.51.100.1"),
        ("IPV6/TCP/2001:db8::1/5061", None, "2001:db8::1"),
        ("IPV6/UDP/::ffff:198.51.100.1/5060", None, "198.51.100.1"),
        ("::ffff:198.51.100.1", None, "198.51.100.1"),
        ("[::ffff:198.51.100.1]:5060", None, "198.51.100.1"),
        ("::ffff:198.51.100.1:5060", True, "198.51.100.1"),
        ("2001:db8::1:5060", True, "2001:db8::1"),
        ("2001:DB8::A", False, "2001:db8::a"),
    ],
)
def test_parse_remote_address(text: str, port: bool | None, address: str) -> None:
    assert parse_remote_address(text, port=port) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pbx.example.com",
        "01.2.3.4",
        "1.2.3",
        "256.1.1.1",
        "[2001:db8::1",
        "fe80::1%eth0",
        "[2001:db8::1]x",
        "IPV4/UDP/1.2.3.4",
        "IPV4/UDP/host/5060",
        "1.2.3.4:x",
    ],
)
def test_parse_remote_address_rejects(text: str) -> None:
    assert parse_remote_address(text) is None


# -- adversarial property tests -----------------------------------------------------

# Any printable text, quotes, commas and "=" included (no line breaks: a
# logged value never spans lines).
CLIENT_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60
)
FAKE = '",LocalAddress="IPV4/UDP/1.1.1.1/5060",RemoteAddress="IPV4/UDP/6.6.6.6/1111'


def security_line(event: str, severity: str, account: str, session: str) -> str:
    return (
        f'[2026-11-01 08:42:16] SECURITY[1] res_security_log.c: SecurityEvent="{event}",'
        f'EventTV="2026-11-01T08:42:16.000+0000",Severity="{severity}",Service="PJSIP",'
        f'EventVersion="1",AccountID="{account}",SessionID="{session}",'
        'LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.7/5060"'
    )


@settings(max_examples=200, deadline=None)
@given(account=CLIENT_TEXT, session=CLIENT_TEXT, inject=st.booleans())
def test_security_event_address_survives_any_account_and_session(
    account: str, session: str, inject: bool
) -> None:
    if inject:
        session = session + FAKE
    line = security_line("InvalidAccountID", "Error", account, session)
    f = Recogniser("asterisk_security", reference=REFERENCE, tz=UTC).recognise(line)
    assert f is not None
    assert str(f.host) == "198.51.100.7"


@settings(max_examples=200, deadline=None)
@given(
    event=st.sampled_from(["ChallengeSent", "SuccessfulAuth", "InvalidAccountID"]),
    session=CLIENT_TEXT,
)
def test_informational_is_never_a_failure(event: str, session: str) -> None:
    session += '",Severity="Error",SecurityEvent="InvalidPassword'
    line = security_line(event, "Informational", "1", session)
    assert Recogniser(None, reference=REFERENCE, tz=UTC).recognise(line) is None


@settings(max_examples=200, deadline=None)
@given(user=CLIENT_TEXT)
def test_ssh_user_cannot_move_the_address(user: str) -> None:
    for body in (
        f"Invalid user {user} from 6.6.6.6 port 22 from 198.51.100.80 port 5555",
        f"Failed password for invalid user {user} from 198.51.100.80 port 5555 ssh2",
        f"Failed password for invalid user {user} from 6.6.6.6 port 1 ssh2 from 198.51.100.80"
        " port 5555 ssh2",
    ):
        line = f"Nov 25 11:00:01 pbx sshd[1]: {body}"
        f = Recogniser("ssh", reference=REFERENCE, tz=UTC).recognise(line)
        if f is not None:  # e.g. a user with a trailing space is still found
            assert str(f.host) == "198.51.100.80"


@settings(max_examples=200, deadline=None)
@given(display=CLIENT_TEXT, callid=CLIENT_TEXT)
def test_pjsip_from_and_callid_cannot_move_the_address(display: str, callid: str) -> None:
    # pjsip prints the display name as a quoted string with inner quotes escaped.
    quoted = display.replace("\\", "\\\\").replace('"', '\\"')
    injected_callid = callid + "' failed for '6.6.6.6:5060' (callid: x"
    for c in (callid, injected_callid):
        line = (
            "[2026-11-01 08:42:16] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER'"
            f" from '\"{quoted}\" <sip:100@192.0.2.10>' failed for '198.51.100.74:5060'"
            f" (callid: {c}) - No matching endpoint found"
        )
        f = Recogniser(None, reference=REFERENCE, tz=UTC).recognise(line)
        assert f is not None
        assert str(f.host) == "198.51.100.74"


@settings(max_examples=100, deadline=None)
@given(user=st.text(max_size=40))
def test_web_login_line_round_trip(user: str) -> None:
    when = datetime(2026, 11, 25, 12, 0, 0, 500000, tzinfo=UTC)
    line = format_web_login_failure(when, user, "2001:db8::5")
    assert "\n" not in line
    f = Recogniser("web", reference=REFERENCE).recognise(line)
    assert f is not None
    assert (str(f.host), f.jail) == ("2001:db8::5", "web")
    assert f.time == when.replace(microsecond=0)


def test_web_login_format_is_the_documented_constant() -> None:
    line = format_web_login_failure(
        datetime(2026, 11, 25, 13, 0, tzinfo=timezone(timedelta(hours=1))), "bob", "203.0.113.5"
    )
    assert (
        line == '2026-11-25T12:00:00+00:00 pbxfw-web: login failed from 203.0.113.5 for user "bob"'
    )
    pattern = re.escape(WEB_LOGIN_FAILURE_FORMAT).replace(r"\{time\}", ".+")
    pattern = pattern.replace(r"\{address\}", ".+").replace(r"\{user\}", ".+")
    assert re.fullmatch(pattern, line)
    with pytest.raises(ValueError):
        format_web_login_failure(datetime(2026, 1, 1), "bob", "203.0.113.5")


# -- counts once -----------------------------------------------------------------------

NOTICE = (
    "[2026-11-01 08:42:17] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from"
    " '<sip:317@192.0.2.10>' failed for '198.51.100.7:5089' (callid: same) - Failed to authenticate"
)
SECURITY = (
    '[2026-11-01 08:42:17] SECURITY[2] res_security_log.c: SecurityEvent="ChallengeResponseFailed",'
    'EventTV="2026-11-01T08:42:17.296+0000",Severity="Error",Service="PJSIP",EventVersion="1",'
    'AccountID="317",SessionID="same",LocalAddress="IPV4/UDP/192.0.2.10/5060",'
    'RemoteAddress="IPV4/UDP/198.51.100.7/5089",Challenge="c",Response="r",ExpectedResponse=""'
)


def keys(lines: list[str], kind: str) -> list[str]:
    return [f.key for f in recognise_lines(lines, kind, file=kind, reference=REFERENCE, tz=UTC)]


def test_notice_and_security_line_of_one_failure_share_a_key() -> None:
    messages = keys([NOTICE], "asterisk_messages")
    security = keys([SECURITY], "asterisk_security")
    epoch = int(datetime(2026, 11, 1, 8, 42, 17, tzinfo=UTC).timestamp())
    expected_key = failure_key("asterisk", ipaddress.ip_address("198.51.100.7"), epoch, 1)
    assert messages == security == [expected_key]


def test_both_lines_in_one_file_count_once() -> None:
    # logger.conf may send security events to messages too.
    assert len(set(keys([NOTICE, SECURITY], "asterisk_messages"))) == 1


def test_repeated_attempts_in_one_second_with_one_callid_count_each() -> None:
    messages = keys([NOTICE] * 3, "asterisk_messages")
    security = keys([SECURITY] * 3, "asterisk_security")
    assert len(set(messages)) == 3
    assert messages == security  # pairwise: three attempts, counted three times in all


def test_keys_differ_across_seconds_hosts_and_jails() -> None:
    later = NOTICE.replace("08:42:17", "08:42:18")
    other = NOTICE.replace("198.51.100.7", "198.51.100.8")
    ami = "[2026-11-01 08:42:17] NOTICE[1] manager.c: 198.51.100.7 failed to authenticate as 'a'"
    got = keys([NOTICE, later, other, ami], "asterisk_messages")
    assert len(set(got)) == 4
    assert got[3].startswith("ami|")


def test_ssh_and_web_failures_always_count() -> None:
    line = "Nov 25 11:00:03 pbx sshd[1]: Failed password for root from 198.51.100.41 port 1 ssh2"
    assert keys([line, line], "ssh") == ["", ""]


# -- API edges ---------------------------------------------------------------------------


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="asterisk_messages"):
        Recogniser("apache")


def test_kinds_and_detection() -> None:
    assert set(KINDS) == {"asterisk_security", "asterisk_messages", "ssh", "web"}
    assert detect_kind(SECURITY) == "asterisk_security"
    assert detect_kind(NOTICE) == "asterisk_messages"
    assert detect_kind("Nov 25 11:00:03 pbx sshd[1]: x") == "ssh"
    assert detect_kind("2026/11/25 11:30:00 [error] 1#0: x") == "web"
    assert detect_kind("hello") is None


def test_line_numbers_and_line_endings() -> None:
    text = "noise\r\n" + NOTICE + "\r\nnoise\r\n" + NOTICE  # CRLF, no final newline
    rec = Recogniser("asterisk_messages", reference=REFERENCE, tz=UTC)
    assert [f.line for f in rec.scan_text(text)] == [2, 4]
    rec = Recogniser("asterisk_messages", reference=REFERENCE, tz=UTC)
    assert [f.line for f in rec.lines(text.splitlines(True), first_line=10)] == [11, 13]


def test_a_kind_only_recognises_its_own_lines() -> None:
    ssh = "Nov 25 11:00:03 pbx sshd[1]: Failed password for root from 198.51.100.41 port 1 ssh2"
    assert keys([ssh], "asterisk_messages") == []
    assert keys([NOTICE], "ssh") == []


# -- the whole-file fast path equals the per-line path ------------------------------------

# Lines a syslog or an Asterisk log with multi-line messages adds to the
# fixtures: SIP packet lines (one quoting an sshd line), an empty line, an sshd
# line of a syslog that also carries Asterisk, a failed SecurityEvent with a
# severity Asterisk never writes, and a last line without newline.
EXTRA_LINES: list[tuple[str, tuple[str, str] | None]] = [
    ("<--- Received SIP request (528 bytes) from UDP:198.51.100.60:5060 --->", None),
    ("REGISTER sip:192.0.2.10 SIP/2.0", None),
    ("User-Agent: Nov 25 11:00:09 pbx sshd[1]: Failed password for root from 6.6.6.6 port 2", None),
    ("", None),
    (
        "Nov 25 11:00:09 pbx sshd[7]: Failed password for root from 198.51.100.61 port 22 ssh2",
        ("198.51.100.61", "ssh"),
    ),
    (security_line("FailedACL", "Warning", " sshd password mismatch", "NOTICE"), None),
    (NOTICE.replace("198.51.100.7:5089", "198.51.100.62:5089"), ("198.51.100.62", "asterisk")),
]


def mixed_log() -> tuple[str, dict[int, tuple[str, str]]]:
    """Every fixture's lines interleaved, then EXTRA_LINES; the expected failures."""
    sources = {log: (FIXTURES / log).read_text(encoding="utf-8").splitlines() for log in LOGS}
    lines: list[str] = []
    want: dict[int, tuple[str, str]] = {}
    for i in range(max(len(rows) for rows in sources.values())):
        for log, rows in sources.items():
            if i < len(rows):
                lines.append(rows[i])
                if i + 1 in expected(log):
                    want[len(lines)] = expected(log)[i + 1]
    for line, found in EXTRA_LINES:
        lines.append(line)
        if found is not None:
            want[len(lines)] = found
    return "\n".join(lines), want


def newline_lines(text: str) -> list[str]:
    """The ``"\\n"``-separated lines of ``text`` with their newline (what scan_text reads)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


@pytest.mark.parametrize("kind", [None, *KINDS])
@pytest.mark.parametrize("bytes_per_other_line", [1, 1024, 1 << 40])
def test_fast_path_equals_per_line_path_on_a_mixed_log(
    kind: str | None, bytes_per_other_line: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With the kind detected per line, a text where few lines start without
    # "[" is searched for the Asterisk triggers only, its other lines looked
    # at one by one (1: always so; 1 << 40: never so, every trigger is
    # searched). Whatever the path, the result is the per-line path's.
    from pbxfw.ips import scanner

    monkeypatch.setattr(scanner, "_BYTES_PER_OTHER_LINE", bytes_per_other_line)
    text, want = mixed_log()

    def make() -> Recogniser:
        return Recogniser(kind, file="mixed", reference=REFERENCE, tz=UTC)

    slow = list(make().lines(newline_lines(text)))
    assert list(make().scan_text(text)) == slow
    assert list(make().scan_bytes(text.encode())) == slow
    if kind is None:
        assert {f.line: (str(f.host), f.jail) for f in slow} == want
        for f in slow:
            assert str(f.host) not in INJECTED


@pytest.mark.parametrize("log", LOGS)
def test_every_recognised_line_holds_a_coarse_and_a_fine_trigger(log: str) -> None:
    # The fast path searches whole files for the coarse triggers of a kind
    # only; the per-line triggers of the kind must be in every line its
    # recogniser accepts too (else the per-line path would skip it).
    from pbxfw.ips.grammars import SCAN_TRIGGERS as _SCAN_TRIGGERS
    from pbxfw.ips.grammars import TRIGGERS as _TRIGGERS

    text = (FIXTURES / log).read_text(encoding="utf-8")
    lines = text.splitlines() + [line for line, _ in EXTRA_LINES]
    for kind in KINDS:
        recogniser = Recogniser(kind, reference=REFERENCE, tz=UTC)
        for line in lines:
            if recogniser.dispatch(line, 1) is not None:
                assert any(t in line for t in _SCAN_TRIGGERS[kind]), (kind, line)
                assert any(t in line for t in _TRIGGERS[kind]), (kind, line)


@pytest.mark.parametrize("severity", ["Warning", "Informational", "error", ""])
def test_a_failed_security_event_counts_only_with_severity_error(severity: str) -> None:
    # Asterisk writes "Error" for every failed event (main/security_events.c);
    # "Error" is also the whole-file trigger, so any other severity is not a
    # failure on any path.
    line = security_line("FailedACL", severity, "a sshd", "password mismatch NOTICE")
    for kind in (None, "asterisk_security"):
        assert Recogniser(kind, reference=REFERENCE, tz=UTC).recognise(line) is None
        assert list(Recogniser(kind, reference=REFERENCE, tz=UTC).scan_text(line)) == []
    error = security_line("FailedACL", "Error", "a", "b")
    assert Recogniser(None, reference=REFERENCE, tz=UTC).recognise(error) is not None


@settings(max_examples=300, deadline=None)
@given(
    remote=st.sampled_from(["IPV4/UDP/198.51.100.7/5060", "IPV6/TCP/2001:db8::1/5061", "x/1"]),
    tail=st.lists(
        st.tuples(st.sampled_from(["Challenge", "Response", "", "A b"]), CLIENT_TEXT), max_size=3
    ),
    end=st.sampled_from(["", " ", "\r", "\n", '"', "x"]),
)
def test_the_security_pair_in_two_matches_is_the_one_grammar(
    remote: str, tail: list[tuple[str, str]], end: str
) -> None:
    from pbxfw.ips.grammars.asterisk_parsers import (
        _SECURITY_PAIR,
        _SECURITY_PAIR_ONLY,
        _SECURITY_TAIL,
    )

    text = f'LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="{remote}"'
    text += "".join(f',{key}="{value}"' for key, value in tail) + end
    one = _SECURITY_PAIR.match(text)
    pair = _SECURITY_PAIR_ONLY.match(text)
    two = pair if pair is not None and _SECURITY_TAIL.match(text, pair.end()) else None
    assert (one is None) == (two is None)
    if one is not None and two is not None:
        assert one.group("addr") == two.group("addr")
