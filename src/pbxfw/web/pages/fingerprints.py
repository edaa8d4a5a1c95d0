"""The Fingerprints page (issue 18): the scanner fingerprints, add and remove.

A SIP request whose header holds one of these texts (any case) is dropped
before Asterisk sees it and its sender banned (jail ``asterisk``, origin
``fingerprint``): docs/nftables.md, "Scanner fingerprints".
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request, status
from fastapi.responses import HTMLResponse, Response

from pbxfw.errors import PbxfwError, ValidationError
from pbxfw.usecases.fingerprints import FingerprintService
from pbxfw.web.deps import AdminSession, ContextDep, WebContext
from pbxfw.web.pages.common import CsrfForm, form_errors, form_text, redirect, render
from pbxfw.web.security import Session

__all__ = ["add_fingerprint", "fingerprints_page", "remove_fingerprint"]


def _page(
    request: Request,
    context: WebContext,
    session: Session,
    *,
    new: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    return render(
        request,
        "fingerprints.html",
        {
            "fingerprints": FingerprintService(context.config.store).fingerprints(),
            "new": dict(new or {}),
            "errors": errors or {},
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def fingerprints_page(request: Request, context: ContextDep, session: AdminSession) -> Response:
    return _page(request, context, session)


def add_fingerprint(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    values = {k: form_text(form, k).strip() for k in ("pattern", "header")}
    try:
        added = FingerprintService(context.config.store).add_fingerprint(
            values["pattern"], values["header"] or None
        )
    except ValidationError as exc:
        errors = {f"new_{k}": v for k, v in form_errors(exc).items()}
        return _page(request, context, session, new=values, errors=errors)
    return redirect(request, "/fingerprints", f"Fingerprint “{added.pattern}” added.")


def remove_fingerprint(
    request: Request, context: ContextDep, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        gone = FingerprintService(context.config.store).remove_fingerprint(
            form_text(form, "pattern"), form_text(form, "header") or None
        )
    except PbxfwError as exc:
        return redirect(request, "/fingerprints", str(exc), "error")
    return redirect(request, "/fingerprints", f"Fingerprint “{gone.pattern}” removed.")
