"""The SIP header reader of the fingerprint check (pbxfw.ips.sip): strict, bounded, never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.ips.sip import MAX_BYTES, MAX_HEADERS, request_headers

UA = frozenset({"user-agent", "from"})

# What sipvicious 0.3.8 svmap sends (sipvicious/libs/svhelper.py makeRequest).
SVMAP = (
    b"OPTIONS sip:100@203.0.113.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 203.0.113.11:5060;branch=z9hG4bK-1;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "sipvicious"<sip:100@1.1.1.1>\r\n'
    b'From: "sipvicious"<sip:100@1.1.1.1>;tag=6331\r\n'
    b"User-Agent: friendly-scanner\r\n"
    b"Call-ID: 1234\r\n"
    b"Contact: sip:100@203.0.113.11:5060\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Accept: application/sdp\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_reads_the_wanted_headers_of_a_scanners_request() -> None:
    assert request_headers(SVMAP, UA) == {
        "user-agent": "friendly-scanner",
        "from": '"sipvicious"<sip:100@1.1.1.1>;tag=6331',
    }


def test_compact_forms_bare_lf_folding_and_repeats() -> None:
    data = b"REGISTER sip:x SIP/2.0\nf: <sip:a@b>\nUser-Agent: Foo\n  Bar\nuser-agent: Baz\n\nbody"
    assert request_headers(data, UA) == {"from": "<sip:a@b>", "user-agent": "Foo Bar, Baz"}


def test_not_a_request_is_none() -> None:
    for data in (
        b"SIP/2.0 200 OK\r\nUser-Agent: friendly-scanner\r\n\r\n",  # a response
        b"hello",
        b"",
        b"OPTIONS sip:x SIP/3.0\r\nUser-Agent: a\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\n User-Agent: a\r\n\r\n",  # continuation of nothing
        b"OPTIONS sip:x SIP/2.0\r\nUser Agent: a\r\n\r\n",  # a space in the name
        b"OPTIONS sip:x SIP/2.0\r\nno colon here\r\n\r\n",
    ):
        assert request_headers(data, UA) is None, data


def test_bounded_a_header_past_the_limits_is_not_read() -> None:
    many = b"".join(b"X-%d: y\r\n" % i for i in range(MAX_HEADERS + 5))
    late = b"OPTIONS sip:x SIP/2.0\r\n" + many + b"User-Agent: friendly-scanner\r\n\r\n"
    assert request_headers(late, UA) == {}
    far = b"OPTIONS sip:x SIP/2.0\r\nX-Pad: " + b"a" * MAX_BYTES + b"\r\nUser-Agent: s\r\n\r\n"
    assert request_headers(far, UA) == {}


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_never_raises_on_any_bytes(data: bytes) -> None:
    result = request_headers(data, UA)
    assert result is None or isinstance(result, dict)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["User-Agent", "From", "f", "Via", "X-\u00e9", "Bad Name", ""]),
            st.text(max_size=40),
        ),
        max_size=12,
    ),
    st.sampled_from(["\r\n", "\n"]),
)
def test_never_raises_on_request_shaped_input(headers: list[tuple[str, str]], eol: str) -> None:
    text = "INVITE sip:100@x SIP/2.0" + eol + "".join(f"{k}: {v}{eol}" for k, v in headers)
    result = request_headers(text.encode("utf-8", "surrogatepass"), UA)
    assert result is None or isinstance(result, dict)
