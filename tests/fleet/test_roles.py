"""Least privilege for nodes (issue 16): ``pbxfw fleet roles`` on a real PostgreSQL.

The roles are applied with ``pbxfw fleet roles --apply`` (the group role) and
``--node N --site S`` (one login role per node), then PostgreSQL itself is
asked, connected as a node's login role: changing networks, settings, users
or sites is refused with a permission error, users' password hashes cannot
be read, another node's row cannot be changed, and a real ``pbxfw agent
--node a`` running under that role in a network namespace registers,
reports, loads its site's rules, records a ban and takes the bans of others
(docs/fleet-roles.md).

Roles are the server's, not one database's: each test names its own
(``pbxfw_node_t<pid>_<n>``) and drops them at the end.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.agent.test_agent_kernel import wait_until
from tests.fleet.nodes import PBXFW, Fleet
from tests.kernel.lab import Lab, require_kernel

_NAMES = itertools.count(1)


@dataclass
class Roles:
    """The group role and node a's login role on the test's database."""

    owner_url: str
    group: str
    login: str
    #: login roles a test made besides ``login`` (dropped at the end too)
    extra: list[str] = field(default_factory=list)

    def url_as(self, role: str) -> str:
        """The test database's URL, connecting as ``role`` (trust: no password)."""
        return make_url(self.owner_url).set(username=role).render_as_string(hide_password=False)

    def connect(self, role: str) -> psycopg.Connection[Any]:
        conninfo = self.url_as(role).replace("postgresql+psycopg://", "postgresql://")
        return psycopg.connect(conninfo, autocommit=True)


def _admin(db_url: str) -> psycopg.Connection[Any]:
    conninfo = db_url.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(conninfo, autocommit=True)


@pytest.fixture
def roles(db_url: str, cli: Any) -> Iterator[Roles]:
    group = f"pbxfw_node_t{os.getpid()}_{next(_NAMES)}"
    login = f"{group}_a"
    made = Roles(db_url, group, login)
    try:
        assert cli("init").exit_code == 0
        result = cli("fleet", "roles", "--apply", "--role", group)
        assert result.exit_code == 0, result.stderr
        result = cli(
            "fleet", "roles", "--apply", "--role", group, "--node", "a", "--site", "default",
            "--login", login,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        yield made
    finally:
        with _admin(db_url) as admin:
            for role in (*made.extra, login, group):
                exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                if exists.fetchone():
                    admin.execute(f'DROP OWNED BY "{role}"')  # type: ignore[arg-type]
                    admin.execute(f'DROP ROLE "{role}"')  # type: ignore[arg-type]


def refused(connection: psycopg.Connection[Any], sql: str) -> str:
    """The error PostgreSQL answers ``sql`` with (the test fails if it runs)."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        connection.execute(sql)  # type: ignore[arg-type]
    return str(caught.value)


def test_the_node_role_is_refused_by_postgresql_itself(roles: Roles, cli: Any) -> None:
    assert cli("network", "add", "Office", "10.1.0.0/16").exit_code == 0
    assert cli("bans", "add", "203.0.113.5").exit_code == 0  # the ban revision: 1
    assert cli("user", "add", "admin", "--password-stdin", input="a long secret\n").exit_code == 0
    with _admin(roles.owner_url) as admin:
        admin.execute(
            "INSERT INTO nodes (name, site, registered_at, started_at, last_seen) "
            "VALUES ('b', 'default', 1, 1, 1)"
        )
    # Another site's configuration, which node a (site default) never sees.
    assert cli("site", "add", "other").exit_code == 0
    assert cli("network", "add", "Elsewhere", "10.7.0.0/16", "--site", "other").exit_code == 0
    with _admin(roles.owner_url) as admin:
        admin.execute(
            "INSERT INTO nodes (name, site, registered_at, started_at, last_seen) "
            "VALUES ('z', 'other', 1, 1, 1)"
        )
        for name in ("b", "z"):  # a failing source of each
            admin.execute(
                "INSERT INTO source_status (node, source, jail, error, since, failures, "
                "updated_at) VALUES (%s, '/var/log/auth.log', 'ssh', 'gone', 1, 1, 1)",
                (name,),
            )
    with roles.connect(roles.login) as node:
        # The configuration: its site's only, read, never changed.
        names = {r[0] for r in node.execute("SELECT name FROM networks")}
        assert names == {"Internet", "Internet IPv6", "Office"}
        sites = {r[0] for r in node.execute("SELECT DISTINCT site FROM settings")}
        assert sites <= {"default"}
        metas = {r[0] for r in node.execute("SELECT DISTINCT site FROM meta")}
        assert metas == {"default", ""}
        assert "permission denied" in refused(node, "UPDATE networks SET name = 'x'")
        refused(
            node,
            "INSERT INTO networks (name, subnet, services, local, never_block, description, "
            "permanent) VALUES ('x', '10.9.0.0/16', '{}', false, false, '', false)",
        )
        refused(node, "DELETE FROM networks")
        refused(node, "INSERT INTO settings (key, value) VALUES ('firewall_enabled', 'false')")
        refused(node, "UPDATE settings SET value = 'false'")
        refused(node, "DELETE FROM custom_services")
        # meta: only the fleet's ban revision may be written; the rest is
        # out of reach of a write (it changes nothing, or is refused).
        assert node.execute("UPDATE meta SET value = '0' WHERE key = 'revision'").rowcount == 0
        assert node.execute("DELETE FROM meta WHERE key = 'revision'").rowcount == 0
        refused(node, "INSERT INTO meta (key, value) VALUES ('applied_revision', '1')")
        refused(node, "UPDATE meta SET key = 'revision' WHERE key = 'bans_revision'")
        bumped = node.execute("UPDATE meta SET value = '2' WHERE key = 'bans_revision'")
        assert bumped.rowcount == 1
        # The bans: read and written.
        assert node.execute("SELECT count(*) FROM bans").fetchone() == (1,)
        assert node.execute("DELETE FROM bans WHERE subnet = '203.0.113.5/32'").rowcount == 1
        refused(node, "INSERT INTO sites (name, created_at) VALUES ('evil', 1)")
        # Users: not even their names, let alone the hashes.
        assert "permission denied" in refused(node, "SELECT password_hash FROM users")
        refused(node, "SELECT name FROM users")
        refused(node, "UPDATE users SET password_hash = 'x'")
        refused(node, "INSERT INTO users (name, password_hash, created_at) VALUES ('e', 'x', 1)")
        # Another node's row: read within its site (the notifications need
        # it: issue 19), invisible in another site; never written: an UPDATE
        # changes nothing, a DELETE is refused, and no row can be made or
        # turned into another node's.
        assert node.execute("SELECT name FROM nodes").fetchall() == [("b",)]
        changed = node.execute("UPDATE nodes SET last_error = 'hacked' WHERE name = 'b'")
        assert changed.rowcount == 0
        assert node.execute("UPDATE nodes SET last_seen = 9 WHERE name = 'z'").rowcount == 0
        assert "permission denied" in refused(node, "DELETE FROM nodes WHERE name = 'b'")
        # The source health of its site's nodes: read, never written.
        seen = node.execute("SELECT node, error FROM source_status").fetchall()
        assert seen == [("b", "gone")]
        assert node.execute("UPDATE source_status SET error = ''").rowcount == 0
        assert node.execute("DELETE FROM source_status WHERE node = 'b'").rowcount == 0
        assert "row-level security" in refused(
            node,
            "INSERT INTO source_status (node, source, jail, error, since, failures, "
            "updated_at) VALUES ('b', '/var/log/secure', 'ssh', '', 1, 1, 1)",
        )
        assert "row-level security" in refused(
            node,
            "INSERT INTO nodes (name, site, registered_at, started_at, last_seen) "
            "VALUES ('c', 'default', 1, 1, 1)",
        )
        node.execute(
            "INSERT INTO nodes (name, site, registered_at, started_at, last_seen) "
            "VALUES ('a', 'default', 1, 1, 1)"
        )
        refused(node, "UPDATE nodes SET name = 'b2' WHERE name = 'a'")
        refused(node, "UPDATE nodes SET site = 'other' WHERE name = 'a'")
        refused(node, "DELETE FROM nodes WHERE name = 'a'")
        visible = node.execute("SELECT name FROM nodes ORDER BY name").fetchall()
        assert visible == [("a",), ("b",)]  # never z, of site other
        # Node-owned rows: its own only.
        refused(
            node,
            "INSERT INTO ips_counters (node, jail, lines, failures, bans, whitelisted) "
            "VALUES ('b', 'ssh', 1, 1, 1, 1)",
        )
        node.execute(
            "INSERT INTO attack_users (node, hour, jail, account, failures) "
            "VALUES ('a', 3600, 'ssh', 'root', 1)"
        )
        refused(
            node,
            "INSERT INTO attack_users (node, hour, jail, account, failures) "
            "VALUES ('b', 3600, 'ssh', 'root', 1)",
        )
        # The mapping is the owner's to change.
        refused(node, f"UPDATE pbxfw_node_roles SET node = 'b' WHERE role = '{roles.login}'")
    with _admin(roles.owner_url) as admin:
        row = admin.execute("SELECT last_error FROM nodes WHERE name = 'b'").fetchone()
        assert row == ("",)
        row = admin.execute("SELECT last_seen FROM nodes WHERE name = 'z'").fetchone()
        assert row == (1.0,)
        errors = admin.execute("SELECT node, error FROM source_status ORDER BY node").fetchall()
        assert errors == [("b", "gone"), ("z", "gone")]
        revision = admin.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        assert revision is not None and revision[0] != "0"
        assert admin.execute("SELECT count(*) FROM users").fetchone() == (1,)


def test_a_real_agent_works_under_the_node_role(
    roles: Roles, cli: Any, tmp_path: Path, db_url: str
) -> None:
    require_kernel()
    with Lab(f"ro{os.getpid() % 10000}") as lab:
        fleet = Fleet(lab, db_url, tmp_path)
        try:
            fleet.configure(maxretry=3)
            admin_ns = lab.namespace("adm")
            applied = fleet.pbxfw("apply", "--netns", admin_ns, "--json")
            assert applied.returncode == 0, applied.stderr
            revision = json.loads(applied.stdout)["revision"]
            a = fleet.add("a")
            fleet.db = roles.url_as(roles.login)  # the agent connects as its node's role
            fleet.start(a)
            fleet.db = db_url
            took = wait_until(partial(reports, fleet, revision), 20, 0.1)
            assert took is not None, a.log.read_text()[-4000:]
            # Its site's rules are in its kernel.
            assert "allow_sip_v4" in a.ruleset(), a.log.read_text()[-3000:]
            # A ban detected here is recorded, with this node's counters.
            a.fail("198.51.100.21", 3)
            took = wait_until(lambda: "198.51.100.21" in stored_bans(fleet), 10, 0.05)
            assert took is not None, a.log.read_text()[-4000:]
            assert "198.51.100.21" in a.banned()
            # The extension its failures tried is tallied under its role (0018).
            took = wait_until(lambda: tried(roles) == [("a", "asterisk", "101")], 10, 0.1)
            assert took is not None, (tried(roles), a.log.read_text()[-4000:])
            # A ban made elsewhere (the owner's CLI) reaches its kernel.
            assert fleet.pbxfw("bans", "add", "203.0.113.77", "--jail", "asterisk").returncode == 0
            took = wait_until(lambda: "203.0.113.77" in a.banned(), 10, 0.05)
            assert took is not None, a.log.read_text()[-4000:]
            status = fleet.pbxfw("ips", "status", "--json", "--node", "a")
            assert status.returncode == 0, status.stderr
            body = json.loads(status.stdout)
            assert body["jails"]["asterisk"]["bans"] == 1
            assert {s["node"] for s in body["sources"]} == {"a"}
            text = a.log.read_text()
            assert "permission denied" not in text and "row-level security" not in text, text
        finally:
            fleet.close()


def tried(roles: Roles) -> list[tuple[str, str, str]]:
    """(node, jail, account) of the accounts tallied, as the owner reads them."""
    with _admin(roles.owner_url) as admin:
        rows = admin.execute("SELECT DISTINCT node, jail, account FROM attack_users").fetchall()
    return [(str(n), str(j), str(a)) for n, j, a in rows]


def reports(fleet: Fleet, revision: int) -> bool:
    listing = fleet.pbxfw("node", "list", "--json")
    if listing.returncode != 0:
        return False
    nodes = json.loads(listing.stdout)
    return any(
        n["name"] == "a" and n["state"] == "up" and n["applied_revision"] == revision for n in nodes
    )


def stored_bans(fleet: Fleet) -> str:
    return fleet.pbxfw("bans", "list", "--json").stdout


def pbxfw(tmp_path: Path, db: str, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PBXFW_STATE_DIR": str(tmp_path / "state")}
    return subprocess.run(
        [PBXFW, *args, "--db", db], capture_output=True, text=True, timeout=60, env=environ
    )


def test_an_agent_refuses_a_schema_older_than_itself(db_url: str, tmp_path: Path) -> None:
    """A node's role may not migrate: the agent says so instead of trying."""
    with _admin(db_url) as admin:
        admin.execute("UPDATE alembic_version SET version_num = '0005'")
    result = pbxfw(tmp_path, db_url, "agent", "--node", "x")
    assert result.returncode == 4, result.stderr
    assert "revision 0005" in result.stderr and "pbxfw init" in result.stderr


def test_fleet_roles_on_sqlite_says_postgresql_only(tmp_path: Path) -> None:
    db = str(tmp_path / "one.db")
    assert pbxfw(tmp_path, db, "init").returncode == 0
    result = pbxfw(tmp_path, db, "fleet", "roles")
    assert result.returncode == 2
    assert "PostgreSQL only" in result.stderr and "--db" in result.stderr


def test_bad_role_node_and_site_names_exit_2(roles: Roles, cli: Any, tmp_path: Path) -> None:
    for args, option in (
        (("--role", 'x"; DROP TABLE bans; --'), "--role"),
        (("--node", "-bad", "--site", "default"), "--node"),
        (("--node", "ok"), "--site"),
        (("--site", "default"), "--node"),
    ):
        result = cli("fleet", "roles", *args)
        assert result.exit_code == 2, (args, result.stdout)
        assert option in result.stderr, (args, result.stderr)
    missing = cli("fleet", "roles", "--apply", "--node", "n2", "--site", "nowhere")
    assert missing.exit_code == 2 and "nowhere" in missing.stderr and "--site" in missing.stderr
    # Applying again changes nothing and fails nothing (idempotent).
    again = cli("fleet", "roles", "--apply", "--role", roles.group)
    assert again.exit_code == 0, again.stderr
    # A role that may not create roles nor own the tables is told what it lacks.
    result = pbxfw(
        tmp_path, roles.url_as(roles.login), "fleet", "roles", "--apply", "--role", roles.group
    )
    assert result.returncode == 4, result.stderr
    assert "permission denied" in result.stderr and "CREATEROLE" in result.stderr
    # Printed, not applied: the SQL names the role, the node and the site.
    printed = cli("fleet", "roles", "--role", roles.group, "--node", "n2", "--site", "default")
    assert printed.exit_code == 0
    assert f'GRANT "{roles.group}" TO "pbxfw_node_n2"' in printed.stdout


def test_an_agent_claiming_another_node_is_refused_and_keeps_running(
    roles: Roles, tmp_path: Path
) -> None:
    """Node a's role running ``pbxfw agent --node b`` (in-process, dry-run
    kernel): PostgreSQL refuses b's row; the agent logs its node part as
    failing and goes on."""
    from pbxfw.agent.daemon import Agent, AgentOptions
    from pbxfw.kernel.dryrun import DryRunBackend
    from pbxfw.storage.repository import Store

    store = Store.open(roles.url_as(roles.login))
    options = AgentOptions(state_dir=str(tmp_path / "state"), node="b", discover_asterisk=False)
    agent = Agent(store, options, backend=DryRunBackend())
    try:
        agent.start()
        agent.tick()
        failing = {s.source: s.error for s in agent.health.failing()}
        assert "row-level security" in failing.get("agent:node", ""), failing
    finally:
        agent.ips.close()
        agent.wake.close()
        store.close()
    with _admin(roles.owner_url) as admin:
        assert admin.execute("SELECT name FROM nodes").fetchall() == []


def test_a_node_of_another_site_loads_only_its_sites_rules(
    roles: Roles, tmp_path: Path, db_url: str
) -> None:
    """Node b, bound to site other by its own login role, runs a real agent:
    it loads site other's rules (not default's) and takes the fleet's bans."""
    require_kernel()
    login_b = f"{roles.group}_b"
    roles.extra.append(login_b)
    with Lab(f"rs{os.getpid() % 10000}") as lab:
        fleet = Fleet(lab, db_url, tmp_path)
        try:
            fleet.configure(maxretry=3)
            fleet.configure(maxretry=3, site="other")  # `site add other` and its settings
            for site, subnet in (("default", "10.61.0.0/16"), ("other", "10.62.0.0/16")):
                added = fleet.pbxfw(
                    "network", "add", f"Net-{site}", subnet, "--block", "sip", "--site", site
                )  # fmt: skip
                assert added.returncode == 0, added.stderr
            bound = fleet.pbxfw(
                "fleet", "roles", "--apply", "--role", roles.group, "--node", "b",
                "--site", "other", "--login", login_b,
            )  # fmt: skip
            assert bound.returncode == 0, bound.stderr
            applied = fleet.pbxfw("apply", "--site", "other", "--netns", lab.namespace("adm"))
            assert applied.returncode == 0, applied.stderr
            b = fleet.add("b")
            fleet.db = roles.url_as(login_b)  # the agent connects as node b's role
            fleet.start(b, site="other")
            fleet.db = db_url
            # SIP is allowed around site other's hole (10.62/16), not default's (10.61/16).
            took = wait_until(lambda: "10.61.255.255" in b.ruleset(), 20, 0.1)
            assert took is not None, b.log.read_text()[-4000:] + b.ruleset()
            assert "10.60.255.255" not in b.ruleset() and "10.63.0.0" in b.ruleset()
            banned = fleet.pbxfw("bans", "add", "203.0.113.88", "--jail", "asterisk")
            assert banned.returncode == 0, banned.stderr
            took = wait_until(lambda: "203.0.113.88" in b.banned(), 10, 0.05)
            assert took is not None, b.log.read_text()[-4000:]
            text = b.log.read_text()
            assert "permission denied" not in text and "row-level security" not in text, text
        finally:
            fleet.close()
