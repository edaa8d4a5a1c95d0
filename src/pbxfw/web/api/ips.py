"""``GET /api/v1/ips/status``: the intrusion prevention's switch, bans, counters,
and the health of every log source the agent follows."""

from __future__ import annotations

from fastapi import APIRouter

from pbxfw.usecases.ips_status import ips_status as read_ips_status
from pbxfw.web.deps import ContextDep
from pbxfw.web.schemas import IpsStatus

__all__ = ["router"]


def ips_status(context: ContextDep) -> IpsStatus:
    """Per jail: lines read, failures recognised, bans made, whitelisted hits;
    per log source: healthy or failing, why, since when (as the agent recorded it).
    The same answer as ``pbxfw ips status --json``."""
    return IpsStatus.model_validate(read_ips_status(context.store, context.clock).as_json())


def router() -> APIRouter:
    r = APIRouter(prefix="/ips", tags=["ips"])
    r.add_api_route("/status", ips_status, methods=["GET"], response_model=IpsStatus)
    return r
