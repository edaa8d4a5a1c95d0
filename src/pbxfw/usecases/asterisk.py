"""Asterisk integration: read the PBX's ports into the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pbxfw.domain.settings import Settings

if TYPE_CHECKING:
    from pbxfw.usecases.config import ConfigService

__all__ = ["DiscoveryReport", "discover_asterisk"]


@dataclass(frozen=True, slots=True)
class DiscoveryReport:
    """What ``asterisk discover`` found, changed and noted."""

    changes: dict[str, int]
    lines: list[str]
    notes: list[str]
    settings: Settings


def discover_asterisk(
    svc: ConfigService, config_dir: str, sshd_config: str | None = "/etc/ssh/sshd_config"
) -> DiscoveryReport:
    """Read the PBX's ports from its configuration into the settings (one unit of work)."""
    from pathlib import Path

    from pbxfw.asterisk.discover import discover

    found = discover(Path(config_dir), Path(sshd_config) if sshd_config else None)
    with svc._edit(settings_only=True) as repo:
        current = repo.settings()
        changes = found.changes(current)
        lines = found.describe_changes(current)
        updated = current.updated(changes)
        if changes:
            repo.save_settings(changes)
            repo.bump_revision()
    return DiscoveryReport(changes, lines, list(found.notes), updated)
