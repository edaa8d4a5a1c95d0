"""The ``pbxfw`` command: a thin shell over the use cases.

Errors from pbxfw's exception tree are printed on stderr (one line per
field) and turned into a non-zero exit code; nothing else is caught, so a
bug still shows its traceback. ``pbxfw --db URL COMMAND`` names the database
for any command (a command's own ``--db`` wins); ``pbxfw --version`` prints
the installed version.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from pbxfw.cli import (
    asterisk,
    countries,
    feeds,
    firewall,
    fleet,
    ips,
    networks,
    nodes,
    services,
    settings,
    sites,
    users,
    web,
)
from pbxfw.cli.common import (
    DbOption,
    JsonOption,
    SiteOption,
    StateDirOption,
    close_stores,
    config_service,
    console,
    db_url_for,
    fail,
    print_json,
    state_dir_for,
    use_global_db,
    use_global_site,
)
from pbxfw.cli.params import install as install_plain_params
from pbxfw.domain.sites import UnknownSiteError
from pbxfw.errors import FieldError, PbxfwError, ValidationError

__all__ = ["app", "main"]


class _Group(TyperGroup):
    """Turns pbxfw's errors into a message on stderr and an exit code, and
    closes the stores the command opened (and forgets its global ``--db``)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Plain text and path parameters without pydantic (pbxfw.cli.params).
        install_plain_params(self)
        return super().main(*args, **kwargs)

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UnknownSiteError as error:
            # The site came from --site (or PBXFW_SITE): name the option.
            shown = error.on("--site") if error.errors[0].field == "site" else error
            raise typer.Exit(fail(shown)) from None
        except PbxfwError as error:
            raise typer.Exit(fail(error)) from None
        finally:
            close_stores()
            use_global_db(None)
            use_global_site(None)


app = typer.Typer(
    cls=_Group,
    name="pbxfw",
    help="Firewall and intrusion prevention for Asterisk PBXs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(networks.app, name="network")
app.add_typer(services.app, name="service")
app.add_typer(settings.app, name="settings")
app.add_typer(asterisk.app, name="asterisk")
app.add_typer(users.app, name="user")
app.add_typer(nodes.app, name="node")
app.add_typer(sites.app, name="site")
app.add_typer(fleet.app, name="fleet")
app.add_typer(countries.app, name="country")
app.add_typer(countries.geo_app, name="geo")
app.add_typer(feeds.app, name="feed")
firewall.register(app)
ips.register(app)
web.register(app)


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pbxfw")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"pbxfw {_installed_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="SQLite file path or SQLAlchemy URL for any command (before the command); "
            "a command's own --db wins, and this wins over env PBXFW_DB.",
            show_default=False,
        ),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(
            "--site",
            help="The site whose configuration any command uses (before the command); "
            "a command's own --site wins, and this wins over env PBXFW_SITE "
            "(default: default).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    # Set on every run, so an in-process caller (tests) never sees the
    # previous command's value.
    use_global_db(db)
    use_global_site(site)


@app.command()
def init(
    db: DbOption = None,
    site: SiteOption = None,
    auth_log: Annotated[
        str,
        typer.Option(hidden=True, help="The file that stands for /var/log/auth.log (tests)."),
    ] = "/var/log/auth.log",
) -> None:
    """Create or upgrade the database and add the permanent networks (idempotent).

    Inside an SSH session your own address (from SSH_CLIENT) becomes a trusted
    network with SSH and WEB allowed, so switching the firewall on later
    cannot lock you out. The first run sets log_ssh by what the host has:
    /var/log/auth.log when it is written (within 7 days), else sshd's
    journal (journal:ssh.service).
    """
    from pbxfw.usecases.hostlogs import ssh_log_for_host

    svc = config_service(db, create=True, site=site)
    report = svc.init(os.environ.get("SSH_CLIENT"), ssh_log=ssh_log_for_host(auth_log))
    out = console()
    out.print(
        f"database: {svc.store.engine.url.render_as_string(hide_password=True)}", markup=False
    )
    for name in report.created_permanent:
        out.print(f"added permanent network {name!r}", markup=False)
    if report.trusted is not None:
        t = report.trusted
        out.print(
            f"trusted your address: network {t.name!r} ({t.subnet}), SSH and WEB allowed",
            markup=False,
        )
    if report.ssh_log is not None:
        out.print(f"log_ssh: {report.ssh_log} (the SSH daemon's log on this host)", markup=False)
    out.print(f"configuration revision {report.revision}", markup=False)


@app.command()
def check(
    address: Annotated[str, typer.Argument(help="IPv4 or IPv6 address.")],
    service: Annotated[str, typer.Argument(help="Service key, e.g. sip.")],
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Would a packet from ADDRESS to SERVICE pass? Names the network, ban or feed that decides."""
    from pbxfw.usecases.bans import BanService

    svc = config_service(db, site=site)
    bans = [b.as_active() for b in BanService(svc.store).active()]
    decision = svc.check(address, service, bans=bans)
    # A blocklist feed decides before the bans and networks (issue 17); its
    # kept list is this node's (the state folder the agent writes).
    from pbxfw.usecases.feeds import FeedService

    state = state_dir_for(db_url_for(db), state_dir)
    by_feed = FeedService(svc.store).decide(svc.configuration(), address, service, state)
    extra: dict[str, object] = {}
    if by_feed is not None:
        decision, hit = by_feed
        extra = {"feed": {"name": hit.feed.name, "entry": hit.entry}}
    if json_:
        print_json(decision.as_json() | extra)
    else:
        console().print(f"{decision.verdict}: {decision.reason}", markup=False)


@app.command("export")
def export(
    json_: Annotated[
        bool, typer.Option("--json", help="JSON (the only format; accepted for symmetry).")
    ] = True,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Print the whole configuration as one JSON document (deterministic)."""
    print_json(config_service(db, site=site).export_document())


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="A document made by `pbxfw export` ('-' for stdin).")
    ],
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Replace the configuration with FILE's, all or nothing."""
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(FieldError("file", f"cannot read {file}: {exc.strerror}")) from None
    except UnicodeDecodeError:
        raise ValidationError(FieldError("file", f"{file} is not UTF-8 text")) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            FieldError(
                "file", f"{file} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            )
        ) from None
    config, notes = config_service(db, site=site).import_document(document)
    err = console(stderr=True)
    for note in notes:
        err.print(f"note: {note}", markup=False)
    console().print(
        f"imported {len(config.networks)} networks, {len(config.custom_services)} custom services",
        markup=False,
    )


def main() -> None:
    """Entry point of the ``pbxfw`` command."""
    app()
