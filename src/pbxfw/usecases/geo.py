"""The country database (issue 17): import an administrator's file, say its state.

``pbxfw geo import FILE`` reads a MaxMind DB (``.mmdb``: GeoLite2-Country,
DB-IP Lite country, or any database whose records carry ``country.iso_code``
or ``country_code``) or a ``CIDR,CC`` CSV, and replaces the stored country
database in one transaction: a file that cannot be read leaves the old one
as it was. The database is kept in the store (storage/countries.py), where
every node of a fleet reads it. docs/countries-and-feeds.md.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbxfw.domain.geo import CountryRange, CountryTable, GeoInfo
from pbxfw.errors import FieldError, ValidationError
from pbxfw.storage.repository import Store

__all__ = ["STALE_DAYS", "GeoService", "GeoStatus", "read_country_file"]

#: A database older than this many days gets a warning (issue 17).
STALE_DAYS = 180
_CODE = re.compile(r"[A-Za-z]{2}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class GeoStatus:
    """What ``geo status`` shows."""

    info: GeoInfo | None
    age_days: int | None
    warning: str | None

    def as_json(self) -> dict[str, object]:
        info = self.info
        return {
            "source": None if info is None else info.source,
            "date": None if info is None else info.built,
            "loaded_at": None if info is None else info.loaded_at,
            "ipv4_ranges": 0 if info is None else info.ipv4_ranges,
            "ipv6_ranges": 0 if info is None else info.ipv6_ranges,
            "age_days": self.age_days,
            "warning": self.warning,
        }


def _bad(message: str) -> ValidationError:
    return ValidationError(FieldError("file", message))


def _record_code(record: Any) -> str | None:
    """The country of one MaxMind DB record, in the layouts in use: GeoLite2 /
    DB-IP (``country.iso_code``, else ``registered_country.iso_code``) and
    flat ones (``country_code``)."""
    if not isinstance(record, dict):
        return None
    for key in ("country", "registered_country"):
        part = record.get(key)
        if isinstance(part, dict) and isinstance(part.get("iso_code"), str):
            return str(part["iso_code"])
    code = record.get("country_code")
    return code if isinstance(code, str) else None


def _read_mmdb(path: Path) -> tuple[list[CountryRange], list[CountryRange], str]:
    import maxminddb

    v4: list[CountryRange] = []
    v6: list[CountryRange] = []
    try:
        with maxminddb.open_database(str(path)) as reader:
            built = dt.datetime.fromtimestamp(reader.metadata().build_epoch, dt.UTC)
            for network, record in reader:
                code = _record_code(record)
                if code is None or not _CODE.fullmatch(code):
                    continue  # an address in no country
                # The last address by arithmetic: ``broadcast_address`` builds
                # an address object per network (a million of them).
                first = int(network.network_address)
                bits = 32 if network.version == 4 else 128
                last = first + (1 << (bits - network.prefixlen)) - 1
                (v4 if bits == 32 else v6).append((first, last, code.upper()))
    except (maxminddb.InvalidDatabaseError, ValueError, OSError) as exc:
        raise _bad(f"{path} is not a readable MaxMind DB: {exc}") from None
    return v4, v6, built.date().isoformat()


def _read_csv(path: Path) -> tuple[list[CountryRange], list[CountryRange]]:
    v4: list[CountryRange] = []
    v6: list[CountryRange] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2 or not _CODE.fullmatch(parts[1]):
            raise _bad(f"line {number}: {line.strip()!r} is not 'CIDR,CC' (e.g. 192.0.2.0/24,DE)")
        try:
            network = ipaddress.ip_network(parts[0], strict=False)
        except ValueError:
            raise _bad(f"line {number}: {parts[0]!r} is not a CIDR (e.g. 192.0.2.0/24)") from None
        span = (int(network.network_address), int(network.broadcast_address), parts[1].upper())
        (v4 if network.version == 4 else v6).append(span)
    return v4, v6


def read_country_file(path: Path, *, built: str | None = None) -> tuple[CountryTable, str]:
    """The table in ``path`` and the data's date (``YYYY-MM-DD``).

    ``.mmdb`` files carry their build date; for a CSV it is ``built`` or the
    file's modification date. Raises ValidationError (field ``file``) for a
    file that cannot be read or holds no range.
    """
    if built is not None and not _DATE.fullmatch(built):
        raise ValidationError(FieldError("date", f"{built!r} is not a date; give YYYY-MM-DD"))
    if not path.is_file():
        raise _bad(f"{path} does not exist or is not a file")
    with path.open("rb") as handle:
        head = handle.read(4096)
        # A MaxMind DB ends with its metadata, marked by this string.
        handle.seek(max(0, path.stat().st_size - 131072))
        tail = handle.read()
    if path.suffix.lower() == ".mmdb" or b"\xab\xcd\xefMaxMind.com" in tail:
        v4, v6, date = _read_mmdb(path)
    else:
        if b"\0" in head:
            raise _bad(f"{path} is neither a MaxMind DB (.mmdb) nor a 'CIDR,CC' text file")
        v4, v6 = _read_csv(path)
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        date = mtime.date().isoformat()
    if not v4 and not v6:
        raise _bad(f"{path} holds no country range")
    return CountryTable(v4, v6), built or date


def _age(built: str, now: float) -> int:
    day = dt.date.fromisoformat(built)
    return (dt.datetime.fromtimestamp(now, dt.UTC).date() - day).days


class GeoService:
    """The stored country database: import and status."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def import_file(self, path: Path, *, now: float, built: str | None = None) -> GeoStatus:
        """Replace the country database with ``path``'s, all or nothing (a
        ``geo`` entry of the history, usecases.history)."""
        from pbxfw.usecases.history import record_event

        table, date = read_country_file(path, built=built)
        info = GeoInfo(path.name, date, now, table.count(4), table.count(6))
        with self.store.write() as repo:
            repo.set_geo(table, info)
            # The agents compile the ranges in: a new database is a change.
            repo.bump_revision()
            record_event(
                repo,
                "geo",
                f"country database imported: {info.source} of {date} "
                f"({info.ipv4_ranges} IPv4 + {info.ipv6_ranges} IPv6 ranges)",
            )
        return self.status(now=now)

    def status(self, *, now: float) -> GeoStatus:
        with self.store.read() as repo:
            info = repo.geo_info()
        if info is None:
            return GeoStatus(
                None,
                None,
                "no country database: every address is 'unknown' to the country rules; "
                "load one with `pbxfw geo import FILE` (.mmdb or CIDR,CC)",
            )
        age = _age(info.built, now)
        warning = None
        if age > STALE_DAYS:
            warning = (
                f"the country database is {age} days old (over {STALE_DAYS}); "
                "import a newer one with `pbxfw geo import FILE`"
            )
        return GeoStatus(info, age, warning)
