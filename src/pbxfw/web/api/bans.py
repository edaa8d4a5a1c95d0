"""``/api/v1/bans``: list, ban, unban, import a blocklist, never block an address."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from pbxfw.web.deps import BansDep, ConfigDep, ContextDep
from pbxfw.web.evidence_schemas import BanDetails
from pbxfw.web.schemas import (
    BanCreate,
    BanImport,
    BanImportResult,
    BanPublic,
    BanTrust,
    TrustResult,
)

__all__ = ["router"]


def list_bans(bans: BansDep, context: ContextDep) -> list[dict[str, object]]:
    """The active bans, with the seconds each has left."""
    now = context.clock()
    return [b.as_json(now) for b in bans.active()]


def create_ban(body: BanCreate, bans: BansDep, context: ContextDep) -> dict[str, object]:
    """Ban an address or CIDR; never-block networks and ips_whitelist answer 422."""
    ban = bans.add(body.address, jail=body.jail, seconds=body.seconds, reason=body.reason)
    return ban.as_json(context.clock())


def show_ban(address: str, bans: BansDep, context: ContextDep) -> list[dict[str, object]]:
    """Why ``address`` is banned: each of its bans (active or ended, until
    pruned after ips_evidence_days), newest first, with its origin, who made
    it, the rule that fired and the log lines; 404 naming the address when
    none is stored (URL-encode a CIDR: ``198.51.100.0%2F24``)."""
    now = context.clock()
    return [r.as_json(now) for r in bans.show(address)]


def delete_ban(address: str, bans: BansDep) -> Response:
    """Lift every ban of ``address`` (URL-encode a CIDR: ``198.51.100.0%2F24``)."""
    bans.remove(address)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def import_bans(body: BanImport, bans: BansDep) -> BanImportResult:
    """All or nothing: a malformed line refuses the whole list, naming the line."""
    report = bans.import_lines(body.lines, jail=body.jail, seconds=body.seconds)
    return BanImportResult(added=report.added, skipped=report.skipped)


def trust(body: BanTrust, config: ConfigDep) -> dict[str, object]:
    """Never block an address or CIDR and lift its bans, in one transaction: the
    network with exactly that subnet is marked never-block, else one is added."""
    return config.trust(body.address).as_json()


def router() -> APIRouter:
    r = APIRouter(prefix="/bans", tags=["bans"])
    r.add_api_route("", list_bans, methods=["GET"], response_model=list[BanPublic])
    r.add_api_route(
        "",
        create_ban,
        methods=["POST"],
        response_model=BanPublic,
        status_code=status.HTTP_201_CREATED,
    )
    r.add_api_route("/import", import_bans, methods=["POST"], response_model=BanImportResult)
    r.add_api_route("/trust", trust, methods=["POST"], response_model=TrustResult)
    # ``:path`` because a decoded CIDR contains a slash.
    r.add_api_route(
        "/{address:path}",
        show_ban,
        methods=["GET"],
        response_model=list[BanDetails],
        responses={404: {"description": "no ban of the address is stored"}},
    )
    r.add_api_route(
        "/{address:path}",
        delete_ban,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses={404: {"description": "the address is not banned"}},
    )
    return r
