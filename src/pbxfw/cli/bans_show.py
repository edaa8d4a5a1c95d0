"""``pbxfw bans show ADDRESS``: why an address is (or was) banned, and who made an
administrator's ban (usecases.actor ``ban_who``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from pbxfw.cli.common import DbOption, JsonOption, config_service, print_json

if TYPE_CHECKING:
    from pbxfw.usecases.bans import BanRecord

__all__ = ["register"]


def register(bans_app: typer.Typer) -> None:
    bans_app.command("show")(bans_show)


def _when(epoch: float) -> str:
    try:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return f"{epoch:.0f} (epoch seconds)"


def describe(record: BanRecord, now: float) -> list[str]:
    """One ban of ``bans show`` as lines of text."""
    ban, evidence = record.ban, record.evidence
    state = f"active until {_when(ban.expires_at)}" if ban.active(now) else "ended"
    where = f" at node {ban.node}" if ban.node else ""
    out = [
        f"{ban.address_text()}: jail {ban.jail}, origin {ban.origin}{where}, {state}",
        f"  made {_when(ban.created_at)}; reason: {ban.reason}",
    ]
    if ban.who:
        out.append(f"  by {ban.who}")
    if evidence is None:
        if ban.origin.startswith("jail:"):
            out.append("  no log lines kept for this ban")
        return out
    out.append(
        f"  rule: jail {evidence.jail}, {evidence.maxretry} failures within {evidence.findtime} s"
    )
    lost = f" ({evidence.lost} more not kept)" if evidence.lost else ""
    out.append(f"  {len(evidence.lines)} line(s), oldest first{lost}:")
    for line in evidence.lines:
        text = line.text if line.text.isprintable() else repr(line.text)
        out.append(f"    {line.file}:{line.line} [{line.event}] {text}")
    return out


def bans_show(
    address: Annotated[str, typer.Argument(help="An address or CIDR.")],
    json_: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Why an address is banned: each of its bans (active or ended, until
    pruned after ips_evidence_days) with its origin, who made it, the rule
    that fired and the log lines (file:line) that caused it."""
    from pbxfw.usecases.bans import BanService

    records = BanService(config_service(db).store).show(address)
    now = time.time()
    if json_:
        print_json([r.as_json(now) for r in records])
        return
    import sys

    sys.stdout.write("\n".join(line for r in records for line in describe(r, now)) + "\n")
