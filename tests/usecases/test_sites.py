"""Sites scope the configuration (issue 16), on SQLite and PostgreSQL.

Each site is one configuration: the same network name and subnet, custom
service key and setting in two sites; an edit, an apply or an import in one
site leaves the other's revision, applied state and rows as they were; an
unknown site is a clear error naming ``site``; ``SiteService`` makes a site
as ``pbxfw init`` makes ``default`` and refuses to remove ``default`` or a
site with nodes. The single-PBX path (site ``default``) is covered by the
whole suite as before.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pbxfw.domain.nodes import Node
from pbxfw.domain.sites import UnknownSiteError
from pbxfw.errors import ConflictError, NotFoundError, ValidationError
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.firewall import FirewallService
from pbxfw.usecases.nodes import NodeService
from pbxfw.usecases.sites import SiteService


@pytest.fixture
def branch(svc: ConfigService) -> ConfigService:
    """The site ``branch``, made as ``pbxfw site add branch`` makes it."""
    SiteService(svc.store).add("branch")
    return ConfigService(svc.store, site="branch")


def _firewall(svc: ConfigService, tmp_path: Path, backend: DryRunBackend) -> FirewallService:
    return FirewallService(
        svc.store,
        tmp_path / "state",
        backend=lambda _ns: backend,  # type: ignore[arg-type,return-value]
        site=svc.site,
    )


def test_a_new_site_starts_as_init_makes_default(svc: ConfigService, branch: ConfigService) -> None:
    assert SiteService(svc.store).names() == ["branch", "default"]
    assert [(n.name, str(n.subnet), n.permanent) for n in branch.networks()] == [
        ("Internet", "0.0.0.0/0", True),
        ("Internet IPv6", "::/0", True),
    ]
    assert branch.revision() == 0
    assert branch.unapplied()
    assert not branch.settings().firewall_enabled
    # Its own rows: default's permanent networks are other rows (other ids).
    assert {n.id for n in branch.networks()}.isdisjoint({n.id for n in svc.networks()})
    with pytest.raises(ConflictError) as refused:
        SiteService(svc.store).add("branch")
    assert refused.value.errors[0].field == "name"


def test_the_same_names_in_two_sites_and_edits_stay_in_their_site(
    svc: ConfigService, branch: ConfigService
) -> None:
    default_revision = svc.revision()
    office, _ = branch.add_network(
        NetworkChange(name="Office", subnet="10.1.0.0/16", allow=["ssh"])
    )
    branch.add_service("prov", "Provisioning", "8443", "")
    branch.update_settings({"sip_port": 5070, "firewall_enabled": True})
    assert svc.revision() == default_revision  # untouched by branch's edits
    assert branch.revision() == 3

    # default may use the same name, subnet, key and setting.
    svc.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16", block=["ssh"]))
    svc.add_service("prov", "Other provisioning", "9443", "")
    assert branch.revision() == 3
    assert branch.network("Office").services["ssh"] == "allow"
    assert svc.network("Office").services["ssh"] == "block"
    assert branch.settings().sip_port == 5070 and svc.settings().sip_port == 5060
    assert [s.label for s in branch.services() if s.key == "prov"] == ["Provisioning"]
    assert [s.label for s in svc.services() if s.key == "prov"] == ["Other provisioning"]
    # `check` answers from the site's own networks (and its own firewall switch).
    assert svc.check("10.1.2.3", "ssh").verdict == "allow"  # default's firewall is off
    svc.update_settings({"firewall_enabled": True})
    assert branch.revision() == 3
    assert branch.check("10.1.2.3", "ssh").verdict == "allow"
    assert svc.check("10.1.2.3", "ssh").verdict == "block"

    # A site's network is not reachable by id from another site.
    with pytest.raises(NotFoundError):
        svc.network(office.id or 0)
    with pytest.raises(NotFoundError):
        svc.remove_network(office.id or 0)
    assert branch.network(office.id or 0).name == "Office"
    # Unique within a site still.
    with pytest.raises(ConflictError):
        branch.add_network(NetworkChange(name="Office", subnet="10.9.0.0/16"))


def test_apply_state_is_per_site(svc: ConfigService, branch: ConfigService, tmp_path: Path) -> None:
    backend = DryRunBackend()
    branch.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16", allow=["ssh"]))
    branch.update_settings({"firewall_enabled": True})
    fw_branch = _firewall(branch, tmp_path, backend)
    result = fw_branch.apply()
    assert result.revision == branch.revision()
    assert fw_branch.applied_revision() == branch.revision()
    assert "10.1.0.0/16" in (backend.table or "")
    assert not branch.unapplied()
    # default was never applied: its state is its own.
    fw_default = _firewall(svc, tmp_path, backend)
    assert fw_default.applied_revision() is None
    assert svc.unapplied()
    revision, config = fw_branch.applied_configuration()
    assert revision == branch.revision()
    assert [n.name for n in config.networks][-1] == "Office"
    # default's apply leaves branch's applied state as it was.
    fw_default.apply()
    assert fw_default.applied_revision() == svc.revision()
    assert fw_branch.applied_revision() == branch.revision()
    assert "10.1.0.0/16" not in (backend.table or "")


def test_export_and_import_per_site(svc: ConfigService, branch: ConfigService) -> None:
    svc.add_network(NetworkChange(name="HQ", subnet="192.0.2.0/24", allow=["web"]))
    svc.update_settings({"ssh_port": 2222})
    document = svc.export_document()
    default_revision = svc.revision()
    config, _notes = branch.import_document(document)
    assert [n.name for n in config.networks] == [n.name for n in svc.networks()]
    exported = branch.export_document()
    # Same configuration; the ids are branch's own (default keeps its rows).
    strip = [{k: v for k, v in n.items() if k != "id"} for n in exported["networks"]]
    assert strip == [{k: v for k, v in n.items() if k != "id"} for n in document["networks"]]
    assert exported["settings"] == document["settings"]
    assert svc.export_document() == document
    assert svc.revision() == default_revision
    # A round trip within a site keeps the ids.
    branch.import_document(exported)
    assert branch.export_document() == exported


def test_an_unknown_site_is_a_clear_error_and_stores_nothing(svc: ConfigService) -> None:
    before = svc.export_document()
    ghost = ConfigService(svc.store, site="ghost")
    for call in (
        ghost.networks,
        ghost.revision,
        lambda: ghost.add_network(NetworkChange(name="X", subnet="10.0.0.0/8")),
        lambda: ghost.update_settings({"sip_port": 5070}),
        lambda: ghost.import_document(before),
    ):
        with pytest.raises(UnknownSiteError) as refused:
            call()
        assert refused.value.errors[0].field == "site"
        assert "ghost" in str(refused.value) and "pbxfw site add ghost" in str(refused.value)
    with pytest.raises(UnknownSiteError):
        _firewall(ghost, Path("/nonexistent"), DryRunBackend()).compile()
    with pytest.raises(UnknownSiteError):
        SiteService(svc.store).get("ghost")
    with pytest.raises(ValidationError) as bad:
        ConfigService(svc.store, site="-bad")
    assert bad.value.errors[0].field == "site"
    assert svc.export_document() == before


def test_site_rm(svc: ConfigService, branch: ConfigService, tmp_path: Path) -> None:
    sites = SiteService(svc.store)
    with pytest.raises(ValidationError) as refused:
        sites.remove("default")
    assert "default" in str(refused.value)
    with pytest.raises(NotFoundError):
        sites.remove("ghost")

    now = time.time()
    NodeService(svc.store).report(Node("pbx-b", "branch", now, now, now, None, 0, "test", 0, ""))
    with pytest.raises(ValidationError) as has_nodes:
        sites.remove("branch")
    assert "pbx-b" in str(has_nodes.value) and "node" in str(has_nodes.value)
    assert sites.names() == ["branch", "default"]

    NodeService(svc.store).remove("pbx-b")
    branch.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16"))
    default_before = svc.export_document()
    sites.remove("branch")
    assert sites.names() == ["default"]
    assert svc.export_document() == default_before
    # The name can be used again, from a fresh start.
    sites.add("branch")
    assert [n.name for n in ConfigService(svc.store, site="branch").networks()] == [
        "Internet",
        "Internet IPv6",
    ]


def test_bans_are_the_fleets(svc: ConfigService, branch: ConfigService) -> None:
    """One ban list and one bans_revision, whichever site's store records it."""
    BanService(branch.store).add("203.0.113.9", jail="manual", seconds=600)
    default_bans = BanService(svc.store)
    assert [b.address_text() for b in default_bans.active()] == ["203.0.113.9"]
    assert default_bans.revision() == BanService(branch.store).revision() == 1


def test_node_states_follow_their_own_sites_revision(
    svc: ConfigService, branch: ConfigService
) -> None:
    now = time.time()
    nodes = NodeService(svc.store)
    nodes.report(Node("pbx-a", "default", now, now, now, svc.revision(), 0, "t", 0, ""))
    nodes.report(Node("pbx-b", "branch", now, now, now, branch.revision(), 0, "t", 0, ""))
    listing = nodes.listing(now=now)
    assert [str(listing.state(n)) for n in listing.nodes] == ["up", "up"]
    branch.add_network(NetworkChange(name="Office", subnet="10.1.0.0/16"))
    listing = nodes.listing(now=now)
    assert {n.name: str(listing.state(n)) for n in listing.nodes} == {
        "pbx-b": "drifted",
        "pbx-a": "up",
    }
    by_name = {n["name"]: n for n in listing.as_json()}
    assert by_name["pbx-b"]["stored_revision"] == branch.revision()
    assert by_name["pbx-a"]["stored_revision"] == svc.revision()


def test_store_at_site_shares_the_engine(svc: ConfigService) -> None:
    store: Store = svc.store
    assert store.site == "default" and store.at_site("default") is store
    SiteService(store).add("b")
    view = store.at_site("b")
    assert view.engine is store.engine and view.site == "b"
    view.check_site()
    with pytest.raises(UnknownSiteError):
        store.at_site("c").check_site()


def test_the_watchdogs_carry_is_told_the_site(branch: ConfigService, tmp_path: Path) -> None:
    """A rollback of site branch's change is carried into its configuration: the
    command the watchdog runs after a restore gets ``PBXFW_SITE=branch``."""
    command, environment = _firewall(branch, tmp_path, DryRunBackend())._after_rollback()
    assert command[-2:] == ["-m", "pbxfw.usecases.firewall"]
    assert environment["PBXFW_SITE"] == "branch"
    assert environment["PBXFW_DB"]


def test_network_add_after_an_import_with_higher_ids(svc: ConfigService) -> None:
    """Ids given by a document do not make the next ``network add`` collide
    (PostgreSQL's sequence does not see explicit ids; it is moved past them)."""
    svc.add_network(NetworkChange(name="HQ", subnet="192.0.2.0/24", allow=["web"]))
    document = svc.export_document()
    for number, network in enumerate(document["networks"]):
        if not network.get("permanent"):
            network["id"] = 1000 + number
    svc.import_document(document)
    added, _notes = svc.add_network(NetworkChange(name="Branch", subnet="198.51.100.0/24"))
    assert added.id is not None and added.id > 1000
    assert [n.name for n in svc.networks()][-2:] == ["HQ", "Branch"]
