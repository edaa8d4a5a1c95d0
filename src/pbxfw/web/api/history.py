"""``/api/v1/history``: the history of changes; one entry with its diff; restore one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from pbxfw.usecases.history import LIMIT_MAX
from pbxfw.web.deps import ConfigDep

__all__ = ["router"]


def list_history(
    config: ConfigDep,
    limit: int = Query(50, ge=1, le=LIMIT_MAX, description="How many entries, newest first."),
    before: int | None = Query(None, ge=1, description="Only entries older than this one."),
) -> list[dict[str, Any]]:
    """The newest changes of the site's configuration and the administrators'
    bans: ``rev``, ``at`` (epoch seconds), ``actor``, ``via``, ``client``,
    ``kind`` (``config`` or ``ban``), ``summary``."""
    return [e.as_json() for e in config.history(limit, before)]


def read_entry(rev: int, config: ConfigDep) -> dict[str, Any]:
    """One entry with ``changes`` (readable lines) against the configuration
    revision ``against`` before it, and its whole ``document`` (null for a ban)."""
    return config.history_entry(rev).as_json()


def restore_entry(rev: int, config: ConfigDep) -> dict[str, Any]:
    """Stage revision ``rev``'s configuration as the stored one (a new entry);
    ``POST /api/v1/apply`` applies it, with its confirm window. 422 for a ban's entry."""
    return config.restore(rev).as_json()


def router() -> APIRouter:
    r = APIRouter(prefix="/history", tags=["history"])
    missing: dict[int | str, dict[str, Any]] = {404: {"description": "no such entry in the site"}}
    r.add_api_route("", list_history, methods=["GET"], response_model=list[dict[str, Any]])
    r.add_api_route(
        "/{rev}", read_entry, methods=["GET"], response_model=dict[str, Any], responses=missing
    )
    r.add_api_route(
        "/{rev}/restore",
        restore_entry,
        methods=["POST"],
        response_model=dict[str, Any],
        responses=missing,
    )
    return r
