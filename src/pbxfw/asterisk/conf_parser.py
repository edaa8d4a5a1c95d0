"""The parser behind ``pbxfw.asterisk.conf``: files, includes, headers, assignments.

``Parser`` reads files (and the ones they ``#include``) line by line as
config.c does, building sections that ``[name](+)`` and ``+=`` may still
change, and freezes them into ``Section`` values at the end. Every refusal
is an ``AsteriskConfigError`` naming the file and line; the rules it follows
are the ones listed in ``pbxfw.asterisk.conf``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pbxfw.asterisk.conf_lines import BLANKS, expand_include, strip_comments
from pbxfw.asterisk.conf_model import MAX_INCLUDE_DEPTH, AsteriskConfigError, Entry, Reader, Section

__all__ = ["Parser", "read_text"]


def read_text(path: Path) -> str:
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


class Parser:
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
            line, depth = strip_comments(raw, depth, opened, number)
            line = line.strip(BLANKS)
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
            for option in (o.strip(BLANKS) for o in rest[1:end].split(",")):
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
        word, argument = match.group(1).lower(), match.group(2).strip(BLANKS)
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
        paths = expand_include(pattern)
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
            key = text[: equals - 1].strip(BLANKS)
            more = text[equals + 1 :]
            for index in range(len(section.entries) - 1, -1, -1):
                old = section.entries[index]
                if old.key == key:  # config.c compares with strcmp here
                    value = (old.value + more).strip(BLANKS)
                    section.entries[index] = Entry(key, value, file, number, old.inherited)
                    return
            value = more
        else:
            key = text[:equals].strip(BLANKS)
            value = text[equals + 1 :]
            if value.startswith(">"):  # "=>" assigns the same way
                value = value[1:]
        if not key:
            raise AsteriskConfigError("a line has no key before '='", file, number)
        section.entries.append(Entry(key, value.strip(BLANKS), file, number))


def _inherit(entries: Sequence[Entry]) -> list[Entry]:
    return [Entry(e.key, e.value, e.file, e.line, inherited=True) for e in entries]


def _matches(section: _Building, key: str, pattern: str) -> bool:
    """Does a section pass the ``key=regex`` filter of ``(+key=regex)``?"""
    wanted = key.strip(BLANKS).lower()
    values = [e.value for e in section.entries if e.key.lower() == wanted]
    try:
        return any(re.search(pattern, v) for v in values)
    except re.error:
        return pattern in values
