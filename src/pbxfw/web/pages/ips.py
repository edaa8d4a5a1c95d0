"""The intrusion prevention page: presets, limits, logs read, and the counters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request, status
from fastapi.responses import HTMLResponse, Response

from pbxfw.domain.settings import IPS_PRESETS, Settings
from pbxfw.errors import ValidationError
from pbxfw.usecases.ips_status import ips_status
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

IPS_VALUE_KEYS = ("ips_maxretry", "ips_findtime", "ips_bantime", "ips_bantime_max")
IPS_OTHER_KEYS = ("ips_whitelist", "sip_rate_limit")
#: Settings of this page that are a choice (a select, not a text field).
IPS_CHOICE_KEYS = ("ips_share",)
LOG_KEYS = ("log_asterisk_security", "log_asterisk_messages", "log_ssh", "log_web")
IPS_LABELS = {
    "ips_maxretry": "Failures before a ban",
    "ips_findtime": "Counted within",
    "ips_bantime": "Ban length",
    "ips_bantime_max": "Longest ban",
    "ips_whitelist": "Never ban these addresses (comma-separated addresses or CIDRs)",
    "sip_rate_limit": "SIP packets per second from one address (0: no limit)",
    "ips_share": "Share detected bans",
    "log_asterisk_security": "Asterisk security log",
    "log_asterisk_messages": "Asterisk messages log",
    "log_ssh": "SSH daemon log",
    "log_web": "Web server error log",
}
#: ``ips_share`` values as the page offers them (docs/fleet-bans.md).
SHARE_TEXT = {
    "fleet": "Fleet: every PBX of every site that shares with the fleet",
    "site": "Site: the PBXs of this site only",
    "off": "Off: only the PBX that detected it",
}
PRESET_TEXT = {
    "weak": "20 failures in 10 min → banned for 10 min",
    "normal": "10 failures in 1 h → banned for 1 day",
    "enhanced": "5 failures in 6 h → banned for 7 days",
    "paranoid": "3 failures in 24 h → banned for 30 days",
}


# -- intrusion prevention settings ---------------------------------------------------


def _duration_text(seconds: int) -> str:
    """``86400`` → ``1d``: the way the settings accept durations, the way people read them."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return str(seconds)


def _current_preset(settings: Settings) -> str:
    for name, values in IPS_PRESETS.items():
        if all(getattr(settings, k) == v for k, v in values.items()):
            return name
    return "custom"


def _ips_page(
    request: Request,
    context: WebContext,
    session: Session,
    *,
    values: Mapping[str, str] | None = None,
    preset: str | None = None,
    enabled: bool | None = None,
    errors: Mapping[str, str] | None = None,
) -> HTMLResponse:
    settings = context.config.settings()
    keys = (*IPS_VALUE_KEYS, *IPS_OTHER_KEYS, *IPS_CHOICE_KEYS, *LOG_KEYS)
    shown = {k: settings.as_text(k) for k in keys}
    for key in ("ips_findtime", "ips_bantime", "ips_bantime_max"):
        shown[key] = _duration_text(getattr(settings, key))
    shown |= dict(values or {})
    ips = ips_status(context.store, context.clock)
    return render(
        request,
        "ips.html",
        {
            "values": shown,
            "labels": IPS_LABELS,
            "value_keys": IPS_VALUE_KEYS,
            "other_keys": IPS_OTHER_KEYS,
            "log_keys": LOG_KEYS,
            "presets": PRESET_TEXT,
            "share_modes": SHARE_TEXT,
            "preset": preset or _current_preset(settings),
            "enabled": settings.ips_enabled if enabled is None else enabled,
            "errors": errors or {},
            "counters": ips.jails,
            "sources": ips.sources,
            "failing": ips.failing,
            # Several PBXs' agents (fleet): each source row names its node;
            # the counters above are summed over the nodes.
            "several_nodes": len({s.node for s in ips.sources}) > 1,
            "web_log": str(context.web_log),
        },
        session=session,
        status_code=422 if errors else status.HTTP_200_OK,
    )


def ips_page(request: Request, context: SiteContext, session: AdminSession) -> Response:
    return _ips_page(request, context, session)


def save_ips(
    request: Request, context: SiteContext, session: AdminSession, form: CsrfForm
) -> Response:
    preset = form_text(form, "ips_preset") or "custom"
    keys = (*IPS_VALUE_KEYS, *IPS_OTHER_KEYS, *IPS_CHOICE_KEYS, *LOG_KEYS)
    values = {k: form_text(form, k) for k in keys}
    changes: dict[str, Any] = {
        k: v
        for k, v in values.items()
        # A choice missing from the form (a form of an older page) stays as stored.
        if k not in IPS_VALUE_KEYS and (k not in IPS_CHOICE_KEYS or k in form)
    }
    changes["ips_enabled"] = form.get("ips_enabled") == "on"
    if preset == "custom":
        changes.update({k: values[k] for k in IPS_VALUE_KEYS})
    else:
        # A preset sets maxretry, findtime and bantime; the longest ban stays as typed.
        changes["ips_preset"] = preset
        changes["ips_bantime_max"] = values["ips_bantime_max"]
    try:
        context.config.update_settings(changes)
    except ValidationError as exc:
        return _ips_page(
            request,
            context,
            session,
            values=values,
            preset=preset,
            enabled=changes["ips_enabled"],
            errors=form_errors(exc),
        )
    return redirect(request, "/ips", "Intrusion prevention settings saved.")
