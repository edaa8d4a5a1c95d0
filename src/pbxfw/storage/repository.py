"""Maps rows to domain objects and back, inside one unit of work.

``Store`` owns the engine; ``Store.write()`` / ``Store.read()`` give a
``Repository`` bound to one transaction. A write unit of work holds the one
writer's lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock;
see db.py), so a read-modify-write inside ``write()`` never loses a
concurrent update. The Repository is assembled from one part per kind of
row: networks and custom services (``networks.py``), bans (``bans.py``),
country rules and the country database (``countries.py``);
the revision, meta values, settings, users, log offsets and counters are here.

Sites (docs/fleet-sites.md): a ``Store`` and the ``Repository`` it gives are
bound to one site (``Store.site``, default ``default``; ``Store.at_site(name)``
gives a view of the same engine bound to another). Every configuration
read and write (networks, custom services, settings, the revision and the
meta values of applying) is that site's; users, sessions, bans, nodes and
the fleet's meta values (:data:`FLEET_META`) are the fleet's. A unit of work
on a site that does not exist raises ``UnknownSiteError``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, Integer, Select, Text, cast, delete, func, or_, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ColumnElement

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.settings import Settings
from pbxfw.domain.sites import DEFAULT_SITE, FLEET_SITE, UnknownSiteError, validate_site_name
from pbxfw.errors import StorageError
from pbxfw.storage.bans import BanRows
from pbxfw.storage.countries import CountryRows
from pbxfw.storage.db import WRITE_OPTION, make_engine, migrate, storage_error
from pbxfw.storage.fingerprints import FingerprintRows
from pbxfw.storage.models import (
    IpsCounterRow,
    LogOffsetRow,
    MetaRow,
    SettingRow,
    SiteRow,
    UserRow,
)
from pbxfw.storage.networks import NetworkRows
from pbxfw.storage.notify import notify

__all__ = ["FLEET_META", "Repository", "Store"]

#: Meta keys of the fleet, not of one site: stored under ``FLEET_SITE``
#: whichever site a Repository is bound to (docs/fleet-sites.md).
FLEET_META = frozenset({"bans_revision", "bans_removed_revision"})


# The agent asks for a few meta values every tick (its revisions), and
# building a statement costs SQLAlchemy more than running it: each form of
# these queries is built once (statements are immutable values).


@functools.lru_cache(maxsize=256)
def _meta_value_query(site: str, key: str) -> Select[str]:
    return select(MetaRow.value).where(MetaRow.site == site, MetaRow.key == key)


@functools.lru_cache(maxsize=64)
def _meta_items_query(
    site: str, prefix: str, keys: tuple[tuple[str, str], ...]
) -> Select[str, str]:
    """``site``'s keys starting with ``prefix``, and each (site, key) of ``keys``."""
    # Not LIKE: SQLite's ignores ASCII case, PostgreSQL's does not.
    where: ColumnElement[bool] = (MetaRow.site == site) & (
        func.substr(MetaRow.key, 1, len(prefix)) == prefix
    )
    if keys:
        where = or_(where, *((MetaRow.site == s) & (MetaRow.key == k) for s, k in keys))
    return select(MetaRow.key, MetaRow.value).where(where)


class Repository(NetworkRows, BanRows, CountryRows, FingerprintRows):
    """Domain-level reads and writes on one session (one transaction), for one site."""

    def __init__(self, session: Session, site: str = DEFAULT_SITE) -> None:
        self.session = session
        #: the site whose configuration this unit of work reads and writes
        self.site = site

    def _meta(self, key: str) -> Any:
        """The condition of the meta row ``key`` (this site's, or the fleet's)."""
        return (MetaRow.site == self._meta_site(key)) & (MetaRow.key == key)

    def _meta_site(self, key: str) -> str:
        """The site the meta row ``key`` is stored under."""
        return FLEET_SITE if key in FLEET_META else self.site

    # -- revision -------------------------------------------------------
    def revision(self) -> int:
        value = self.session.scalar(_meta_value_query(self._meta_site("revision"), "revision"))
        if value is None:
            raise StorageError("the database is not initialised; run `pbxfw init`")
        return int(value)

    def bump_revision(self) -> int:
        """Count one configuration change; the agent watches this number."""
        self.session.execute(
            update(MetaRow)
            .where(self._meta("revision"))
            .values(value=cast(cast(MetaRow.value, Integer) + 1, Text))
        )
        revision = self.revision()
        notify(self.session, "revision", revision, self.site)  # storage.notify: at commit
        return revision

    def get_meta(self, key: str) -> str | None:
        return self.session.scalar(_meta_value_query(self._meta_site(key), key))

    def set_meta(self, key: str, value: str | None) -> None:
        self.session.execute(delete(MetaRow).where(self._meta(key)))
        if value is not None:
            site = FLEET_SITE if key in FLEET_META else self.site
            self.session.add(MetaRow(site=site, key=key, value=value))
            self.session.flush()
            # the watched revisions (storage.notify); a fleet value names no site
            notify(self.session, key, value, site)

    # -- settings -------------------------------------------------------
    def stored_settings(self) -> dict[str, Any]:
        """Only the values set explicitly; the rest take the current defaults."""
        rows = self.session.execute(
            select(SettingRow.key, SettingRow.value).where(SettingRow.site == self.site)
        ).all()
        return {k: json.loads(v) for k, v in rows}

    def settings(self) -> Settings:
        """The stored settings; a stored value that breaks a rule added since
        it was stored takes its default, with a warning (once per process)."""
        settings, ignored = Settings.from_stored(self.stored_settings())
        for problem in ignored:
            if str(problem) not in _REPORTED_SETTINGS:
                _REPORTED_SETTINGS.add(str(problem))
                logging.getLogger("pbxfw.storage").warning(
                    "setting %s; its default applies: set it again", problem
                )
        return settings

    def save_settings(self, values: Mapping[str, Any]) -> None:
        """Store ``values`` (already validated) over the stored ones."""
        for key, value in values.items():
            self.session.execute(
                delete(SettingRow).where(SettingRow.site == self.site, SettingRow.key == key)
            )
            self.session.add(SettingRow(site=self.site, key=key, value=json.dumps(value)))
        self.session.flush()

    def replace_settings(self, values: Mapping[str, Any]) -> None:
        self.session.execute(delete(SettingRow).where(SettingRow.site == self.site))
        self.save_settings(values)

    # -- users ------------------------------------------------------------
    def user_hash(self, name: str) -> str | None:
        return self.session.scalar(select(UserRow.password_hash).where(UserRow.name == name))

    def set_user(self, name: str, password_hash: str, now: float) -> bool:
        """Create or replace a user's password; True when the user is new."""
        row = self.session.scalar(select(UserRow).where(UserRow.name == name))
        if row is None:
            self.session.add(UserRow(name=name, password_hash=password_hash, created_at=now))
            self.session.flush()
            return True
        row.password_hash = password_hash
        return False

    def user_names(self) -> list[str]:
        return list(self.session.scalars(select(UserRow.name).order_by(UserRow.name)))

    # -- log offsets and counters: one set per node (migration 0009) -----------
    # ``node`` is the agent's node name; ``''`` holds the rows stored before
    # nodes owned them (storage.node_rows ``adopt_unowned`` hands them over).
    def log_offsets(self, node: str = "") -> dict[str, tuple[int, int]]:
        rows = self.session.execute(
            select(LogOffsetRow.path, LogOffsetRow.inode, LogOffsetRow.offset).where(
                LogOffsetRow.node == node, LogOffsetRow.journal_cursor.is_(None)
            )
        )
        return {path: (inode, offset) for path, inode, offset in rows}

    def journal_cursors(self, node: str = "") -> dict[str, str]:
        """``journal:`` source → the cursor of the last entry ``node``'s agent read."""
        rows = self.session.execute(
            select(LogOffsetRow.path, LogOffsetRow.journal_cursor).where(
                LogOffsetRow.node == node, LogOffsetRow.journal_cursor.is_not(None)
            )
        )
        return {path: str(cursor) for path, cursor in rows}

    def save_journal_cursor(self, source: str, cursor: str, now: float, node: str = "") -> None:
        self._forget_offset(source, node)
        self.session.add(
            LogOffsetRow(
                node=node, path=source, inode=0, offset=0, updated_at=now, journal_cursor=cursor
            )
        )
        self.session.flush()

    def save_log_offset(
        self, path: str, inode: int, offset: int, now: float, node: str = ""
    ) -> None:
        self._forget_offset(path, node)
        self.session.add(
            LogOffsetRow(node=node, path=path, inode=inode, offset=offset, updated_at=now)
        )
        self.session.flush()

    def _forget_offset(self, path: str, node: str) -> None:
        self.session.execute(
            delete(LogOffsetRow).where(LogOffsetRow.node == node, LogOffsetRow.path == path)
        )

    def ips_counters(self, node: str | None = None) -> dict[str, dict[str, int]]:
        """Jail → its counters: of ``node``'s agent, or (None) summed over every node."""
        table = IpsCounterRow.__table__.c
        names = ("lines", "failures", "bans", "whitelisted")
        query = select(table.jail, *(func.sum(table[n]) for n in names)).group_by(table.jail)
        if node is not None:
            query = query.where(table.node == node)
        return {
            jail: {n: int(v or 0) for n, v in zip(names, values, strict=True)}
            for jail, *values in self.session.execute(query)
        }

    def add_ips_counters(self, jail: str, node: str = "", **increments: int) -> None:
        row = self.session.get(IpsCounterRow, (node, jail))
        if row is None:
            row = IpsCounterRow(node=node, jail=jail, lines=0, failures=0, bans=0, whitelisted=0)
            self.session.add(row)
        for key, value in increments.items():
            setattr(row, key, getattr(row, key) + value)
        self.session.flush()

    # -- the whole --------------------------------------------------------
    def configuration(self) -> Configuration:
        rules = tuple(self.country_rules())
        return Configuration(
            networks=tuple(self.networks()),
            custom_services=tuple(self.custom_services()),
            settings=self.settings(),
            country_rules=rules,
            # The ranges are read only when a rule needs them.
            countries=self.geo_table() if rules else None,
        )

    # -- meta: pending changes (issue 13, rollback carried exactly once) ------
    def meta_items(self, prefix: str, *keys: str) -> dict[str, str]:
        """Every meta key of this site starting with ``prefix`` (case counts),
        and each of ``keys`` that is set (this site's, or the fleet's:
        :data:`FLEET_META`), with its value: one query."""
        sites = tuple((self._meta_site(key), key) for key in keys)
        rows = self.session.execute(_meta_items_query(self.site, prefix, sites))
        return {key: value for key, value in rows}

    def take_meta(self, key: str, value: str) -> bool:
        """Delete ``key`` if it still holds ``value``; True when this call did.

        One conditional DELETE: of several transactions taking the same
        value, exactly one gets True, on every database.
        """
        result = self.session.execute(
            delete(MetaRow).where(self._meta(key), MetaRow.value == value)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1


#: Ignored stored settings already reported (Repository.settings).
_REPORTED_SETTINGS: set[str] = set()


class Store:
    """The database: an engine and units of work on it, for one site (``site``)."""

    def __init__(self, engine: Engine, site: str = DEFAULT_SITE) -> None:
        self.engine = engine
        #: the site of every Repository this store gives
        self.site = site
        self._write = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}))
        self._read = sessionmaker(engine)

    def at_site(self, site: str) -> Store:
        """This database bound to ``site`` (the same engine; closing either closes both).

        Raises ``ValidationError`` for a name no site can have; a site that
        does not exist is refused by the first unit of work
        (``UnknownSiteError``), and by :meth:`check_site` at once.
        """
        if site == self.site:
            return self
        view = Store.__new__(Store)
        view.engine, view._write, view._read = self.engine, self._write, self._read
        view.site = validate_site_name(site)
        return view

    def check_site(self) -> None:
        """Raise ``UnknownSiteError`` unless this store's site exists."""
        with self.read():
            pass

    @classmethod
    def open(cls, url: str, *, create: bool = False) -> Store:
        """Open ``url``; with ``create``, make the folder and migrate the schema."""
        engine = make_engine(url, create_dir=create)
        if create:
            try:
                migrate(engine)
            except OperationalError as exc:
                raise StorageError(f"cannot create or upgrade the database: {exc.orig}") from None
        return cls(engine)

    @contextmanager
    def write(self) -> Iterator[Repository]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._session(self._write) as repo:
            yield repo

    @contextmanager
    def read(self) -> Iterator[Repository]:
        with self._session(self._read) as repo:
            yield repo

    @contextmanager
    def _session(self, factory: sessionmaker[Session]) -> Iterator[Repository]:
        try:
            with factory() as session, session.begin():
                # `default` always exists (migration 0006; `site rm` refuses it):
                # a single PBX pays nothing for sites.
                if self.site != DEFAULT_SITE and session.get(SiteRow, self.site) is None:
                    raise UnknownSiteError(self.site)
                yield Repository(session, self.site)
        except (OperationalError, ProgrammingError) as exc:
            if isinstance(exc, ProgrammingError) and getattr(exc.orig, "sqlstate", None) != "42P01":
                raise  # a mistake in pbxfw's SQL, not a state of the database
            raise storage_error(exc) from None

    def close(self) -> None:
        self.engine.dispose()
