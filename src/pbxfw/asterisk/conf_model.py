"""What the Asterisk configuration reader returns: sections, entries, errors.

``Section`` and ``Entry`` (each with the file and line it was written on),
``find_section`` (the section Asterisk's modules read), and
``AsteriskConfigError``. The reader is ``pbxfw.asterisk.conf``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "MAX_INCLUDE_DEPTH",
    "AsteriskConfigError",
    "Entry",
    "Reader",
    "Section",
    "find_section",
]

#: Asterisk's own limit (``MAX_INCLUDE_LEVEL`` in config.c): files nested
#: deeper than this are refused.
MAX_INCLUDE_DEPTH = 10

#: A function that returns a file's text; the seam tests may replace.
Reader = Callable[[Path], str]


class AsteriskConfigError(ValidationError):
    """Asterisk's configuration cannot be read or understood.

    ``file`` and ``line`` say where (``line`` is None for a whole file or
    folder); ``str(error)`` reads ``FILE:LINE: what is wrong; the fix``.
    """

    def __init__(self, message: str, file: Path | str, line: int | None = None) -> None:
        self.file = Path(file)
        self.line = line
        self.reason = message
        where = f"{file}:{line}" if line is not None else str(file)
        super().__init__(FieldError(where, message))


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``key = value`` as Asterisk resolved it, with where it was written.

    ``inherited`` is true when it came into its section from a template.
    """

    key: str
    value: str
    file: Path
    line: int
    inherited: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Section:
    """One ``[name]`` section: its entries resolved, inherited ones first."""

    name: str
    template: bool
    entries: tuple[Entry, ...]
    file: Path
    line: int
    bases: tuple[str, ...] = ()

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """The resolved ``(key, value)`` pairs, in order."""
        return [(e.key, e.value) for e in self.entries]

    def entry(self, key: str) -> Entry | None:
        """The last entry for ``key`` (case-insensitive): the one that wins."""
        wanted = key.lower()
        found = None
        for item in self.entries:
            if item.key.lower() == wanted:
                found = item
        return found

    def get(self, key: str, default: str | None = None) -> str | None:
        """The value that wins for ``key`` (the last one), or ``default``."""
        item = self.entry(key)
        return item.value if item is not None else default

    def get_all(self, key: str) -> list[Entry]:
        """Every entry for ``key``, for options that may repeat (``local_net``)."""
        wanted = key.lower()
        return [e for e in self.entries if e.key.lower() == wanted]


def find_section(sections: Iterable[Section], name: str) -> Section | None:
    """The first non-template section called ``name`` (case-insensitive).

    This is the section Asterisk's modules read for ``[general]``
    (``ast_variable_browse``): a second ``[general]`` is ignored by them.
    """
    wanted = name.lower()
    return next((s for s in sections if not s.template and s.name.lower() == wanted), None)
