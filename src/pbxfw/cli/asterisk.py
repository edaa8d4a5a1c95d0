"""``pbxfw asterisk discover|pjsip``: the firewall follows the PBX's configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from pbxfw.cli.common import DbOption, JsonOption, SiteOption, config_service, console, print_json

__all__ = ["app"]

app = typer.Typer(help="Asterisk integration: ports and PJSIP local_net.", no_args_is_help=True)


@app.command("discover")
def discover(
    config_dir: Annotated[
        str | None,
        typer.Option(
            help="Asterisk's configuration folder (default: the asterisk_config_dir setting)."
        ),
    ] = None,
    sshd_config: Annotated[
        str, typer.Option(help="sshd's configuration, for ssh_port ('' to skip).")
    ] = "/etc/ssh/sshd_config",
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Read the PBX's ports (pjsip, rtp, http, manager, iax, sshd) into the settings."""
    from pbxfw.usecases import discover_asterisk

    svc = config_service(db, site=site)
    folder = config_dir or svc.settings().asterisk_config_dir
    report = discover_asterisk(svc, folder, sshd_config or None)
    if json_:
        print_json({"changes": report.changes, "notes": report.notes})
        return
    err = console(stderr=True)
    for note in report.notes:
        err.print(f"note: {note}", markup=False)
    out = console()
    for line in report.lines or ["no change: the settings already match " + folder]:
        out.print(line, markup=False)


@app.command("pjsip")
def pjsip(
    write: Annotated[
        Path | None,
        typer.Option(
            "--write", help="Write the include file here (atomically) instead of printing."
        ),
    ] = None,
    reload: Annotated[
        bool, typer.Option("--reload", help="Then ask Asterisk to reload res_pjsip.")
    ] = False,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """The PJSIP NAT settings (local_net=…) for loopback and the local networks."""
    from pbxfw.asterisk.pjsip import reload_pjsip, render_pjsip, write_include

    svc = config_service(db, site=site)
    text = render_pjsip(svc.configuration())
    target = write
    out = console()
    if target is None:
        typer.echo(text, nl=False)
    else:
        # The operator named this path: it may be anywhere, but the writer's
        # other rules hold (no symlink, only a file pbxfw wrote).
        target = Path(os.path.abspath(target))
        changed = write_include(target, text)
        out.print(f"{'wrote' if changed else 'unchanged'}: {target}", markup=False)
    if reload:
        out.print(reload_pjsip(), markup=False)
