"""PostgreSQL roles for the fleet's nodes: least privilege (issue 16, docs/fleet-roles.md).

``pbxfw fleet roles`` prints (and with ``--apply`` runs) the SQL built here:

- a group role (``NOLOGIN``, default ``pbxfw_node``) holding every privilege
  a node's agent needs and no other: read its site's configuration, the
  sites and the schema version; read and write the bans, their evidence and
  the fleet's ban revision; its own row of ``nodes`` and its own log positions, source
  health and counters (migration 0009); read only, the rows of ``nodes`` and
  ``source_status`` of its site's nodes (the notifications, issue 19);
- row-level security where a table holds rows of several nodes or sites, so
  that PostgreSQL itself keeps a node to its own node and site;
- the mapping ``pbxfw_node_roles`` (login role → node, site) those policies
  read, and one login role per node, a member of the group role
  (:func:`node_sql`).

The text is built from names validated here (identifiers and literals
cannot carry a quote), so it is safe to print and to run. Pure: nothing
here connects; :func:`run_sql` runs a text on an engine.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine

from pbxfw.domain.sites import FLEET_SITE
from pbxfw.errors import FieldError, StorageError, ValidationError
from pbxfw.storage.models import Base
from pbxfw.storage.repository import FLEET_META

__all__ = [
    "DEFAULT_GROUP",
    "MAPPING",
    "group_sql",
    "login_role_for",
    "node_sql",
    "run_sql",
    "validate_role_name",
]

#: The group role's default name.
DEFAULT_GROUP = "pbxfw_node"
#: The table binding each node's login role to its node and site.
MAPPING = "pbxfw_node_roles"
#: Meta keys a node may write: the fleet's own values (``bans_revision``,
#: bumped with every batch of bans it stores; storage.notify wakes the
#: other nodes on it), never a site's.
WRITABLE_META = tuple(sorted(FLEET_META))

#: The configuration a node reads (only its site's rows, once they have a site).
CONFIG_TABLES = (
    "networks",
    "custom_services",
    "settings",
    "country_rules",
    "fingerprint_edits",
    "notify_channels",
    "feeds",
)
#: The rows each node owns (migration 0009; the dashboard's aggregates, 0016, 0018).
NODE_TABLES = (
    "log_offsets",
    "source_status",
    "ips_counters",
    "notify_status",
    "feed_status",
    "attack_hours",
    "attack_sources",
    "attack_users",
    "failure_totals",
    "ban_totals",
    "drop_counters",
)

_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,62}")
_MY_NODE = f"(SELECT m.node FROM {MAPPING} m WHERE m.role = current_user)"
_MY_SITE = f"(SELECT m.site FROM {MAPPING} m WHERE m.role = current_user)"


def validate_role_name(name: str, field: str) -> str:
    """``name`` if it can name a PostgreSQL role here: 1–63 letters, digits,
    ``_``, ``.``, ``-``, the first a letter or ``_``. Raises ValidationError."""
    if not _ROLE.fullmatch(name):
        raise ValidationError(
            FieldError(
                field,
                f"{name!r} is not a role name pbxfw makes: 1-63 letters, digits, '_', '.', "
                "'-', the first a letter or '_'",
            )
        )
    return name


def login_role_for(node: str) -> str:
    """The default login role of ``node``: ``pbxfw_node_`` + its name, as it is
    (a quoted identifier keeps its case, so ``A`` and ``a`` stay two roles)."""
    name = f"pbxfw_node_{node}"
    if len(name) > 63:
        raise ValidationError(
            FieldError("--login", f"{name!r} is longer than 63 characters; give one with --login")
        )
    return name


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _has_site(table: str) -> bool:
    """The table holds rows of several sites (the ``site`` column, migration 0007)."""
    return "site" in Base.metadata.tables[table].c


def _policy(table: str, group: str, name: str, command: str, using: str, check: str = "") -> str:
    policy = _ident(f"{group}_{name}")
    lines = [
        f"DROP POLICY IF EXISTS {policy} ON {table};",
        f"CREATE POLICY {policy} ON {table} FOR {command} TO {_ident(group)}",
    ]
    if using:
        lines[-1] += f"\n  USING ({using})"
    if check:
        lines[-1] += f"\n  WITH CHECK ({check})"
    lines[-1] += ";"
    return "\n".join(lines)


def group_sql(group: str, database: str) -> str:
    """The SQL that makes (or brings up to date) the group role ``group`` in
    ``database``: idempotent, one transaction; run it as the tables' owner
    with the right to create roles (CREATEROLE), or as a superuser."""
    g = _ident(group)
    tables = sorted(Base.metadata.tables)
    site_of = " AND site = " + _MY_SITE
    parts = [
        f"-- pbxfw fleet roles: the node group role {group} (docs/fleet-roles.md)",
        "BEGIN;",
        "DO $$ BEGIN\n"
        f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(group)}) THEN\n"
        f"    CREATE ROLE {g} NOLOGIN;\n"
        "  END IF;\nEND $$;",
        "-- Which node and site each node's login role is (pbxfw fleet roles --node N --site S).",
        f"CREATE TABLE IF NOT EXISTS {MAPPING} (\n"
        "  role name PRIMARY KEY,\n"
        "  node varchar(63) NOT NULL UNIQUE,\n"
        "  site varchar(64) NOT NULL\n);",
        f"GRANT CONNECT ON DATABASE {_ident(database)} TO {g};",
        f"GRANT USAGE ON SCHEMA public TO {g};",
        "-- Nothing but what follows (users, sessions, login throttle: nothing at all).",
        f"REVOKE ALL ON {', '.join(tables)}, {MAPPING} FROM {g};",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {g};",
        "-- Read: the schema version (the agent refuses an old schema), sites, the mapping.",
        f"GRANT SELECT ON alembic_version, sites, geo_database, {MAPPING} TO {g};",
        "-- Read its site's configuration (row-level security below).",
        f"GRANT SELECT ON {', '.join(CONFIG_TABLES)}, meta TO {g};",
        "-- Write only the fleet's ban revision among the meta values (row-level security).",
        f"GRANT INSERT, UPDATE, DELETE ON meta TO {g};",
        "-- Read and write the bans (every node's detections are the fleet's).",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON bans TO {g};",
        "-- ... and the evidence behind them (the lines a node's detection kept).",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ban_evidence TO {g};",
        f"GRANT USAGE ON SEQUENCE bans_id_seq TO {g};",
        "-- Its own node row: registered and updated, never another's, never deleted.",
        f"GRANT SELECT, INSERT, UPDATE ON nodes TO {g};",
        "-- Its own log positions, source health and counters.",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(NODE_TABLES)} TO {g};",
        "-- Row-level security: PostgreSQL itself keeps a node to its own rows.",
    ]
    for table in CONFIG_TABLES:
        if _has_site(table):
            readable_rows = "site = " + _MY_SITE
            if table == "settings":
                # Every site's ips_share: which other site's bans this node
                # enforces (domain.sharing, docs/fleet-bans.md).
                readable_rows += " OR key = 'ips_share'"
            parts.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;")
            parts.append(_policy(table, group, "read", "SELECT", readable_rows))
    # meta: its site's values and the fleet's; writes only of the fleet's ban revision.
    writable = f"key IN ({', '.join(_literal(k) for k in WRITABLE_META)})"
    readable = "true"
    if _has_site("meta"):
        writable += f" AND site = {_literal(FLEET_SITE)}"
        readable = f"site IN ({_MY_SITE}, {_literal(FLEET_SITE)})"
    parts += [
        "ALTER TABLE meta ENABLE ROW LEVEL SECURITY;",
        _policy("meta", group, "read", "SELECT", readable),
        _policy("meta", group, "add", "INSERT", "", writable),
        _policy("meta", group, "change", "UPDATE", writable, writable),
        _policy("meta", group, "remove", "DELETE", writable),
    ]
    own_node = f"name = {_MY_NODE}" + (site_of if _has_site("nodes") else "")
    parts += [
        "ALTER TABLE nodes ENABLE ROW LEVEL SECURITY;",
        _policy("nodes", group, "own", "ALL", own_node, own_node),
        # Read, never write, the rows of its site's nodes: the notifier sees
        # a node of its site go stale and which node tells (agent.notifier).
        # Permissive policies OR together; a write still needs "own".
        _policy("nodes", group, "site", "SELECT", "site = " + _MY_SITE),
    ]
    # Rows stored before 0009 (node '') may be read and taken over (usecases.ips_state).
    for table in NODE_TABLES:
        parts += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;",
            _policy(
                table,
                group,
                "own",
                "ALL",
                f"node IN ({_MY_NODE}, '')",
                f"node = {_MY_NODE}",
            ),
        ]
    # Read the health of its site's nodes' sources: the daily digest of the
    # site says what fails on each of them (usecases.notifications).
    site_nodes = f"SELECT n.name FROM nodes n WHERE n.site = {_MY_SITE}"
    parts.append(_policy("source_status", group, "site", "SELECT", f"node IN ({site_nodes})"))
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


def node_sql(group: str, login: str, node: str, site: str) -> str:
    """The SQL that makes ``login`` a login role of the group ``group``, bound
    to ``node`` in ``site`` (idempotent; binding a node again moves it)."""
    return (
        "\n".join(
            [
                f"-- pbxfw fleet roles --node {node} --site {site}: the login role {login}",
                "BEGIN;",
                "DO $$ BEGIN\n"
                f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {_literal(login)}) THEN\n"
                f"    CREATE ROLE {_ident(login)} LOGIN;\n"
                "  END IF;\nEND $$;",
                f"GRANT {_ident(group)} TO {_ident(login)};",
                f"DELETE FROM {MAPPING} WHERE node = {_literal(node)} OR role = {_literal(login)};",
                f"INSERT INTO {MAPPING} (role, node, site) "
                f"VALUES ({_literal(login)}, {_literal(node)}, {_literal(site)});",
                "COMMIT;",
                "-- Then give it a secret: a password (psql: \\password " + _ident(login) + ")",
                "-- or a client certificate (a cert line in pg_hba.conf); the node's URL:",
                f"--   postgresql+psycopg://{login}:PASSWORD@HOST/DATABASE?sslmode=verify-full"
                "&sslrootcert=/etc/pbxfw/db-ca.pem",
            ]
        )
        + "\n"
    )


def run_sql(engine: Engine, sql: str) -> None:
    """Run ``sql`` (its own BEGIN/COMMIT) on ``engine``'s database, as its URL's role.

    A refusal becomes a StorageError saying what that role lacks.
    """
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            raw.autocommit = True  # type: ignore[attr-defined]  # the text holds BEGIN/COMMIT
            cursor = raw.cursor()
            try:
                cursor.execute(sql)
            finally:
                cursor.close()
    except DBAPIError as exc:
        raise _refused(exc.orig) from None
    except Exception as exc:  # psycopg's own errors, raised outside SQLAlchemy
        if type(exc).__module__.startswith("psycopg"):
            raise _refused(exc) from None
        raise


def _refused(error: object) -> StorageError:
    text = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    if getattr(error, "sqlstate", None) == "42501":
        return StorageError(
            f"the database refused: {text}; run `pbxfw fleet roles --apply` as the owner of "
            "pbxfw's tables with the right to create roles (ALTER ROLE … CREATEROLE, as a "
            "superuser), or run the printed SQL (without --apply) with psql as a superuser"
        )
    return StorageError(f"the database refused the roles' SQL: {text}")
