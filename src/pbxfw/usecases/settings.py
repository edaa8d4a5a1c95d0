"""Settings: read, and change as a whole."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pbxfw.domain.settings import Settings
from pbxfw.usecases.bans import lift_whitelisted
from pbxfw.usecases.base import ConfigBase

__all__ = ["SettingCases"]


class SettingCases(ConfigBase):
    """The settings use cases of :class:`~pbxfw.usecases.config.ConfigService`."""

    def settings(self) -> Settings:
        with self.store.read() as repo:
            return repo.settings()

    # -- settings ------------------------------------------------------------
    def update_settings(self, changes: Mapping[str, Any], *, strict: bool = False) -> Settings:
        """Validate ``changes`` against the current settings as a whole, then store.

        ``strict`` (REST, JSON): each value must have its JSON type; otherwise
        text is parsed too (CLI, web forms). See ``Settings.updated``.
        """
        with self._edit(settings_only=True) as repo:
            current = repo.settings()
            updated = current.updated(changes, strict=strict)
            new = updated.model_dump()
            differing = {k: v for k, v in new.items() if current.model_dump()[k] != v}
            touched = {k: new[k] for k in changes if k in new} | differing
            if touched:
                repo.save_settings(touched)
                repo.bump_revision()
                if "ips_whitelist" in touched:
                    lift_whitelisted(repo)
                if "ips_share" in differing:
                    # Which node enforces which ban changed: every agent reads all
                    # bans again (a removal's revision, storage.bans).
                    repo.bans_written(removed=True)
        return updated
