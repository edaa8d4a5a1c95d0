"""The log sources the agent follows: which settings name them, their kinds
and jails, and one source's reader state (agent.ips reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from pbxfw.agent.journal import JournalReader
from pbxfw.agent.tail import Tailer
from pbxfw.domain.configuration import Configuration
from pbxfw.ips.recognisers import Recogniser

__all__ = ["KIND_JAIL", "LOG_SETTINGS", "Source", "log_sources"]

#: settings key of a log path → recogniser kind
LOG_SETTINGS = {
    "log_asterisk_security": "asterisk_security",
    "log_asterisk_messages": "asterisk_messages",
    "log_ssh": "ssh",
    "log_web": "web",
}


KIND_JAIL = {
    "asterisk_security": "asterisk",
    "asterisk_messages": "asterisk",
    "ssh": "ssh",
    "web": "web",
}


def log_sources(config: Configuration, web_log: str | None = None) -> list[tuple[str, str]]:
    """(path, kind) of every log the agent follows, from the settings."""
    sources = [(getattr(config.settings, key), kind) for key, kind in LOG_SETTINGS.items()]
    if web_log:
        sources.append((web_log, "web"))
    seen: set[str] = set()
    unique = []
    for path, kind in sources:
        if path and path not in seen:
            seen.add(path)
            unique.append((path, kind))
    return unique


@dataclass
class Source:
    """One log source the agent follows, with its own reader and recogniser.

    Each source has its own reader (a ``Tailer`` for a file, a
    ``JournalReader`` for a ``journal:`` source) so that one that cannot be
    read (a folder, a NUL byte, no permission, no journalctl) fails alone:
    the others are read as usual, and this one is tried again with backoff
    (see agent.health).
    """

    path: str
    kind: str
    jail: str
    #: the settings key that names the file (None: an option or extra source)
    setting: str | None
    #: where a restarted agent resumes, from the database: (inode, offset)
    #: of a file, the cursor of a journal source
    resume: tuple[int, int] | str | None = None
    reader: Tailer | JournalReader | None = None
    recogniser: Recogniser | None = None

    @property
    def hint(self) -> str:
        return f"setting {self.setting}" if self.setting else ""
