"""``pbxfw user add|list|logout``: administrators of the web page and the REST API."""

from __future__ import annotations

import secrets
import sys
from typing import Annotated

import typer

from pbxfw.cli.common import DbOption, config_service, console

__all__ = ["app"]

app = typer.Typer(help="Administrators of the web page and the REST API.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Add an administrator, or set a new password (which ends that user's
    sessions and tokens). Without --password-stdin a password is generated and
    shown once."""
    from pbxfw.usecases.users import UserService

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        generated = False
    else:
        password = secrets.token_urlsafe(12)
        generated = True
    users = UserService(config_service(db).store)
    created = users.set_password(name, password)
    out = console()
    out.print(f"{'added' if created else 'updated'} user {name}", markup=False)
    if generated:
        out.print(f"password: {password}   (shown once; keep it)", markup=False)


@app.command("list")
def list_(db: DbOption = None) -> None:
    """The administrators' names."""
    from pbxfw.usecases.users import UserService

    for name in UserService(config_service(db).store).names():
        typer.echo(name)


@app.command("logout")
def logout(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
) -> None:
    """End every web session and API token of NAME issued until now, on every
    web worker, also after a restart (NAME can log in again at once)."""
    from datetime import UTC, datetime

    from pbxfw.usecases.users import UserService

    cutoff = UserService(config_service(db).store).logout_everywhere(name)
    when = datetime.fromtimestamp(cutoff, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    console().print(
        f"logged out user {name} everywhere: sessions and tokens issued until {when} are refused",
        markup=False,
    )
