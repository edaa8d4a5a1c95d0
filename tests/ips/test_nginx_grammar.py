"""nginx: the client address nginx wrote is counted, whatever the client puts in
the user name, request line, Host or Referer (issue 13, item 9)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.ips.recognisers import Recogniser, detect_kind

REFERENCE = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
REAL = "198.51.100.61"
FORGED = "1.1.1.1"
#: What a guesser puts in a field to forge nginx's client field.
FORGERY = f'x", client: {FORGED}, server: pbx, request: "GET / HTTP/1.1'
FIELDS = ("user", "request", "host", "referrer")


def nginx_line(
    *,
    user: str = "admin",
    request: str = "GET /admin HTTP/1.1",
    host: str = "pbx",
    referrer: str = "https://pbx/",
    message: str = "mismatch",
    client: str = REAL,
) -> str:
    """The line nginx writes (ngx_http_auth_basic_module + ngx_http_log_error_handler).

    nginx splits the decoded "user:password" at the first colon, so the user
    name it logs is what the client sent up to its first colon.
    """
    user = user.split(":", 1)[0]
    text = (
        f'user "{user}": password mismatch'
        if message == "mismatch"
        else f'user "{user}" was not found in "/etc/nginx/.htpasswd"'
    )
    return (
        f"2026/11/25 11:30:01 [error] 2865#0: *66648 {text}, client: {client}, server: pbx,"
        f' request: "{request}", host: "{host}", referrer: "{referrer}"'
    )


def counted(line: str, kind: str | None = "web") -> str | None:
    failure = Recogniser(kind, reference=REFERENCE, tz=UTC).recognise(line)
    return None if failure is None else str(failure.host)


@pytest.mark.parametrize("message", ["mismatch", "not found"])
@pytest.mark.parametrize(
    "forged",
    [combo for n in range(1, 5) for combo in itertools.combinations(FIELDS, n)],
    ids="+".join,
)
def test_a_forged_client_in_any_client_field_is_never_counted(
    forged: tuple[str, ...], message: str
) -> None:
    fields = {name: FORGERY for name in forged}
    line = nginx_line(message=message, **fields)
    assert f"client: {FORGED}" in line or forged == ("user",)
    for kind in ("web", None):  # the agent's kind, and `pbxfw ips scan`'s detection
        assert counted(line, kind) == REAL


@pytest.mark.parametrize("field", FIELDS)
def test_every_client_field_forging_the_client_still_counts(field: str) -> None:
    # The whole forged context, the text a guesser would use to hide.
    forgery = f"x, client: {FORGED}, server: pbx, "
    assert counted(nginx_line(**{field: forgery})) == REAL


def test_a_user_name_nginx_cannot_write_never_yields_the_forged_address() -> None:
    # A colon ends nginx's user name, so this line is not one nginx writes;
    # whatever it yields, it is never the forged address.
    line = (
        f'2026/11/25 11:30:00 [error] 1#0: *1 user "x", client: {FORGED}, server: a": password'
        f' mismatch, client: {REAL}, server: pbx, request: "GET / HTTP/1.1", host: "pbx"'
    )
    assert counted(line) in (None, REAL)


def test_client_text_cannot_change_the_kind_of_an_nginx_line() -> None:
    line = nginx_line(host="NOTICE SECURITY SecurityEvent= sshd")
    assert detect_kind(line) == "web"
    assert counted(line, None) == REAL


def test_other_nginx_errors_are_not_failures() -> None:
    line = (
        '2026/11/25 11:30:04 [error] 30708#0: *5 open() "/usr/share/nginx/html/user "x": password'
        f' mismatch" failed (2: No such file or directory), client: {REAL}, server: pbx,'
        ' request: "GET /favicon.ico HTTP/1.1", host: "pbx"'
    )
    assert counted(line) is None


CLIENT_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60
)
INJECTED = st.sampled_from(
    ["", FORGERY, f", client: {FORGED}, server: ", '"', ": password mismatch"]
)


@settings(max_examples=300, deadline=None)
@given(
    user=CLIENT_TEXT.filter(lambda u: u.split(":", 1)[0] != ""),
    request=CLIENT_TEXT,
    host=CLIENT_TEXT,
    referrer=CLIENT_TEXT,
    inject=st.tuples(INJECTED, INJECTED, INJECTED, INJECTED),
    message=st.sampled_from(["mismatch", "not found"]),
    client=st.sampled_from([REAL, "2001:db8::62"]),
)
def test_any_client_text_counts_the_real_client(
    user: str,
    request: str,
    host: str,
    referrer: str,
    inject: tuple[str, str, str, str],
    message: str,
    client: str,
) -> None:
    line = nginx_line(
        user=user + inject[0],
        request=request + inject[1],
        host=host + inject[2],
        referrer=referrer + inject[3],
        message=message,
        client=client,
    )
    assert counted(line) == client
