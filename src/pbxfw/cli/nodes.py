"""``pbxfw node list|rm``: the PBXs running the agent, as each last reported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pbxfw.cli.common import DbOption, JsonOption, config_service, console, print_json, say
from pbxfw.errors import FieldError, ValidationError

if TYPE_CHECKING:
    from pbxfw.usecases.nodes import NodeService

__all__ = ["NodeOption", "agent_node_name", "app"]

#: ``pbxfw agent --node NAME``.
NodeOption = Annotated[
    str | None,
    typer.Option(
        "--node",
        envvar="PBXFW_NODE",
        help="This PBX's node name in `pbxfw node list` (default: the host name); "
        "1-63 letters, digits, '-', '_', '.', first a letter or digit.",
        show_default=False,
    ),
]

app = typer.Typer(
    help="The PBXs running the agent (nodes): state, revision, bans.", no_args_is_help=True
)


def agent_node_name(node: str | None) -> str:
    """The node name ``pbxfw agent`` reports as: ``--node`` or the host name,
    validated before the agent starts (exit 2 naming ``--node``)."""
    import socket

    from pbxfw.domain.nodes import validate_node_name

    if node is not None:
        return validate_node_name(node, "--node")
    host = socket.gethostname()
    try:
        return validate_node_name(host)
    except ValidationError:
        raise ValidationError(
            FieldError(
                "--node",
                f"the host name {host!r} is not a node name (1-63 letters, digits, "
                "'-', '_', '.', first a letter or digit); give one with --node NAME",
            )
        ) from None


def _service(db: str | None) -> NodeService:
    from pbxfw.usecases.nodes import NodeService

    return NodeService(config_service(db).store)


def ago(seconds: float) -> str:
    """``75.2`` → ``1m 15s ago``: how long since a report, the way people read it."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s ago"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60}s ago"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}m ago"
    return f"{whole // 86400}d {whole % 86400 // 3600}h ago"


@app.command("list")
def list_(json_: JsonOption = False, db: DbOption = None) -> None:
    """Every node with its state: up, stale (no report for 30 s) or drifted
    (its kernel holds another configuration revision than the stored one)."""
    listing = _service(db).listing()
    if json_:
        print_json(listing.as_json())
        return
    if not listing.nodes:
        say("no nodes yet: a PBX appears here once `pbxfw agent` runs on it (within 5 s)")
        return
    from rich.table import Table
    from rich.text import Text

    sites = sorted({node.site for node in listing.nodes})
    if sites == ["default"]:
        stored = f"stored configuration revision {listing.stored_revision}"
    else:  # each node is judged against its own site's revision
        stored = "stored configuration revisions " + ", ".join(
            f"{site} {listing.site_revisions.get(site, '?')}" for site in sites
        )
    table = Table(title=f"{len(listing.nodes)} nodes; {stored}", title_justify="left")
    columns = ("node", "site", "state", "last report", "applied revision", "kernel bans")
    for column in (*columns, "version", "log lag (bytes)", "last error"):
        table.add_column(column)
    for node in listing.nodes:
        table.add_row(
            node.name,
            node.site,
            str(listing.state(node)),
            ago(listing.now - node.last_seen),
            "none" if node.applied_revision is None else str(node.applied_revision),
            str(node.kernel_bans),
            # Text, not markup: an error may contain [brackets] that Rich would eat.
            Text(node.version),
            str(node.log_lag_bytes),
            Text(node.last_error or "-"),
        )
    console().print(table)


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="The node's name (see `pbxfw node list`).")],
    db: DbOption = None,
) -> None:
    """Forget a node. A node whose agent still runs registers again at its
    next report (within 5 s): stop its agent first."""
    _service(db).remove(name)
    say(f"removed node {name}")
