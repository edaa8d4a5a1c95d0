"""``pbxfw compile|apply|confirm|rollback``: the configuration reaches the kernel."""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer

from pbxfw.cli.common import (
    DbOption,
    JsonOption,
    NetnsOption,
    SiteOption,
    StateDirOption,
    console,
    firewall_service,
    print_json,
    say,
)

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the commands to the root app (they are top-level verbs)."""
    app.command("compile")(compile_)
    app.command("apply")(apply)
    app.command("confirm")(confirm)
    app.command("rollback")(rollback)


def compile_(db: DbOption = None, site: SiteOption = None) -> None:
    """Print the nftables ruleset that `pbxfw apply` would load."""
    typer.echo(firewall_service(db, site=site).compile(), nl=False)


def apply(
    netns: NetnsOption = None,
    confirm_seconds: Annotated[
        float | None,
        typer.Option("--confirm", help="Roll back unless `pbxfw confirm` comes within SECONDS."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Apply even if it blocks your own address.")
    ] = False,
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Apply the stored configuration as one nftables transaction (table inet pbxfw)."""
    fw = firewall_service(db, state_dir, site)
    admin = fw.admin_access(os.environ.get("SSH_CLIENT"))
    result = fw.apply(netns, confirm_seconds=confirm_seconds, admin=admin, force=force)
    where = f" in network namespace {netns}" if netns else ""
    if json_:
        print_json({"revision": result.revision, "netns": netns, "pending": result.pending})
        return
    say(f"applied configuration revision {result.revision}{where}")
    if result.pending:
        ns = f" --netns {netns}" if netns else ""
        say(
            f"keep it with `pbxfw confirm{ns}` within {confirm_seconds:g} s; "
            "otherwise the previous rules come back by themselves"
        )


def confirm(
    netns: NetnsOption = None,
    db: DbOption = None,
    site: SiteOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Keep the change applied with --confirm."""
    change = firewall_service(db, state_dir, site).confirm(netns)
    console().print(
        "confirmed: the change stays" if change else "nothing was waiting for confirmation",
        markup=False,
    )


def rollback(
    netns: NetnsOption = None,
    db: DbOption = None,
    site: SiteOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Undo the pending change now; the stored configuration returns to the last confirmed."""
    fw = firewall_service(db, state_dir, site)
    rejected = fw.rollback(netns)
    out = console()
    if rejected is None:
        out.print("nothing was waiting for confirmation", markup=False)
        # The watchdog may have rolled back (and carried it into storage)
        # already: say so, and where the rejected configuration is.
        last = fw.last_rollback(netns)
        if last is None or last.config is None:
            return
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last.time))
        out.print(
            f"the last unconfirmed change was rolled back at {when}: {last.reason}", markup=False
        )
        rejected = last.config
    else:
        out.print("rolled back to the last confirmed configuration", markup=False)
    out.print(
        f"the rejected configuration is kept in {rejected}; to try it again: "
        f"pbxfw import {rejected} && pbxfw apply --confirm 60",
        markup=False,
    )
