"""``pbxfw settings show|set``."""

from __future__ import annotations

from typing import Annotated

import typer

from pbxfw.cli.common import DbOption, JsonOption, SiteOption, config_service, console, print_json
from pbxfw.errors import FieldError, ValidationError

__all__ = ["app"]

app = typer.Typer(
    help="Ports, switches, intrusion-prevention parameters, log paths.", no_args_is_help=True
)


@app.command("show")
def show(json_: JsonOption = False, db: DbOption = None, site: SiteOption = None) -> None:
    """Every setting with its current value."""
    settings = config_service(db, site=site).settings()
    if json_:
        print_json(settings.model_dump())
        return
    out = console()
    for key in type(settings).model_fields:
        out.print(f"{key:24} {settings.as_text(key)}", markup=False)


@app.command("set")
def set_(
    pairs: Annotated[list[str], typer.Argument(help="KEY=VALUE … (ips_preset=normal sets three).")],
    db: DbOption = None,
    site: SiteOption = None,
) -> None:
    """Change settings; all are validated together, then stored at once."""
    changes: dict[str, str] = {}
    errors = []
    index = 0
    while index < len(pairs):
        pair = pairs[index]
        index += 1
        key, eq, value = pair.partition("=")
        if eq and key.strip():
            changes[key.strip()] = value.strip()
        elif not eq and index < len(pairs) and "=" not in pairs[index]:
            # `settings set log_ssh journal:ssh.service`: the value went into its own word.
            example = f"{pair}={pairs[index]}"
            errors.append(FieldError(pair, f"write KEY=VALUE as one word: {example}"))
            index += 1
        else:
            errors.append(FieldError(pair, "write KEY=VALUE, e.g. sip_port=5070"))
    if errors:
        raise ValidationError(errors)
    updated = config_service(db, site=site).update_settings(changes)
    out = console()
    for key in changes:
        if key == "ips_preset":
            continue
        out.print(f"{key} = {updated.as_text(key)}", markup=False)
    if "ips_preset" in changes:
        out.print(
            f"ips_preset {changes['ips_preset']}: ips_maxretry={updated.ips_maxretry} "
            f"ips_findtime={updated.ips_findtime} ips_bantime={updated.ips_bantime}",
            markup=False,
        )
