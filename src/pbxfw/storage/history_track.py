"""Which networks an edit wrote, so that its history entry reads only those.

The history (issue 19) records each revision as the networks that changed
since a snapshot (storage.history_format): an edit of one network among
10,000 must not read the 10,000 again. The writes of networks
(storage.networks ``NetworkRows``, their only writer) say here which network
they are about to change, and the row as it was before this edit's first
write of it (for the summary: ``network Office: ssh allow → block``).

Tracking is on for one site of one unit of work once :func:`start` was
called on its session (``usecases.history baseline_of``, at the start of every
edit); the recorder takes it with :func:`take`. A bulk write (an import,
removing all networks) or more than :data:`TRACK_MAX` networks make it
``everything``: the entry is then a snapshot, read from all the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from pbxfw.storage.models import NetworkRow

__all__ = [
    "NETWORK_COLUMNS",
    "TRACK_MAX",
    "NetworkTrack",
    "everything",
    "new_head",
    "start",
    "take",
    "touch",
]

_KEY = "pbxfw.history.networks"
#: Beyond this many networks in one edit, a snapshot costs about what tracking does.
TRACK_MAX = 256

_TABLE = NetworkRow.__table__
#: The columns of a network's document (storage.history ``network_documents``).
NETWORK_COLUMNS = (
    _TABLE.c.id,
    _TABLE.c.name,
    _TABLE.c.subnet,
    _TABLE.c.services,
    _TABLE.c.local,
    _TABLE.c.never_block,
    _TABLE.c.description,
)

_ONE = select(*NETWORK_COLUMNS).where(
    _TABLE.c.site == bindparam("site"), _TABLE.c.id == bindparam("id")
)


@dataclass(slots=True)
class NetworkTrack:
    """The networks one edit of one site wrote: by id, the row before the
    edit's first write of it (None: the edit added it)."""

    before: dict[int, Any] = field(default_factory=dict)
    #: too many, or a bulk write: read every network
    everything: bool = False
    #: the rev and stored document of the site's newest configuration entry,
    #: kept current by storage.history ``add_entry`` (the unit of work holds
    #: the writers' lock: no other one adds an entry meanwhile)
    head: tuple[int, bytes] | None = None


def _tracks(session: Session) -> dict[str, NetworkTrack]:
    tracks: dict[str, NetworkTrack] = session.info.setdefault(_KEY, {})
    return tracks


def start(session: Session, site: str, head: tuple[int, bytes] | None) -> None:
    """Track the network writes of ``site`` in this unit of work from now on;
    ``head``: its newest configuration entry (rev, stored document)."""
    _tracks(session)[site] = NetworkTrack(head=head)


def new_head(session: Session, site: str, head: tuple[int, bytes]) -> None:
    """A configuration entry of ``site`` was added in this unit of work."""
    tracks = session.info.get(_KEY)
    track = None if tracks is None else tracks.get(site)
    if track is not None:
        track.head = head


def take(session: Session, site: str) -> NetworkTrack | None:
    """What was tracked for ``site`` (None: tracking was not on); tracking ends."""
    tracks = session.info.get(_KEY)
    return None if tracks is None else tracks.pop(site, None)


def touch(session: Session, site: str, network_id: int | None, *, added: bool = False) -> None:
    """The network ``network_id`` of ``site`` is about to be changed or removed
    (``added``: it was just added). One indexed read, when tracking is on."""
    tracks = session.info.get(_KEY)
    track = None if tracks is None else tracks.get(site)
    if track is None or track.everything or network_id in track.before:
        return
    if network_id is None or len(track.before) >= TRACK_MAX:
        everything(session, site)
        return
    track.before[network_id] = (
        None if added else session.execute(_ONE, {"site": site, "id": network_id}).first()
    )


def everything(session: Session, site: str) -> None:
    """A write of ``site``'s networks in bulk: the entry reads them all."""
    tracks = session.info.get(_KEY)
    track = None if tracks is None else tracks.get(site)
    if track is not None:
        track.everything = True
        track.before.clear()
