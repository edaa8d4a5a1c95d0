"""The fleet's database roles (``pbxfw fleet roles``) and the schema check of the agent.

A node's agent connects with a role of least privilege (storage.roles,
docs/fleet-roles.md); such a role cannot migrate, so the agent checks the
schema's version at start and refuses an old one (:func:`require_current_schema`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from pbxfw.domain.nodes import validate_node_name
from pbxfw.domain.sites import UnknownSiteError, validate_site_name
from pbxfw.errors import FieldError, StorageError, ValidationError
from pbxfw.storage.db import schema_behind
from pbxfw.storage.models import SiteRow
from pbxfw.storage.repository import Store
from pbxfw.storage.roles import (
    DEFAULT_GROUP,
    group_sql,
    login_role_for,
    node_sql,
    run_sql,
    validate_role_name,
)

__all__ = ["FleetRoles", "RolesRequest", "require_current_schema", "require_postgresql"]


def require_postgresql(url: str) -> str:
    """The database name of ``url`` if it is PostgreSQL; else ValidationError (exit 2)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValidationError(
            FieldError(
                "--db",
                "pbxfw fleet roles applies to PostgreSQL only (fleet mode, docs/fleet-roles.md); "
                "a single PBX on its SQLite file needs no database roles",
            )
        )
    if not parsed.database:
        raise ValidationError(FieldError("--db", "the URL names no database"))
    return parsed.database


@dataclass(frozen=True, slots=True)
class RolesRequest:
    """What ``pbxfw fleet roles`` was asked: the group role, or one node's login role."""

    group: str = DEFAULT_GROUP
    node: str | None = None
    site: str | None = None
    login: str | None = None

    def validated(self) -> RolesRequest:
        group = validate_role_name(self.group, "--role")
        if self.node is None:
            if self.site is not None or self.login is not None:
                raise ValidationError(FieldError("--node", "--site and --login need --node NAME"))
            return RolesRequest(group)
        node = validate_node_name(self.node, "--node")
        if self.site is None:
            raise ValidationError(FieldError("--site", "give the node's site: --site NAME"))
        site = validate_site_name(self.site, "--site")
        login = validate_role_name(self.login or login_role_for(node), "--login")
        return RolesRequest(group, node, site, login)


class FleetRoles:
    """The SQL of a request (:meth:`sql`), and running it (:meth:`apply`)."""

    def __init__(self, url: str, request: RolesRequest) -> None:
        self.database = require_postgresql(url)
        self.request = request.validated()

    def sql(self) -> str:
        r = self.request
        if r.node is None:
            return group_sql(r.group, self.database)
        assert r.site is not None and r.login is not None
        return node_sql(r.group, r.login, r.node, r.site)

    def apply(self, store: Store) -> None:
        """Run :meth:`sql` on ``store``'s database (as its URL's role: the owner)."""
        r = self.request
        if r.node is not None:
            with store.read() as repo:
                found = repo.session.scalar(select(SiteRow.name).where(SiteRow.name == r.site))
                group = repo.session.scalar(
                    text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": r.group}
                )
            if found is None:
                raise UnknownSiteError(str(r.site), "--site")
            if group is None:
                raise ValidationError(
                    FieldError(
                        "--role",
                        f"no group role {r.group!r} yet: run `pbxfw fleet roles --apply` first",
                    )
                )
        run_sql(store.engine, self.sql())


def require_current_schema(store: Store) -> None:
    """Refuse (StorageError, exit 4) a database whose schema is older than
    this pbxfw: the agent never migrates (its role may not), ``pbxfw init``
    run as the owner does."""
    behind = schema_behind(store.engine)
    if behind is not None:
        raise StorageError(behind)
