"""The services page: the built-in services' ports and custom services."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request, status
from fastapi.responses import HTMLResponse, Response

from pbxfw.errors import PbxfwError, ValidationError
from pbxfw.web.deps import (
    AdminSession,
    WebContext,
)
from pbxfw.web.pages.common import (
    CsrfForm,
    form_errors,
    form_text,
    redirect,
    render,
)
from pbxfw.web.pages.sites import SiteContext
from pbxfw.web.security import Session

PORT_KEYS = (
    "sip_port",
    "tls_port",
    "rtp_port_from",
    "rtp_port_to",
    "iax_port",
    "web_port",
    "web_https_port",
    "ssh_port",
    "ami_port",
    "ajam_port",
    "ajam_tls_port",
    "cti_ports",
)
PORT_LABELS = {
    "sip_port": "SIP (udp + tcp)",
    "tls_port": "SIP over TLS (tcp)",
    "rtp_port_from": "RTP from (udp)",
    "rtp_port_to": "RTP to (udp)",
    "iax_port": "IAX2 (udp)",
    "web_port": "Web, HTTP (tcp)",
    "web_https_port": "Web, HTTPS (tcp)",
    "ssh_port": "SSH (tcp)",
    "ami_port": "AMI (tcp)",
    "ajam_port": "AJAM / ARI, HTTP (tcp)",
    "ajam_tls_port": "AJAM / ARI, HTTPS (tcp)",
    "cti_ports": "CTI client (tcp)",
}


# -- services ------------------------------------------------------------------------


def _services_page(
    request: Request,
    context: WebContext,
    session: Session,
    *,
    ports: Mapping[str, str] | None = None,
    custom: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    settings = context.config.settings()
    return render(
        request,
        "services.html",
        {
            "services": context.config.services(),
            "ports": {k: settings.as_text(k) for k in PORT_KEYS} | dict(ports or {}),
            "port_labels": PORT_LABELS,
            "custom": dict(custom or {}),
            "errors": errors or {},
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def services_page(request: Request, context: SiteContext, session: AdminSession) -> Response:
    return _services_page(request, context, session)


def save_ports(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    values = {k: form_text(form, k).strip() for k in PORT_KEYS}
    try:
        context.config.update_settings(values)
    except ValidationError as exc:
        return _services_page(request, context, session, ports=values, errors=form_errors(exc))
    return redirect(request, "/services", "Ports saved; the rules follow them.")


def add_custom_service(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    values = {k: form_text(form, k).strip() for k in ("key", "label", "tcp", "udp")}
    try:
        service = context.config.add_service(
            values["key"], values["label"], values["tcp"], values["udp"]
        )
    except ValidationError as exc:
        errors = {f"custom_{k}": v for k, v in form_errors(exc).items()}
        return _services_page(request, context, session, custom=values, errors=errors)
    return redirect(
        request,
        "/services",
        f"Service “{service.label}” added; every network blocks it until you allow it.",
    )


def remove_custom_service(
    key: str, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        context.config.remove_service(key)
    except PbxfwError as exc:
        return redirect(request, "/services", str(exc), "error")
    return redirect(request, "/services", f"Service {key} removed.")
