"""Country rules and the country database through the use cases, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbxfw.errors import ValidationError
from pbxfw.storage.repository import Store
from pbxfw.usecases.config import ConfigService
from pbxfw.usecases.geo import GeoService

NOW = 1_796_428_800.0  # 2026-12-05


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def write_mmdb(path: Path, networks: dict[str, str]) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    for cidr, code in networks.items():
        writer.insert_network(IPSet([cidr]), {"country": {"iso_code": code}})
    writer.to_db_file(str(path))
    return path


def test_import_is_all_or_nothing_and_status_counts_ranges(
    svc: ConfigService, tmp_path: Path
) -> None:
    geo = GeoService(svc.store)
    assert geo.status(now=NOW).info is None
    assert "no country database" in (geo.status(now=NOW).warning or "")
    good = write_csv(
        tmp_path / "c.csv", "# comment\n1.0.0.0/8,de\n2.0.0.0/8,CN\n2001:db8::/32,AT\n"
    )
    status = geo.import_file(good, now=NOW, built="2026-11-01")
    assert status.as_json() | {"loaded_at": 0} == {
        "source": "c.csv",
        "date": "2026-11-01",
        "loaded_at": 0,
        "ipv4_ranges": 2,
        "ipv6_ranges": 1,
        "age_days": 34,
        "warning": None,
    }
    revision = svc.revision()
    bad = write_csv(tmp_path / "bad.csv", "1.0.0.0/8,DE\nnot a line\n")
    with pytest.raises(ValidationError) as err:
        geo.import_file(bad, now=NOW)
    assert err.value.errors[0].field == "file"
    assert "line 2" in err.value.errors[0].message
    assert svc.revision() == revision
    assert geo.status(now=NOW).info is not None
    assert svc.lookup_country("2.1.1.1").country == "CN"


def test_an_old_database_gives_a_warning(svc: ConfigService, tmp_path: Path) -> None:
    geo = GeoService(svc.store)
    old = write_csv(tmp_path / "old.csv", "1.0.0.0/8,DE\n")
    status = geo.import_file(old, now=NOW, built="2026-05-01")
    assert status.age_days == 218
    assert "218 days old (over 180)" in (status.warning or "")


def test_mmdb_import_reads_both_families(svc: ConfigService, tmp_path: Path) -> None:
    path = write_mmdb(tmp_path / "c.mmdb", {"1.0.0.0/8": "DE", "2001:db8::/32": "AT"})
    status = GeoService(svc.store).import_file(path, now=NOW)
    assert (status.info and (status.info.ipv4_ranges, status.info.ipv6_ranges)) == (1, 1)
    found = svc.lookup_country("2001:db8::5")
    assert (found.country, found.first, found.last) == (
        "AT",
        "2001:db8::",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    )
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"\xab\xcd\xefMaxMind.com garbage")
    with pytest.raises(ValidationError, match="not a readable MaxMind DB"):
        GeoService(svc.store).import_file(broken, now=NOW)


def test_rules_round_trip_through_the_document(svc: ConfigService, tmp_path: Path) -> None:
    before = json.dumps(svc.export_document(), sort_keys=True)
    assert "countries" not in svc.export_document()
    svc.add_country("DACH", "DE,AT,CH", allow=["sip"])
    svc.add_country("Elsewhere", "*", block=["sip"])
    document = svc.export_document()
    assert document["countries"][1] == {
        "id": 2,
        "name": "Elsewhere",
        "codes": ["*"],
        "services": {"sip": "block"},
    }
    svc.remove_country("DACH")
    svc.remove_country("Elsewhere")
    assert json.dumps(svc.export_document(), sort_keys=True) == before
    svc.import_document(document)
    assert [r.name for r in svc.country_rules()] == ["DACH", "Elsewhere"]
    bad = document | {"countries": [{"name": "X", "codes": ["DE", "ZZ"], "services": {}}]}
    with pytest.raises(ValidationError) as err:
        svc.import_document(bad)
    assert err.value.errors[0].field == "countries[0].codes"
    assert [r.name for r in svc.country_rules()] == ["DACH", "Elsewhere"]


def test_set_and_refusals_leave_the_rules_as_they_were(svc: ConfigService) -> None:
    svc.add_country("DACH", "DE,AT", allow=["sip"], block=["ssh"])
    rule = svc.set_country("DACH", codes="DE,AT,CH", inherit=["ssh"], block=["iax"])
    assert rule.codes == ("AT", "CH", "DE")
    assert {k: v.value for k, v in rule.services.items()} == {"sip": "allow", "iax": "block"}
    revision = svc.revision()
    with pytest.raises(ValidationError, match="already in country rule 'DACH'"):
        svc.add_country("Europe", "FR,DE")
    with pytest.raises(ValidationError, match="unknown service"):
        svc.set_country("DACH", allow=["nope"])
    assert svc.revision() == revision
    assert svc.country_rules()[0] == rule


def test_the_stored_table_reads_back_the_same(db_url: str, tmp_path: Path) -> None:
    store = Store.open(db_url, create=True)
    try:
        ConfigService(store).init()
        lines = [
            f"{a}.{b}.0.0/16,{'DE' if (a + b) % 2 else 'FR'}" for a in (5, 6) for b in range(256)
        ]
        lines.append("2a00::/12,NL")
        path = write_csv(tmp_path / "many.csv", "\n".join(lines) + "\n")
        GeoService(store).import_file(path, now=NOW, built="2026-12-01")
        with store.read() as repo:
            table = repo.geo_table()
        assert table is not None
        # 5.255.0.0/16 and 6.0.0.0/16 are both FR: touching ranges of one country join.
        assert table.count(4) == 511 and table.count(6) == 1
        assert list(table.ranges(6)) == [(0x2A00 << 112, (0x2A10 << 112) - 1, "NL")]
    finally:
        store.close()


def test_the_applied_configuration_and_the_kept_copy_carry_the_countries(
    svc: ConfigService, tmp_path: Path
) -> None:
    """What the agent loads after an apply (the applied document, or its kept
    copy during an outage) compiles to the same ruleset as the stored one."""
    from pbxfw.agent.config_cache import read_cached_config, write_cached_config
    from pbxfw.compiler import compile_ruleset
    from pbxfw.kernel.dryrun import DryRunBackend
    from pbxfw.usecases.firewall import FirewallService

    data = write_csv(tmp_path / "c.csv", "198.51.100.0/24,DE\n203.0.113.0/24,CN\n")
    GeoService(svc.store).import_file(data, now=NOW, built="2026-12-01")
    svc.add_country("DACH", "DE,AT,CH", allow=["sip"])
    svc.add_country("Elsewhere", "*", block=["sip"])
    svc.update_settings({"firewall_enabled": True})
    firewall = FirewallService(svc.store, tmp_path / "state", backend=DryRunBackend)
    firewall.apply()
    revision, applied = firewall.applied_configuration()
    stored = svc.configuration()
    assert [r.name for r in applied.country_rules] == ["DACH", "Elsewhere"]
    assert compile_ruleset(applied) == compile_ruleset(stored)
    kept = tmp_path / "kept.json"
    write_cached_config(kept, revision, applied)
    again = read_cached_config(kept)
    assert again is not None
    assert compile_ruleset(again[1]) == compile_ruleset(stored)
    assert "203.0.113.0-203.0.113.255" not in compile_ruleset(stored)  # CN: no sip


def test_rules_added_after_an_import_with_ids_get_free_ids(svc: ConfigService) -> None:
    """An import keeps the document's ids; a later add must not collide with
    them (PostgreSQL's sequence did not hand those ids out)."""
    document = svc.export_document() | {
        "countries": [
            {"id": 1, "name": "DACH", "codes": ["DE"], "services": {"sip": "allow"}},
            {"id": 2, "name": "Elsewhere", "codes": ["*"], "services": {"sip": "block"}},
        ]
    }
    svc.import_document(document)
    rule = svc.add_country("Nowhere", "unknown", block=["sip"])
    assert rule.id not in (1, 2)
    assert [r.name for r in svc.country_rules()] == ["DACH", "Elsewhere", "Nowhere"]


def test_removing_a_custom_service_removes_it_from_the_rules(svc: ConfigService) -> None:
    svc.add_service("prov", "Provisioning", tcp="8080")
    svc.add_country("DACH", "DE", allow=["sip", "prov"])
    svc.remove_service("prov")
    svc.add_service("prov", "Provisioning again", tcp="8081")
    assert dict(svc.country_rules()[0].services) == {"sip": "allow"}


def test_rules_belong_to_their_site(svc: ConfigService, tmp_path: Path) -> None:
    """Country rules are part of a site's configuration; the database is the fleet's."""
    from pbxfw.usecases.sites import SiteService

    SiteService(svc.store).add("branch")
    branch = ConfigService(svc.store.at_site("branch"))
    branch.init()
    data = write_csv(tmp_path / "c.csv", "198.51.100.0/24,DE\n")
    GeoService(svc.store).import_file(data, now=NOW, built="2026-12-01")
    svc.add_country("DACH", "DE", allow=["sip"])
    branch.add_country("DACH", "DE", block=["sip"])  # the same name: another site
    assert [dict(r.services) for r in svc.country_rules()] == [{"sip": "allow"}]
    assert [dict(r.services) for r in branch.country_rules()] == [{"sip": "block"}]
    assert branch.lookup_country("198.51.100.1").country == "DE"
    document = branch.export_document()
    svc.import_document(document)  # ids of another site's rules are not reused
    assert [dict(r.services) for r in svc.country_rules()] == [{"sip": "block"}]
    assert [dict(r.services) for r in branch.country_rules()] == [{"sip": "block"}]
    SiteService(svc.store).remove("branch")
    assert [r.name for r in svc.country_rules()] == ["DACH"]
