"""The node role reads every site's ``ips_share`` and nothing else of another
site's settings (docs/fleet-bans.md, storage/roles.py): which other site's
bans a node enforces depends on that site's share (domain.sharing)."""

from __future__ import annotations

from typing import Any

from tests.fleet.test_roles import Roles, roles

__all__ = ["roles"]  # the fixture, used below


def test_a_node_reads_every_sites_ips_share_and_no_other_setting_of_theirs(
    roles: Roles, cli: Any
) -> None:
    assert cli("site", "add", "other").exit_code == 0
    assert (
        cli("settings", "set", "ips_share=off", "ips_maxretry=3", "--site", "other").exit_code == 0
    )
    with roles.connect(roles.login) as node:
        rows = node.execute("SELECT site, key, value FROM settings WHERE site = 'other'")
        assert [tuple(r) for r in rows] == [("other", "ips_share", '"off"')]
