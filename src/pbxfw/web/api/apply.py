"""``/api/v1/apply``: preview, apply (with a confirmation window), confirm, roll back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from pbxfw.web.deps import ApplierDep, client_address
from pbxfw.web.schemas import ApplyRequest, ApplyStatus

__all__ = ["router"]


def preview(applier: ApplierDep) -> dict[str, Any]:
    """What applying would load, and the change awaiting confirmation if any."""
    return {"preview": applier.preview(), "pending": applier.pending()}


def apply(body: ApplyRequest, applier: ApplierDep, request: Request) -> dict[str, Any]:
    """Apply the stored configuration to the kernel.

    With ``confirm_seconds`` the previous rules come back by themselves
    unless ``POST /api/v1/apply/confirm`` arrives in time. A change that
    would block the caller's own address answers 409 (anti-lockout rule).
    """
    return applier.apply(body.confirm_seconds, client_address(request))


def confirm(applier: ApplierDep) -> dict[str, Any]:
    """Keep the pending change."""
    return applier.confirm()


def rollback(applier: ApplierDep) -> dict[str, Any]:
    """Undo the pending change now."""
    return applier.rollback()


def router() -> APIRouter:
    r = APIRouter(prefix="/apply", tags=["apply"])
    unavailable: dict[int | str, dict[str, Any]] = {
        503: {"description": "the server was started without the dataplane"}
    }
    r.add_api_route("", preview, methods=["GET"], responses=unavailable)
    r.add_api_route(
        "",
        apply,
        methods=["POST"],
        response_model=ApplyStatus,
        responses={**unavailable, 409: {"description": "would lock the caller out"}},
    )
    r.add_api_route(
        "/confirm", confirm, methods=["POST"], response_model=ApplyStatus, responses=unavailable
    )
    r.add_api_route(
        "/rollback", rollback, methods=["POST"], response_model=ApplyStatus, responses=unavailable
    )
    return r
