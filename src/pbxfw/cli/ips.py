"""``pbxfw agent``, ``pbxfw bans …`` and ``pbxfw ips …``: intrusion prevention."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from pbxfw.cli import bans_show
from pbxfw.cli.common import (
    DbOption,
    JsonOption,
    NetnsOption,
    SiteOption,
    StateDirOption,
    config_service,
    console,
    db_url_for,
    print_json,
    say,
    state_dir_for,
)
from pbxfw.cli.nodes import NodeOption, agent_node_name
from pbxfw.errors import FieldError, StorageError, ValidationError

__all__ = ["bans_app", "ips_app", "register"]

bans_app = typer.Typer(help="The ban list.", no_args_is_help=True)
ips_app = typer.Typer(help="Intrusion prevention: scan logs, counters.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
    app.add_typer(bans_app, name="bans")
    app.add_typer(ips_app, name="ips")
    bans_show.register(bans_app)


def _ban_service(db: str | None):  # type: ignore[no-untyped-def]
    from pbxfw.usecases.bans import BanService

    return BanService(config_service(db).store)


def agent(
    netns: NetnsOption = None,
    web_log: Annotated[
        str | None,
        typer.Option(help="pbxfw's own web login failures (default: web.log beside the database)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    db: DbOption = None,
    state_dir: StateDirOption = None,
    journal_directory: Annotated[
        str | None,
        typer.Option(
            hidden=True,
            help="Read journal: sources from the journal files in this folder instead of "
            "the system journal (tests).",
        ),
    ] = None,
    node: NodeOption = None,
    site: SiteOption = None,
    metrics: Annotated[
        str | None,
        typer.Option(
            help="Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9151; "
            "off by default; docs/observability.md)."
        ),
    ] = None,
) -> None:
    """The daemon: keeps the kernel equal to the stored configuration, follows the
    logs, bans and unbans. Stop it with SIGTERM or Ctrl-C; bans stay in the kernel."""
    import logging

    from pbxfw.agent.daemon import Agent, AgentOptions
    from pbxfw.agent.metrics import parse_listen
    from pbxfw.usecases.fleet import require_current_schema

    node = agent_node_name(node)
    listen = parse_listen(metrics) if metrics is not None else None
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    url = db_url_for(db)
    svc = config_service(db, site=site)
    # The agent never migrates (a node's database role may not): an old
    # schema is refused here, before anything runs on it (exit 4); a
    # database that is down is not (below).
    require_current_schema(svc.store)
    # An unknown site stops the agent before it starts (exit 2); a database
    # that is down does not: the agent starts from its kept configuration.
    with contextlib.suppress(StorageError):
        svc.store.check_site()
    folder = state_dir_for(url, state_dir)
    options = AgentOptions(
        netns=netns,
        state_dir=folder,
        web_log=web_log or str(Path(folder).parent / "web.log"),
        journal_directory=journal_directory,
        node=node,
        metrics=listen,
    )
    Agent(svc.store, options).run()


@bans_app.command("list")
def bans_list(
    json_: JsonOption = False,
    node: Annotated[
        str | None,
        typer.Option(
            help="As this node sees them: only the bans it enforces by ips_share, "
            "another node's reading fleet:NODE."
        ),
    ] = None,
    origin: Annotated[
        str | None,
        typer.Option(
            help="Only this origin: jail:NAME, manual, fleet:NODE, or feed:NAME (the "
            "feed's entries this node enforces)."
        ),
    ] = None,
    state_dir: StateDirOption = None,
    db: DbOption = None,
) -> None:
    """Who is banned, by which jail, from where (origin, node, site), why and until when."""
    if origin is not None and origin.startswith("feed:"):
        from pbxfw.cli.feeds import feed_entries

        feed_entries(origin, json_, db, state_dir)
        return
    service = _ban_service(db)
    bans = service.active() if node is None else service.seen_from(node)
    if origin is not None:
        bans = [b for b in bans if b.origin == origin]
    now = time.time()
    if json_:
        print_json([b.as_json(now) for b in bans])
        return
    from rich.table import Table

    table = Table(title=f"{len(bans)} bans", title_justify="left")
    for column in ("address", "jail", "origin", "reason", "since", "until", "failures"):
        table.add_column(column)
    for b in bans:
        table.add_row(
            b.address_text(),
            b.jail,
            f"{b.origin} at {b.node}" if b.node else b.origin,
            b.reason,
            _when(b.created_at),
            _when(b.expires_at),
            str(b.failures),
        )
    console().print(table)


def _when(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):  # a time no calendar shows
        return f"{epoch:.0f} (epoch seconds)"


@bans_app.command("add")
def bans_add(
    address: Annotated[str, typer.Argument(help="An address or CIDR.")],
    jail: Annotated[str, typer.Option(help="The jail (decides the services banned).")] = "manual",
    seconds: Annotated[int | None, typer.Option(help="Length (default: ips_bantime).")] = None,
    reason: Annotated[str, typer.Option(help="Shown in the ban list.")] = "",
    db: DbOption = None,
) -> None:
    """Ban an address (refused for never-block networks, ips_whitelist, loopback)."""
    ban = _ban_service(db).add(address, jail=jail, seconds=seconds, reason=reason)
    console().print(
        f"banned {ban.address_text()} (jail {ban.jail}) until {_when(ban.expires_at)}", markup=False
    )


@bans_app.command("rm")
def bans_rm(address: Annotated[str, typer.Argument()], db: DbOption = None) -> None:
    """Lift the bans of an address (the running agent reopens it within a second)."""
    removed = _ban_service(db).remove(address)
    console().print(f"unbanned {removed[0].address_text()} ({len(removed)} ban(s))", markup=False)


@bans_app.command("trust")
def bans_trust(
    address: Annotated[str, typer.Argument(help="An address or CIDR.")],
    json_: JsonOption = False,
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Never block an address and lift its bans: marks the network with exactly that
    subnet never-block, or adds one (its services keep their verdicts)."""
    report = config_service(db, site=site).trust(address)
    if json_:
        print_json(report.as_json())
        return
    how = "added" if report.created else "marked"
    console().print(
        f"{report.network.subnet} is never blocked ({how} network {report.network.name!r}); "
        f"{len(report.lifted)} ban(s) lifted; `pbxfw apply` puts it in the firewall",
        markup=False,
    )


@bans_app.command("import")
def bans_import(
    file: Annotated[Path, typer.Argument(help="One address or CIDR a line; # comments.")],
    jail: Annotated[str, typer.Option()] = "manual",
    seconds: Annotated[int | None, typer.Option()] = None,
    db: DbOption = None,
) -> None:
    """Ban many addresses at once (blocklists); whitelisted ones are skipped."""
    try:
        lines = (
            sys.stdin.read().splitlines()
            if str(file) == "-"
            else file.read_text(encoding="utf-8").splitlines()
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(FieldError("file", f"cannot read {file}: {exc}")) from None
    report = _ban_service(db).import_lines(lines, jail=jail, seconds=seconds)
    if report.skipped:
        err = console(stderr=True)
        for skipped in report.skipped[:20]:
            err.print(f"skipped {skipped}", markup=False)
        if len(report.skipped) > 20:
            err.print(f"... and {len(report.skipped) - 20} more skipped", markup=False)
    # Plain text: importing Rich for this one line would cost 5% of the command.
    sys.stdout.write(f"banned {report.added} addresses or subnets\n")


@ips_app.command("scan")
def ips_scan(
    files: Annotated[list[Path], typer.Argument(help="Log files (Asterisk, sshd, nginx).")],
    json_: JsonOption = False,
) -> None:
    """Recognise failures in log files without banning (like fail2ban-regex).

    One line per failure the intrusion prevention would count (the PAM line
    and sshd's line of one SSH attempt give one; a `message repeated N times`
    line says it counts N times). Lines longer than 64 KiB
    are skipped and counted as bad lines on stderr.
    """
    import gc

    # The scan allocates and frees a few objects per failure, none in a
    # reference cycle, and what its imports make lives to the end: the
    # cyclic collector would free nothing, and its passes over all of it cost
    # ~0.05 s of this process on a big log, on the command's critical path.
    # (The workers run without it too.)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _scan_command(files, json_)
    finally:
        if gc_was_enabled:
            gc.enable()


def _scan_command(files: list[Path], json_: bool) -> None:
    from pbxfw.ips.output import JsonLines, TextLines
    from pbxfw.ips.scan import ScanStats, scan_lines

    for path in files:
        _check_log_file(path)
    count = 0
    write = sys.stdout.write
    stats = ScanStats()
    # Whole lines in batches (see pbxfw.ips.output: no Failure objects, and
    # the workers of a parallel scan make the text of their own failures).
    fmt = JsonLines() if json_ else TextLines()
    for batch in _readable(scan_lines([str(p) for p in files], fmt, stats=stats)):
        count += len(batch)
        write("".join(batch))
    if json_:
        if stats.long_lines:
            say(_long_lines_note(stats.long_lines), stderr=True)
        return
    # A `message repeated N times` line counts N times (its line says so).
    summary = f"{count + stats.repeats} failures"
    if stats.long_lines:
        summary += "; " + _long_lines_note(stats.long_lines)
    say(summary, stderr=True)


def _check_log_file(path: Path) -> None:
    """Refuse, naming the file and the fix, what ``ips scan`` cannot read as a log."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ValidationError(FieldError("file", f"{path}: no such file")) from None
    except OSError as exc:
        raise ValidationError(FieldError("file", f"{path}: {exc.strerror}")) from None
    if stat.S_ISDIR(mode):
        raise ValidationError(
            FieldError(
                "file",
                f"{path} is a folder, not a log file: name the log files in it (e.g. {path}/*.log)",
            )
        )
    # A pipe (e.g. <(zcat auth.log.2.gz)) is read to its end; a device such
    # as /dev/zero never ends.
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise ValidationError(
            FieldError("file", f"{path} is not a regular file or a pipe: give a log file")
        )


def _readable(batches: Iterator[list[str]]) -> Iterator[list[str]]:
    """``batches``, with a read error turned into pbxfw's error for the file."""
    try:
        yield from batches
    except OSError as exc:
        name = exc.filename or "a log file"
        raise ValidationError(FieldError("file", f"cannot read {name}: {exc.strerror}")) from None


def _long_lines_note(count: int) -> str:
    return (
        f"{count} bad line{'s' if count != 1 else ''} longer than 64 KiB skipped"
        " (not a log line pbxfw reads)"
    )


@ips_app.command("status")
def ips_status(
    json_: JsonOption = False,
    db: DbOption = None,
    node: Annotated[
        str | None,
        typer.Option(
            "--node",
            help="Only this node's counters and sources (default: every node's, the "
            "counters summed).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Counters per jail (lines read, failures, bans, whitelisted skips) and the
    health of every log source the agents follow: which one fails, why, since when."""
    from pbxfw.domain.nodes import validate_node_name
    from pbxfw.usecases.ips_status import ips_status as read_ips_status

    if node is not None:
        node = validate_node_name(node, "--node")
    status = read_ips_status(config_service(db).store, node=node)
    if json_:
        # The same answer as GET /api/v1/ips/status.
        print_json(status.as_json())
        return
    active, counters, sources = status.active_bans, status.jails, status.sources
    from rich.table import Table

    table = Table(title=f"{active} active bans", title_justify="left")
    for column in ("jail", "lines", "failures", "bans", "whitelisted"):
        table.add_column(column)
    for jail, c in sorted(counters.items()):
        table.add_row(jail, *(str(c[k]) for k in ("lines", "failures", "bans", "whitelisted")))
    out = console()
    out.print(table)
    if not sources:
        out.print("no source status yet: the agent (pbxfw agent) records it", markup=False)
        return
    failing = status.failing
    title = (
        f"{len(failing)} of {len(sources)} sources failing" if failing else "sources: all healthy"
    )
    health = Table(title=title, title_justify="left")
    # The node column only when the sources come from more than one node.
    nodes = len({s.node for s in sources}) > 1
    for column in ("node",) * nodes + ("source", "jail", "state", "since", "attempts", "error"):
        # Fold, never cut: the path and the reason are what the reader needs.
        health.add_column(column, overflow="fold")
    for s in sources:
        health.add_row(
            *(s.node or "-",) * nodes,
            s.source if s.source.isprintable() else repr(s.source),
            s.jail or "-",
            "ok" if s.ok else "FAILING",
            _when(s.since),
            str(s.failures) if s.failures else "",
            s.error,
        )
    out.print(health)
    for s in failing:
        # One unbroken line each, whatever the terminal's width (for grep).
        name = s.source if s.source.isprintable() else repr(s.source)
        jail = f" (jail {s.jail})" if s.jail else ""
        out.print(
            f"failing since {_when(s.since)}: {name}{jail}: {s.error}",
            markup=False,
            soft_wrap=True,
        )
