"""sshd: the address is anchored to sshd's own format for every message read
(issue 13, item 2), and the lines sshd and PAM write for one attempt count
once (item 3)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.ips.detector import Detector, DetectorParams
from pbxfw.ips.events import Failure
from pbxfw.ips.grammars.ssh_rules import _failed_other_reading
from pbxfw.ips.recognisers import SSH_ATTEMPT_SECONDS, Recogniser

REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REAL = "198.51.100.80"
FORGED = "10.10.1.2"


def counted(line: str, kind: str | None = "ssh") -> str | None:
    failure = Recogniser(kind, reference=REFERENCE, tz=UTC).recognise(line)
    return None if failure is None else str(failure.host)


def syslog(body: str, pid: int = 2737, prog: str = "sshd", second: int = 52) -> str:
    return f"Nov 25 11:04:{second:02d} pbx {prog}[{pid}]: {body}"


# -- item 2: anchoring -------------------------------------------------------------------

#: Each message the recogniser reads, as OpenSSH's format strings write it,
#: with {user} (client text: never a colon, auth2.c cuts "user:style") and
#: {info} (auth info after "ssh2: ", client-influenced).
FORMATS = [
    "Failed password for invalid user {user} from {addr} port 58946 ssh2",
    "Failed password for {user} from {addr} port 58946 ssh2",
    "Failed publickey for invalid user {user} from {addr} port 58946 ssh2: {info}",
    "Failed hostbased for {user} from {addr} port 58946 ssh2: {info}",
    "Failed keyboard-interactive/pam for invalid user {user} from {addr} port 58946 ssh2",
    "Failed none for invalid user {user} from {addr} port 58946 ssh2",
    "Invalid user {user} from {addr} port 58946",
    "error: maximum authentication attempts exceeded for invalid user {user} from {addr}"
    " port 58946 ssh2 [preauth]",
    "Disconnecting invalid user {user} {addr} port 58946: Too many authentication failures"
    " [preauth]",
    "Disconnecting authenticating user {user} {addr} port 58946: Too many authentication"
    " failures [preauth]",
    "error: PAM: Authentication failure for illegal user {user} from {addr}",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser="
    " rhost={addr}  user={user}",
    # issue 15: the other messages of docs/ips-formats.md with a client part.
    "User {user} from {addr} not allowed because listed in DenyUsers",
    "User {user} from {addr} not allowed because none of user's groups are listed in AllowGroups",
    "error: PAM: User not known to the underlying authentication module for illegal user {user}"
    " from {addr}",
    "error: PAM: authentication error for {user} from {addr}",
    "Postponed keyboard-interactive for invalid user {user} from {addr} port 58946 ssh2 [preauth]",
    "Connection closed by authenticating user {user} {addr} port 58946 [preauth]",
    "Connection reset by invalid user {user} {addr} port 58946 [preauth]",
    "Disconnected from invalid user {user} {addr} port 58946 [preauth]",
    "Disconnecting invalid user {user} {addr} port 58946: Change of username or service not"
    " allowed: ({user},ssh-connection) -> (a,{info}) [preauth]",
    "Received disconnect from invalid user {user} {addr} port 58946:3: {info}: Auth fail [preauth]",
    "Received disconnect from {addr} port 58946:14: No supported authentication methods"
    " available [preauth]",
    "Unable to negotiate with {addr} port 58946: no matching cipher found. Their offer: {info}"
    " [preauth]",
    "message repeated 3 times: [ Failed password for invalid user {user} from {addr} port 58946"
    " ssh2]",
    "message repeated 2 times: [ Invalid user {user} from {addr} port 58946]",
]
INJECTIONS = [
    "test",
    f"test from {FORGED} port 55555 ssh2",
    f"from {FORGED}",
    f"test {FORGED} port 55555",
    f"x from {FORGED} port 1 ssh2 [preauth]",
]
INFO = [
    "RSA SHA256:v3dpapGleDaUKf4V1vKyR9ZyUgjaJAmoCTcb2PLljI",
    f"from {FORGED} port 55555 ssh2",
    f"RSA SHA256:x ID from {FORGED} port 1 ssh2: (serial 1) CA RSA SHA256:y",
    f'RSA 8c:e3, client user "x from {FORGED} port 2 ssh2", client host "{FORGED}"',
]


@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("user", INJECTIONS)
@pytest.mark.parametrize("info", INFO)
@pytest.mark.parametrize("addr", [REAL, "2001:db8::80", "::ffff:198.51.100.80"])
def test_every_message_counts_sshds_address_whatever_the_user_and_info(
    form: str, user: str, info: str, addr: str
) -> None:
    line = syslog(form.format(user=user, addr=addr, info=info))
    expected = REAL if addr.startswith("::ffff:") else addr
    if form.startswith("pam_unix"):
        expected = expected if addr == REAL or addr == "2001:db8::80" else REAL
    for kind in ("ssh", None):
        assert counted(line, kind) == expected, line


def test_the_issue_line() -> None:
    line = syslog(
        f"Failed password for invalid user test from 127.0.0.1 port 58946 ssh2: from {FORGED}"
        " port 55555 ssh2"
    )
    assert counted(line) == "127.0.0.1"


def test_a_method_name_with_spaces_is_not_sshds_and_is_not_read() -> None:
    # The method of a failed request is logged as the client sent it.
    line = syslog(
        f"Failed x for invalid user a from {FORGED} port 1 ssh2: y for invalid user b from"
        f" {REAL} port 2 ssh2"
    )
    assert counted(line) is None  # two readings: not counted
    line = syslog(f"Failed a:b for invalid user a from {REAL} port 2 ssh2: from {FORGED} port 1")
    assert counted(line) is None


def test_solaris_prefix() -> None:
    line = syslog(
        f"[ID 800047 auth.info] Failed keyboard-interactive for x from {REAL} port 1 ssh2"
    )
    assert counted(line) == REAL


NO_COLON_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters=":"),
    max_size=40,
)
ANY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40
)
FRAGMENT = st.sampled_from(
    ["", f" from {FORGED} port 55555 ssh2", f"from {FORGED}", f" {FORGED} port 1", " ssh2", ": "]
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["password", "publickey", "keyboard-interactive/pam", "none", "x"]),
    user=NO_COLON_TEXT,
    user_fragment=FRAGMENT.filter(lambda f: ":" not in f),
    info=ANY_TEXT,
    info_fragment=FRAGMENT,
    with_info=st.booleans(),
    invalid=st.booleans(),
)
def test_no_user_or_auth_info_moves_the_failed_address(
    method: str,
    user: str,
    user_fragment: str,
    info: str,
    info_fragment: str,
    with_info: bool,
    invalid: bool,
) -> None:
    tail = f": {info}{info_fragment}" if with_info else ""
    who = "invalid user " if invalid else ""
    line = syslog(
        f"Failed {method} for {who}{user}{user_fragment} from {REAL} port 5555 ssh2{tail}"
    )
    assert counted(line) == REAL


@settings(max_examples=300, deadline=None)
@given(
    head=st.sampled_from(["password", "publickey", "x", "gssapi-with-mic", ""]),
    middle=ANY_TEXT,
    tail=ANY_TEXT,
    user=NO_COLON_TEXT,
    preauth=st.booleans(),
)
def test_no_method_name_gets_a_forged_address_counted(
    head: str, middle: str, tail: str, user: str, preauth: bool
) -> None:
    # A request with a method sshd does not know is logged with the method
    # as the client sent it, and without auth info.
    method = f"{head}{middle} for invalid user a from {FORGED} port 1 ssh2: {tail}"
    suffix = " [preauth]" if preauth else ""
    line = syslog(f"Failed {method} for invalid user {user} from {REAL} port 2 ssh2{suffix}")
    assert counted(line) in (None, REAL)


# -- item 3: one attempt, one count --------------------------------------------------------


def pam(host: str = REAL, pid: int = 4242, second: int = 1) -> str:
    return syslog(
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser="
        f" rhost={host}  user=root",
        pid=pid,
        second=second,
    )


def failed(host: str = REAL, pid: int = 4242, second: int = 3, method: str = "password") -> str:
    return syslog(f"Failed {method} for root from {host} port 50000 ssh2", pid=pid, second=second)


def recognised(lines: list[str], chunks: int = 1) -> list[Failure]:
    """Lines fed as the agent does: one recogniser, the text in ``chunks`` chunks of whole lines."""
    recogniser = Recogniser("ssh", reference=REFERENCE, tz=UTC)
    found: list[Failure] = []
    size = max(1, -(-len(lines) // chunks))
    for start in range(0, len(lines), size):
        text = "".join(line + "\n" for line in lines[start : start + size])
        found += recogniser.scan_text(text, start + 1)
    return found


@pytest.mark.parametrize("chunks", [1, 2, 6])
def test_a_pam_line_and_its_failed_line_count_once(chunks: int) -> None:
    lines = [pam(second=1), failed(second=3)] * 3
    found = recognised(lines, chunks)
    assert [f.line for f in found] == [1, 3, 5]
    assert all(f.event == "ssh PAM authentication failure" for f in found)


def test_ban_comes_at_maxretry_attempts_not_half() -> None:
    detector = Detector(DetectorParams(maxretry=4), lambda host: False)
    attempts = []
    for n in range(4):
        attempts += [pam(second=10 * n), failed(second=10 * n + 2)]
    bans = [d for f in recognised(attempts, chunks=8) for d in detector.feed(f)]
    assert len(bans) == 1
    assert bans[0].failures == 4
    # Three attempts (six lines) are not enough.
    detector = Detector(DetectorParams(maxretry=4), lambda host: False)
    assert not [d for f in recognised(attempts[:6]) for d in detector.feed(f)]


def test_a_pam_line_alone_still_counts() -> None:
    found = recognised([pam(second=1), pam(second=5), failed(second=7)])
    assert len(found) == 2  # two attempts: the second PAM line pairs with the Failed one


def test_a_failed_line_alone_still_counts() -> None:
    assert len(recognised([failed(second=1), failed(second=5)])) == 2


def test_lines_of_other_processes_hosts_or_methods_are_other_attempts() -> None:
    assert len(recognised([pam(pid=1), failed(pid=2)])) == 2  # password: same process
    assert len(recognised([pam(host="198.51.100.81"), failed()])) == 2
    assert len(recognised([pam(), failed(method="publickey")])) == 2
    late = 1 + SSH_ATTEMPT_SECONDS + 1
    assert len(recognised([pam(second=1), failed(second=late)])) == 2


def test_keyboard_interactive_runs_pam_in_a_child_process() -> None:
    lines = [
        pam(pid=4243, second=1),
        syslog(f"error: PAM: Authentication failure for root from {REAL}", pid=4242, second=3),
        failed(method="keyboard-interactive/pam", second=3),
    ]
    assert len(recognised(lines)) == 1


def test_max_attempts_and_its_disconnect_count_once() -> None:
    lines = [
        syslog(
            f"error: maximum authentication attempts exceeded for root from {REAL} port 1 ssh2"
            " [preauth]"
        ),
        syslog(
            f"Disconnecting authenticating user root {REAL} port 1: Too many authentication"
            " failures [preauth]"
        ),
    ]
    assert len(recognised(lines)) == 1


def test_the_attempts_state_is_bounded() -> None:
    recogniser = Recogniser("ssh", reference=REFERENCE, tz=UTC)
    text = "".join(pam(host=f"2001:db8::{n:x}", second=n % 60) + "\n" for n in range(20000))
    assert len(list(recogniser.scan_text(text))) == 20000
    attempts = recogniser.ssh_attempts
    assert attempts is not None
    assert len(attempts._hosts) <= attempts.MAX_HOSTS


OTHER_READING_PARTS = [
    "for ",
    " for ",
    "for",
    " from ",
    "1.2.3.4",
    "::1",
    " port ",
    "5",
    " ssh2",
    ":",
    " ",
    " [preauth]",
    "x",
    "from",
    "  ",
]
_OTHER_READING_GRAMMAR = re.compile(
    r"(?:.* )?for [^:]* from [0-9A-Fa-f:.]+ port \d+ ssh[12](?: \[preauth\])?\s*$"
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.sampled_from(OTHER_READING_PARTS),
        max_size=12,
    )
)
def test_the_other_reading_check_is_its_grammar_in_linear_time(parts: list[str]) -> None:
    info = "".join(parts)
    assert _failed_other_reading(info) == bool(_OTHER_READING_GRAMMAR.match(info))
