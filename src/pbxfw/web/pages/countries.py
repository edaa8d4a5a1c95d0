"""The Countries page (issue 17): the country database's state and the country rules.

Search by name or code, a code badge per country, per-service
choices like the networks' (allow, block, or the Internet network's verdict),
add, change, remove. A missing or old database is a warning at the top.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request, status
from fastapi.responses import HTMLResponse, Response

from pbxfw.domain.countries import CountryRule
from pbxfw.errors import PbxfwError, ValidationError
from pbxfw.usecases.geo import GeoService
from pbxfw.web.deps import AdminSession, WebContext
from pbxfw.web.pages.common import CsrfForm, form_errors, form_text, redirect, render
from pbxfw.web.pages.sites import SiteContext
from pbxfw.web.security import Session

__all__ = ["add_country", "countries_page", "delete_country", "update_country"]

#: What a service's choice can be on the form; "inherit": the Internet network decides.
CHOICES = ("inherit", "allow", "block")


def _matches(rule: CountryRule, query: str) -> bool:
    q = query.strip().casefold()
    return not q or q in rule.name.casefold() or any(q == c.casefold() for c in rule.codes)


def _countries_page(
    request: Request,
    context: WebContext,
    session: Session,
    *,
    query: str = "",
    new: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    rules = context.config.country_rules()
    return render(
        request,
        "countries.html",
        {
            "rules": [r for r in rules if _matches(r, query)],
            "total": len(rules),
            "query": query,
            "services": context.config.services(),
            "geo": GeoService(context.store).status(now=context.clock()),
            "new": dict(new or {}),
            "choices": CHOICES,
            "errors": errors or {},
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def countries_page(
    request: Request, context: SiteContext, session: AdminSession, q: str = ""
) -> Response:
    return _countries_page(request, context, session, query=q)


def _verdicts(form: Mapping[str, object], keys: list[str]) -> tuple[list[str], list[str]]:
    allow = [k for k in keys if form.get(f"svc_{k}") == "allow"]
    block = [k for k in keys if form.get(f"svc_{k}") == "block"]
    return allow, block


def add_country(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    keys = [s.key for s in context.config.services()]
    values = {k: form_text(form, k).strip() for k in ("name", "codes")}
    values |= {f"svc_{k}": form_text(form, f"svc_{k}") for k in keys}
    allow, block = _verdicts(values, keys)
    try:
        rule = context.config.add_country(values["name"], values["codes"], allow, block)
    except ValidationError as exc:
        errors = {f"new_{k}": v for k, v in form_errors(exc).items()}
        return _countries_page(request, context, session, new=values, errors=errors)
    return redirect(request, "/countries", f"Country rule “{rule.name}” added.")


def update_country(
    rule_id: int, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    keys = [s.key for s in context.config.services()]
    allow, block = _verdicts(form, keys)
    inherit = [k for k in keys if form.get(f"svc_{k}") == "inherit"]
    try:
        rule = context.config.set_country(
            str(rule_id),
            codes=form_text(form, "codes").strip() or None,
            allow=allow,
            block=block,
            inherit=inherit,
        )
    except ValidationError as exc:
        # Shown above the table, 422, nothing stored.
        message = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
        return _countries_page(request, context, session, errors={"rule": message})
    except PbxfwError as exc:
        return redirect(request, "/countries", str(exc), "error")
    return redirect(request, "/countries", f"Country rule “{rule.name}” saved.")


def delete_country(
    rule_id: int, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        rule = context.config.remove_country(str(rule_id))
    except PbxfwError as exc:
        return redirect(request, "/countries", str(exc), "error")
    return redirect(request, "/countries", f"Country rule “{rule.name}” removed.")
