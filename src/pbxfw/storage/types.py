"""Column types that behave the same on SQLite and PostgreSQL.

SQLite is the reference: what it stores, PostgreSQL must store too, and give
back unchanged. Two differences matter:

- PostgreSQL's INTEGER is 32-bit; SQLite's is 64-bit. Every integer column is
  :data:`Int64`: INTEGER on SQLite (``INTEGER PRIMARY KEY`` stays its rowid),
  BIGINT on PostgreSQL (inode numbers, log offsets, counters, the ids an
  imported document may carry). Migrations spell the same type
  ``sa.Integer().with_variant(sa.BigInteger(), "postgresql")``.
- PostgreSQL's text cannot hold NUL. Text that comes from outside (a ban's
  reason, a name tried at the login form, a log path) may. :func:`text`
  columns escape it on PostgreSQL only, with the control character SOH
  (U+0001) as the escape (SOH → SOH SOH, NUL → SOH "0"): text the domain
  validated as printable holds neither, so it is stored as it is and keeps
  within its column's length. What is read is unescaped, so every value
  round-trips exactly. On SQLite they are plain String/Text: no cost per
  value there. The escaped form is what SQL sees on PostgreSQL (equality
  and IN work unchanged, as values are bound through the column's type).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = ["Int64", "text"]

Int64 = Integer().with_variant(BigInteger(), "postgresql")

_SOH = "\x01"
_ESCAPED = re.compile("\x01(.)", re.DOTALL)


def _unescape(match: re.Match[str]) -> str:
    return "\x00" if match.group(1) == "0" else match.group(1)


class _NulSafe(TypeDecorator[str]):
    """PostgreSQL's side of :func:`text`: NUL and backslash escaped in the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or (_SOH not in value and "\x00" not in value):
            return value
        return value.replace(_SOH, _SOH + _SOH).replace("\x00", _SOH + "0")

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or _SOH not in value:
            return value  # type: ignore[no-any-return]
        return _ESCAPED.sub(_unescape, value)


class _NulSafeString(_NulSafe):
    impl = String  # type: ignore[assignment]  # Text is a String: VARCHAR(n) here
    cache_ok = True


def text(length: int | None = None) -> TypeEngine[str]:
    """VARCHAR(length), or TEXT without a length, holding any Python string on both engines.

    A length counts characters of the escaped form on PostgreSQL: printable
    text (what the domain validates to its limits) is never escaped.
    """
    if length is None:
        return Text().with_variant(_NulSafe(), "postgresql")
    return String(length).with_variant(_NulSafeString(length), "postgresql")
