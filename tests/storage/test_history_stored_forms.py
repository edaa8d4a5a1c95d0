"""How configuration revisions are stored (storage/history_format.py), on
SQLite and PostgreSQL: an edit of one network stores that network, an edit of
a setting no network; a bulk edit stores a snapshot; a document stored whole
by an older pbxfw is still read and is a base for the deltas after it; the
pruning keeps, hidden, the snapshot the oldest kept delta is made from.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pbxfw.errors import NotFoundError
from pbxfw.storage import history as storage_history
from pbxfw.storage.history_format import DELTA, FULL, SNAPSHOT, Stored, read_stored
from pbxfw.storage.models import ConfigHistoryRow
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.history import document_now


def _stored(svc: ConfigService) -> list[tuple[int, str, Stored, int]]:
    """Every row of the default site: rev, kind, what it stores, its size."""
    with svc.store.read() as repo:
        rows = repo.session.execute(
            select(ConfigHistoryRow.rev, ConfigHistoryRow.kind, ConfigHistoryRow.document)
            .where(ConfigHistoryRow.site == "default")
            .order_by(ConfigHistoryRow.rev)
        ).all()
    return [
        (rev, kind, read_stored(bytes(data or b"")), len(data or b"")) for rev, kind, data in rows
    ]


def _networks(svc: ConfigService, count: int) -> None:
    document = svc.export_document()
    document["networks"] += [
        {"name": f"N{i}", "subnet": f"10.{i // 256}.{i % 256}.0/24", "services": {"ssh": "allow"}}
        for i in range(count)
    ]
    svc.import_document(document)


def test_an_edit_stores_what_it_changed_and_a_bulk_edit_a_snapshot(svc: ConfigService) -> None:
    _networks(svc, 300)
    svc.update_network("N7", NetworkChange(block=["ssh"]))
    svc.update_settings({"ips_maxretry": 4})
    svc.update_network("N8", NetworkChange(name="Eight"))
    *_, imported, network, setting, renamed = _stored(svc)
    assert imported[2].form == SNAPSHOT  # an import says nothing about which networks
    assert network[2].form == DELTA and network[2].base == imported[0]
    assert [n and n["name"] for n in network[2].changes.values()] == ["N7"]
    assert network[3] < imported[3] // 4  # one network, not 300
    assert setting[2].form == DELTA and setting[2].changes == network[2].changes
    assert setting[2].rest["stored_settings"]["ips_maxretry"] == 4
    # The networks changed since the snapshot add up; the base stays.
    assert renamed[2].base == imported[0] and len(renamed[2].changes) == 2
    for rev, *_ in (network, setting, renamed):
        with svc.store.read() as repo:
            assert storage_history.document_at(repo, rev) is not None
    assert svc.history_entry(renamed[0]).entry.document == svc.export_document()
    assert svc.history(1)[0].summary == "network N8 renamed to Eight"
    svc.add_service("prov", "Provisioning", tcp="8088")  # every network's verdicts change
    assert _stored(svc)[-1][2].form == SNAPSHOT


def test_many_networks_changed_since_the_snapshot_make_a_new_one(
    svc: ConfigService, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pbxfw.usecases import history_record

    monkeypatch.setattr(history_record, "DELTA_SMALL", 2)
    _networks(svc, 20)
    for i in range(3):
        svc.update_network(f"N{i}", NetworkChange(block=["ssh"]))
    forms = [stored.form for _, _, stored, _ in _stored(svc)[-4:]]
    assert forms == [SNAPSHOT, DELTA, DELTA, DELTA]  # 3 of 22 networks: still a delta
    for i in range(3, 6):
        svc.update_network(f"N{i}", NetworkChange(block=["ssh"]))
    forms = [stored.form for _, _, stored, _ in _stored(svc)[-3:]]
    assert forms == [DELTA, DELTA, SNAPSHOT]  # 6 of 22: more than a quarter
    assert svc.history_entry(svc.history(1)[0].rev).entry.document == svc.export_document()


def test_a_document_stored_whole_is_read_and_is_the_base_of_the_next_delta(
    svc: ConfigService,
) -> None:
    svc.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16", allow=["ssh"]))
    with svc.store.write() as repo:  # what pbxfw before the deltas stored
        storage_history.add_entry(
            repo,
            site="default",
            kind="config",
            at=1.0,
            actor="bob",
            via="cli",
            client="local",
            summary="stored whole",
            document=document_now(repo),
        )
    old = svc.export_document()
    whole = svc.history(1)[0].rev
    assert _stored(svc)[-1][2].form == FULL
    svc.update_network("Office", NetworkChange(block=["ssh"]))
    svc.update_settings({"ips_maxretry": 5})
    *_, (delta, _, stored, _), (last, _, after, _) = _stored(svc)
    assert stored.form == DELTA and stored.base == whole
    assert after.form == DELTA and after.base == whole
    assert svc.history_entry(whole).entry.document == old
    shown = svc.history_entry(delta)
    assert shown.against == whole
    assert shown.lines == ["network Office: ssh allow → block"]
    assert svc.history_entry(last).entry.document == svc.export_document()
    report = svc.restore(whole)
    assert report.changed and svc.export_document() == old


def test_pruning_keeps_the_snapshot_the_oldest_kept_delta_needs_hidden(
    svc: ConfigService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_history, "KEEP", 3)
    svc.add_network(NetworkChange(name="Lab", subnet="10.9.0.0/16"))
    svc.add_service("prov", "Provisioning", tcp="8088")  # a snapshot
    snapshot = svc.history(1)[0].rev
    documents = {}
    for value in range(3, 8):
        svc.update_network("Lab", NetworkChange(allow=["ssh"] if value % 2 else ["sip"]))
        svc.update_settings({"ips_maxretry": value})
        documents[svc.history(1)[0].rev] = svc.export_document()
    kept = [e.rev for e in svc.history()]
    assert len(kept) == 3
    rows = _stored(svc)
    assert [(rev, kind) for rev, kind, _, _ in rows] == [(snapshot, storage_history.BASE)] + [
        (rev, "config") for rev in sorted(kept)
    ]
    assert {stored.base for _, _, stored, _ in rows[1:]} == {snapshot}
    with pytest.raises(NotFoundError):  # hidden: not an entry any more
        svc.history_entry(snapshot)
    for rev in kept:
        assert svc.history_entry(rev).entry.document == documents[rev]
    assert svc.history_entry(kept[-1]).against is None
    # A new snapshot: once the kept entries no longer need the old one, it goes.
    svc.remove_service("prov")
    svc.update_settings({"ips_maxretry": 9})
    svc.update_settings({"ips_maxretry": 8})
    rows = _stored(svc)
    assert snapshot not in [rev for rev, *_ in rows]
    assert len(rows) == 3 and [kind for _, kind, _, _ in rows] == ["config"] * 3
