"""``GET /api/v1/ips/status``: the intrusion prevention's switch, bans, counters,
and the health of every log source the agent follows."""

from __future__ import annotations

from fastapi import APIRouter

from pbxfw.usecases.source_status import source_statuses
from pbxfw.web.deps import BansDep, ConfigDep, ContextDep
from pbxfw.web.schemas import IpsStatus, SourceStatusPublic

__all__ = ["router"]


def ips_status(context: ContextDep, config: ConfigDep, bans: BansDep) -> IpsStatus:
    """Per jail: lines read, failures recognised, bans made, whitelisted hits;
    per log source: healthy or failing, why, since when (as the agent recorded it)."""
    # The agent writes the counters; there is no use case around this read yet.
    with context.store.read() as repo:
        counters = repo.ips_counters()
    return IpsStatus(
        enabled=config.settings().ips_enabled,
        active_bans=len(bans.active()),
        jails=counters,
        sources=[SourceStatusPublic(**s.as_json()) for s in source_statuses(context.store)],
    )


def router() -> APIRouter:
    r = APIRouter(prefix="/ips", tags=["ips"])
    r.add_api_route("/status", ips_status, methods=["GET"], response_model=IpsStatus)
    return r
