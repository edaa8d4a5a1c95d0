"""The History page: every change of the site's configuration (and the
administrators' bans), one entry's diff, and restoring a revision."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pbxfw.errors import PbxfwError
from pbxfw.web.deps import AdminSession
from pbxfw.web.pages.common import CsrfForm, redirect, render
from pbxfw.web.pages.sites import SiteContext

__all__ = ["history_entry_page", "history_page", "restore_revision"]

#: Entries per page; "Older" pages on with ``?before=REV``.
PAGE = 50


def history_page(
    request: Request, context: SiteContext, session: AdminSession, before: int | None = None
) -> Response:
    try:
        entries = context.config.history(PAGE + 1, before)
    except PbxfwError:  # a `before` no entry can have: the newest page
        entries = context.config.history(PAGE + 1)
    older = entries[PAGE - 1].rev if len(entries) > PAGE else None
    return render(
        request,
        "history.html",
        {"entries": entries[:PAGE], "older": older, "paged": before is not None},
        session=session,
    )


def history_entry_page(
    rev: int, request: Request, context: SiteContext, session: AdminSession
) -> Response:
    try:
        shown = context.config.history_entry(rev)
    except PbxfwError as exc:
        return redirect(request, "/history", str(exc), "error")
    return render(request, "history_entry.html", {"shown": shown}, session=session)


def restore_revision(
    rev: int, request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    try:
        report = context.config.restore(rev)
    except PbxfwError as exc:
        return redirect(request, f"/history/{rev}", str(exc), "error")
    if not report.changed:
        return redirect(
            request, "/history", f"The stored configuration already is revision {rev}'s."
        )
    return redirect(
        request,
        "/apply",
        f"Revision {rev} is the stored configuration again; review and apply it.",
    )
