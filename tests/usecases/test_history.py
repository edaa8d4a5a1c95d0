"""The history of changes (issue 19), recorded once in the service layer, on
SQLite and PostgreSQL.

Every edit that changes the stored configuration (networks, services,
settings, country rules, trust, import, a site's start, a restore) leaves one
entry in the same transaction, with the actor the adapter named; a refused
edit leaves none; administrators' bans leave summary entries; the history is
bounded per site and kind; restore stages a revision as the stored one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxfw.domain.history import Actor
from pbxfw.errors import NotFoundError, ValidationError
from pbxfw.storage import history as storage_history
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.actor import acting, current_actor
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.sites import SiteService

ALICE = Actor("alice", "web", "203.0.113.9")


def _summaries(svc: ConfigService, limit: int = 50) -> list[str]:
    return [e.summary for e in svc.history(limit)]


def test_every_kind_of_edit_is_recorded_with_its_actor(svc: ConfigService) -> None:
    first = svc.history()
    assert [(e.via, e.kind) for e in first] == [("system", "config")]
    assert first[0].summary.startswith("first recorded configuration: network ")
    with acting(ALICE):
        svc.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16", allow=["ssh"]))
        svc.update_network("Office", NetworkChange(block=["ssh"]))
        svc.update_settings({"ips_maxretry": 3})
        svc.add_service("prov", "Provisioning", tcp="8088")
        svc.add_country("Germany", "DE", allow=["sip"])
        svc.trust("192.0.2.7")
        svc.remove_network("Office")
    entries = svc.history()
    assert [e.summary for e in entries[:7]] == [
        "network Office removed",
        "network Never block 192.0.2.7 added (192.0.2.7/32)",
        "country rule Germany added",
        "service prov added (and 3 more)",  # every network blocks a new service
        "setting ips_maxretry: 10 → 3",
        "network Office: ssh allow → block",
        "network Office added (10.1.0.0/16)",
    ]
    assert {(e.actor, e.via, e.client, e.site) for e in entries[:7]} == {
        ("alice", "web", "203.0.113.9", "default")
    }
    revs = [e.rev for e in entries]
    assert revs == sorted(revs, reverse=True)


def test_a_refused_or_empty_edit_records_nothing(svc: ConfigService) -> None:
    before = svc.history()
    with pytest.raises(ValidationError):
        svc.add_network(NetworkChange(name="Bad", subnet="10.0.0.0/33"))
    with pytest.raises(ValidationError):
        svc.update_settings({"ips_maxretry": 0})
    svc.update_settings({"ips_maxretry": svc.settings().ips_maxretry})  # the same value
    assert svc.history() == before


def test_an_import_is_recorded_through_import(svc: ConfigService) -> None:
    document = svc.export_document()
    document["settings"]["ips_bantime"] = 7200
    with acting(Actor("bob", "rest", "198.51.100.4")):
        svc.import_document(document)
    newest = svc.history(1)[0]
    assert (newest.actor, newest.via, newest.client) == ("bob", "import", "198.51.100.4")
    assert newest.summary.startswith("setting ips_bantime: ")


def test_show_diffs_against_the_revision_before(svc: ConfigService) -> None:
    with acting(ALICE):
        svc.add_network(NetworkChange(name="Lab", subnet="10.9.0.0/16"))
        svc.update_network("Lab", NetworkChange(allow=["ssh"], name="Lab 2"))
    newest, older = svc.history(2)
    shown = svc.history_entry(newest.rev)
    assert shown.against == older.rev
    assert shown.lines == ["network Lab renamed to Lab 2", "network Lab 2: ssh block → allow"]
    assert shown.entry.document == svc.export_document()
    svc.update_settings({"ips_maxretry": 4, "firewall_enabled": True})
    settings_edit = svc.history_entry(svc.history(1)[0].rev)
    assert settings_edit.entry.document == svc.export_document()
    assert settings_edit.lines == [
        "setting firewall_enabled: no → yes",
        "setting ips_maxretry: 10 → 4",
    ]
    with pytest.raises(NotFoundError):
        svc.history_entry(newest.rev + 100)
    with pytest.raises(NotFoundError):
        svc.history_entry(2**70)


def test_restore_stages_a_revision_and_is_recorded(svc: ConfigService) -> None:
    start = svc.history(1)[0]
    original = svc.export_document()
    with acting(ALICE):
        svc.add_network(NetworkChange(name="Lab", subnet="10.9.0.0/16"))
        svc.update_settings({"firewall_enabled": True})
        revision = svc.revision()
        report = svc.restore(start.rev)
    assert report.changed and report.revision == revision + 1
    assert svc.export_document() == original
    assert svc.unapplied()  # staged: `pbxfw apply` applies it
    newest = svc.history(1)[0]
    assert newest.summary.startswith(f"restore of revision {start.rev}: network Lab removed")
    assert newest.actor == "alice"
    again = svc.restore(start.rev)
    assert not again.changed and svc.history(1)[0] == newest


def test_bans_by_administrators_are_in_the_history(svc: ConfigService) -> None:
    bans = BanService(svc.store, own_addresses=lambda: [])
    with acting(Actor("alice", "web", "203.0.113.9")):
        bans.add("203.0.113.5", jail="asterisk", seconds=3600)
        bans.remove("203.0.113.5")
        bans.import_lines(["198.51.100.0/24", "198.51.100.9"], seconds=86400)
    ban_rows = [e for e in svc.history() if e.kind == "ban"]
    assert [e.summary for e in ban_rows] == [
        "ban import: 2 address(es) (manual, 1d)",
        "unban 203.0.113.5 (asterisk)",
        "ban 203.0.113.5 (asterisk, 1h)",
    ]
    assert ban_rows[0].site == ""  # the fleet's: every site's history shows them
    with pytest.raises(ValidationError, match="only a configuration revision"):
        svc.restore(ban_rows[0].rev)


def test_the_agents_bans_are_not_in_the_history(svc: ConfigService) -> None:
    from pbxfw.domain.addresses import parse_subnet
    from pbxfw.domain.bans import Ban

    before = svc.history()
    ban = Ban(parse_subnet("192.0.2.99"), "asterisk", frozenset({"sip"}), "r", 1.0, 9e9, 1.0, 1.0)
    BanService(svc.store).record([ban])
    assert svc.history() == before


def test_each_site_has_its_own_history(svc: ConfigService) -> None:
    with acting(Actor("carol", "cli", "local")):
        SiteService(svc.store).add("branch")
    branch = ConfigService(svc.store, site="branch")
    made = branch.history()
    assert [(e.via, e.actor) for e in made] == [("fleet", "carol")]
    branch.add_network(NetworkChange(name="Shop", subnet="10.5.0.0/16"))
    assert "Shop" not in " ".join(_summaries(svc))
    assert [e.site for e in branch.history()] == ["branch", "branch"]
    with pytest.raises(NotFoundError):  # another site's entry is not this site's
        svc.history_entry(made[0].rev)
    SiteService(svc.store).remove("branch")
    with svc.store.read() as repo:
        assert storage_history.entries(repo, ("branch",), 10) == []


def test_the_history_keeps_the_newest_entries_of_each_kind(
    svc: ConfigService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_history, "KEEP", 5)
    bans = BanService(svc.store, own_addresses=lambda: [])
    bans.add("203.0.113.5")
    for value in range(3, 12):
        svc.update_settings({"ips_maxretry": value})
    entries = svc.history()
    configs = [e for e in entries if e.kind == "config"]
    assert len(configs) == 5
    assert configs[0].summary == "setting ips_maxretry: 10 → 11"
    assert [e.summary for e in entries if e.kind == "ban"] == ["ban 203.0.113.5 (manual, 1d)"]
    # The oldest kept revision still shows a diff (against nothing before it).
    assert svc.history_entry(configs[-1].rev).against is None


def test_the_limit_is_checked(svc: ConfigService) -> None:
    with pytest.raises(ValidationError, match="limit"):
        svc.history(0)
    with pytest.raises(ValidationError, match="limit"):
        svc.history(1001)
    assert len(svc.history(1)) == 1


def test_without_an_adapter_the_actor_is_the_process_via_system() -> None:
    actor = current_actor()
    assert actor.via == "system" and actor.client == "local" and actor.who


def test_the_recorded_document_is_what_export_writes(svc: ConfigService) -> None:
    """The history builds the document from the rows (storage.history
    ``network_documents``): the same as ``export``, verdict by verdict."""
    from pbxfw.usecases.history import document_now

    svc.add_network(
        NetworkChange(
            name="Büro «v6»",
            subnet="2001:DB8:0:0::/48",
            allow=["ssh"],
            local=True,
            description="unicode ✓",
        )
    )
    svc.add_network(NetworkChange(name="Host", subnet="192.0.2.9/32", never_block=True))
    svc.add_service("prov", "Provisioning", tcp="8088")  # older rows lack its verdict
    svc.add_country("Germany", "DE,AT", allow=["sip"], block=["prov"])
    with svc.store.read() as repo:
        assert document_now(repo) == svc.export_document()
    assert svc.history_entry(svc.history(1)[0].rev).entry.document == svc.export_document()


def test_a_new_country_database_is_in_the_history(svc: ConfigService, tmp_path: Path) -> None:
    from pbxfw.usecases.geo import GeoService

    csv = tmp_path / "countries.csv"
    csv.write_text("192.0.2.0/24,DE\n2001:db8::/32,FR\n")
    with acting(Actor("alice", "cli", "local")):
        GeoService(svc.store).import_file(csv, now=1.0, built="2026-12-01")
    newest = svc.history(1)[0]
    assert (newest.kind, newest.site, newest.actor) == ("geo", "", "alice")
    assert newest.summary == (
        "country database imported: countries.csv of 2026-12-01 (1 IPv4 + 1 IPv6 ranges)"
    )
