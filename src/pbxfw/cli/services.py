"""``pbxfw service list|add|rm``."""

from __future__ import annotations

from typing import Annotated

import typer

from pbxfw.cli.common import DbOption, JsonOption, SiteOption, config_service, console, print_json

__all__ = ["app"]

app = typer.Typer(help="The service catalogue and custom services.", no_args_is_help=True)


@app.command("list")
def list_(json_: JsonOption = False, db: DbOption = None, site: SiteOption = None) -> None:
    """The catalogue with ports resolved from the settings."""
    services = config_service(db, site=site).services()
    if json_:
        print_json(
            [
                {
                    "key": s.key,
                    "label": s.label,
                    "builtin": s.builtin,
                    "icmp": s.icmp,
                    "ports": [
                        {"protocol": p.protocol, "from": p.first, "to": p.last} for p in s.ports
                    ],
                }
                for s in services
            ]
        )
        return
    from rich.table import Table

    table = Table()
    for column in ("key", "label", "traffic", "kind"):
        table.add_column(column)
    for s in services:
        table.add_row(s.key, s.label, s.ports_text(), "built-in" if s.builtin else "custom")
    console().print(table)


@app.command("add")
def add(
    key: Annotated[str, typer.Argument(help="Lower-case letters, digits, _ (e.g. provisioning).")],
    label: Annotated[str, typer.Option(help="Shown in tables and on the web page.")] = "",
    tcp: Annotated[str, typer.Option(help="TCP ports and ranges, e.g. 5000,6000-6010.")] = "",
    udp: Annotated[str, typer.Option(help="UDP ports and ranges.")] = "",
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Add a custom service; every network blocks it until you allow it."""
    service = config_service(db, site=site).add_service(key, label, tcp, udp)
    console().print(f"added service {service.key}: {service.resolve().ports_text()}", markup=False)


@app.command("rm")
def rm(key: Annotated[str, typer.Argument()], db: DbOption = None, site: SiteOption = None) -> None:
    """Remove a custom service."""
    config_service(db, site=site).remove_service(key)
    console().print(f"removed service {key}", markup=False)
