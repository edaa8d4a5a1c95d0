"""Charts drawn on the server as SVG: no script, no CDN, the page works offline.

Each chart scales with its box (``viewBox``, width 100 %), so it stays
readable at a phone's width; every bar carries a ``<title>`` (its value on
hover), and the page shows the same figures as a table for keyboards and
screen readers. Text comes only from pbxfw's own vocabulary (jail names,
hours) and is escaped all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

__all__ = ["PALETTE", "colour", "hbars", "stacked_bars"]

#: Colours of the series, readable on white and told apart by most colour-blind eyes.
PALETTE = ("#1f6fb4", "#d2691e", "#2e8b57", "#8e44ad", "#b22222", "#5f6b7a", "#b8860b")

_W, _H = 720, 220
_LEFT, _BOTTOM, _TOP = 44, 24, 8


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _nice(top: int) -> int:
    """A round upper bound of the axis at or above ``top``."""
    if top <= 5:
        return 5
    step: int = pow(10, len(str(top)) - 1)
    for f in (1, 2, 5, 10):
        if f * step >= top:
            return f * step
    return 10 * step


def stacked_bars(
    hours: Sequence[int],
    series: dict[str, list[int]],
    *,
    label: str,
    tick_every: int,
    day_labels: bool = False,
) -> Markup:
    """Bars per hour (``hours``: epoch seconds of each hour's start), one
    stacked segment per series (jail); an x label every ``tick_every`` bars."""
    count = max(1, len(hours))
    totals = [sum(s[i] for s in series.values()) for i in range(len(hours))]
    top = _nice(max(totals, default=0))
    plot_w, plot_h = _W - _LEFT - 4, _H - _BOTTOM - _TOP
    bar_w = plot_w / count
    parts = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" width="100%" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(label)}</title>",
    ]
    for f in (0, 0.5, 1):
        y = _TOP + plot_h * (1 - f)
        parts.append(
            f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_W - 4}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{int(top * f)}</text>"
        )
    for i, hour in enumerate(hours):
        x = _LEFT + i * bar_w
        base = float(_TOP + plot_h)
        when = datetime.fromtimestamp(hour, UTC)
        for k, (jail, values) in enumerate(series.items()):
            n = values[i]
            if not n:
                continue
            h = plot_h * n / top
            base -= h
            parts.append(
                f'<rect x="{x + 0.5:.1f}" y="{base:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                f'height="{h:.1f}" fill="{colour(k)}"><title>{escape(jail)} '
                f"{when:%Y-%m-%d %H:00} UTC: {n}</title></rect>"
            )
        if i % tick_every == 0:
            text = f"{when:%a %d}" if day_labels else f"{when:%H}h"
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{_H - 6}" text-anchor="middle" '
                f'class="axis">{text}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def hbars(rows: Sequence[tuple[str, int]], *, label: str) -> Markup:
    """Horizontal bars, one per (name, value), longest first as given."""
    height = 26 * max(1, len(rows)) + 4
    top = max((v for _n, v in rows), default=0) or 1
    whole = 440  # drawn in half a panel: a narrower box keeps the text readable
    left, width = 130, whole - 130 - 60
    parts = [
        f'<svg class="chart" viewBox="0 0 {whole} {height}" width="100%" role="img" '
        f'aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]
    for i, (name, value) in enumerate(rows):
        y = 4 + 26 * i
        w = max(1.0, width * value / top)
        parts.append(
            f'<text x="{left - 6}" y="{y + 16}" text-anchor="end" class="axis">'
            f"{escape(name)}</text>"
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="20" fill="{colour(i)}">'
            f"<title>{escape(name)}: {value}</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + 16}" class="axis">{value}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
