"""``pbxfw notify add|list|rm|test``: notification channels (issue 19)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pbxfw.cli.common import DbOption, JsonOption, SiteOption, config_service, console, print_json

if TYPE_CHECKING:
    from pbxfw.usecases.notifications import NotifyService

__all__ = ["app"]

app = typer.Typer(
    help="Notification channels: webhooks (Slack, Mattermost, Discord, generic JSON) "
    "and e-mail, told of new bans, rollbacks, failures and stale nodes.",
    no_args_is_help=True,
)


def _service(db: str | None, site: str | None) -> NotifyService:
    from pbxfw.usecases.notifications import NotifyService

    return NotifyService(config_service(db, site=site).store)


def _when(value: float | None) -> str:
    if value is None:
        return "-"
    from pbxfw.domain.notify_messages import stamp

    return stamp(value)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="1–64 printable characters, unique in the site.")],
    url: Annotated[
        str | None,
        typer.Argument(
            help="A webhook (https://…) or e-mail (smtp://USER:PASS@HOST:587?to=A&from=B, "
            "smtps://… for TLS from the start); or give the --smtp-* options instead.",
            show_default=False,
        ),
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(help="Webhook body: slack, mattermost, discord or generic (the default)."),
    ] = None,
    smtp_host: Annotated[str | None, typer.Option(help="E-mail: the SMTP server.")] = None,
    smtp_port: Annotated[
        int | None, typer.Option(help="E-mail: its port (587 STARTTLS, 465 TLS).")
    ] = None,
    to: Annotated[
        list[str] | None, typer.Option("--to", help="E-mail: a recipient (repeatable).")
    ] = None,
    sender: Annotated[str | None, typer.Option("--from", help="E-mail: the sender.")] = None,
    user: Annotated[str | None, typer.Option(help="E-mail: the login name.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="E-mail: read the password from stdin.")
    ] = False,
    tls: Annotated[
        str | None,
        typer.Option(help="E-mail: starttls (default), ssl, or none (a relay on this host)."),
    ] = None,
    cafile: Annotated[
        str | None, typer.Option(help="E-mail: trust this CA file for the server.")
    ] = None,
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Add a channel. Its secrets are never shown back (list, JSON, web)."""
    from pbxfw.domain.notifications import channel_json, email_url
    from pbxfw.errors import FieldError, ValidationError

    if smtp_host is not None:
        if url is not None:
            raise ValidationError(
                FieldError("url", "give either a URL or the --smtp-* options, not both")
            )
        password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
        url = email_url(
            smtp_host,
            to or [],
            port=smtp_port,
            user=user,
            password=password,
            sender=sender,
            tls=tls,
            cafile=cafile,
        )
    elif url is None:
        raise ValidationError(
            FieldError("url", "give the webhook or smtp:// URL, or --smtp-host and --to")
        )
    channel = _service(db, site).add(name, url, template)
    if json_:
        print_json(channel_json(channel))
        return
    shown = channel_json(channel)
    console().print(
        f"added notification channel {channel.name}: {shown['url']} ({channel.template})",
        markup=False,
    )


@app.command("list")
def list_(json_: JsonOption = False, db: DbOption = None, site: SiteOption = None) -> None:
    """List the channels, their last delivery and last error (secrets masked)."""
    views = _service(db, site).listing()
    if json_:
        print_json([v.as_json() for v in views])
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{len(views)} notification channels", title_justify="left", box=box.SIMPLE_HEAD
    )
    for column in ("name", "template", "target", "last sent", "last error", "dropped"):
        table.add_column(column, overflow="fold")
    for view in views:
        data: dict[str, Any] = view.as_json()
        table.add_row(
            Text(view.channel.name),
            view.channel.template,
            Text(str(data["url"])),
            _when(view.last_sent_at),
            Text(view.last_error or "-"),
            str(data["dropped"]),
        )
    console().print(table)


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="The channel's name.")],
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Remove a channel."""
    channel = _service(db, site).remove(name)
    console().print(f"removed notification channel {channel.name}", markup=False)


@app.command("test")
def test(
    name: Annotated[str, typer.Argument(help="The channel's name.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the channel.")] = 10.0,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Send a test message now; exit 7 with the reason when the channel did not take it."""
    import socket

    channel = _service(db, site).test(name, node=socket.gethostname(), timeout=timeout)
    console().print(f"sent a test message to {channel.name}", markup=False)
