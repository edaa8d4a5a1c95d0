"""The check page: what the rules decide for one address and service."""

from __future__ import annotations

from fastapi import Request, status
from fastapi.responses import Response

from pbxfw.errors import ValidationError
from pbxfw.web.deps import (
    AdminSession,
)
from pbxfw.web.pages.common import (
    form_errors,
    render,
)
from pbxfw.web.pages.sites import SiteContext

# -- check an address ----------------------------------------------------------------


def check_page(
    request: Request,
    context: SiteContext,
    session: AdminSession,
    address: str = "",
    service: str = "sip",
) -> Response:
    services = context.config.services()
    decision = None
    errors: dict[str, str] = {}
    if address:
        try:
            active = [b.as_active() for b in context.bans.active()]
            decision = context.config.check(address, service, bans=active)
        except ValidationError as exc:
            errors = form_errors(exc)
    return render(
        request,
        "check.html",
        {
            "address": address,
            "service": service,
            "services": services,
            "decision": decision,
            "errors": errors,
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )
