"""``pbxfw fingerprint list|add|rm``: the scanner fingerprints (issue 18)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pbxfw.cli.common import DbOption, JsonOption, config_service, console, print_json

__all__ = ["app"]

app = typer.Typer(
    help="Scanner fingerprints: SIP requests whose header holds one of these texts are "
    "dropped and their sender banned (jail asterisk).",
    no_args_is_help=True,
)

PatternArgument = Annotated[
    str, typer.Argument(help="The text to look for (case-insensitive), e.g. friendly-scanner.")
]
HeaderOption = Annotated[
    str | None,
    typer.Option("--header", help="The SIP header to look in (default User-Agent)."),
]


def _service(db: str | None) -> Any:
    from pbxfw.usecases.fingerprints import FingerprintService

    config = config_service(db)
    return FingerprintService(config.store)


def _say(verb: str, fingerprint: Any, json_: bool) -> None:
    if json_:
        print_json(fingerprint.as_json())
        return
    console().print(
        f"{verb} fingerprint {fingerprint.header}: {fingerprint.pattern}"
        + (" (shipped)" if fingerprint.builtin else ""),
        markup=False,
    )


@app.command("list")
def list_(json_: JsonOption = False, db: DbOption = None) -> None:
    """List the fingerprints in force: the shipped ones not removed, then the added ones."""
    found = _service(db).fingerprints()
    if json_:
        print_json([f.as_json() for f in found])
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(found)} fingerprints", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("header", "pattern", "shipped"):
        table.add_column(column, overflow="fold")
    for f in found:
        table.add_row(f.header, Text(f.pattern), "yes" if f.builtin else "no")
    console().print(table)


@app.command("add")
def add(
    pattern: PatternArgument,
    header: HeaderOption = None,
    json_: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Add a fingerprint (a shipped one that was removed comes back)."""
    _say("added", _service(db).add_fingerprint(pattern, header), json_)


@app.command("rm")
def rm(
    pattern: PatternArgument,
    header: HeaderOption = None,
    json_: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Remove a fingerprint (a shipped one is switched off for this site)."""
    _say("removed", _service(db).remove_fingerprint(pattern, header), json_)
