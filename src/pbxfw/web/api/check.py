"""``GET /api/v1/check?address=A&service=S``: the decision of DESIGN §2."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pbxfw.web.deps import BansDep, ConfigDep
from pbxfw.web.schemas import CheckPublic

__all__ = ["router"]


def check_address(
    config: ConfigDep,
    bans: BansDep,
    address: Annotated[str, Query(examples=["203.0.113.7"])],
    service: Annotated[str, Query(examples=["sip"])],
) -> dict[str, object]:
    """Allow, block or banned, and the network or ban that decided."""
    active = [b.as_active() for b in bans.active()]
    return config.check(address, service, bans=active).as_json()


def router() -> APIRouter:
    r = APIRouter(tags=["check"])
    r.add_api_route(
        "/check",
        check_address,
        methods=["GET"],
        response_model=CheckPublic,
        # "country" only when a country rule decided, as `pbxfw check --json`.
        response_model_exclude_unset=True,
    )
    return r
