"""Delivering notifications to real receivers: a local HTTP server (each template's
JSON) and aiosmtpd on loopback (STARTTLS with a test CA and AUTH; TLS from the
start); the failures come back as one line, secrets masked."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from pbxfw.domain.bans import Ban
from pbxfw.domain.notifications import Channel, email_url
from pbxfw.domain.notify_messages import BanBatch, Message, probe_message
from pbxfw.usecases.notify_send import DeliveryError, deliver
from tests.notify_servers import (
    MAIL_PASSWORD,
    MAIL_USER,
    Certs,
    Mailbox,
    Receiver,
    certs,
    receiver,
    smtp_ssl,
    smtp_starttls,
)

__all__ = ["certs", "receiver", "smtp_ssl", "smtp_starttls"]  # the fixtures, used by name


def _bans_message() -> Message:
    batch = BanBatch()
    batch.add(_bans())
    return batch.message(1_765_000_000.0, "default", "pbx-a", 1)


def _bans() -> list[Ban]:
    from pbxfw.domain.addresses import parse_subnet

    return [
        Ban(parse_subnet(a), jail, frozenset({"sip"}), "r", 0.0, 9e9, failures=n)
        for a, jail, n in (("203.0.113.7", "asterisk", 12), ("203.0.113.8", "ssh", 5))
    ]


@pytest.mark.parametrize("template", ["generic", "slack", "mattermost", "discord"])
def test_each_template_posts_its_json(receiver: Receiver, template: str) -> None:
    message = _bans_message()
    deliver(Channel("hook", receiver.url + "/hook", template), message, timeout=5)
    [body] = receiver.wait(1)
    assert receiver.paths == ["/hook"]
    if template == "generic":
        assert body["event"] == "bans" and body["id"] == message.id
        assert body["details"]["count"] == 2
        assert body["details"]["top_sources"][0] == {
            "source": "203.0.113.7",
            "failures": 12,
            "jail": "asterisk",
        }
        assert body["site"] == "default" and body["node"] == "pbx-a"
        assert body["time"] == "2025-12-06T05:46:40Z"
    else:
        key = "content" if template == "discord" else "text"
        assert "2 new bans on pbx-a" in body[key] and "203.0.113.7" in body[key]
        assert set(body) == ({key, "username"} if template != "slack" else {"text"})


def test_a_refusing_or_hanging_webhook_is_an_error(receiver: Receiver) -> None:
    channel = Channel("hook", receiver.url + "/T0123456789abcdefXYZ", "generic")
    receiver.status = 500
    with pytest.raises(DeliveryError, match="HTTP 500"):
        deliver(channel, probe_message("hook", time.time(), "default", "n"), timeout=5)
    receiver.hang = True
    start = time.monotonic()
    with pytest.raises(DeliveryError, match=r"timed out after 0\.5 s"):
        deliver(channel, probe_message("hook", time.time(), "default", "n"), timeout=0.5)
    assert time.monotonic() - start < 3
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(DeliveryError) as refused:
        deliver(
            Channel("x", f"http://127.0.0.1:{closed}/T0123456789abcdefXYZ", "generic"),
            probe_message("x", time.time(), "default", "n"),
            timeout=2,
        )
    assert "T0123456789abcdefXYZ" not in str(refused.value)


def _mail_url(box: Mailbox, certs: Certs, **kw: object) -> str:
    return email_url(
        "127.0.0.1",
        ["admin@example.com", "noc@example.com"],
        port=box.port,
        user=MAIL_USER,
        password=MAIL_PASSWORD,
        sender="pbxfw@pbx.example.com",
        cafile=str(certs.ca),
        **kw,  # type: ignore[arg-type]
    )


def test_mail_over_starttls_with_auth(smtp_starttls: Mailbox, certs: Certs) -> None:
    url = _mail_url(smtp_starttls, certs)
    assert url.startswith("smtp://pbx:s3cret%3Apass%2Fword@127.0.0.1:")
    message = _bans_message()
    deliver(Channel("mail", url, "email"), message, timeout=5)
    [mail] = smtp_starttls.wait(1)
    assert smtp_starttls.logins == [MAIL_USER] and smtp_starttls.secure == [True]
    assert smtp_starttls.recipients == [["admin@example.com", "noc@example.com"]]
    assert mail["Subject"] == "[pbxfw default/pbx-a] 2 new bans on pbx-a"
    assert mail["From"] == "pbxfw@pbx.example.com"
    assert mail["X-Pbxfw-Event"] == "bans"
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    assert "2 new bans (asterisk 1, ssh 1)." in text and "203.0.113.7 (asterisk, 12" in text


def test_mail_over_tls_from_the_start(smtp_ssl: Mailbox, certs: Certs) -> None:
    url = _mail_url(smtp_ssl, certs, tls="ssl")
    assert url.startswith("smtps://")
    deliver(Channel("mail", url, "email"), probe_message("mail", time.time(), "s", "n"), timeout=5)
    [mail] = smtp_ssl.wait(1)
    assert smtp_ssl.logins == [MAIL_USER]
    assert smtp_ssl.secure == [True] and "Test message for channel mail" in str(mail["Subject"])


def test_mail_refusals_are_clear(smtp_starttls: Mailbox, certs: Certs, tmp_path: Path) -> None:
    message = probe_message("mail", time.time(), "s", "n")
    wrong = _mail_url(smtp_starttls, certs).replace("s3cret", "wrong")
    with pytest.raises(DeliveryError, match="SMTP") as refused:
        deliver(Channel("mail", wrong, "email"), message, timeout=5)
    assert "wrong" not in str(refused.value)
    # Without the test CA the server's certificate is not trusted.
    untrusted = _mail_url(smtp_starttls, certs).split("&cafile=")[0]
    with pytest.raises(DeliveryError, match=r"TLS|certificate"):
        deliver(Channel("mail", untrusted, "email"), message, timeout=5)
    assert smtp_starttls.messages == []
