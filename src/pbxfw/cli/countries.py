"""``pbxfw country add|list|set|rm|lookup`` and ``pbxfw geo import|status`` (issue 17)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pbxfw.cli.common import DbOption, JsonOption, config_service, console, print_json, split_keys
from pbxfw.cli.networks import AllowOption, BlockOption

__all__ = ["app", "geo_app"]

app = typer.Typer(
    help="Country rules: refine the Internet networks by the sender's country.",
    no_args_is_help=True,
)
geo_app = typer.Typer(help="The country database the country rules read.", no_args_is_help=True)

CodesArgument = Annotated[
    str,
    typer.Argument(
        help="ISO 3166 codes, comma-separated (DE,AT,CH); '*' for every other country; "
        "'unknown' for addresses in no country."
    ),
]


def _rule_json(rule: Any) -> dict[str, Any]:
    from pbxfw.domain.countries import country_rule_json

    return country_rule_json(rule)


def _say_rule(verb: str, rule: Any, json_: bool) -> None:
    if json_:
        print_json(_rule_json(rule))
        return
    services = ", ".join(f"{k} {v.value}" for k, v in sorted(rule.services.items()))
    console().print(
        f"{verb} country rule {rule.id}: {rule.name} {','.join(rule.codes)}"
        + (f" ({services})" if services else " (no service named: the Internet networks decide)"),
        markup=False,
    )


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="1–64 printable characters, unique.")],
    codes: CodesArgument,
    allow: AllowOption = None,
    block: BlockOption = None,
    json_: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Add a country rule. Services not named keep the Internet network's verdict."""
    rule = config_service(db).add_country(name, codes, split_keys(allow), split_keys(block))
    _say_rule("added", rule, json_)


@app.command("list")
def list_(json_: JsonOption = False, db: DbOption = None) -> None:
    """List the country rules."""
    rules = config_service(db).country_rules()
    if json_:
        print_json([_rule_json(r) for r in rules])
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{len(rules)} country rules", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("id", "name", "codes", "services"):
        table.add_column(column, overflow="fold")
    for rule in rules:
        services = ", ".join(f"{k} {v.value}" for k, v in sorted(rule.services.items()))
        table.add_row(str(rule.id), Text(rule.name), ",".join(rule.codes), services or "-")
    console().print(table)


@app.command("set")
def set_(
    ref: Annotated[str, typer.Argument(help="Id or name.")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    codes: Annotated[str | None, typer.Option(help="New codes (replace the old ones).")] = None,
    allow: AllowOption = None,
    block: BlockOption = None,
    inherit: Annotated[
        list[str] | None,
        typer.Option("--inherit", help="Services given back to the Internet networks."),
    ] = None,
    json_: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Change a country rule; what is not named stays as it is."""
    rule = config_service(db).set_country(
        ref,
        name=name,
        codes=codes,
        allow=split_keys(allow),
        block=split_keys(block),
        inherit=split_keys(inherit),
    )
    _say_rule("updated", rule, json_)


@app.command("rm")
def rm(ref: Annotated[str, typer.Argument(help="Id or name.")], db: DbOption = None) -> None:
    """Remove a country rule."""
    rule = config_service(db).remove_country(ref)
    console().print(f"removed country rule {rule.id}: {rule.name}", markup=False)


@app.command("lookup")
def lookup(
    address: Annotated[str, typer.Argument(help="An IPv4 or IPv6 address.")],
    json_: JsonOption = False,
    db: DbOption = None,
) -> None:
    """The country of an address, the range that holds it, and the rule for it."""
    found = config_service(db).lookup_country(address)
    if json_:
        print_json(found.as_json())
        return
    where = (
        f"{found.country} ({found.first}-{found.last})"
        if found.country
        else "unknown (no range of the country database holds it)"
    )
    rule = f"rule {found.rule!r}" if found.rule else "no country rule"
    console().print(f"{found.address}: {where}; {rule}", markup=False)


@geo_app.command("import")
def import_(
    file: Annotated[str, typer.Argument(help="A .mmdb (GeoLite2, DB-IP) or a CIDR,CC CSV.")],
    date: Annotated[
        str | None, typer.Option(help="The data's date, YYYY-MM-DD (a CSV: else its mtime).")
    ] = None,
    json_: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Replace the country database with FILE's, all or nothing."""
    import time
    from pathlib import Path

    from pbxfw.usecases.geo import GeoService

    status = GeoService(config_service(db).store).import_file(
        Path(file), now=time.time(), built=date
    )
    _say_status(status, json_, verb="imported")


@geo_app.command("status")
def status(json_: JsonOption = False, db: DbOption = None) -> None:
    """The country database: source, date, IPv4/IPv6 ranges; warns when it is old."""
    import time

    from pbxfw.usecases.geo import GeoService

    _say_status(GeoService(config_service(db).store).status(now=time.time()), json_)


def _say_status(status: Any, json_: bool, verb: str = "") -> None:
    if json_:
        print_json(status.as_json())
    else:
        out = console()
        info = status.info
        if info is not None:
            head = f"{verb} " if verb else ""
            out.print(
                f"{head}source {info.source}, date {info.built} ({status.age_days} days old), "
                f"{info.ipv4_ranges} IPv4 ranges, {info.ipv6_ranges} IPv6 ranges",
                markup=False,
            )
    if status.warning:
        console(stderr=True).print(f"warning: {status.warning}", markup=False)
