"""The recogniser: turns the lines of one log stream into :class:`~pbxfw.ips.events.Failure`
objects (DESIGN §4; the contract is in the package docstring, :mod:`pbxfw.ips`).

A :class:`Recogniser` holds a stream's state (stamp and address caches, the
dedup ordinals, the SSH attempts under way) and dispatches each line to the
grammar of its kind (``ips/grammars/``: one rule table per source). A line
is first tested with plain substring checks (the per-line triggers computed
from the tables); a regex runs only on lines that contain one.
:meth:`Recogniser.scan_text` / :meth:`Recogniser.scan_bytes` search a whole
text instead (``ips/scanner.py``).

This module also re-exports the public names of the parts, so callers
import them from one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo

from pbxfw.ips.addresses import Addresses, parse_remote_address
from pbxfw.ips.events import Failure, new_failure
from pbxfw.ips.grammars import (
    ALL_SCAN_TRIGGERS,
    ALL_TRIGGERS,
    KINDS,
    RECOGNISE,
    SCAN_TRIGGERS,
    TRIGGERS,
    detect_kind,
)
from pbxfw.ips.grammars.ssh import SSH_ATTEMPT_SECONDS, SSH_TAG, SshAttempts
from pbxfw.ips.grammars.web import WEB_LOGIN_FAILURE_FORMAT, format_web_login_failure
from pbxfw.ips.keys import Ordinals, failure_key
from pbxfw.ips.scanner import MAX_LINE, decode_line, scan
from pbxfw.ips.stamps import Stamps, infer_year

__all__ = [
    "KINDS",
    "MAX_LINE",
    "SSH_ATTEMPT_SECONDS",
    "SSH_TAG",
    "WEB_LOGIN_FAILURE_FORMAT",
    "Recogniser",
    "SshAttempts",
    "detect_kind",
    "failure_key",
    "format_web_login_failure",
    "infer_year",
    "parse_remote_address",
    "recognise_lines",
    "recognise_text",
]


class Recogniser:
    """Recognise failures in one log stream of one kind; keeps per-stream state.

    Create one per file being read (the agent keeps it for the life of the
    tail). ``reference`` is the time the stream is read at — it supplies the
    year of year-less stamps; ``tz`` is the zone of stamps written without one
    (None: the host's local zone). ``kind`` None recognises every kind,
    detecting it per line. Not thread-safe.

    The grammars (``ips/grammars/``) read their state from the attributes
    ``stamps``, ``addresses``, ``ordinals``, ``ssh_attempts``, ``make``,
    ``users`` and ``file``.
    """

    __slots__ = (
        "addresses",
        "file",
        "kind",
        "make",
        "newlines",
        "ordinals",
        "scan_triggers",
        "ssh_attempts",
        "stamps",
        "triggers",
        "tz",
        "users",
    )

    def __init__(
        self,
        kind: str | None,
        *,
        file: str = "",
        reference: datetime | None = None,
        tz: tzinfo | None = None,
        make: Callable[..., Failure] = new_failure,
        lead: list[tuple[str, str, str, int]] | None = None,
        pair_ssh: bool = True,
        users: bool = True,
    ) -> None:
        """``make`` builds each failure from its fields (the parallel scan's
        workers make plain tuples); ``lead``, when a list, collects the
        (class, jail, host, epoch) of each keyed failure up to the first
        change of second (parallel scans repair keys across chunks).
        ``pair_ssh`` False (a parallel scan's worker) leaves the lines of one
        SSH attempt unpaired, tagged in ``key`` (:data:`SSH_TAG`), for the
        scan to pair in file order with :attr:`ssh_attempts`. ``users`` False
        leaves every ``Failure.user`` "" and skips reading it (the offline
        scan, whose output shows none: the capture costs a few % there)."""
        if kind is not None and kind not in TRIGGERS:
            raise ValueError(f"unknown log kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.file = file
        start = reference if reference is not None else datetime.now(UTC)
        self.tz = tz
        self.triggers: tuple[str, ...] = TRIGGERS[kind] if kind is not None else ALL_TRIGGERS
        self.scan_triggers: tuple[str, ...] = (
            SCAN_TRIGGERS[kind] if kind is not None else ALL_SCAN_TRIGGERS
        )
        self.stamps = Stamps(start, tz)
        self.addresses = Addresses()
        self.ordinals = Ordinals(lead)
        self.make = make
        #: Whether the grammars read the account each failure tried.
        self.users = users
        #: The SSH attempts under way (None with ``pair_ssh`` False): a
        #: parallel scan pairs its workers' tagged lines with it, in file order.
        self.ssh_attempts: SshAttempts | None = SshAttempts() if pair_ssh else None
        #: Newlines seen by the last completed scan_text / scan_bytes.
        self.newlines = 0

    @property
    def reference(self) -> datetime:
        """The time the stream is read at: the year of year-less stamps, the
        time of lines without one. The agent moves it forward as it reads."""
        return self.stamps.reference

    @reference.setter
    def reference(self, value: datetime) -> None:
        self.stamps.reference = value

    def ordinal_state(self) -> tuple[int, dict[tuple[str, str, str], int]]:
        """(second, ordinals of its keyed failures): where the next chunk of a
        parallel scan picks up the dedup keys."""
        return self.ordinals.state()

    def recognise(self, line: str, lineno: int = 0) -> Failure | None:
        """The failure ``line`` records, or None. ``lineno`` goes into the Failure."""
        for trigger in self.triggers:
            if trigger in line:
                break
        else:
            return None
        return self.dispatch(line, lineno)

    def dispatch(self, line: str, lineno: int) -> Failure | None:
        """:meth:`recognise` without the trigger test."""
        if len(line) > MAX_LINE:
            return None
        kind = self.kind if self.kind is not None else detect_kind(line)
        if kind is None:
            return None
        return RECOGNISE[kind](self, line, lineno)

    def lines(self, lines: Iterable[str], first_line: int = 1) -> Iterator[Failure]:
        """Recognise an iterable of lines numbered from ``first_line``."""
        triggers = self.triggers
        dispatch = self.dispatch
        for lineno, line in enumerate(lines, first_line):
            for trigger in triggers:
                if trigger in line:
                    failure = dispatch(line, lineno)
                    if failure is not None:
                        yield failure
                    break

    def scan_text(self, text: str, first_line: int = 1) -> Iterator[Failure]:
        """Recognise a whole text (a file's contents) in file order — the fast path.

        Each coarse trigger is located over the whole text (``str.find`` or
        a regex search); only the lines that contain one are cut out and go
        through the per-line triggers and recognisers, and line numbers are
        counted between hits with ``str.count``. Gives exactly what
        :meth:`lines` gives for the text's ``"\\n"``-separated lines. When
        exhausted, :attr:`newlines` holds the text's newline count.
        """
        return scan(self, text, len(text), first_line, 0, "\n", "[", str)

    def scan_bytes(
        self, data: bytes, first_line: int = 1, *, end: int | None = None
    ) -> Iterator[Failure]:
        """:meth:`scan_text` of ``data[:end].decode("utf-8", "replace")``, decoding only hit lines.

        Same results: every trigger is ASCII, an ASCII byte always decodes to
        itself (also next to invalid bytes, which become U+FFFD) and a newline
        byte is never inside a multi-byte sequence, so the lines, their
        numbers and their trigger hits are those of the decoded text.
        ``end`` (None: ``len(data)``) lets a reader scan a block up to its
        last newline without copying it.
        """
        size = len(data) if end is None else min(end, len(data))
        return scan(self, data, size, first_line, 1, b"\n", b"[", decode_line)


def recognise_lines(
    lines: Iterable[str],
    kind: str | None,
    *,
    file: str,
    reference: datetime,
    tz: tzinfo | None = None,
    first_line: int = 1,
) -> Iterator[Failure]:
    """Failures in ``lines`` (numbered from ``first_line``) of a ``kind`` log.

    ``kind`` None detects the kind per line. See :class:`Recogniser` for
    ``reference`` and ``tz``.
    """
    return Recogniser(kind, file=file, reference=reference, tz=tz).lines(lines, first_line)


def recognise_text(
    text: str,
    kind: str | None,
    *,
    file: str,
    reference: datetime,
    tz: tzinfo | None = None,
) -> Iterator[Failure]:
    """Failures in a whole file's ``text`` (the fast path of :meth:`Recogniser.scan_text`)."""
    return Recogniser(kind, file=file, reference=reference, tz=tz).scan_text(text)
