"""The dedup keys that pair the two lines Asterisk writes for one failure.

Every PJSIP / chan_sip / AMI failure is written twice in one second: a
NOTICE in ``messages`` and a SecurityEvent in ``security_log``.
:class:`Ordinals` numbers each stream's failures so that both lines get the
same :func:`failure_key`, and the detector, which drops a repeated key,
counts the attempt once. A parallel scan (:mod:`pbxfw.ips.parallel`)
renumbers the keys across its ranges with :meth:`Ordinals.state` and
``lead``.
"""

from __future__ import annotations

from pbxfw.domain.addresses import IPAddress

__all__ = ["NoKeys", "Ordinals", "failure_key"]


def failure_key(jail: str, host: IPAddress | str, epoch: int, ordinal: int) -> str:
    """The dedup key of the ``ordinal``-th failure of ``host`` in second ``epoch``.

    Asterisk writes one PJSIP/chan_sip/AMI failure twice — a NOTICE line in
    ``messages`` and a SecurityEvent in ``security_log`` — in the same second.
    Each stream numbers its failures per (line class, jail, host, second);
    the n-th NOTICE and the n-th SECURITY failure of one host in one second get
    the same key, so the detector (which drops a repeated key) counts
    max(NOTICEs, SECURITY events) per host and second: one per attempt, even
    when a tool fires many attempts per second with one reused Call-ID. The
    Call-ID is not part of the key: it is client text and constant per tool.
    """
    return f"{jail}|{host}|{epoch}|{ordinal}"


class Ordinals:
    """The ordinals behind :func:`failure_key`, per stream.

    Keys only pair lines of the same second, so the state of older seconds
    is dropped (bounded memory). ``lead``, when a list, collects the (class,
    jail, host, epoch) of each keyed failure up to the first change of
    second (a parallel scan repairs keys across chunks with it).
    """

    __slots__ = ("_counts", "_epoch", "lead")

    def __init__(self, lead: list[tuple[str, str, str, int]] | None = None) -> None:
        self._counts: dict[tuple[str, str, str], int] = {}
        self._epoch = -1
        self.lead = lead

    def key(self, level: str, jail: str, host: str, epoch: int) -> str:
        """The key of the next failure of ``host`` (canonical text) at ``level``."""
        lead = self.lead
        if lead is not None:
            if lead and lead[-1][3] != epoch:
                self.lead = None
            else:
                lead.append((level, jail, host, epoch))
        counts = self._counts
        if epoch != self._epoch:
            counts.clear()
            self._epoch = epoch
        slot = (level, jail, host)
        ordinal = counts[slot] = counts.get(slot, 0) + 1
        return f"{jail}|{host}|{epoch}|{ordinal}"  # failure_key(), without a call

    def state(self) -> tuple[int, dict[tuple[str, str, str], int]]:
        """(second, ordinals of its keyed failures)."""
        return self._epoch, self._counts


class NoKeys(Ordinals):
    """The ordinals of a scan whose output shows no key (``pbxfw ips scan``'s
    lines, :func:`pbxfw.ips.scan.scan_lines`): every key is "", made at no cost."""

    __slots__ = ()

    def key(self, level: str, jail: str, host: str, epoch: int) -> str:
        return ""
