"""The firewall page: the two switches and the networks table."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pbxfw.web.deps import (
    AdminSession,
)
from pbxfw.web.pages.common import (
    CsrfForm,
    redirect,
    render,
    table_columns,
)
from pbxfw.web.pages.sites import SiteContext

# -- firewall: switches and the networks table -----------------------------------------


def firewall_page(request: Request, context: SiteContext, session: AdminSession) -> Response:
    config = context.config.configuration()
    return render(
        request,
        "firewall.html",
        {
            "settings": config.settings,
            "networks": config.networks,
            "columns": table_columns(config.services()),
        },
        session=session,
    )


def save_switches(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    changes = {key: form.get(key) == "on" for key in ("firewall_enabled", "ips_enabled")}
    settings = context.config.update_settings(changes)
    words = [
        "Firewall " + ("enabled" if settings.firewall_enabled else "disabled"),
        "intrusion prevention " + ("enabled" if settings.ips_enabled else "disabled"),
    ]
    return redirect(request, "/firewall", "; ".join(words) + ".")
