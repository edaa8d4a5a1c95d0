"""What every command shares: ``--db``, ``--site``, ``--json``, opening the services, output.

The database a command uses is, first to last: its own ``--db``, the global
``pbxfw --db URL COMMAND``, the environment variable ``PBXFW_DB``, and
``var/pbxfw.db`` (:func:`db_url_for`). The site whose configuration it reads
and writes (docs/fleet-sites.md) likewise: its own ``--site``, the global
``pbxfw --site NAME COMMAND``, ``PBXFW_SITE``, and ``default``
(:func:`site_for`).
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pbxfw.bulk import gc_paused
from pbxfw.errors import PbxfwError, ValidationError

if TYPE_CHECKING:
    # Imported inside the factories at run time: a command pays only for
    # what it uses (start-up time of `pbxfw ips scan`).
    from rich.console import Console

    from pbxfw.storage.repository import Store
    from pbxfw.usecases import ConfigService
    from pbxfw.usecases.firewall import FirewallService

__all__ = [
    "DbOption",
    "JsonOption",
    "NetnsOption",
    "SiteOption",
    "StateDirOption",
    "close_stores",
    "config_service",
    "console",
    "db_url_for",
    "dumps",
    "fail",
    "firewall_service",
    "print_json",
    "say",
    "site_for",
    "split_keys",
    "state_dir_for",
    "use_global_db",
    "use_global_site",
]

# No envvar here: PBXFW_DB is read last, by db_url_for, so that the global
# `pbxfw --db` wins over it (a command-level envvar would win over the global).
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite file path or SQLAlchemy URL; wins over `pbxfw --db` and env PBXFW_DB "
        "(default var/pbxfw.db).",
        show_default=False,
    ),
]
# No envvar either: PBXFW_SITE is read last, by site_for.
SiteOption = Annotated[
    str | None,
    typer.Option(
        "--site",
        help="The site whose configuration to use; wins over `pbxfw --site` and env "
        "PBXFW_SITE (default: default).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
NetnsOption = Annotated[
    str | None,
    typer.Option("--netns", help="Apply inside this network namespace (tests, the sandbox)."),
]
StateDirOption = Annotated[
    str | None,
    typer.Option(
        "--state-dir",
        envvar="PBXFW_STATE_DIR",
        help="Confirmation-window state (default: state/ beside a SQLite database).",
        show_default=False,
    ),
]


#: The global ``pbxfw --db`` of the running command (None: not given).
_global_db: str | None = None


def use_global_db(db: str | None) -> None:
    """Record the global ``pbxfw --db`` (the root command sets it for every command)."""
    global _global_db
    _global_db = db


#: The global ``pbxfw --site`` of the running command (None: not given).
_global_site: str | None = None


def use_global_site(site: str | None) -> None:
    """Record the global ``pbxfw --site`` (the root command sets it for every command)."""
    global _global_site
    _global_site = site


def site_for(site: str | None) -> str:
    """The site a command uses: its own ``--site``, else the global ``pbxfw
    --site``, else ``PBXFW_SITE``, else ``default``; a name no site can have
    is refused naming ``--site`` (exit 2)."""
    import os

    from pbxfw.domain.sites import DEFAULT_SITE, validate_site_name

    return validate_site_name(
        site or _global_site or os.environ.get("PBXFW_SITE") or DEFAULT_SITE, "--site"
    )


def db_url_for(db: str | None) -> str:
    """The SQLAlchemy URL a command uses: its own ``--db`` (``db``), else the
    global ``pbxfw --db``, else ``PBXFW_DB``, else ``var/pbxfw.db``."""
    from pbxfw.storage.db import database_url

    return database_url(db or _global_db)


def state_dir_for(db_url: str, state_dir: str | None) -> str:
    """``--state-dir``, else ``state/`` beside a SQLite file, else /var/lib/pbxfw/state.

    The folder is made its owner's only (0700, created so or tightened): it
    holds the key that signs sessions and tokens.
    """
    from pbxfw.storage.db import private_folder

    return str(private_folder(state_dir or _default_state_dir(db_url)))


def _default_state_dir(db_url: str) -> str:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(Path(url.database).parent / "state")
    return "/var/lib/pbxfw/state"


#: The stores the running command opened; closed by ``close_stores``.
_open_stores: list[Store] = []


#: Whether this process froze its start-up's objects (see ``_loading``).
_frozen = False


@contextmanager
def _loading() -> Iterator[None]:
    """Around the imports a command makes for its use cases (SQLAlchemy,
    pydantic, the domain): hundreds of thousands of long-lived objects
    (classes, functions, tables), made with the cyclic collector paused and
    then, once per process, frozen out of its later passes (``gc.freeze``).
    About 0.07 s of ``pbxfw apply``'s CPU; nothing else changes (reference
    counting frees what it always did; objects made later are collected)."""
    global _frozen
    with gc_paused():
        yield
    if not _frozen:
        _frozen = True
        gc.freeze()


def _open_store(url: str, *, create: bool = False) -> Store:
    """The store at ``url``, closed by ``close_stores`` when the command ends."""
    with _loading():
        from pbxfw.storage.repository import Store
        from pbxfw.usecases.actor import process_actor, use_actor

        store = Store.open(url, create=create)
    # Who changes what through this command: the OS user (and SUDO_USER), at
    # `local` (the history, usecases.history); forgotten in close_stores.
    use_actor(process_actor("cli"))
    _open_stores.append(store)
    return store


def close_stores() -> None:
    """Close every store the running command opened.

    The root command group calls it when a command ends, also when it fails,
    so no engine or SQLite connection outlives the command (tests and
    ``CliRunner`` run many commands in one process).
    """
    while _open_stores:
        _open_stores.pop().close()
    if "pbxfw.usecases.actor" in sys.modules:  # imported by _open_store
        sys.modules["pbxfw.usecases.actor"].use_actor(None)


def firewall_service(
    db: str | None, state_dir: str | None = None, site: str | None = None
) -> FirewallService:
    """A FirewallService on the database, state folder and site the options
    name (its store is closed when the command ends)."""
    with _loading():
        from pbxfw.usecases.firewall import FirewallService

    url = db_url_for(db)
    return FirewallService(_open_store(url), state_dir_for(url, state_dir), site=site_for(site))


def config_service(
    db: str | None, *, create: bool = False, site: str | None = None
) -> ConfigService:
    """A ConfigService on the database named by ``--db`` / ``PBXFW_DB`` / the
    default, for the site named by ``--site`` / ``PBXFW_SITE`` / ``default``
    (its store is closed when the command ends)."""
    import os

    with _loading():
        from pbxfw.usecases import ConfigService

    url = db_url_for(db)
    service = ConfigService(_open_store(url, create=create), site=site_for(site))
    if create:
        # `init` makes the state folder too, private from the start.
        state_dir_for(url, os.environ.get("PBXFW_STATE_DIR"))
    return service


def dumps(value: Any) -> str:
    """JSON text, deterministic, one list item per line.

    Lists (of networks, bans…) are written one compact item per line: as
    readable in a diff as ``indent=2`` but encoded by the C encoder, which
    matters for 10,000 networks.
    """

    def compact(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False)

    def items(values: list[Any], pad: str) -> str:
        if not values:
            return "[]"
        return "[\n" + ",\n".join(f"{pad}  {compact(v)}" for v in values) + f"\n{pad}]"

    if isinstance(value, list):
        return items(value, "")

    def members(mapping: dict[str, Any], pad: str) -> str:
        if not mapping:
            return "{}"
        lines = []
        for k, v in mapping.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                text = items(v, pad + "  ")
            elif isinstance(v, dict) and not pad:
                text = members(v, pad + "  ")
            else:
                text = compact(v)
            lines.append(f"{pad}  {compact(k)}: {text}")
        return "{\n" + ",\n".join(lines) + f"\n{pad}}}"

    if isinstance(value, list):
        return items(value, "")
    if isinstance(value, dict):
        return members(value, "")
    return compact(value)


def print_json(value: Any) -> None:
    sys.stdout.write(dumps(value) + "\n")


def console(stderr: bool = False) -> Console:
    """A Rich console on stdout (or stderr), not cut to 80 columns when piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output is not cut to 80 columns: tables of networks are wide.
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def say(text: str, *, stderr: bool = False) -> None:
    """``console(stderr).print(text, markup=False)``, byte for byte, without
    importing Rich when it would print ``text`` as it is (tested).

    With markup off Rich still turns ``:name:`` into an emoji and expands
    tabs; a printable text without a colon it prints unchanged (it never
    wraps: soft_wrap). Importing Rich costs 30–50 ms, a few per cent of
    ``pbxfw apply``.
    """
    if text.isprintable() and ":" not in text:
        (sys.stderr if stderr else sys.stdout).write(text + "\n")
    else:
        console(stderr).print(text, markup=False)


def fail(error: PbxfwError) -> int:
    """Print ``error`` on stderr (one line per field) and return its exit code."""
    from rich.text import Text

    err = console(stderr=True)
    lines = [str(e) for e in error.errors] if isinstance(error, ValidationError) else [str(error)]
    for line in lines:
        # Text, not markup: names may contain [brackets] that Rich would eat.
        err.print(Text.assemble(("error: ", "bold red"), line))
    return error.exit_code


def split_keys(values: list[str] | None) -> list[str]:
    """``--allow sip,iax --allow ssh`` → ``["sip", "iax", "ssh"]``."""
    keys: list[str] = []
    for value in values or []:
        keys += [k.strip() for k in value.split(",") if k.strip()]
    return keys
