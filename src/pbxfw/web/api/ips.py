"""``GET /api/v1/ips/status``: the intrusion prevention's switch, bans, counters,
and the health of every log source the agent follows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pbxfw.usecases.ips_status import ips_status as read_ips_status
from pbxfw.web.deps import ContextDep
from pbxfw.web.schemas import IpsStatus

__all__ = ["router"]


def ips_status(
    context: ContextDep,
    node: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=63,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
            description="only this node's counters and sources (default: every node's, "
            "the counters summed)",
        ),
    ] = None,
) -> IpsStatus:
    """Per jail: lines read, failures recognised, bans made, whitelisted hits;
    per log source: healthy or failing, why, since when (as each node's agent
    recorded it). The same answer as ``pbxfw ips status --json [--node N]``."""
    status = read_ips_status(context.store, context.clock, node=node)
    return IpsStatus.model_validate(status.as_json())


def router() -> APIRouter:
    r = APIRouter(prefix="/ips", tags=["ips"])
    r.add_api_route("/status", ips_status, methods=["GET"], response_model=IpsStatus)
    return r
