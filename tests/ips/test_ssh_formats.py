"""Issue 15: every OpenSSH / dropbear failure message, every common syslog prefix,
the Asterisk messages listed, and ``message repeated N times`` counted N times.

The fixtures (``fixtures/ssh_openssh``, ``ssh_dropbear``, ``ssh_prefixes``,
``asterisk_more``) are also read by ``test_recognisers.py`` with the kind
detected per line; here they are read with the kind declared, and the lines
without any syslog prefix (``fixtures/ssh_only/bare``), which only a source
declared as ssh may hold, are read too. Every line was written from the
programs' own format strings (docs/ips-formats.md); 203.0.113.66 only ever
appears in client-controlled text and must never come out.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.ips.detector import Detector, DetectorParams
from pbxfw.ips.events import Failure
from pbxfw.ips.recognisers import Recogniser, recognise_lines
from pbxfw.ips.scan import scan_file

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FORGED = "203.0.113.66"

#: fixture (without suffix) -> the kind its source is declared as.
DECLARED = {
    "ssh_openssh": "ssh",
    "ssh_dropbear": "ssh",
    "ssh_prefixes": "ssh",
    "ssh_only/bare": "ssh",
    "asterisk_more": "asterisk_messages",
}


def expected(name: str) -> dict[int, tuple[str, str]]:
    table: dict[int, tuple[str, str]] = {}
    for row in (FIXTURES / f"{name}.expected").read_text().splitlines():
        if row.strip() and not row.startswith("#"):
            number, host, jail = row.split(None, 3)[:3]
            table[int(number)] = (host, jail)
    return table


def lines_of(name: str) -> list[str]:
    return (FIXTURES / f"{name}.log").read_text(encoding="utf-8").splitlines(True)


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_declared_kind_line_by_line_and_whole_text(name: str) -> None:
    kind = DECLARED[name]
    lines = lines_of(name)
    slow = list(recognise_lines(lines, kind, file=name, reference=REFERENCE, tz=UTC))
    fast = list(Recogniser(kind, file=name, reference=REFERENCE, tz=UTC).scan_text("".join(lines)))
    assert fast == slow
    assert {f.line: (str(f.host), f.jail) for f in slow} == expected(name)
    assert all(str(f.host) != FORGED for f in slow)


def test_bare_lines_need_a_declared_source() -> None:
    # Without a syslog prefix nothing names the writer: a source whose kind
    # is detected per line never reads such a line.
    found = list(
        recognise_lines(lines_of("ssh_only/bare"), None, file="b", reference=REFERENCE, tz=UTC)
    )
    assert found == []


def test_a_bare_line_takes_the_reference_time() -> None:
    failure = Recogniser("ssh", reference=REFERENCE, tz=UTC).recognise(
        "Invalid user a from 198.51.100.232 port 1"
    )
    assert failure is not None and failure.time == REFERENCE


def test_the_reference_the_agent_moves_forward_is_the_one_the_stamps_use() -> None:
    # agent/ips.py sets recogniser.reference before each read: a bare line is
    # "now", and a year-less stamp takes its year from it.
    recogniser = Recogniser("ssh", reference=REFERENCE, tz=UTC)
    later = REFERENCE + timedelta(days=40)  # 2027-01-04
    recogniser.reference = later
    bare = recogniser.recognise("Invalid user a from 198.51.100.1 port 1")
    assert bare is not None and bare.time == later
    dated = recogniser.recognise(
        "Jan  3 10:00:00 pbx sshd[1]: Invalid user a from 198.51.100.2 port 1"
    )
    assert dated is not None and dated.time == datetime(2027, 1, 3, 10, tzinfo=UTC)


def test_another_programs_tag_is_never_a_host_name() -> None:
    # Host-less syslog lines: the token after the stamp is the tag when it
    # ends with ":", so another program's message cannot pass for sshd's.
    for line in [
        "Nov 25 11:03:17 cron[4017]: sshd[1]: Invalid user a from 203.0.113.66 port 1",
        "Nov 25 11:03:17 cron: sshd[1]: Invalid user a from 203.0.113.66 port 1",
        "<38>1 2026-11-25T11:03:18Z pbx cron 1 - - sshd 1 - - Invalid user a from"
        " 203.0.113.66 port 1",
    ]:
        for kind in ("ssh", None):
            assert Recogniser(kind, reference=REFERENCE, tz=UTC).recognise(line) is None, line


def test_dropbear_foreground_stamp_is_the_line_time() -> None:
    failure = Recogniser("ssh", reference=REFERENCE, tz=UTC).recognise(
        "[825] Nov 25 11:04:03 Bad password attempt for 'root' from 198.51.100.233:52289"
    )
    assert failure is not None
    assert failure.time == datetime(2026, 11, 25, 11, 4, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("line", "stamp"),
    [
        (
            "2026-11-25 11:03:02.344447+0200  pbx sshd[1]: Invalid user a from 198.51.100.1 port 1",
            datetime(2026, 11, 25, 9, 3, 2, 344447, tzinfo=UTC),
        ),
        (
            "<38>1 2026-11-25T07:03:04.954167-04:00 h sshd 1 - - Invalid user a from"
            " 198.51.100.1 port 1",
            datetime(2026, 11, 25, 11, 3, 4, 954167, tzinfo=UTC),
        ),
    ],
)
def test_prefix_stamps_keep_their_zone(line: str, stamp: datetime) -> None:
    failure = Recogniser(None, reference=REFERENCE, tz=UTC).recognise(line)
    assert failure is not None and failure.time == stamp


# -- message repeated N times ------------------------------------------------------

REPEATED = (
    "Nov 25 11:01:49 pbx sshd[2047]: message repeated 5 times:"
    " [ Failed password for root from 198.51.100.47 port 40047 ssh2]"
)


def test_message_repeated_counts_n() -> None:
    failure = Recogniser("ssh", reference=REFERENCE, tz=UTC).recognise(REPEATED)
    assert failure is not None
    assert (str(failure.host), failure.count) == ("198.51.100.47", 5)


def test_a_plain_line_counts_one() -> None:
    failure = Recogniser("ssh", reference=REFERENCE, tz=UTC).recognise(
        "Nov 25 11:01:45 pbx sshd[2045]: Failed password for root from 198.51.100.45 port 1 ssh2"
    )
    assert failure is not None and failure.count == 1


def test_maxretry_is_reached_by_one_repeated_line() -> None:
    params = DetectorParams(maxretry=5, findtime=600, bantime=60, bantime_max=600)
    detector = Detector(params, lambda _: False)
    failure = Recogniser("ssh", reference=REFERENCE, tz=UTC).recognise(REPEATED)
    assert failure is not None
    decisions = detector.feed(failure)
    assert [(str(d.host), d.jail, d.failures) for d in decisions] == [("198.51.100.47", "ssh", 5)]


def test_repeated_lines_add_up_with_single_ones() -> None:
    params = DetectorParams(maxretry=5, findtime=600, bantime=60, bantime_max=600)
    detector = Detector(params, lambda _: False)
    host = ipaddress.ip_address("198.51.100.47")
    t0 = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    assert detector.feed(Failure(t0, "ssh", host, "x", count=3)) == []
    assert detector.feed(Failure(t0 + timedelta(seconds=1), "ssh", host, "x")) == []
    (decision,) = detector.feed(Failure(t0 + timedelta(seconds=2), "ssh", host, "x"))
    assert decision.failures == 5


# -- scanner signs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "Unable to negotiate with 198.51.100.30 port 1: no matching key exchange method found."
        " Their offer: diffie-hellman-group1-sha1 [preauth]",
        "banner exchange: Connection from 198.51.100.30 port 1: invalid format",
        "Did not receive identification string from 198.51.100.30 port 1",
        "Bad protocol version identification 'GET / HTTP/1.1' from 198.51.100.30 port 1",
        "Received disconnect from 198.51.100.30 port 1:14: No supported authentication methods"
        " available [preauth]",
    ],
)
def test_scanner_signs_are_their_own_event(message: str) -> None:
    line = f"Nov 25 11:01:30 pbx sshd[2030]: {message}"
    failure = Recogniser("ssh", reference=REFERENCE, tz=UTC).recognise(line)
    assert failure is not None
    assert str(failure.host) == "198.51.100.30"
    assert failure.event.startswith("ssh scanner: ")


def test_a_connection_end_counts_only_when_nothing_else_did() -> None:
    lines = [
        "Nov 25 11:01:45 pbx sshd[2045]: Failed password for root from 198.51.100.45 port 1 ssh2",
        "Nov 25 11:01:46 pbx sshd[2045]: Connection closed by authenticating user root"
        " 198.51.100.45 port 1 [preauth]",
        "Nov 25 11:01:47 pbx sshd[2046]: Connection closed by authenticating user root"
        " 198.51.100.45 port 2 [preauth]",
    ]
    found = list(recognise_lines(lines, "ssh", file="a", reference=REFERENCE, tz=UTC))
    assert [f.line for f in found] == [1, 3]


# -- forged client fields, property-tested -----------------------------------------

REAL = "198.51.100.80"
#: Messages whose client part (a user name, never with a colon; a description
#: or an offer, any text) comes before or after sshd's address field.
CLIENT_FORMS = [
    "Received disconnect from invalid user {user} {addr} port 58946:3: {text}: Auth fail [preauth]",
    "Received disconnect from authenticating user {user} {addr} port 58946:14: No supported"
    " authentication methods available [preauth]",
    "Disconnecting invalid user {user} {addr} port 58946: Change of username or service not"
    " allowed: ({user},ssh-connection) -> (b,{text}) [preauth]",
    "Connection closed by invalid user {user} {addr} port 58946 [preauth]",
    "Disconnected from authenticating user {user} {addr} port 58946 [preauth]",
    "Postponed keyboard-interactive/pam for invalid user {user} from {addr} port 58946 ssh2"
    " [preauth]",
    "User {user} from {addr} not allowed because not listed in AllowUsers",
    "Unable to negotiate with {addr} port 58946: no matching MAC found. Their offer: {text}",
    "Bad protocol version identification '{text}' from {addr} port 58946",
]
NO_COLON = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=":"),
    max_size=30,
)
ANY = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30)
FORGERY = st.sampled_from(
    [
        "",
        f" {FORGED} port 1",
        f" from {FORGED} port 1 ssh2 [preauth]",
        f"{FORGED} port 2 [preauth]",
        f" {FORGED} port 3: Too many authentication failures",
        f"' from {FORGED} port 4",
        f" 3: x: Auth fail from {FORGED}",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    form=st.sampled_from(CLIENT_FORMS),
    user=NO_COLON,
    user_forgery=FORGERY.filter(lambda f: ":" not in f),
    text=ANY,
    text_forgery=FORGERY,
    addr=st.sampled_from([REAL, "2001:db8::80"]),
)
def test_a_forged_client_field_never_moves_the_address(
    form: str, user: str, user_forgery: str, text: str, text_forgery: str, addr: str
) -> None:
    body = form.format(user=user + user_forgery, addr=addr, text=text + text_forgery)
    line = f"Nov 25 11:04:52 pbx sshd[2737]: {body}"
    for kind in ("ssh", None):
        failure = Recogniser(kind, reference=REFERENCE, tz=UTC).recognise(line)
        assert failure is not None and str(failure.host) == addr, line


@pytest.mark.parametrize("workers", [2, 3, 5])
@pytest.mark.parametrize("name", ["ssh_only/bare", "ssh_openssh", "ssh_dropbear"])
def test_a_parallel_scan_of_a_declared_ssh_source_equals_the_serial_one(
    name: str, workers: int
) -> None:
    path = FIXTURES / f"{name}.log"
    serial = list(scan_file(path, reference=REFERENCE, kind="ssh", tz=UTC, workers=1))
    assert serial
    assert list(scan_file(path, reference=REFERENCE, kind="ssh", tz=UTC, workers=workers)) == serial
    # The counts of "message repeated" lines cross the workers too.
    assert sum(f.count for f in serial) >= len(serial)


def _chan_sip_attempt(second: int) -> tuple[str, str]:
    """One failed chan_sip INVITE as Asterisk 18 writes it: the NOTICE of
    send_check_user_failure_response (From header only) in ``messages`` and
    the SecurityEvent of sip_report_security_event in ``security_log``."""
    stamp = f"[2026-11-25 11:07:{second:02d}]"
    notice = (
        f'{stamp} NOTICE[1638][C-0000002{second}] chan_sip.c: Failed to authenticate device "{FORGED}"'
        f" <sip:100@{FORGED}>;tag=a{second} for INVITE, code = -1\n"
    )
    security = (
        f'{stamp} SECURITY[1630] res_security_log.c: SecurityEvent="InvalidPassword",'
        f'EventTV="2026-11-25T11:07:{second:02d}.100+0000",Severity="Error",Service="SIP",'
        f'EventVersion="2",AccountID="100",SessionID="0x7f3c2c0{second}",'
        'LocalAddress="IPV4/UDP/192.0.2.10/5060",RemoteAddress="IPV4/UDP/198.51.100.190/5072",'
        'Challenge="41d26de5",ReceivedChallenge="41d26de5",ReceivedHash="7a6a3a2e"\n'
    )
    return notice, security


def test_a_chan_sip_invite_failure_counts_once_at_the_real_address() -> None:
    # The agent reads messages and security_log with one recogniser each; the
    # NOTICE names only the From header and yields nothing, the SecurityEvent
    # of the same attempt counts it: three attempts are three failures.
    params = DetectorParams(maxretry=3, findtime=600, bantime=60, bantime_max=600)
    detector = Detector(params, lambda _: False)
    messages = Recogniser("asterisk_messages", file="messages", reference=REFERENCE, tz=UTC)
    security = Recogniser("asterisk_security", file="security", reference=REFERENCE, tz=UTC)
    decisions = []
    for second in (1, 2, 3):
        notice, event = _chan_sip_attempt(second)
        assert messages.recognise(notice) is None
        failure = security.recognise(event)
        assert failure is not None
        assert (str(failure.host), failure.event) == (
            "198.51.100.190",
            "SecurityEvent InvalidPassword (SIP)",
        )
        decisions += detector.feed(failure)
    assert [(str(d.host), d.jail, d.failures) for d in decisions] == [
        ("198.51.100.190", "asterisk", 3)
    ]
