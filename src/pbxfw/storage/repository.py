"""Maps rows to domain objects and back, inside one unit of work.

``Store`` owns the engine; ``Store.write()`` / ``Store.read()`` give a
``Repository`` bound to one transaction. Writes begin IMMEDIATE (see db.py),
so a read-modify-write inside ``write()`` never loses a concurrent update.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import logging
import operator
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from itertools import islice
from typing import Any

from sqlalchemy import Engine, Integer, Table, Text, cast, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pbxfw.bulk import gc_paused
from pbxfw.domain.addresses import IPNetwork, fast_ipv4_host, networks_from_text
from pbxfw.domain.bans import Ban, bounded_expiries, scope_from_text, scope_text
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.network_model import Network, Verdict, network_id
from pbxfw.domain.services import CustomService, format_ports, parse_ports
from pbxfw.domain.settings import Settings
from pbxfw.errors import ConflictError, FieldError, NotFoundError, StorageError
from pbxfw.storage.db import WRITE_OPTION, make_engine, migrate
from pbxfw.storage.models import (
    BanRow,
    CustomServiceRow,
    IpsCounterRow,
    LogOffsetRow,
    MetaRow,
    NetworkRow,
    SettingRow,
    UserRow,
)

__all__ = ["Repository", "Store"]


_VERDICTS = {v.value: v for v in Verdict}


def _network_from_row(
    row: Any,
    known: dict[str, dict[str, Verdict]] | None = None,
    subnet: IPNetwork | None = None,
) -> Network:
    """A domain Network from an ORM row or a Core row (same attribute names).

    ``known``: the verdicts already decoded from each services text (10,000
    networks share a few hundred texts); each network gets its own copy.
    ``subnet``: ``row.subnet`` already parsed.
    """
    cached = None if known is None else known.get(row.services)
    if cached is None:
        cached = {k: _VERDICTS[v] for k, v in json.loads(row.services).items()}
        if known is not None:
            known[row.services] = cached
    services = dict(cached)
    return Network(
        name=row.name,
        subnet=ipaddress.ip_network(row.subnet) if subnet is None else subnet,
        services=services,
        local=row.local,
        never_block=row.never_block,
        description=row.description,
        permanent=row.permanent,
        id=row.id,
    )


def _network_values(network: Network) -> dict[str, Any]:
    return {
        "name": network.name,
        "subnet": str(network.subnet),
        "services": json.dumps({k: str(v) for k, v in network.services.items()}),
        "local": network.local,
        "never_block": network.never_block,
        "description": network.description,
        "permanent": network.permanent,
    }


class Repository:
    """Domain-level reads and writes on one session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- revision -------------------------------------------------------
    def revision(self) -> int:
        value = self.session.scalar(select(MetaRow.value).where(MetaRow.key == "revision"))
        if value is None:
            raise StorageError("the database is not initialised; run `pbxfw init`")
        return int(value)

    def bump_revision(self) -> int:
        """Count one configuration change; the agent watches this number."""
        self.session.execute(
            update(MetaRow)
            .where(MetaRow.key == "revision")
            .values(value=cast(cast(MetaRow.value, Integer) + 1, Text))
        )
        return self.revision()

    def get_meta(self, key: str) -> str | None:
        return self.session.scalar(select(MetaRow.value).where(MetaRow.key == key))

    def set_meta(self, key: str, value: str | None) -> None:
        self.session.execute(delete(MetaRow).where(MetaRow.key == key))
        if value is not None:
            self.session.add(MetaRow(key=key, value=value))
            self.session.flush()

    # -- networks -------------------------------------------------------
    def networks(self) -> list[Network]:
        # Core rows, not ORM objects: listing 10,000 networks must stay fast.
        rows = self.session.execute(select(NetworkRow.__table__).order_by(NetworkRow.id)).all()
        known: dict[str, dict[str, Verdict]] = {}
        subnets = networks_from_text([r.subnet for r in rows])
        return [_network_from_row(r, known, s) for r, s in zip(rows, subnets, strict=True)]

    def network(self, ref: str | int) -> Network:
        """A network by id or by name (an all-digit name is tried as a name too).

        A reference that cannot be an id (0, negative, beyond 64 bits) is
        looked up as a name only: not found, never a database overflow.
        """
        row = None
        by_id = network_id(ref)
        if by_id is not None:
            row = self.session.get(NetworkRow, by_id)
        if row is None:
            row = self.session.scalar(select(NetworkRow).where(NetworkRow.name == str(ref)))
        if row is None:
            raise NotFoundError(f"no network {ref!r}; see `pbxfw network list`")
        return _network_from_row(row)

    def _check_unique(self, network: Network) -> None:
        clash = self.session.execute(
            select(NetworkRow.id, NetworkRow.name, NetworkRow.subnet).where(
                (NetworkRow.name == network.name) | (NetworkRow.subnet == str(network.subnet))
            )
        ).all()
        errors = []
        for other_id, name, subnet in clash:
            if other_id == network.id:
                continue
            if name == network.name:
                errors.append(FieldError("name", f"a network named {name!r} exists already"))
            if subnet == str(network.subnet):
                errors.append(
                    FieldError("subnet", f"{subnet} is already the subnet of network {name!r}")
                )
        if errors:
            raise ConflictError(errors)

    def add_network(self, network: Network) -> Network:
        self._check_unique(network)
        row = NetworkRow(**_network_values(network))
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError as exc:  # a race the pre-check could not see
            raise ConflictError(
                FieldError("name", f"name or subnet already taken: {exc.orig}")
            ) from None
        return network.with_changes(id=row.id)

    def add_networks(self, networks: Sequence[Network]) -> None:
        """Bulk insert (import); uniqueness is the caller's, checked beforehand."""
        with_id = [_network_values(n) | {"id": n.id} for n in networks if n.id is not None]
        without = [_network_values(n) for n in networks if n.id is None]
        for rows in (with_id, without):
            if rows:
                self.session.execute(insert(NetworkRow), rows)

    def update_network(self, network: Network) -> Network:
        self._check_unique(network)
        self.session.execute(
            update(NetworkRow).where(NetworkRow.id == network.id).values(**_network_values(network))
        )
        return network

    def remove_network(self, network_id: int) -> None:
        self.session.execute(delete(NetworkRow).where(NetworkRow.id == network_id))

    def remove_all_networks(self, keep_permanent: bool = True) -> None:
        stmt = delete(NetworkRow)
        if keep_permanent:
            stmt = stmt.where(NetworkRow.permanent.is_(False))
        self.session.execute(stmt)

    # -- custom services ------------------------------------------------
    def custom_services(self) -> list[CustomService]:
        rows = self.session.scalars(select(CustomServiceRow).order_by(CustomServiceRow.key))
        return [CustomService(r.key, r.label, parse_ports(r.tcp), parse_ports(r.udp)) for r in rows]

    def add_custom_service(self, service: CustomService) -> None:
        if self.session.get(CustomServiceRow, service.key) is not None:
            raise ConflictError(FieldError("key", f"a service {service.key!r} exists already"))
        self.session.add(
            CustomServiceRow(
                key=service.key,
                label=service.label,
                tcp=format_ports(service.tcp).replace(" ", ""),
                udp=format_ports(service.udp).replace(" ", ""),
            )
        )
        self.session.flush()

    def remove_custom_service(self, key: str) -> None:
        self.session.execute(delete(CustomServiceRow).where(CustomServiceRow.key == key))

    def remove_all_custom_services(self) -> None:
        self.session.execute(delete(CustomServiceRow))

    # -- settings -------------------------------------------------------
    def stored_settings(self) -> dict[str, Any]:
        """Only the values set explicitly; the rest take the current defaults."""
        rows = self.session.execute(select(SettingRow.key, SettingRow.value)).all()
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
            self.session.execute(delete(SettingRow).where(SettingRow.key == key))
            self.session.add(SettingRow(key=key, value=json.dumps(value)))
        self.session.flush()

    def replace_settings(self, values: Mapping[str, Any]) -> None:
        self.session.execute(delete(SettingRow))
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

    # -- bans -------------------------------------------------------------
    def bans(self, now: float | None = None) -> list[Ban]:
        """Stored bans, those unexpired at ``now`` when given, oldest first."""
        # The agent reads every ban on every change of the ban list, so
        # 100,000 bans must load fast: Core rows, not ORM objects; rows in id
        # order (a plain table scan), sorted by creation time here only when
        # they are not already; each column converted at once; and no garbage
        # collection while 10^5 objects that are no garbage are made.
        table = cast_table(BanRow.__table__)
        stmt = select(*(table.c[name] for name in _BAN_COLUMNS)).order_by(table.c.id)
        if now is not None:
            stmt = stmt.where(table.c.expires_at > now)
        with gc_paused():
            rows = self.session.execute(stmt).all()
            if not rows:
                return []
            columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
            del rows
            created = columns[_CREATED_AT]
            if any(map(operator.gt, created, islice(created, 1, None))):
                order = sorted(range(len(created)), key=created.__getitem__)  # stable: then id
                columns = [[column[i] for i in order] for column in columns]
            scopes = {text: scope_from_text(text) for text in set(columns[_SCOPE])}
            columns[_SUBNET] = networks_from_text(columns[_SUBNET])
            columns[_SCOPE] = [scopes[text] for text in columns[_SCOPE]]
            columns[_EXPIRES_AT] = bounded_expiries(columns[_CREATED_AT], columns[_EXPIRES_AT])
            bans = list(map(Ban, *columns))
            del columns  # before collection resumes: 11 lists of 10^5 items to traverse
        return bans

    def save_ban(self, ban: Ban) -> Ban:
        """Insert, or replace the ban of the same subnet and jail."""
        self.session.execute(
            delete(BanRow).where(BanRow.subnet == str(ban.subnet), BanRow.jail == ban.jail)
        )
        row = BanRow(**_ban_values(ban))
        self.session.add(row)
        self.session.flush()
        return replace(ban, id=row.id)

    def save_bans_like(self, subnets: Sequence[str], like: Ban) -> None:
        """Ban each of ``subnets`` (canonical texts, no duplicates) as ``like``
        is banned (its subnet and id aside): insert, or replace the ban of the
        same subnet and jail. The bans import: one statement for them all."""
        self._upsert_bans(subnets, _shared_dict(like))

    def _upsert_bans(self, subnets: Sequence[str], values: dict[str, Any]) -> None:
        if not subnets:
            return
        connection = self.session.connection()
        dialect = connection.dialect.name
        if dialect == "sqlite" and connection.dialect.driver == "pysqlite" and _sqlite_has_json():
            # The subnets as one JSON array, unpacked by SQLite: 3× faster than
            # executemany, which binds every value of every row from Python.
            connection.exec_driver_sql(
                _SQLITE_UPSERT_FROM_JSON,
                (*(values[c] for c in _SHARED_COLUMNS), json.dumps(list(subnets))),
            )
            return
        table = cast_table(BanRow.__table__)
        rows = [{"subnet": subnet, **values} for subnet in subnets]
        if dialect in ("sqlite", "postgresql"):
            connection.execute(_upsert_statement(table, dialect), rows)
            return
        for start in range(0, len(rows), 500):  # any other database
            chunk = rows[start : start + 500]
            connection.execute(
                delete(table).where(
                    table.c.jail == values["jail"],
                    table.c.subnet.in_([row["subnet"] for row in chunk]),
                )
            )
            connection.execute(insert(table), chunk)

    def remove_bans(self, subnet: str, jail: str | None = None) -> list[Ban]:
        """Delete the bans of ``subnet`` (of one jail, or all); return them."""
        stmt = select(BanRow.__table__).where(BanRow.subnet == subnet)
        if jail is not None:
            stmt = stmt.where(BanRow.jail == jail)
        removed = [_ban_from_row(r) for r in self.session.execute(stmt)]
        if removed:
            self.session.execute(delete(BanRow).where(BanRow.id.in_([b.id for b in removed])))
        return removed

    def remove_ban_ids(self, ids: Sequence[int]) -> None:
        if ids:
            self.session.execute(delete(BanRow).where(BanRow.id.in_(list(ids))))

    def purge_expired_bans(self, now: float) -> int:
        result = self.session.execute(delete(BanRow).where(BanRow.expires_at <= now))
        return int(getattr(result, "rowcount", 0) or 0)

    # -- log offsets and counters -------------------------------------------
    def log_offsets(self) -> dict[str, tuple[int, int]]:
        rows = self.session.execute(
            select(LogOffsetRow.path, LogOffsetRow.inode, LogOffsetRow.offset).where(
                LogOffsetRow.journal_cursor.is_(None)
            )
        )
        return {path: (inode, offset) for path, inode, offset in rows}

    def journal_cursors(self) -> dict[str, str]:
        """``journal:`` source → the cursor of the last entry the agent read."""
        rows = self.session.execute(
            select(LogOffsetRow.path, LogOffsetRow.journal_cursor).where(
                LogOffsetRow.journal_cursor.is_not(None)
            )
        )
        return {path: str(cursor) for path, cursor in rows}

    def save_journal_cursor(self, source: str, cursor: str, now: float) -> None:
        self.session.execute(delete(LogOffsetRow).where(LogOffsetRow.path == source))
        self.session.add(
            LogOffsetRow(path=source, inode=0, offset=0, updated_at=now, journal_cursor=cursor)
        )
        self.session.flush()

    def save_log_offset(self, path: str, inode: int, offset: int, now: float) -> None:
        self.session.execute(delete(LogOffsetRow).where(LogOffsetRow.path == path))
        self.session.add(LogOffsetRow(path=path, inode=inode, offset=offset, updated_at=now))
        self.session.flush()

    def ips_counters(self) -> dict[str, dict[str, int]]:
        rows = self.session.execute(select(IpsCounterRow.__table__))
        return {
            r.jail: {
                "lines": r.lines,
                "failures": r.failures,
                "bans": r.bans,
                "whitelisted": r.whitelisted,
            }
            for r in rows
        }

    def add_ips_counters(self, jail: str, **increments: int) -> None:
        row = self.session.get(IpsCounterRow, jail)
        if row is None:
            row = IpsCounterRow(jail=jail, lines=0, failures=0, bans=0, whitelisted=0)
            self.session.add(row)
        for key, value in increments.items():
            setattr(row, key, getattr(row, key) + value)
        self.session.flush()

    # -- the whole --------------------------------------------------------
    def configuration(self) -> Configuration:
        return Configuration(
            networks=tuple(self.networks()),
            custom_services=tuple(self.custom_services()),
            settings=self.settings(),
        )

    # -- meta: pending changes (issue 13, rollback carried exactly once) ------
    def meta_items(self, prefix: str) -> dict[str, str]:
        """Every meta key starting with ``prefix`` and its value."""
        rows = self.session.execute(
            select(MetaRow.key, MetaRow.value).where(
                MetaRow.key.startswith(prefix, autoescape=True)
            )
        )
        return {key: value for key, value in rows}

    def take_meta(self, key: str, value: str) -> bool:
        """Delete ``key`` if it still holds ``value``; True when this call did.

        One conditional DELETE: of several transactions taking the same
        value, exactly one gets True, on every database.
        """
        result = self.session.execute(
            delete(MetaRow).where(MetaRow.key == key, MetaRow.value == value)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1


def cast_table(table: Any) -> Table:
    """``Model.__table__`` typed as the Table it is (mypy sees a FromClause)."""
    assert isinstance(table, Table)
    return table


def _ban_from_row(row: Any) -> Ban:
    return Ban(
        # Bans are mostly single IPv4 hosts; the C parser reads those 5× faster.
        subnet=fast_ipv4_host(row.subnet) or ipaddress.ip_network(row.subnet),
        jail=row.jail,
        scope=scope_from_text(row.scope),
        reason=row.reason,
        created_at=row.created_at,
        expires_at=bounded_expiries([row.created_at], [row.expires_at])[0],
        first_failure=row.first_failure,
        last_failure=row.last_failure,
        failures=row.failures,
        offence=row.offence,
        id=row.id,
    )


def _ban_values(ban: Ban) -> dict[str, Any]:
    return {"subnet": str(ban.subnet), **_shared_dict(ban)}


#: Ignored stored settings already reported (Repository.settings).
_REPORTED_SETTINGS: set[str] = set()

#: The columns of a ban in the order of Ban's fields (Repository.bans builds
#: each Ban from them positionally).
_BAN_COLUMNS = (
    "subnet",
    "jail",
    "scope",
    "reason",
    "created_at",
    "expires_at",
    "first_failure",
    "last_failure",
    "failures",
    "offence",
    "id",
)
_SUBNET, _SCOPE, _CREATED_AT, _EXPIRES_AT = 0, 2, 4, 5
#: The columns besides subnet and id, which the bans of one import share.
_SHARED_COLUMNS = _BAN_COLUMNS[1:-1]


def _shared_dict(ban: Ban) -> dict[str, Any]:
    return {
        "jail": ban.jail,
        "scope": scope_text(ban.scope),
        "reason": ban.reason,
        "created_at": ban.created_at,
        "expires_at": ban.expires_at,
        "first_failure": ban.first_failure,
        "last_failure": ban.last_failure,
        "failures": ban.failures,
        "offence": ban.offence,
    }


# SQLite needs a WHERE in an INSERT … SELECT … ON CONFLICT (a parsing ambiguity).
_SQLITE_UPSERT_FROM_JSON = (
    f"INSERT INTO bans (subnet, {', '.join(_SHARED_COLUMNS)}) "
    f"SELECT value, {', '.join('?' for _ in _SHARED_COLUMNS)} FROM json_each(?) WHERE true "
    "ON CONFLICT (subnet, jail) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _SHARED_COLUMNS if c != "jail")
)


def _upsert_statement(table: Table, dialect: str) -> Any:
    """INSERT … ON CONFLICT (subnet, jail) DO UPDATE, for SQLite or PostgreSQL."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt: Any = sqlite_insert(table)
    else:
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        stmt = postgresql_insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.subnet, table.c.jail],
        set_={c: stmt.excluded[c] for c in _SHARED_COLUMNS if c != "jail"},
    )


@functools.cache
def _sqlite_has_json() -> bool:
    """Is SQLite's JSON support built in (the default since SQLite 3.38)?"""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as connection:
            connection.execute("SELECT value FROM json_each('[1]')").fetchall()
    except sqlite3.Error:
        return False
    return True


class Store:
    """The database: an engine and units of work on it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._write = sessionmaker(engine.execution_options(**{WRITE_OPTION: True}))
        self._read = sessionmaker(engine)

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
                yield Repository(session)
        except OperationalError as exc:
            message = str(exc.orig)
            if "no such table" in message:
                raise StorageError("the database is not initialised; run `pbxfw init`") from None
            raise StorageError(f"database error: {message}") from None

    def close(self) -> None:
        self.engine.dispose()
