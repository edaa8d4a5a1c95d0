"""``pbxfw history [--json] [--limit N]``, ``history show REV``, ``history restore REV``:
the history of configuration changes (docs/observability.md, "History")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pbxfw.cli.common import DbOption, JsonOption, SiteOption, config_service, print_json, say

if TYPE_CHECKING:
    from pbxfw.domain.history import HistoryEntry

__all__ = ["app"]

app = typer.Typer(
    help="The history of configuration changes (and administrators' bans): "
    "list, show a revision's diff, restore one.",
    invoke_without_command=True,
)

RevArgument = Annotated[
    int, typer.Argument(metavar="REV", help="The entry's number (see `pbxfw history`).")
]


def when(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _line(entry: HistoryEntry) -> str:
    where = "" if entry.client == "local" else f" from {entry.client}"
    return (
        f"{entry.rev:>6}  {when(entry.at)}  {entry.actor} via {entry.via}{where}: {entry.summary}"
    )


@app.callback()
def history(
    ctx: typer.Context,
    json_: JsonOption = False,
    limit: Annotated[
        int, typer.Option("--limit", help="How many entries, newest first (1-1000).")
    ] = 50,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """The newest changes of the site's configuration and the administrators'
    bans: number, when, who, through what, from where, what."""
    if ctx.invoked_subcommand is not None:
        return
    entries = config_service(db, site=site).history(limit)
    if json_:
        print_json([e.as_json() for e in entries])
        return
    if not entries:
        say("no change recorded yet")
    for entry in entries:
        say(_line(entry))


@app.command("show")
def show(
    rev: RevArgument, json_: JsonOption = False, db: DbOption = None, site: SiteOption = None
) -> None:
    """One entry and what it changed, against the configuration revision before it."""
    shown = config_service(db, site=site).history_entry(rev)
    if json_:
        print_json(shown.as_json())
        return
    say(_line(shown.entry))
    if shown.entry.kind != "config":
        return
    say(
        "first recorded configuration:"
        if shown.against is None
        else f"changes since revision {shown.against}:"
    )
    for line in shown.lines or ["no change"]:
        say(f"  {line}")


@app.command("restore")
def restore(
    rev: RevArgument, json_: JsonOption = False, db: DbOption = None, site: SiteOption = None
) -> None:
    """Stage the configuration of revision REV as the stored one (recorded as a
    new revision); `pbxfw apply` applies it, with its confirm window."""
    report = config_service(db, site=site).restore(rev)
    if json_:
        print_json(report.as_json())
    elif report.changed:
        say(
            f"revision {rev} is the stored configuration again (revision {report.revision}); "
            "`pbxfw apply` applies it (with --confirm to keep a way back)"
        )
    else:
        say(f"the stored configuration already is revision {rev}'s; nothing changed")
