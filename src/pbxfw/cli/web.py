"""``pbxfw serve``: the web admin page and the REST API."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from pbxfw.cli.common import (
    DbOption,
    NetnsOption,
    StateDirOption,
    config_service,
    db_url_for,
    state_dir_for,
)
from pbxfw.errors import ValidationError

__all__ = ["register", "secret_key"]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def secret_key(state_dir: str) -> bytes:
    """The key that signs sessions and tokens, kept in a root-only file so a
    restart does not log everyone out."""
    path = Path(state_dir) / "web-secret.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        return key


def metrics_token(state_dir: str, path: str | None) -> str | None:
    """The metrics token: the file's first line (``path``, else
    ``metrics-token`` in the state folder); None when the default file does
    not exist. A named file that cannot be read, or an empty one, stops
    ``serve`` with exit 2 naming ``--metrics-token-file``."""
    file = Path(path) if path is not None else Path(state_dir) / "metrics-token"
    try:
        token = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if path is None:
            return None
        raise ValidationError(f"{path}: no such file", "--metrics-token-file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{file}: cannot be read ({exc})", "--metrics-token-file") from exc
    if len(token) < 16:
        raise ValidationError(
            f"{file}: the token must be at least 16 characters (e.g. `openssl rand -hex 24 > {file}`)",
            "--metrics-token-file",
        )
    return token


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (keep 127.0.0.1 behind a proxy).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    netns: NetnsOption = None,
    ssl_certfile: Annotated[
        str | None, typer.Option(help="Serve HTTPS with this certificate.")
    ] = None,
    ssl_keyfile: Annotated[str | None, typer.Option(help="The certificate's key.")] = None,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(help="Trust X-Forwarded-* from this reverse proxy (e.g. 127.0.0.1)."),
    ] = None,
    web_log: Annotated[
        str | None, typer.Option(help="Where failed logins are written (the agent reads it).")
    ] = None,
    db: DbOption = None,
    state_dir: StateDirOption = None,
    metrics_token_file: Annotated[
        str | None,
        typer.Option(
            help="The token a Prometheus scraper sends to GET /metrics (Bearer); default: "
            "metrics-token in the state folder. No token: /metrics answers 401."
        ),
    ] = None,
) -> None:
    """The web admin page and the REST API (/api/v1, OpenAPI at /api/v1/openapi.json)."""
    from pbxfw.usecases.firewall import FirewallApplier, FirewallService
    from pbxfw.web import serve as run

    url = db_url_for(db)
    store = config_service(db).store
    folder = state_dir_for(url, state_dir)
    applier = FirewallApplier(FirewallService(store, folder), netns)

    def applier_for(site: str) -> FirewallApplier | None:
        # This host's kernel is a PBX of the server's own site: the page applies
        # that site only; another site is applied on one of its own PBXs
        # (docs/web.md, "Sites").
        return applier if site == store.site else None

    run(
        store,
        host,
        port,
        applier=applier,
        applier_for=applier_for,
        secret_key=secret_key(folder),
        web_log=Path(web_log or Path(folder).parent / "web.log"),
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        forwarded_allow_ips=forwarded_allow_ips,
        metrics_token=metrics_token(folder, metrics_token_file),
    )
