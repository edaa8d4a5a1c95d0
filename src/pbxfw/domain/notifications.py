"""Notification channels (issue 19): where the agent tells an administrator what happened.

A channel has a name (1–64 printable characters, unique in its site) and a
target, one URL:

- ``http://`` / ``https://``: a webhook, sent a JSON POST shaped by its
  ``template`` (``generic``, ``slack``, ``mattermost``, ``discord``;
  domain.notify_messages);
- ``smtp://`` / ``smtps://``: e-mail, ``smtp://USER:PASS@HOST:PORT?to=a@b,c@d&from=x@y``.
  ``smtps://`` (or port 465) speaks TLS from the start; ``smtp://`` (port
  587 unless given) requires STARTTLS, unless ``tls=none`` is given (a local
  relay on loopback); ``cafile=PATH`` trusts that CA for the server's
  certificate (a private CA). ``to`` is required, ``from`` defaults to
  ``pbxfw@HOST``. The template of an e-mail channel is ``email``.

A target's secrets (the password of its user part, token-like path
segments of a webhook such as Slack's or Discord's, every query value but an
e-mail's ``to``/``from``/``tls``/``cafile``) are never shown back:
:func:`masked` gives the text every listing shows. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pbxfw.domain.network_model import name_key, validate_name
from pbxfw.errors import ConflictError, FieldError, ValidationError

__all__ = [
    "EMAIL",
    "MASK",
    "TEMPLATES",
    "WEBHOOK_TEMPLATES",
    "Channel",
    "ChannelStatus",
    "MailTarget",
    "channel_json",
    "email_url",
    "mail_target",
    "masked",
    "validate_channel",
]

#: The templates of a webhook channel; ``generic`` is pbxfw's own JSON body.
WEBHOOK_TEMPLATES = ("generic", "slack", "mattermost", "discord")
#: The template of an e-mail channel.
EMAIL = "email"
TEMPLATES = (*WEBHOOK_TEMPLATES, EMAIL)
#: What a secret is shown as.
MASK = "****"

_MAIL_SCHEMES = ("smtp", "smtps")
_MAIL_OPTIONS = ("to", "from", "tls", "cafile")
_ADDRESS = re.compile(r"[^@\s,<>]+@[^@\s,<>]+")
#: A path segment that looks like a token: long, letters and digits mixed.
_TOKEN = re.compile(r"(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-]{12,}")


@dataclass(frozen=True, slots=True)
class Channel:
    """A stored channel; ``url`` holds its secrets (never shown: see :func:`masked`)."""

    name: str
    url: str
    template: str
    id: int | None = None

    @property
    def kind(self) -> str:
        """``email`` or ``webhook``."""
        return "email" if self.template == EMAIL else "webhook"


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """What one node's agent last saw of one channel (times: epoch seconds)."""

    channel: str
    node: str
    last_sent_at: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    sent: int = 0
    #: messages given up after their retries
    failed: int = 0
    #: messages dropped beyond the queue bound
    dropped: int = 0
    digest_at: float | None = None
    updated_at: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "last_sent_at": self.last_sent_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
        }


@dataclass(frozen=True, slots=True)
class MailTarget:
    """An e-mail channel's target, read from its URL."""

    host: str
    port: int
    #: ``ssl`` (TLS from the start), ``starttls`` (required), ``none`` (plain)
    tls: str
    user: str | None
    password: str | None
    sender: str
    recipients: tuple[str, ...]
    cafile: str | None


def _error(field: str, message: str) -> ValidationError:
    return ValidationError(FieldError(field, message))


def mail_target(url: str, field: str = "url") -> MailTarget:
    """The parts of an ``smtp://`` / ``smtps://`` URL; a bad one names ``field``."""
    try:
        parts = urlsplit(url)
        port_given = parts.port
    except ValueError as exc:
        raise _error(field, f"not a valid SMTP URL ({exc})") from None
    if parts.scheme not in _MAIL_SCHEMES or not parts.hostname:
        raise _error(field, "write smtp://USER:PASS@HOST:587?to=ADDRESS (or smtps://…)")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_MAIL_OPTIONS))
    if unknown:
        raise _error(field, f"unknown option {unknown[0]!r}; known: {', '.join(_MAIL_OPTIONS)}")
    recipients = tuple(a.strip() for v in query.get("to", []) for a in v.split(",") if a.strip())
    if not recipients:
        raise _error(field, "name the recipients: ?to=admin@example.com (comma-separated)")
    for address in recipients:
        if not _ADDRESS.fullmatch(address):
            raise _error(field, f"{address!r} is not an e-mail address (to=)")
    sender = (query.get("from") or [f"pbxfw@{parts.hostname}"])[0].strip()
    if not _ADDRESS.fullmatch(sender):
        raise _error(field, f"{sender!r} is not an e-mail address (from=)")
    tls_given = (query.get("tls") or [""])[0]
    if tls_given not in ("", "none", "ssl", "starttls"):
        raise _error(field, f"tls={tls_given!r}: use tls=starttls, tls=ssl or tls=none")
    if parts.scheme == "smtps" or port_given == 465:
        tls, port = "ssl", port_given or 465
    else:
        tls, port = "starttls", port_given or 587
    tls = tls_given or tls
    cafile = (query.get("cafile") or [""])[0]
    return MailTarget(
        host=parts.hostname,
        port=port,
        tls=tls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        sender=sender,
        recipients=recipients,
        cafile=cafile or None,
    )


def email_url(
    host: str,
    to: Iterable[str],
    *,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    sender: str | None = None,
    tls: str | None = None,
    cafile: str | None = None,
) -> str:
    """The ``smtp://`` URL of explicit options (``notify add NAME --smtp-host …``)."""
    userinfo = ""
    if user:
        userinfo = quote(user, safe="")
        if password is not None:
            userinfo += ":" + quote(password, safe="")
        userinfo += "@"
    scheme = "smtps" if tls == "ssl" else "smtp"
    netloc = f"{userinfo}{host}" + (f":{port}" if port else "")
    query = [("to", ",".join(to))]
    if sender:
        query.append(("from", sender))
    if tls and tls != "ssl":
        query.append(("tls", tls))
    if cafile:
        query.append(("cafile", cafile))
    text = "&".join(f"{k}={quote(v, safe='@,/:')}" for k, v in query)
    return f"{scheme}://{netloc}?{text}"


def _check_webhook(url: str, field: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise _error(field, f"not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _error(
            field, "a webhook is an http:// or https:// URL; e-mail is smtp://… or smtps://…"
        )


def validate_channel(
    name: str, url: str, template: str | None, existing: Iterable[Channel]
) -> Channel:
    """A new channel, or ``ValidationError`` naming the field and the fix.

    ``template`` None: ``email`` for an SMTP target, ``generic`` for a webhook.
    """
    errors: list[FieldError] = []
    try:
        name = validate_name(name)
        if "/" in name:
            errors.append(FieldError("name", "a channel's name cannot contain '/'"))
    except ValidationError as exc:
        errors += exc.errors
    # Control characters anywhere (a newline at the end too: a paste gone wrong).
    bad = any(ord(c) < 32 or ord(c) == 127 for c in url)
    url = url.strip()
    if bad or not url or " " in url:
        errors.append(FieldError("url", "give one URL without spaces or control characters"))
    elif MASK in url:
        # A listing's text (or the page's refused form) pasted back: storing
        # it would send with "****" as the password or token.
        errors.append(
            FieldError(
                "url",
                f"type the password or token in place of {MASK}: "
                "pbxfw shows that in place of a secret",
            )
        )
    else:
        mail = url.split(":", 1)[0].lower() in _MAIL_SCHEMES
        try:
            if mail:
                mail_target(url)
            else:
                _check_webhook(url, "url")
        except ValidationError as exc:
            errors += exc.errors
        # The template is judged by the URL's scheme alone, so that a bad
        # target and a bad template are told at once.
        if mail and template not in (None, EMAIL):
            errors.append(FieldError("template", "an e-mail channel has no webhook template"))
        elif not mail and template == EMAIL:
            errors.append(
                FieldError(
                    "template",
                    "the email template is for an smtp:// or smtps:// target; a webhook "
                    "takes one of: " + ", ".join(WEBHOOK_TEMPLATES),
                )
            )
        elif not mail and (template or "generic") not in WEBHOOK_TEMPLATES:
            errors.append(
                FieldError(
                    "template",
                    f"unknown template {template!r}; one of: " + ", ".join(WEBHOOK_TEMPLATES),
                )
            )
        template = EMAIL if mail else template or "generic"
    if errors:
        raise ValidationError(errors)
    if any(name_key(c.name) == name_key(name) for c in existing):
        raise ConflictError(FieldError("name", f"a channel named {name!r} exists already"))
    return Channel(name, url, template or "generic")


def masked(url: str) -> str:
    """``url`` with its secrets replaced by ``****`` (see the module docstring)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
    mail = parts.scheme in _MAIL_SCHEMES
    path = parts.path
    if not mail:
        path = "/".join(MASK if _TOKEN.fullmatch(s) else s for s in path.split("/"))
    query = []
    for item in parts.query.split("&") if parts.query else []:
        key, sep, value = item.partition("=")
        shown = mail and key in _MAIL_OPTIONS
        query.append(f"{key}{sep}{value if shown or not sep else MASK}")
    # A target typed without its scheme (refused, and shown back masked on
    # the page) keeps its own shape.
    text = f"{parts.scheme}://{netloc}{path}" if parts.scheme or netloc else path
    return text + ("?" + "&".join(query) if query else "")


def channel_json(channel: Channel) -> dict[str, object]:
    """A channel as the CLI's and the REST API's JSON show it (secrets masked)."""
    return {
        "id": channel.id,
        "name": channel.name,
        "kind": channel.kind,
        "template": channel.template,
        "url": masked(channel.url),
    }
