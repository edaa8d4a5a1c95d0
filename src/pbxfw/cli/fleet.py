"""``pbxfw fleet …``: what a fleet of PBXs on one PostgreSQL needs beyond one PBX.

``pbxfw fleet roles`` prints the SQL of the nodes' database roles (least
privilege, docs/fleet-roles.md); ``--apply`` runs it on ``--db``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pbxfw.cli.common import DbOption, config_service, db_url_for, say

__all__ = ["app"]

app = typer.Typer(help="Fleet mode on PostgreSQL: the nodes' database roles.", no_args_is_help=True)


@app.command("roles")
def roles(
    apply: Annotated[
        bool,
        typer.Option("--apply", help="Run the SQL on --db (as the owner of pbxfw's tables)."),
    ] = False,
    role: Annotated[
        str, typer.Option("--role", help="The nodes' group role (NOLOGIN).")
    ] = "pbxfw_node",
    node: Annotated[
        str | None,
        typer.Option(
            "--node",
            help="Make the login role of this node (a member of --role), bound to it and --site.",
            show_default=False,
        ),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option("--site", help="The node's site (with --node).", show_default=False),
    ] = None,
    login: Annotated[
        str | None,
        typer.Option(
            "--login",
            help="The node's login role (with --node; default pbxfw_node_NODE).",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Print the SQL that gives the nodes' agents least privilege: a group role
    that reads its site's configuration, reads and writes bans, updates only its
    own node's rows, and cannot change networks, services, settings, users or
    sites, nor read users at all. With --node N --site S: the login role of one
    node. PostgreSQL only."""
    from pbxfw.usecases.fleet import FleetRoles, RolesRequest

    request = RolesRequest(group=role, node=node, site=site, login=login)
    roles = FleetRoles(db_url_for(db), request)
    sql = roles.sql()
    if not apply:
        typer.echo(sql, nl=False)
        return
    roles.apply(config_service(db).store)
    r = roles.request
    if r.node is None:
        say(f"applied: group role {r.group} with its grants and row-level security")
    else:
        say(
            f"applied: login role {r.login} (member of {r.group}) for node {r.node} "
            f"in site {r.site}; give it a password or a client certificate"
        )
