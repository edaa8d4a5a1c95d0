"""``pbxfw feed add|list|update|rm`` (issue 17): blocklist feeds."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from pbxfw.cli.common import (
    DbOption,
    JsonOption,
    SiteOption,
    config_service,
    console,
    print_json,
)

if TYPE_CHECKING:
    from pbxfw.usecases.feeds import FeedService

__all__ = ["app"]

app = typer.Typer(
    help="Blocklist feeds: lists of attackers published by others, fetched by the agent.",
    no_args_is_help=True,
)


def _service(db: str | None, site: str | None) -> FeedService:
    from pbxfw.usecases.feeds import FeedService

    return FeedService(config_service(db, site=site).store)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="1-24 letters, digits, '_' or '-'.")],
    url: Annotated[str, typer.Argument(help="http:// or https:// address of the list.")],
    format: Annotated[str, typer.Option("--format", help="plain, apiban or json.")] = "plain",
    every: Annotated[str, typer.Option("--every", help="Fetch period: 4h, 30m, 1d.")] = "4h",
    scope: Annotated[
        str, typer.Option("--scope", help="Service keys (sip,iax) or 'all' (every packet).")
    ] = "all",
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="'Name: value' sent with each fetch (repeatable)."),
    ] = None,
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Add a feed; the agent fetches it at its next tick, then every --every."""
    from pbxfw.domain.feeds import every_text, feed_json

    feed = _service(db, site).add(
        name, url, format=format, every=every, scope=scope, headers=header or []
    )
    if json_:
        print_json(feed_json(feed))
        return
    console().print(
        f"added feed {feed.id}: {feed.name} {feed.url} ({feed.format}, every "
        f"{every_text(feed.every)}, scope {','.join(feed.scope)})",
        markup=False,
    )


@app.command("list")
def list_(json_: JsonOption = False, db: DbOption = None, site: SiteOption = None) -> None:
    """The feeds, and per node: last fetch, entries, refused entries, next fetch, last error."""
    from pbxfw.domain.feeds import every_text

    views = _service(db, site).views()
    if json_:
        print_json([v.as_json() for v in views])
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(views)} feeds", title_justify="left", box=box.SIMPLE_HEAD)
    columns = ("name", "format", "every", "scope", "node", "last fetch", "entries", "refused")
    for column in (*columns, "next fetch", "error"):
        table.add_column(column, overflow="fold")
    for view in views:
        feed = view.feed
        head = (Text(feed.name), feed.format, every_text(feed.every), ",".join(feed.scope))
        if not view.statuses:
            table.add_row(*head, "-", "never", "0", "-", "-", "not fetched yet")
        for s in view.statuses:
            refused = ", ".join(f"{k} {v}" for k, v in sorted(s.refused.items())) or "0"
            error = s.error + (" (held back)" if s.held_back and s.error == "" else "")
            table.add_row(
                *head,
                s.node,
                _when(s.last_fetch),
                str(s.entries),
                refused,
                _when(s.next_fetch),
                Text(error or "-"),
            )
    console().print(table)


@app.command("update")
def update(
    name: Annotated[str | None, typer.Argument(help="A feed; every feed if not given.")] = None,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Ask the agents to fetch now (at their next tick)."""
    chosen = _service(db, site).request_update(name, time.time())
    names = ", ".join(f.name for f in chosen) or "no feed"
    console().print(f"update requested: {names}", markup=False)


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="Name or id.")],
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Remove a feed; the agents drop its entries from the kernel."""
    feed = _service(db, site).remove(name)
    console().print(f"removed feed {feed.id}: {feed.name}", markup=False)
