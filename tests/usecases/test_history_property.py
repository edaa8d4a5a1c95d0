"""Property: whatever the edits, every kept revision reads back as the
configuration that was current after it (issue 19, the history stored as
snapshots and deltas: storage/history_format.py), on SQLite and PostgreSQL.

A random sequence of edits through the use cases (networks added, changed,
removed; settings; custom services, which change every network's verdicts;
country rules; trust; imports; restores of kept revisions; refused edits),
with the documents ``export`` writes recorded after each one. The history
keeps few entries and takes snapshots often (the limits made small), so
pruning, hidden bases and snapshots all happen. Checked: each kept entry's
document, its summary (what the diff of the whole documents says), its
``against``, and the rows a site keeps.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from pbxfw.domain.history import EMPTY_DOCUMENT, diff_documents, summary_of
from pbxfw.errors import PbxfwError
from pbxfw.storage import history as storage_history
from pbxfw.storage import history_track
from pbxfw.storage.models import ConfigHistoryRow
from pbxfw.usecases import ConfigService, NetworkChange, history_record
from pbxfw.usecases.sites import SiteService

_NAMES = ["A", "B", "C", "D", "E"]
_SUBNETS = ["10.1.0.0/16", "10.2.0.0/16", "192.0.2.0/24", "2001:db8::/48", "10.1.2.0/24"]
_SERVICES = ["ssh", "sip", "web", "x1"]

_op = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(_NAMES), st.sampled_from(_SUBNETS)),
    st.tuples(
        st.just("set"),
        st.integers(0, 6),  # which network (of those there are)
        st.sampled_from(_SERVICES),
        st.booleans(),  # allow / block
        st.sampled_from([None, *_NAMES]),  # rename
        st.sampled_from([None, True, False]),  # local
    ),
    st.tuples(st.just("remove"), st.integers(0, 6)),
    st.tuples(st.just("setting"), st.integers(1, 12)),
    st.tuples(st.just("service"), st.booleans()),  # add / remove the custom service x1
    st.tuples(st.just("country"), st.booleans()),  # add / remove a country rule
    st.tuples(st.just("trust"), st.sampled_from(["192.0.2.7", "198.51.100.0/24"])),
    st.tuples(st.just("import"), st.integers(0, 6), st.integers(1, 9)),
    st.tuples(st.just("restore"), st.integers(0, 8)),
)

_sites = itertools.count(1)


def _edit(svc: ConfigService, op: tuple[Any, ...]) -> None:
    kind, *args = op
    networks = svc.networks()
    if kind == "add":
        svc.add_network(NetworkChange(name=args[0], subnet=args[1], allow=["ssh"]))
    elif kind == "set":
        which, service, allow, name, local = args
        network = networks[which % len(networks)]
        change = NetworkChange(
            name=name,
            allow=[service] if allow else [],
            block=[] if allow else [service],
            local=local,
        )
        svc.update_network(network.id or network.name, change)
    elif kind == "remove":
        plain = [n for n in networks if not n.permanent] or networks
        svc.remove_network(plain[args[0] % len(plain)].name)
    elif kind == "setting":
        svc.update_settings({"ips_maxretry": args[0]})
    elif kind == "service":
        if args[0]:
            svc.add_service("x1", "Extra one", tcp="9001")
        else:
            svc.remove_service("x1")
    elif kind == "country":
        if args[0]:
            svc.add_country("Germany", "DE", allow=["sip"])
        else:
            svc.remove_country("Germany")
    elif kind == "trust":
        svc.trust(args[0])
    elif kind == "import":
        document = svc.export_document()
        drop = args[0] % max(1, len(document["networks"]))
        document["networks"] = [
            n for i, n in enumerate(document["networks"]) if i != drop or n["subnet"] == "0.0.0.0/0"
        ]
        document["settings"]["ips_maxretry"] = args[1]
        svc.import_document(document)
    elif kind == "restore":
        kept = [e.rev for e in svc.history(50) if e.kind == "config"]
        svc.restore(kept[args[0] % len(kept)])


def _newest(svc: ConfigService) -> int:
    return next(e.rev for e in svc.history(50) if e.kind == "config")


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    ops=st.lists(_op, min_size=1, max_size=25),
    keep=st.integers(2, 6),
    delta_max=st.sampled_from([1, 3, 256]),
    track_max=st.sampled_from([1, 256]),
)
# A network in a snapshot (the service's edit takes one), removed by a delta.
@example(
    ops=[("add", "A", "10.1.0.0/16"), ("service", True), ("remove", 0), ("setting", 3)],
    keep=6,
    delta_max=256,
    track_max=256,
)
def test_every_kept_revision_reads_back_as_the_configuration_after_its_edit(
    svc: ConfigService, ops: list[tuple[Any, ...]], keep: int, delta_max: int, track_max: int
) -> None:
    saved = (
        storage_history.KEEP,
        history_record.DELTA_SMALL,
        history_record.DELTA_MAX,
        history_track.TRACK_MAX,
    )
    storage_history.KEEP, history_record.DELTA_SMALL = keep, min(delta_max, 16)
    history_record.DELTA_MAX, history_track.TRACK_MAX = delta_max, track_max
    try:
        site = f"p{next(_sites)}"
        SiteService(svc.store).add(site)  # a site of its own: a history of its own
        one = ConfigService(svc.store, site=site)
        documents = {_newest(one): one.export_document()}
        for op in ops:
            before = _newest(one)
            try:
                _edit(one, op)
            except PbxfwError:
                assert _newest(one) == before  # a refused edit records nothing
                continue
            newest, document = _newest(one), one.export_document()
            if newest == before:
                assert document == documents[before]  # nothing changed, nothing recorded
                continue
            documents[newest] = document
            # The summary is what the diff of the whole documents says.
            expected = summary_of(diff_documents(documents[before], document))
            assert one.history(1)[0].summary.endswith(expected)
        kept = [e.rev for e in one.history(50) if e.kind == "config"]
        assert len(kept) == min(keep, len(documents))
        for rev, older in zip(kept, [*kept[1:], None], strict=True):
            shown = one.history_entry(rev)
            assert shown.entry.document == documents[rev]
            assert shown.against == older
            previous = EMPTY_DOCUMENT if older is None else documents[older]
            assert shown.lines == diff_documents(previous, documents[rev])
        with svc.store.read() as repo:
            rows = repo.session.scalar(select(func.count()).where(ConfigHistoryRow.site == site))
        assert rows is not None and rows <= keep + 1  # at most one hidden snapshot
    finally:
        (
            storage_history.KEEP,
            history_record.DELTA_SMALL,
            history_record.DELTA_MAX,
            history_track.TRACK_MAX,
        ) = saved
