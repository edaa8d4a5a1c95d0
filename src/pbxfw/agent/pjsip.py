"""The agent's Asterisk part: discover the PBX's ports, write the PJSIP include.

Discovery runs once at start (retried until it succeeds); the include is
rewritten when the applied configuration changed and its text with it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pbxfw.domain.configuration import Configuration
from pbxfw.errors import PbxfwError
from pbxfw.storage.repository import Store

__all__ = ["Pjsip"]

log = logging.getLogger("pbxfw.agent")


class Pjsip:
    """What the agent does for Asterisk; ``Agent`` runs it through agent.health."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: the include is to be rewritten (the applied configuration was read)
        self.pending = False
        #: discovery failed and is to be tried again
        self.discover_pending = False
        self._text: str | None = None

    def discover(self) -> None:
        """Read the PBX's ports from its configuration folder into the settings."""
        from pbxfw.usecases.config import ConfigService, discover_asterisk

        svc = ConfigService(self.store)
        folder = svc.settings().asterisk_config_dir
        if not folder or not Path(folder).is_dir():
            return
        report = discover_asterisk(
            svc,
            folder,
            "/etc/ssh/sshd_config" if os.path.exists("/etc/ssh/sshd_config") else None,
        )
        for line in report.lines:
            log.info("asterisk discover: %s", line)

    def refresh(self, config: Configuration | None) -> None:
        """The include for ``config`` (if any); no longer pending either way."""
        if config is not None:
            self.write(config)
        self.pending = False

    def write(self, config: Configuration) -> None:
        """Rewrite the PJSIP include when its text changed. Every rule of a
        file written as root is checked again at write time (a setting
        stored before the rules, a symlink planted since): a refusal is
        logged and the loop goes on."""
        target = config.settings.pjsip_include_path
        if not target:
            return
        from pbxfw.asterisk.pjsip import reload_pjsip, render_pjsip, write_configured_include

        try:
            text = render_pjsip(config)
            if text == self._text:
                return
            changed = write_configured_include(config.settings, text)
            self._text = text
            if changed:
                log.info("wrote %s", target)
                if config.settings.pjsip_reload:
                    log.info("%s", reload_pjsip())
        except (PbxfwError, OSError, ValueError) as exc:
            log.error("PJSIP include: %s", exc)
