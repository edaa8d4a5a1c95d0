"""The lines ``pbxfw ips scan`` prints, one per failure: plain text and JSON.

A line is ``head(file)``, the line number, then ``tail(time, jail, host,
event)``: the head is made once per file, the tail by whichever process
recognised the failure. :func:`pbxfw.ips.scan.scan_lines` makes the lines
without building :class:`~pbxfw.ips.events.Failure` objects, and a parallel
scan's workers make the tails of their own failures, so that this process
only joins text (the ~100,000 lines of a big log cost it a few
milliseconds instead of about a tenth of a second).

A big log has ~100,000 failures but few distinct files, jails, events,
attackers and seconds: the text of each is made once (an address's and a
time's per object, keyed by id() while the entry keeps the object alive;
the recognisers share one object per attacker and per second of the log).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.events import Failure
from pbxfw.ips.reading import ScanStats

__all__ = ["JsonLines", "LineFormat", "TextLines"]

#: Cache entries kept before a cache is emptied (memory stays bounded).
_CACHE = 65536


class LineFormat:
    """How each failure is written: :meth:`head` + line number + :meth:`tail`."""

    __slots__ = ("_hosts",)

    def __init__(self) -> None:
        self._hosts: dict[int, tuple[object, str]] = {}

    def head(self, file: str) -> str:
        """The text before the line number of a failure in ``file``."""
        raise NotImplementedError

    def tail(self, time: datetime, jail: str, host: IPAddress, event: str, count: int) -> str:
        """The text after the line number, newline included (``count``: how
        many failures the line stands for, see ``Failure.count``)."""
        raise NotImplementedError

    def host_text(self, host: IPAddress) -> str:
        """The text of ``host`` in a line (made once per address object)."""
        raise NotImplementedError

    def line(self, failure: Failure) -> str:
        """The whole line of ``failure``."""
        tail = self.tail(failure.time, failure.jail, failure.host, failure.event, failure.count)
        return f"{self.head(failure.file)}{failure.line}{tail}"

    def maker(self, file: str, stats: ScanStats) -> Callable[..., str]:
        """A ``make`` for :class:`~pbxfw.ips.recognisers.Recogniser` that
        returns the line of each failure of ``file`` instead of a Failure
        (and adds a repeated line's other copies to ``stats.repeats``)."""
        head = self.head(file)
        tail = self.tail

        def make(
            time: datetime,
            jail: str,
            host: IPAddress,
            event: str,
            _file: str,
            line: int,
            _key: str,
            count: int,
            _user: str = "",
        ) -> str:
            if count != 1:
                stats.repeats += count - 1
            return f"{head}{line}{tail(time, jail, host, event, count)}"

        return make

    def _host(self, host: IPAddress) -> str:
        hosts = self._hosts
        text = hosts.get(id(host))
        if text is None or text[0] is not host:
            if len(hosts) > _CACHE:
                hosts.clear()
            text = hosts[id(host)] = (host, self.host_text(host))
        return text[1]


class TextLines(LineFormat):
    """``FILE:LINE: JAIL HOST EVENT``, and `` (counts N times)`` after a line
    that stands for N failures (rsyslog's ``message repeated N times``)."""

    __slots__ = ()

    def head(self, file: str) -> str:
        return f"{file}:"

    def host_text(self, host: IPAddress) -> str:
        return str(host)

    def tail(self, time: datetime, jail: str, host: IPAddress, event: str, count: int) -> str:
        hosts = self._hosts
        text = hosts.get(id(host))
        # _host() inlined: this runs once per failure.
        host_text = text[1] if text is not None and text[0] is host else self._host(host)
        if count != 1:
            return f": {jail} {host_text} {event} (counts {count} times)\n"
        return f": {jail} {host_text} {event}\n"


class JsonLines(LineFormat):
    """``json.dumps(failure_json(f), ensure_ascii=False)`` of each failure, byte
    for byte (tested; see :func:`pbxfw.ips.scan.failure_json`), several times
    faster: a time is ISO 8601 text, which JSON never escapes."""

    __slots__ = ("_quoted", "_times")

    def __init__(self) -> None:
        super().__init__()
        self._quoted: dict[str, str] = {}
        self._times: dict[int, tuple[object, str]] = {}

    def head(self, file: str) -> str:
        return f'{{"file": {self._quote(file)}, "line": '

    def host_text(self, host: IPAddress) -> str:
        return json.dumps(str(host), ensure_ascii=False)

    def tail(self, time: datetime, jail: str, host: IPAddress, event: str, count: int) -> str:
        hosts = self._hosts
        text = hosts.get(id(host))
        host_text = text[1] if text is not None and text[0] is host else self._host(host)
        times = self._times
        stamp = times.get(id(time))
        if stamp is None or stamp[0] is not time:
            if len(times) > _CACHE:
                times.clear()
            stamp = times[id(time)] = (time, time.astimezone(UTC).isoformat())
        quoted = self._quoted
        return (
            f', "time": "{stamp[1]}", '
            f'"jail": {quoted.get(jail) or self._quote(jail)}, '
            f'"host": {host_text}, '
            f'"event": {quoted.get(event) or self._quote(event)}}}\n'
        )

    def _quote(self, text: str) -> str:
        quoted = self._quoted
        if len(quoted) > _CACHE:
            quoted.clear()
        value = quoted[text] = json.dumps(text, ensure_ascii=False)
        return value
