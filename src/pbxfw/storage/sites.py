"""Rows of ``sites`` (migration 0006) ↔ ``Site``, and removing a site's rows.

Kept apart from repository.py, like nodes.py: a site's row is fleet-wide;
the rows of its configuration carry its name (migration 0007).
"""

from __future__ import annotations

from sqlalchemy import delete, select

from pbxfw.domain.sites import Site
from pbxfw.storage.models import (
    CountryRuleRow,
    CustomServiceRow,
    FeedRow,
    MetaRow,
    NetworkRow,
    NodeRow,
    SettingRow,
    SiteRow,
)
from pbxfw.storage.repository import Repository

__all__ = ["add_site", "nodes_of_site", "remove_site", "site", "site_revisions", "sites"]


def sites(repo: Repository) -> list[Site]:
    """Every site, by name."""
    rows = repo.session.execute(select(SiteRow.name, SiteRow.created_at).order_by(SiteRow.name))
    return [Site(name, created_at) for name, created_at in rows]


def site(repo: Repository, name: str) -> Site | None:
    row = repo.session.get(SiteRow, name)
    return None if row is None else Site(row.name, row.created_at)


def add_site(repo: Repository, new: Site) -> None:
    """Insert the row of ``new`` (the caller checked that the name is free)."""
    repo.session.add(SiteRow(name=new.name, created_at=new.created_at))
    repo.session.flush()


def nodes_of_site(repo: Repository, name: str) -> list[str]:
    """The names of the nodes in the site ``name``, sorted."""
    query = select(NodeRow.name).where(NodeRow.site == name).order_by(NodeRow.name)
    return list(repo.session.scalars(query))


def remove_site(repo: Repository, name: str) -> None:
    """Delete the site ``name``: its row and every row of its configuration."""
    for table in (NetworkRow, CustomServiceRow, SettingRow, MetaRow, CountryRuleRow, FeedRow):
        repo.session.execute(delete(table).where(table.site == name))
    repo.session.execute(delete(SiteRow).where(SiteRow.name == name))


def site_revisions(repo: Repository) -> dict[str, int]:
    """Every site's stored configuration revision (one query)."""
    rows = repo.session.execute(
        select(MetaRow.site, MetaRow.value).where(MetaRow.key == "revision")
    )
    return {site_name: int(value) for site_name, value in rows}
