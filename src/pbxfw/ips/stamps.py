"""Time stamps, and the line prefixes that carry them (Asterisk's logger, syslog).

``Failure.time`` is the log's own time stamp as an aware UTC datetime. Stamps
without a zone are local time of ``tz`` (None: the host's zone); stamps
without a year get the year that puts them nearest ``reference`` (so a
December line read in January lands in the previous year: :func:`infer_year`).

:class:`Stamps` parses them for one stream, cached per second (the same stamp
repeats on many consecutive lines); the usual ``[YYYY-MM-DD HH:MM:SS]``
Asterisk stamp is sliced and cached by its text instead of parsed
(:meth:`Stamps.asterisk`). Every regex here is anchored at the line start.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

__all__ = [
    "ASTERISK_PREFIX",
    "BARE_PREFIX",
    "SYSLOG_PREFIX",
    "SYSLOG_PREFIX_5424",
    "Stamp",
    "Stamps",
    "infer_year",
]

#: (UTC time, epoch second).
Stamp = tuple[datetime, int]

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}

#: How far a year-less stamp may lie after the reference time (clock skew,
#: time zones) before it is taken to belong to the year before.
_FUTURE_TOLERANCE = timedelta(days=2)


def infer_year(month: int, day: int, reference: datetime) -> int:
    """The year of a year-less stamp ``month``/``day`` read at ``reference``.

    A log line is written before it is read, so the stamp is the latest
    ``month``/``day`` that is not after ``reference`` (plus two days of
    tolerance for clock skew and zones): a ``Dec 31`` line read on 2 January
    is last year's, a ``Mar 24`` line read in January too, and a ``Jan 1``
    line read at 23:59 on 31 December (the writer's clock slightly ahead)
    is next year's. ``Feb 29`` goes back to the latest leap year.
    """
    ref = reference.replace(tzinfo=None)
    for year in range(ref.year + 1, ref.year - 9, -1):
        try:
            candidate = ref.replace(year=year, month=month, day=day)
        except ValueError:  # Feb 29 in a common year
            continue
        if candidate - ref <= _FUTURE_TOLERANCE:
            return year
    return ref.year


# Asterisk logger prefix: "[2026-11-01 08:42:16] NOTICE[123][C-0001] chan_sip.c: ",
# "[Nov  1 08:42:16] NOTICE[123]: manager.c:2350 authenticate: ",
# "[2016-06-09 00:01:02] NOTICE [22382] manager.c: " and the syslog form
# "Nov  4 18:30:40 host asterisk[32229]: NOTICE[32257]: chan_sip.c:23417 in fn: ".
# Groups: the stamp (one of four forms), level, src (the module's source file).
ASTERISK_PREFIX = re.compile(
    r"(?:\[(?P<date>\d{4}-\d\d-\d\d)[ T](?P<time>\d\d:\d\d:\d\d)(?:[.,]\d+)?\]"
    r"|\[(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<ytime>\d\d:\d\d:\d\d)(?:[.,]\d+)?\]"
    r"|(?P<smon>[A-Z][a-z]{2}) {1,2}(?P<sday>\d{1,2}) (?P<stime>\d\d:\d\d:\d\d)"
    r" \S+ asterisk(?:\[\d+\])?:"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ asterisk(?:\[\d+\])?:)"
    r" ?(?P<level>NOTICE|SECURITY) ?\[\d+\](?:\[[^\]\s]*\])?:? "
    r"(?P<src>[\w./-]+\.c)(?::\d+)?(?: in)?(?: \w+)?: "
)

#: The stamp between the brackets of the usual Asterisk prefix (first branch
#: of ASTERISK_PREFIX without fraction), and the rest of that prefix.
_DATED = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
_ASTERISK_REST = re.compile(
    r" ?(?P<level>NOTICE|SECURITY) ?\[\d+\](?:\[[^\]\s]*\])?:? "
    r"(?P<src>[\w./-]+\.c)(?::\d+)?(?: in)?(?: \w+)?: "
)
assert ASTERISK_PREFIX.pattern.endswith(_ASTERISK_REST.pattern)

# The syslog prefix of sshd / sshd-session (OpenSSH >= 9.8) / dropbear
# (docs/ips-formats.md, "Prefixes"): an optional <PRI> (a relayed raw
# RFC 3164 line), the stamp — BSD ("Nov  1 08:42:16") or ISO 8601 with "T" or
# one or two spaces, with or without zone — then the host name (optional:
# some daemons omit it; a token not ending in ":", so the tag of another
# program can never pass for one), the program and pid. Solaris adds
# "[ID 800047 auth.info] "; dropbear may repeat "[pid] Mon dd hh:mm:ss "
# inside the message (journal); sshd may prefix "error: " / "fatal: " and
# "PAM: ". The pid pairs the lines sshd writes for one connection. The host
# name is never read: one that is an address is the logging host, not the
# attacker.
_SYSLOG_TAIL = (
    r"(?:\[ID \d+ [a-z0-9]+\.[a-z]+\] )?"
    r"(?:\[\d+\] [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?"
    r"(?:(?:error|fatal): (?:PAM: )?)?"
)
SYSLOG_PREFIX = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?:(?P<smon>[A-Z][a-z]{2}) {1,2}(?P<sday>\d{1,2}) (?P<stime>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) ?)"
    r"(?: \S*[^\s:])? (?P<prog>sshd|sshd-session|dropbear)(?:\[(?P<pid>\d+)\])?: " + _SYSLOG_TAIL
)
# RFC 5424: "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]". The
# structured data is the syslog daemon's ([id name="value"...], values quoted
# with \" \\ \] escaped) and is skipped whole, so a value holding a message is
# never read as one; the MSG may start with a BOM. TIMESTAMP may be "-".
SYSLOG_PREFIX_5424 = re.compile(
    r"<\d{1,3}>1 (?P<iso>-|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) \S+ "
    r"(?P<prog>sshd|sshd-session|dropbear) (?P<pid>\d+|-) \S+ "
    r'(?:-|(?:\[[^\s\]="]+(?: [^\s\]="]+="(?:[^"\\]|\\.)*")*\])+) \ufeff?' + _SYSLOG_TAIL
)
# No syslog prefix at all (read only from a source declared ssh):
# "journalctl -o cat" gives the bare message, dropbear -F -E writes
# "[pid] Mon dd hh:mm:ss message" on stderr. Matches every line.
BARE_PREFIX = re.compile(
    r"(?:\[(?P<pid>\d+)\] (?P<smon>[A-Z][a-z]{2}) (?P<sday>[ \d]\d) (?P<stime>\d\d:\d\d:\d\d) )?"
    r"(?:(?:error|fatal): (?:PAM: )?)?"
)

#: Cache marker: not a "[YYYY-MM-DD HH:MM:SS]" prefix (compared by identity).
_NOT_DATED: Stamp = (datetime(1970, 1, 1, tzinfo=UTC), -1)
#: Cache marker: not in the cache (compared by identity; a cached value may be None).
_MISSING: Any = object()


class Stamps:
    """The stamps of one stream as (UTC time, epoch second), cached; see the module doc.

    ``reference`` supplies the year of year-less stamps, ``tz`` the zone of
    stamps written without one (None: the host's local zone). Not thread-safe.
    """

    __slots__ = ("_cache", "_dated_cache", "reference", "tz")

    def __init__(self, reference: datetime, tz: tzinfo | None) -> None:
        self.reference = reference
        self.tz = tz
        self._cache: dict[tuple[str, str, str], Stamp | None] = {}
        # "2026-11-01 08:42:16" (the text between the brackets) -> stamp;
        # _NOT_DATED: not that form, use the general prefix grammar.
        self._dated_cache: dict[str, Stamp | None] = {}

    def local(self, kind: str, a: str, b: str) -> Stamp | None:
        """A stamp without zone, cached: ("D", "2026-11-01", "08:42:16") (the
        date may use "/", as nginx writes it) or ("Nov", "1", "08:42:16")."""
        cache = self._cache
        key = (kind, a, b)
        try:
            return cache[key]
        except KeyError:
            pass
        if len(cache) > 4096:
            cache.clear()
        try:
            if kind == "D":  # ISO date, possibly with "/" (nginx)
                y, mo, d = (int(x) for x in a.replace("/", "-").split("-"))
            else:
                mo = _MONTHS[kind]
                d = int(a)
                y = infer_year(mo, d, self.reference)
            hh, mm, ss = (int(x) for x in b.split(":"))
            naive = datetime(y, mo, d, hh, mm, ss)
        except (KeyError, ValueError):
            cache[key] = None
            return None
        stamp = cache[key] = self._utc(naive)
        return stamp

    def _utc(self, naive: datetime) -> Stamp:
        """A naive local stamp (zone ``tz``)."""
        # A naive datetime's astimezone() reads it as the host's local time.
        local = naive.replace(tzinfo=self.tz) if self.tz is not None else naive.astimezone()
        utc = local.astimezone(UTC)
        return utc, int(utc.timestamp())

    @staticmethod
    def iso(text: str) -> Stamp | None:
        """An ISO 8601 stamp with zone (None without one)."""
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if stamp.tzinfo is None:
            return None
        utc = stamp.astimezone(UTC)
        return utc, int(utc.timestamp())

    def _dated(self, text: str) -> Stamp | None:
        """The stamp "YYYY-MM-DD HH:MM:SS" (or with "T"), None if invalid, or _NOT_DATED."""
        cache = self._dated_cache
        if len(cache) > 4096:
            cache.clear()
        found: Stamp | None
        if _DATED.fullmatch(text) is None:
            found = _NOT_DATED
        else:  # what local("D", text[:10], text[11:]) gives, without its splitting
            try:
                naive = datetime(
                    int(text[0:4]),
                    int(text[5:7]),
                    int(text[8:10]),
                    int(text[11:13]),
                    int(text[14:16]),
                    int(text[17:19]),
                )
            except ValueError:
                found = None
            else:
                found = self._utc(naive)
        cache[text] = found
        return found

    def asterisk(self, line: str) -> tuple[Stamp, str, str, int] | None:
        """(stamp, level, source file, end of prefix) of an Asterisk line, or None.

        The usual "[YYYY-MM-DD HH:MM:SS] " prefix is sliced and its stamp
        cached by its text; the rest of :data:`ASTERISK_PREFIX` (whose first
        branch is exactly this form) is then matched from column 21.
        """
        stamp: Stamp | None = _NOT_DATED
        if line[20:21] == "]" and line[:1] == "[":
            text = line[1:20]
            stamp = self._dated_cache.get(text, _MISSING)
            if stamp is _MISSING:
                stamp = self._dated(text)
        if stamp is not _NOT_DATED:
            if stamp is None:
                return None
            m = _ASTERISK_REST.match(line, 21)
            if m is None:
                return None
            level, src = m.groups()
            return stamp, level, src, m.end()
        m = ASTERISK_PREFIX.match(line)
        if m is None:
            return None
        date, clock, mon, day, ytime, smon, sday, stime, iso, level, src = m.groups()
        if date is not None:
            stamp = self.local("D", date, clock)
        elif mon is not None:
            stamp = self.local(mon, day, ytime)
        elif smon is not None:
            stamp = self.local(smon, sday, stime)
        else:
            stamp = self.iso(iso)
        if stamp is None:
            return None
        return stamp, level, src, m.end()

    def syslog(self, m: re.Match[str]) -> Stamp | None:
        """The stamp of a :data:`SYSLOG_PREFIX`, :data:`SYSLOG_PREFIX_5424` or
        :data:`BARE_PREFIX` match: ISO stamps without zone are local time of
        ``tz``; a line without stamp (a bare message, RFC 5424's "-") is taken
        as written when it is read (``reference``)."""
        if m.re is SYSLOG_PREFIX_5424:
            iso: str | None = m.group("iso")
        else:
            smon = m.group("smon")
            if smon is not None:
                return self.local(smon, m.group("sday").lstrip(), m.group("stime"))
            iso = m.group("iso") if m.re is SYSLOG_PREFIX else None
        if iso is None or iso == "-":
            reference = self.reference.astimezone(UTC)
            return reference, int(reference.timestamp())
        stamp = self.iso(iso)
        if stamp is None:
            try:
                naive = datetime.fromisoformat(iso)
            except ValueError:
                return None
            if naive.tzinfo is not None:
                return None
            stamp = self._utc(naive)
        return stamp
