"""``/api/v1/settings``: read all, change some (validated together, as the CLI does)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body

from pbxfw.web.deps import ConfigDep

__all__ = ["router"]

_EXAMPLE = {"firewall_enabled": True, "sip_port": 5070, "ips_preset": "enhanced"}


def read_settings(config: ConfigDep) -> dict[str, Any]:
    return config.settings().model_dump()


def patch_settings(
    config: ConfigDep, changes: dict[str, Any] = Body(examples=[_EXAMPLE])
) -> dict[str, Any]:
    """Change the settings given; ``ips_preset`` expands to its three values.

    Values are strictly typed: switches are ``true``/``false``, ports and
    counts JSON integers (never a boolean or a float), text a string.
    Durations may also be text ("10m", "7d") and lists comma-separated text
    ("5060,5061"). All are validated together; on any error (422, naming
    each setting and its rule) nothing is stored.
    """
    return config.update_settings(changes, strict=True).model_dump()


def router() -> APIRouter:
    r = APIRouter(prefix="/settings", tags=["settings"])
    r.add_api_route("", read_settings, methods=["GET"], response_model=dict[str, Any])
    r.add_api_route("", patch_settings, methods=["PATCH"], response_model=dict[str, Any])
    return r
