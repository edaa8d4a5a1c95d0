"""The dashboard (the first page after login): attacks, attackers, bans, drops, agents.

Everything comes from :func:`pbxfw.usecases.dashboard.read_dashboard` (the
aggregates the agents write, never the raw events); the charts are SVG drawn
here (web.charts).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from pbxfw.usecases.dashboard import read_dashboard
from pbxfw.web.charts import colour, hbars, stacked_bars
from pbxfw.web.deps import AdminSession
from pbxfw.web.pages.common import render
from pbxfw.web.pages.sites import SiteContext

__all__ = ["dashboard_page"]

#: The reasons of the drop counters as the page says them (kernel.counters).
REASONS = {
    "jail": "banned (jail)",
    "default_deny": "default deny (no network allows it)",
    "rate_limit": "SIP rate limit",
    "country": "country",
    "feed": "blocklist feed",
    "other": "other",
}


def dashboard_page(request: Request, context: SiteContext, session: AdminSession) -> Response:
    board = read_dashboard(context.config.store, context.clock())
    day = board.series(board.hours)
    week = board.series(board.week)
    return render(
        request,
        "dashboard.html",
        {
            "board": board,
            "legend": [(jail, colour(i)) for i, jail in enumerate(board.jails)],
            "day_chart": stacked_bars(
                board.hours, day, label="Failures per hour, last 24 hours, per jail", tick_every=3
            ),
            "week_chart": stacked_bars(
                board.week,
                week,
                label="Failures per hour, last 7 days, per jail",
                tick_every=24,
                day_labels=True,
            ),
            "day_rows": _rows(board.hours, day),
            "day_total": sum(sum(v) for v in day.values()),
            "week_total": sum(sum(v) for v in week.values()),
            "origins_chart": hbars(board.bans_by_origin, label="Active bans by origin"),
            "reasons": REASONS,
        },
        session=session,
    )


def _rows(hours: list[int], series: dict[str, list[int]]) -> list[tuple[int, list[int]]]:
    """The hours that had failures, each with its count per jail (the table under a chart)."""
    rows = []
    for i, hour in enumerate(hours):
        counts = [values[i] for values in series.values()]
        if any(counts):
            rows.append((hour, counts))
    return rows
