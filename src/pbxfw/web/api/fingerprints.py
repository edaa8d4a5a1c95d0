"""``/api/v1/fingerprints``: the scanner fingerprints (issue 18): list, add, remove.

A pattern may hold any printable character (``/`` too), so a removal names
it in the query (``DELETE /fingerprints?pattern=…&header=…``), not in the path.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from pbxfw.usecases.fingerprints import FingerprintService
from pbxfw.web.deps import ConfigDep

__all__ = ["FingerprintCreate", "FingerprintPublic", "router"]


class FingerprintCreate(BaseModel):
    """A new fingerprint: ``header`` contains ``pattern`` (any case)."""

    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description="1–128 printable characters", examples=["friendly-scanner"])
    header: str | None = Field(default=None, description="a SIP header name; default User-Agent")


class FingerprintPublic(BaseModel):
    header: str
    pattern: str
    builtin: bool = Field(description="shipped with pbxfw")


def list_fingerprints(config: ConfigDep) -> list[dict[str, Any]]:
    """The list in force: the shipped patterns not removed, then the added ones."""
    return [f.as_json() for f in FingerprintService(config.store).fingerprints()]


def create_fingerprint(body: FingerprintCreate, config: ConfigDep) -> dict[str, Any]:
    """Add a fingerprint (a removed shipped one comes back); 422 naming the field otherwise."""
    return FingerprintService(config.store).add_fingerprint(body.pattern, body.header).as_json()


def delete_fingerprint(
    config: ConfigDep,
    pattern: Annotated[str, Query(examples=["friendly-scanner"])],
    header: Annotated[str | None, Query()] = None,
) -> Response:
    """Remove a fingerprint (a shipped one is switched off for the site); 404 when not listed."""
    FingerprintService(config.store).remove_fingerprint(pattern, header)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def router() -> APIRouter:
    r = APIRouter(tags=["fingerprints"])
    r.add_api_route(
        "/fingerprints",
        list_fingerprints,
        methods=["GET"],
        response_model=list[FingerprintPublic],
    )
    r.add_api_route(
        "/fingerprints",
        create_fingerprint,
        methods=["POST"],
        response_model=FingerprintPublic,
        status_code=status.HTTP_201_CREATED,
    )
    r.add_api_route(
        "/fingerprints",
        delete_fingerprint,
        methods=["DELETE"],
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses={404: {"description": "no such fingerprint"}},
    )
    return r
