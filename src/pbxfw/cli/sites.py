"""``pbxfw site list|add|rm``: the sites, each one configuration (docs/fleet-sites.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pbxfw.cli.common import DbOption, JsonOption, config_service, console, print_json, say

if TYPE_CHECKING:
    from pbxfw.usecases.sites import SiteService

__all__ = ["app"]

app = typer.Typer(
    help="Sites: each one configuration (networks, services, settings) of the fleet.",
    no_args_is_help=True,
)


def _service(db: str | None) -> SiteService:
    from pbxfw.usecases.sites import SiteService

    # The sites are the fleet's: whatever --site says, list and change them all.
    return SiteService(config_service(db, site="default").store)


@app.command("list")
def list_(json_: JsonOption = False, db: DbOption = None) -> None:
    """Every site (`default` is the one a single PBX uses)."""
    from datetime import UTC, datetime

    sites = _service(db).list()
    if json_:
        print_json([s.as_json() for s in sites])
        return
    from rich.table import Table

    table = Table(title=f"{len(sites)} sites", title_justify="left")
    for column in ("site", "created"):
        table.add_column(column)
    for site in sites:
        when = datetime.fromtimestamp(site.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        table.add_row(site.name, when)
    console().print(table)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="1-63 letters, digits, '-', '_', '.'.")],
    db: DbOption = None,
) -> None:
    """Make a site with the starting configuration of `pbxfw init` (the permanent
    networks, the firewall off); configure it with `--site NAME`."""
    site = _service(db).add(name)
    say(f"added site {site.name}; configure it with `pbxfw --site {site.name} network add …`")


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="The site's name (see `pbxfw site list`).")],
    db: DbOption = None,
) -> None:
    """Remove a site and its whole configuration (refused for `default` and
    for a site that still has nodes)."""
    _service(db).remove(name)
    say(f"removed site {name}")
