"""A reader of Asterisk's configuration syntax, faithful to ``main/config.c``.

What it understands, as Asterisk does:

* ``key = value`` and ``key => value`` (spaces around either are ignored),
  ``key += more`` (appends to the section's last ``key``), a leading ``\\``
  escaping the first character of a line;
* ``;`` comments to the end of the line, ``\\;`` for a literal semicolon,
  ``;-- ... --;`` block comments over any number of lines (nested);
* ``#include`` and ``#tryinclude``: the argument is bare, ``"quoted"`` or
  ``<bracketed>``, relative to the *configuration folder* (not to the file
  that includes it), may be absolute, and may be a glob (``*``, ``?``,
  ``[...]``, ``{a,b}``) whose matches are read in sorted order. An included
  file continues the section that was current where it was included, so a
  file of bare ``key=value`` lines can be included inside a section;
* ``[name]``, templates ``[name](!)``, inheritance ``[name](t1,t2)`` and
  ``(!,t1)`` (the bases' entries come first, in the order named, as they
  were when the header was read), and ``[name](+)`` which adds to the first
  section of that name already defined;
* a section name used twice is two sections, in file order.

Where Asterisk refuses to load a file, so does this reader. Where Asterisk
only logs a warning and carries on (a line without ``=``, an unterminated
block comment, an unknown ``#directive``, ``#exec``), this reader refuses
too: pbxfw reads the configuration to open firewall ports, and a guess made
from a file the administrator has to fix anyway is worse than a clear error.
Every error is an :class:`AsteriskConfigError` naming the file and line.

Names are matched as Asterisk matches them: section names and keys without
regard to case.

The reader's result and errors are in ``pbxfw.asterisk.conf_model``, the
parser in ``pbxfw.asterisk.conf_parser``, comments and include globs in
``pbxfw.asterisk.conf_lines``; this module is the entry point and
re-exports the public names.
"""

from __future__ import annotations

from pathlib import Path

from pbxfw.asterisk.conf_model import (
    MAX_INCLUDE_DEPTH,
    AsteriskConfigError,
    Entry,
    Reader,
    Section,
    find_section,
)
from pbxfw.asterisk.conf_parser import Parser, read_text

__all__ = [
    "MAX_INCLUDE_DEPTH",
    "AsteriskConfigError",
    "Entry",
    "Section",
    "find_section",
    "load_config",
    "parse_config",
]


def load_config(name: str | Path, config_dir: Path, *, read: Reader | None = None) -> list[Section]:
    """Read ``name`` (relative to ``config_dir``, or absolute) and its includes.

    Returns the sections in order. Raises AsteriskConfigError when the file or
    an ``#include`` is missing or unreadable, on an include cycle, and on any
    line this reader cannot understand.
    """
    path = Path(name) if Path(name).is_absolute() else config_dir / name
    parser = Parser(config_dir, read or read_text)
    parser.load_file(path, origin=None)
    return parser.finish()


def parse_config(
    text: str,
    *,
    source: str | Path = "<text>",
    config_dir: Path | None = None,
    read: Reader | None = None,
) -> list[Section]:
    """Parse configuration ``text``; pure unless it has ``#include`` lines.

    ``source`` names the text in errors and entries. Includes are resolved in
    ``config_dir``; without one, an ``#include`` is an error.
    """
    parser = Parser(config_dir, read or read_text)
    parser.parse_text(text, Path(source))
    return parser.finish()
