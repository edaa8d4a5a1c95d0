"""What ``discover`` found so far: settings, their sources, notes; and the checks on it.

``Found`` gathers the ports the readers of ``pbxfw.asterisk.discover_files``
set (each with the entry it came from) and validates them together as
settings, naming the file and line of a bad one. ``port_number`` and
``split_host_port`` read a port as written; ``check_folder`` refuses a
configuration folder that is missing or unreadable.
"""

from __future__ import annotations

import re
from pathlib import Path

from pbxfw.asterisk.conf import load_config
from pbxfw.asterisk.conf_model import AsteriskConfigError, Entry, Section
from pbxfw.domain.settings import Settings
from pbxfw.errors import ValidationError

__all__ = ["Found", "check_folder", "port_number", "split_host_port"]


def check_folder(config_dir: Path) -> None:
    if not config_dir.exists():
        raise AsteriskConfigError(
            "no such folder; give the Asterisk configuration folder with --config-dir",
            config_dir,
        )
    if not config_dir.is_dir():
        raise AsteriskConfigError("is not a folder", config_dir)
    try:
        next(config_dir.iterdir(), None)
    except OSError as exc:
        raise AsteriskConfigError(
            f"cannot read the folder: {exc.strerror or exc}; run as a user who can "
            "(root, or a member of the asterisk group)",
            config_dir,
        ) from None


class Found:
    """Settings, sources and notes as the files are read."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.settings: dict[str, int] = {}
        self.sources: dict[str, str] = {}
        self.entries: dict[str, Entry] = {}
        self.notes: list[str] = []

    def name(self, path: Path) -> str:
        """A path as the notes show it: relative to the folder when inside it."""
        try:
            return str(path.relative_to(self.config_dir))
        except ValueError:
            return str(path)

    def where(self, entry: Entry) -> str:
        return f"{self.name(entry.file)}:{entry.line}"

    def set(self, key: str, port: int, entry: Entry, how: str) -> None:
        self.settings[key] = port
        self.sources[key] = self.where(entry)
        self.entries[key] = entry
        self.notes.append(f"{key} = {port} from {self.where(entry)} ({how})")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def load(self, filename: str) -> list[Section] | None:
        path = self.config_dir / filename
        if not path.exists():
            self.note(f"{filename}: not present; its settings keep their values")
            return None
        return load_config(filename, self.config_dir)

    def validate(self) -> None:
        try:
            Settings().updated(self.settings)
        except ValidationError as exc:
            first = exc.errors[0]
            message = first.message
            if first.field not in message:
                message = f"{first.field}: {message}"
            entry = self.entries.get(first.field)
            if entry is None:
                raise AsteriskConfigError(message, self.config_dir) from None
            raise AsteriskConfigError(message, entry.file, entry.line) from None


def port_number(text: str, entry: Entry, found: Found, what: str) -> int:
    if not re.fullmatch(r"\d{1,5}", text) or not 1 <= int(text) <= 65535:
        raise AsteriskConfigError(
            f"{entry.key} = {entry.value!r}: {what} {text!r} is not a port number (1-65535)",
            entry.file,
            entry.line,
        )
    return int(text)


def split_host_port(text: str) -> tuple[str, str | None]:
    """``host`` and ``port`` (None when absent) of a bind address.

    ``0.0.0.0:5060``, ``0.0.0.0``, ``[::]:5060``, ``[::]``, ``::`` (bare IPv6,
    no port), ``pbx.example.com:5060``. The port is returned as written.
    """
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            return text, None
        rest = text[close + 1 :]
        return text[1:close], rest[1:] if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None
