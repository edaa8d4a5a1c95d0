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
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "MAX_INCLUDE_DEPTH",
    "AsteriskConfigError",
    "Entry",
    "Section",
    "find_section",
    "load_config",
    "parse_config",
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


def load_config(name: str | Path, config_dir: Path, *, read: Reader | None = None) -> list[Section]:
    """Read ``name`` (relative to ``config_dir``, or absolute) and its includes.

    Returns the sections in order. Raises AsteriskConfigError when the file or
    an ``#include`` is missing or unreadable, on an include cycle, and on any
    line this reader cannot understand.
    """
    path = Path(name) if Path(name).is_absolute() else config_dir / name
    parser = _Parser(config_dir, read or _read_text)
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
    parser = _Parser(config_dir, read or _read_text)
    parser.parse_text(text, Path(source))
    return parser.finish()


# --------------------------------------------------------------------------
# Implementation


def _read_text(path: Path) -> str:
    # Asterisk reads bytes; comments in old files are often Latin-1. Values
    # pbxfw needs are ASCII, so undecodable bytes must not make a file fail.
    return path.read_bytes().decode("utf-8", errors="replace")


@dataclass(slots=True)
class _Building:
    """A section while the files are read: ``(+)`` and ``+=`` change it later."""

    name: str
    file: Path
    line: int
    template: bool = False
    bases: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)

    def freeze(self) -> Section:
        return Section(
            self.name, self.template, tuple(self.entries), self.file, self.line, tuple(self.bases)
        )


@dataclass(slots=True)
class _Cursor:
    """The section lines go to; one per #include directive, as in config.c."""

    section: _Building | None


_BLANKS = " \t\r\n\v\f"


class _Parser:
    def __init__(self, config_dir: Path | None, read: Reader) -> None:
        self.config_dir = config_dir
        self.read = read
        self.sections: list[_Building] = []
        # The section most recently opened or appended to, anywhere: an
        # included file starts in it (ast_config_get_current_category).
        self.current: _Building | None = None
        self.stack: list[Path] = []

    def finish(self) -> list[Section]:
        return [s.freeze() for s in self.sections]

    # -- files -------------------------------------------------------------

    def load_file(self, path: Path, origin: tuple[Path, int] | None) -> None:
        cursor = _Cursor(self.current)
        self._load_one(path, origin, cursor)

    def _load_one(self, path: Path, origin: tuple[Path, int] | None, cursor: _Cursor) -> None:
        where_file, where_line = origin if origin else (path, None)
        resolved = path.resolve()
        if resolved in self.stack:
            chain = " -> ".join(str(p) for p in [*self.stack, resolved])
            raise AsteriskConfigError(f"#include cycle: {chain}", where_file, where_line)
        if len(self.stack) > MAX_INCLUDE_DEPTH:
            raise AsteriskConfigError(
                f"includes nest more than {MAX_INCLUDE_DEPTH} levels deep, which Asterisk refuses",
                where_file,
                where_line,
            )
        try:
            text = self.read(path)
        except FileNotFoundError:
            if origin is None:
                raise AsteriskConfigError("no such file", path) from None
            raise AsteriskConfigError(
                f"#include {path}: no such file; create it, or use #tryinclude for a "
                "file that may be absent",
                where_file,
                where_line,
            ) from None
        except IsADirectoryError:
            raise AsteriskConfigError(
                f"{path} is a folder, not a configuration file", where_file, where_line
            ) from None
        except OSError as exc:
            raise AsteriskConfigError(
                f"cannot read {path}: {exc.strerror or exc}", where_file, where_line
            ) from None
        self.stack.append(resolved)
        try:
            self._parse_lines(text, path, cursor)
        finally:
            self.stack.pop()

    def parse_text(self, text: str, source: Path) -> None:
        self._parse_lines(text, source, _Cursor(self.current))

    # -- lines -------------------------------------------------------------

    def _parse_lines(self, text: str, file: Path, cursor: _Cursor) -> None:
        depth = 0
        opened: list[int] = []
        for number, raw in enumerate(text.split("\n"), start=1):
            line, depth = _strip_comments(raw, depth, opened, number)
            line = line.strip(_BLANKS)
            if line:
                self._line(line, file, number, cursor)
        if depth:
            raise AsteriskConfigError(
                "block comment ';--' is never closed with '--;'", file, opened[0]
            )

    def _line(self, text: str, file: Path, number: int, cursor: _Cursor) -> None:
        if text.startswith("["):
            self._header(text, file, number, cursor)
        elif text.startswith("#"):
            self._directive(text, file, number, cursor)
        else:
            self._assignment(text, file, number, cursor)

    def _header(self, text: str, file: Path, number: int, cursor: _Cursor) -> None:
        close = text.find("]")
        if close < 0:
            raise AsteriskConfigError("no closing ']' in the section header", file, number)
        name = text[1:close]
        rest = text[close + 1 :]
        created = _Building(name, file, number)
        new: _Building | None = created  # None once (+) merged it into another
        target = created
        if rest.startswith("("):
            end = rest.find(")")
            if end < 0:
                raise AsteriskConfigError(f"no closing ')' after [{name}]({rest[1:]}", file, number)
            for option in (o.strip(_BLANKS) for o in rest[1:end].split(",")):
                if option == "!":
                    target.template = True
                elif option.startswith("+"):
                    existing = self._find(name, option[1:], templates=True)
                    if existing is None:
                        raise AsteriskConfigError(
                            f"[{name}](+) adds to section [{name}], which is not defined "
                            "above; remove the (+) or define the section first",
                            file,
                            number,
                        )
                    if new is not None:
                        existing.template |= new.template
                        existing.entries.extend(new.entries)
                        new = None
                    target = existing
                elif option:
                    base = self._find(option, "", templates=True)
                    if base is None:
                        raise AsteriskConfigError(
                            f"[{name}] inherits from [{option}], which is not defined "
                            "above; define the template before the sections that use it",
                            file,
                            number,
                        )
                    target.bases.append(base.name)
                    target.entries.extend(_inherit(base.entries))
        if new is not None:
            self.sections.append(new)
        cursor.section = target
        self.current = target

    def _find(self, name: str, where: str, *, templates: bool) -> _Building | None:
        """First section called ``name`` (case-insensitive), as ast_category_get.

        ``where`` is the optional ``key=regex`` filter of ``[name](+key=regex)``.
        """
        wanted = name.lower()
        key, _, pattern = where.partition("=")
        for section in self.sections:
            if section.name.lower() != wanted or (section.template and not templates):
                continue
            if key and not _matches(section, key, pattern):
                continue
            return section
        return None

    def _directive(self, text: str, file: Path, number: int, cursor: _Cursor) -> None:
        match = re.match(r"#(\S*)\s*(.*)$", text, re.DOTALL)
        assert match is not None  # "#" always matches
        word, argument = match.group(1).lower(), match.group(2).strip(_BLANKS)
        if word == "exec":
            raise AsteriskConfigError(
                "#exec is not supported: pbxfw does not run programs named in the "
                "configuration; put the ports in a plain file and #include it",
                file,
                number,
            )
        if word not in ("include", "tryinclude"):
            raise AsteriskConfigError(
                f"unknown directive '#{match.group(1)}'; Asterisk knows #include, "
                "#tryinclude and #exec",
                file,
                number,
            )
        if not argument:
            raise AsteriskConfigError(f"#{word} needs a file name", file, number)
        if argument[0] in '"<':
            closing = '"' if argument[0] == '"' else ">"
            if len(argument) > 1 and argument.endswith(closing):
                argument = argument[1:-1]
        if self.config_dir is None:
            raise AsteriskConfigError(
                f"#{word} {argument}: no configuration folder to find it in", file, number
            )
        pattern = argument if Path(argument).is_absolute() else str(self.config_dir / argument)
        paths = _expand(pattern)
        if not paths:
            if word == "tryinclude":
                return
            raise AsteriskConfigError(
                f"#include {argument}: no such file in {self.config_dir}; create it, "
                "or use #tryinclude for a file that may be absent",
                file,
                number,
            )
        # One cursor for the whole directive: with a glob, the second file
        # continues where the first left off, as config.c's loop does.
        include_cursor = _Cursor(self.current)
        for path in paths:
            if not path.exists():
                if word == "tryinclude":
                    continue
                raise AsteriskConfigError(
                    f"#include {argument}: no such file in {self.config_dir}; create it, "
                    "or use #tryinclude for a file that may be absent",
                    file,
                    number,
                )
            self._load_one(path, (file, number), include_cursor)

    def _assignment(self, text: str, file: Path, number: int, cursor: _Cursor) -> None:
        section = cursor.section
        if section is None:
            raise AsteriskConfigError(
                "this line comes before any [section] header; Asterisk refuses it",
                file,
                number,
            )
        escaped = text.startswith("\\")
        if escaped:
            text = text[1:]
            if not text or ord(text[0]) < 33:
                raise AsteriskConfigError("invalid escape: '\\' before a blank", file, number)
        equals = text.find("=", 1 if escaped else 0)
        if equals < 0:
            raise AsteriskConfigError(
                f"no '=' in {text!r}; a line is key = value, a [section] or a #directive",
                file,
                number,
            )
        if equals > (1 if escaped else 0) and text[equals - 1] == "+":
            key = text[: equals - 1].strip(_BLANKS)
            more = text[equals + 1 :]
            for index in range(len(section.entries) - 1, -1, -1):
                old = section.entries[index]
                if old.key == key:  # config.c compares with strcmp here
                    value = (old.value + more).strip(_BLANKS)
                    section.entries[index] = Entry(key, value, file, number, old.inherited)
                    return
            value = more
        else:
            key = text[:equals].strip(_BLANKS)
            value = text[equals + 1 :]
            if value.startswith(">"):  # "=>" assigns the same way
                value = value[1:]
        if not key:
            raise AsteriskConfigError("a line has no key before '='", file, number)
        section.entries.append(Entry(key, value.strip(_BLANKS), file, number))


def _inherit(entries: Sequence[Entry]) -> list[Entry]:
    return [Entry(e.key, e.value, e.file, e.line, inherited=True) for e in entries]


def _matches(section: _Building, key: str, pattern: str) -> bool:
    """Does a section pass the ``key=regex`` filter of ``(+key=regex)``?"""
    wanted = key.strip(_BLANKS).lower()
    values = [e.value for e in section.entries if e.key.lower() == wanted]
    try:
        return any(re.search(pattern, v) for v in values)
    except re.error:
        return pattern in values


def _strip_comments(raw: str, depth: int, opened: list[int], number: int) -> tuple[str, int]:
    """The text of one line that is not comment, and the block-comment depth after it.

    Mirrors config.c: ``\\;`` is a literal ``;``; ``;--`` (not ``;---``) opens
    a block comment, ``--;`` closes one; any other ``;`` ends the line.
    """
    kept: list[str] = []
    start: int | None = 0 if depth == 0 else None
    pos = 0
    while True:
        semi = raw.find(";", pos)
        if semi < 0:
            break
        if semi > pos and raw[semi - 1] == "\\":
            if start is not None:
                kept.append(raw[start : semi - 1])
                start = semi  # the ';' itself is kept
            pos = semi + 1
        elif raw[semi + 1 : semi + 3] == "--" and raw[semi + 3 : semi + 4] != "-":
            if start is not None:
                kept.append(raw[start:semi])
                start = None
            depth += 1
            opened.append(number)
            pos = semi + 3
        elif depth and semi >= pos + 2 and raw[semi - 2 : semi] == "--":
            depth -= 1
            opened.pop()
            pos = semi + 1
            if depth == 0:
                start = pos
        elif depth:
            pos = semi + 1
        else:
            # An ordinary comment. ("--;" outside a block comment lands here
            # too: Asterisk would drive its depth negative, a bug not copied.)
            if start is not None:
                kept.append(raw[start:semi])
                start = None
            break
    if start is not None and depth == 0:
        kept.append(raw[start:])
    return "".join(kept), depth


_MAGIC = re.compile(r"[*?\[]")


def _expand(pattern: str) -> list[Path]:
    """Files an include names, as glob(3) with GLOB_NOMAGIC|GLOB_BRACE gives them.

    A pattern without wildcards is returned as is (its absence is reported by
    the reader); with wildcards, only the matching files, sorted.
    """
    results: list[Path] = []
    for alternative in _braces(pattern):
        if _MAGIC.search(alternative):
            results.extend(Path(p) for p in sorted(glob.glob(alternative)))
        elif "{" not in pattern or Path(alternative).exists():
            results.append(Path(alternative))
    return results


def _braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives, nested ones included, left to right."""
    open_at = pattern.find("{")
    if open_at < 0:
        return [pattern]
    depth = 0
    parts: list[str] = []
    piece_start = open_at + 1
    for index in range(open_at, len(pattern)):
        char = pattern[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                parts.append(pattern[piece_start:index])
                head, tail = pattern[:open_at], pattern[index + 1 :]
                return [expanded for part in parts for expanded in _braces(head + part + tail)]
        elif char == "," and depth == 1:
            parts.append(pattern[piece_start:index])
            piece_start = index + 1
    return [pattern]  # an unbalanced brace is literal, as in glob(3)
