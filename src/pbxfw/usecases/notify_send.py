"""Delivering one notification to one channel: a webhook POST (httpx) or an e-mail (smtplib).

:func:`deliver` returns when the channel took the message and raises
:class:`DeliveryError` (one line, secrets masked) when it did not: a refused
connection, a timeout, an HTTP status that is not 2xx, an SMTP refusal, a
server without STARTTLS where it is required, a certificate not trusted.
It makes one attempt; retrying is the caller's (agent.notifier).
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from pbxfw.domain.notifications import Channel, mail_target, masked
from pbxfw.domain.notify_messages import Message, mail_text, webhook_body
from pbxfw.errors import PbxfwError

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_TIMEOUT", "DeliveryError", "deliver", "webhook_client"]

#: Seconds one attempt may take (connect, send, answer).
DEFAULT_TIMEOUT = 10.0


class DeliveryError(PbxfwError):
    """The channel did not take the message (CLI exit 7, HTTP 502)."""

    exit_code = 7


def webhook_client() -> httpx.Client:
    """An HTTP client to keep for many deliveries: its TLS context (the CA
    bundle) is loaded once, when it is made, not at every message."""
    import httpx

    return httpx.Client(headers={"User-Agent": "pbxfw"}, follow_redirects=False)


def deliver(
    channel: Channel,
    message: Message,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    client: httpx.Client | None = None,
) -> None:
    """Send ``message`` through ``channel`` once (see the module docstring);
    a webhook through ``client`` when given (else a client made for this call)."""
    try:
        if channel.kind == "email":
            _mail(channel, message, timeout)
        elif client is not None:
            _post(client, channel, message, timeout)
        else:
            with webhook_client() as made:
                _post(made, channel, message, timeout)
    except DeliveryError:
        raise
    except TimeoutError:
        raise DeliveryError(f"timed out after {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise DeliveryError(f"TLS: {exc.reason or exc}") from None
    except smtplib.SMTPException as exc:
        raise DeliveryError(_clean(f"SMTP: {exc}", channel)) from None
    except OSError as exc:
        where = ""
        if channel.kind == "email":
            target = mail_target(channel.url)
            where = f"{target.host}:{target.port}: "
        raise DeliveryError(_clean(where + (exc.strerror or str(exc)), channel)) from None


def _clean(text: str, channel: Channel) -> str:
    """One line, the channel's secrets masked, bounded."""
    text = " ".join(text.replace(channel.url, masked(channel.url)).split())
    return text if len(text) <= 300 else text[:299] + "…"


def _post(client: httpx.Client, channel: Channel, message: Message, timeout: float) -> None:
    import httpx

    body = webhook_body(channel.template, message)
    try:
        response = client.post(channel.url, json=body, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryError(f"timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(_clean(f"{type(exc).__name__}: {exc}", channel)) from None
    if not 200 <= response.status_code < 300:
        answer = " ".join(response.text.split())[:120]
        raise DeliveryError(
            _clean(f"HTTP {response.status_code}" + (f": {answer}" if answer else ""), channel)
        )


def _mail(channel: Channel, message: Message, timeout: float) -> None:
    target = mail_target(channel.url)
    subject, body = mail_text(message)
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = target.sender
    mail["To"] = ", ".join(target.recipients)
    mail["Date"] = formatdate(message.time, localtime=False, usegmt=True)
    mail["Message-ID"] = make_msgid("pbxfw")
    mail["X-Pbxfw-Event"] = message.event
    mail.set_content(body)
    context = ssl.create_default_context(cafile=target.cafile)
    server: smtplib.SMTP
    if target.tls == "ssl":
        server = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout, context=context)
    else:
        server = smtplib.SMTP(target.host, target.port, timeout=timeout)
    with server:
        server.ehlo()
        if target.tls == "starttls":
            if not server.has_extn("starttls"):
                raise DeliveryError(
                    f"{target.host}:{target.port} does not offer STARTTLS; use smtps:// "
                    "(port 465), or tls=none for a relay on this host"
                )
            server.starttls(context=context)
            server.ehlo()
        if target.user:
            server.login(target.user, target.password or "")
        server.send_message(mail)
