"""``pbxfw network add|list|show|set|rm``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from pbxfw.cli.common import (
    DbOption,
    JsonOption,
    SiteOption,
    config_service,
    console,
    print_json,
    split_keys,
)

__all__ = ["app", "network_table"]

app = typer.Typer(help="Networks: who may reach which PBX service.", no_args_is_help=True)

AllowOption = Annotated[
    list[str] | None,
    typer.Option("--allow", help="Services to allow, comma-separated (e.g. sip,iax)."),
]
BlockOption = Annotated[
    list[str] | None,
    typer.Option("--block", help="Services to block, comma-separated."),
]


def network_table(networks: list[Any], keys: list[str]) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"{len(networks)} networks (✓ allow, ✗ block)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("id", justify="right")
    table.add_column("name", overflow="fold")
    table.add_column("subnet", no_wrap=True)
    for key in keys:
        table.add_column(key, justify="center")
    table.add_column("flags", no_wrap=True)
    for n in networks:
        cells = [
            Text("✓", style="bold green") if n.verdict(k) == "allow" else Text("✗", style="red")
            for k in keys
        ]
        flags = ", ".join(
            f
            for f, on in (
                ("local", n.local),
                ("never-block", n.never_block),
                ("permanent", n.permanent),
            )
            if on
        )
        table.add_row(str(n.id), Text(n.name), str(n.subnet), *cells, flags)
    return table


def _notes(notes: list[str]) -> None:
    err = console(stderr=True)
    for note in notes:
        err.print(f"note: {note}", markup=False)


def _report(verb: str, network: Any, notes: list[str], json_: bool) -> None:
    _notes(notes)
    if json_:
        print_json(_network_json(network))
    else:
        console().print(
            f"{verb} network {network.id}: {network.name} {network.subnet}", markup=False
        )


def _network_json(network: Any) -> dict[str, Any]:
    from pbxfw.usecases import network_json

    return network_json(network) | {"permanent": network.permanent}


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="1–64 printable characters, unique.")],
    subnet: Annotated[str, typer.Argument(help="CIDR, e.g. 192.168.1.0/24 or 2001:db8::/32.")],
    allow: AllowOption = None,
    block: BlockOption = None,
    local: Annotated[bool, typer.Option("--local", help="A VPN or local network.")] = False,
    never_block: Annotated[
        bool, typer.Option("--never-block", help="Intrusion prevention never bans it.")
    ] = False,
    description: Annotated[str | None, typer.Option(help="Up to 255 characters.")] = None,
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Add a network. Services not named keep the verdict their addresses had."""
    from pbxfw.usecases import NetworkChange

    change = NetworkChange(
        name=name,
        subnet=subnet,
        allow=split_keys(allow),
        block=split_keys(block),
        local=local,
        never_block=never_block,
        description=description,
    )
    network, notes = config_service(db, site=site).add_network(change)
    _report("added", network, notes, json_)


@app.command("list")
def list_(json_: JsonOption = False, db: DbOption = None, site: SiteOption = None) -> None:
    """List the networks, with the verdict for every service."""
    svc = config_service(db, site=site)
    config = svc.configuration()
    if json_:
        print_json([_network_json(n) for n in config.networks])
    else:
        console().print(network_table(list(config.networks), list(config.service_keys())))


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="Id or name.")],
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Show one network."""
    network = config_service(db, site=site).network(ref)
    if json_:
        print_json(_network_json(network))
        return
    out = console()
    data = _network_json(network)
    for key in ("id", "name", "subnet", "local", "never_block", "permanent", "description"):
        out.print(f"{key:12} {data[key]}", markup=False)
    for key, verdict in data["services"].items():
        out.print(f"  {key:10} {verdict}", markup=False)


@app.command("set")
def set_(
    ref: Annotated[str, typer.Argument(help="Id or name.")],
    name: Annotated[str | None, typer.Option(help="New name.")] = None,
    subnet: Annotated[str | None, typer.Option(help="New subnet.")] = None,
    allow: AllowOption = None,
    block: BlockOption = None,
    local: Annotated[bool | None, typer.Option("--local/--no-local")] = None,
    never_block: Annotated[bool | None, typer.Option("--never-block/--no-never-block")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Change a network; what is not named stays as it is."""
    from pbxfw.usecases import NetworkChange

    change = NetworkChange(
        name=name,
        subnet=subnet,
        allow=split_keys(allow),
        block=split_keys(block),
        local=local,
        never_block=never_block,
        description=description,
    )
    network, notes = config_service(db, site=site).update_network(ref, change)
    _report("updated", network, notes, json_)


@app.command("rm")
def rm(
    ref: Annotated[str, typer.Argument(help="Id or name.")],
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Remove a network (not the permanent ones)."""
    network = config_service(db, site=site).remove_network(ref)
    console().print(f"removed network {network.id}: {network.name} {network.subnet}", markup=False)
