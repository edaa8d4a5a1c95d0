"""Tables. Rows are mapped to domain objects by the repository, never leaked.

Column types are those of storage/types.py: the same values on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, LargeBinary, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pbxfw.storage.types import Int64, text

__all__ = [
    "AttackHourRow",
    "AttackSourceRow",
    "BanEvidenceRow",
    "BanRow",
    "BanTotalRow",
    "Base",
    "ConfigHistoryRow",
    "CountryRuleRow",
    "CustomServiceRow",
    "DropCounterRow",
    "FailureTotalRow",
    "FeedRow",
    "FeedStatusRow",
    "FingerprintEditRow",
    "GeoDatabaseRow",
    "IpsCounterRow",
    "LogOffsetRow",
    "LoginThrottleRow",
    "MetaRow",
    "NetworkRow",
    "NodeRow",
    "NotifyChannelRow",
    "NotifyStatusRow",
    "RevokedSessionRow",
    "SettingRow",
    "SiteRow",
    "SourceStatusRow",
    "UserRow",
]


class Base(DeclarativeBase):
    pass


def _site(*, primary_key: bool = False) -> Mapped[str]:
    """The site a configuration row belongs to (migration 0007; domain.sites)."""
    return mapped_column(text(64), primary_key=primary_key, server_default="default")


class NetworkRow(Base):
    __tablename__ = "networks"
    __table_args__ = (
        UniqueConstraint("site", "name", name="uq_networks_site_name"),
        UniqueConstraint("site", "subnet", name="uq_networks_site_subnet"),
    )

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    site: Mapped[str] = _site()
    name: Mapped[str] = mapped_column(text(64))
    #: canonical text, e.g. ``10.0.0.0/8`` or ``2001:db8::/32``
    subnet: Mapped[str] = mapped_column(text(64))
    #: JSON object service key → "allow" | "block", in catalogue order
    services: Mapped[str] = mapped_column(text())
    local: Mapped[bool] = mapped_column(Boolean, default=False)
    never_block: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(text(255), default="")
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)


class CustomServiceRow(Base):
    __tablename__ = "custom_services"

    site: Mapped[str] = _site(primary_key=True)
    key: Mapped[str] = mapped_column(text(32), primary_key=True)
    label: Mapped[str] = mapped_column(text(64))
    #: ports as text, e.g. ``5000,6000-6010``
    tcp: Mapped[str] = mapped_column(text(), default="")
    udp: Mapped[str] = mapped_column(text(), default="")


class SettingRow(Base):
    __tablename__ = "settings"

    site: Mapped[str] = _site(primary_key=True)
    key: Mapped[str] = mapped_column(text(64), primary_key=True)
    #: JSON value
    value: Mapped[str] = mapped_column(text())


class MetaRow(Base):
    """Small named values: ``revision`` (bumped by every configuration change).

    Per site; the fleet's own values (``bans_revision``) have the site ``''``
    (domain.sites.FLEET_SITE, storage.repository.FLEET_META).
    """

    __tablename__ = "meta"

    site: Mapped[str] = _site(primary_key=True)
    key: Mapped[str] = mapped_column(text(64), primary_key=True)
    value: Mapped[str] = mapped_column(text())


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    name: Mapped[str] = mapped_column(text(64), unique=True)
    password_hash: Mapped[str] = mapped_column(text())
    created_at: Mapped[float] = mapped_column(Float)
    #: sessions issued before this epoch second are refused (``user logout``)
    sessions_valid_after: Mapped[float] = mapped_column(Float, default=0.0)


class RevokedSessionRow(Base):
    """A logged-out session id, refused until its cookie would have expired."""

    __tablename__ = "revoked_sessions"

    sid: Mapped[str] = mapped_column(text(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)


class LoginThrottleRow(Base):
    """Failed logins of one key (``user:NAME`` or ``address:ADDR``)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(text(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Int64)
    first_failure: Mapped[float] = mapped_column(Float)
    last_failure: Mapped[float] = mapped_column(Float)
    locked_until: Mapped[float] = mapped_column(Float)


class BanRow(Base):
    """One ban of one subnet by one jail; times are epoch seconds."""

    __tablename__ = "bans"
    __table_args__ = (UniqueConstraint("subnet", "jail", name="uq_bans_subnet_jail"),)

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    subnet: Mapped[str] = mapped_column(text(64))
    jail: Mapped[str] = mapped_column(text(32))
    #: comma-separated service keys, or ``*`` for every port
    scope: Mapped[str] = mapped_column(text())
    reason: Mapped[str] = mapped_column(text())
    first_failure: Mapped[float] = mapped_column(Float)
    last_failure: Mapped[float] = mapped_column(Float)
    failures: Mapped[int] = mapped_column(Int64)
    offence: Mapped[int] = mapped_column(Int64)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    #: ``jail:NAME`` or ``manual`` (domain.bans; migration 0011)
    origin: Mapped[str] = mapped_column(text(96))
    #: the node that detected it and its site; None: an administrator's ban
    node: Mapped[str | None] = mapped_column(text(63), nullable=True)
    site: Mapped[str | None] = mapped_column(text(64), nullable=True)
    #: the ``bans_revision`` of the commit that last wrote the row (the
    #: agents read the bans written since the revision they have)
    revision: Mapped[int] = mapped_column(Int64, index=True)
    #: who made an administrator's ban (``cli:USER``, ``web:ADMIN``,
    #: ``rest:ADMIN``; migration 0014); None for a jail's
    who: Mapped[str | None] = mapped_column(text(160), nullable=True)


class BanEvidenceRow(Base):
    """The evidence of one ban (domain.evidence, packed); goes with its ban
    (``ON DELETE CASCADE``) or after ``ips_evidence_days`` (migration 0014)."""

    __tablename__ = "ban_evidence"

    ban_id: Mapped[int] = mapped_column(
        Int64, ForeignKey("bans.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[float] = mapped_column(Float, index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class LogOffsetRow(Base):
    """How far one node's agent has read a log file, or a journal source (survives restarts)."""

    __tablename__ = "log_offsets"

    #: the agent's node name (migration 0009); ``''``: stored before, taken
    #: over by the first agent that starts (usecases.ips_state)
    node: Mapped[str] = mapped_column(text(63), primary_key=True, default="")
    path: Mapped[str] = mapped_column(text(), primary_key=True)
    inode: Mapped[int] = mapped_column(Int64)
    offset: Mapped[int] = mapped_column(Int64)
    updated_at: Mapped[float] = mapped_column(Float)
    #: a ``journal:`` source's cursor (inode and offset then 0); None for a file
    journal_cursor: Mapped[str | None] = mapped_column(text(), nullable=True, default=None)


class IpsCounterRow(Base):
    __tablename__ = "ips_counters"

    #: the agent's node name (migration 0009), as in ``log_offsets``
    node: Mapped[str] = mapped_column(text(63), primary_key=True, default="")
    jail: Mapped[str] = mapped_column(text(32), primary_key=True)
    lines: Mapped[int] = mapped_column(Int64)
    failures: Mapped[int] = mapped_column(Int64)
    bans: Mapped[int] = mapped_column(Int64)
    whitelisted: Mapped[int] = mapped_column(Int64)


class SourceStatusRow(Base):
    """What the agent last saw of one log source; ``error`` empty when healthy."""

    __tablename__ = "source_status"

    #: the agent's node name (migration 0009), as in ``log_offsets``
    node: Mapped[str] = mapped_column(text(63), primary_key=True, default="")
    source: Mapped[str] = mapped_column(text(), primary_key=True)
    jail: Mapped[str] = mapped_column(text(32))
    error: Mapped[str] = mapped_column(text())
    since: Mapped[float] = mapped_column(Float)
    failures: Mapped[int] = mapped_column(Int64)
    updated_at: Mapped[float] = mapped_column(Float)


class NodeRow(Base):
    """One PBX running the agent, as it last reported (migration 0005); times are epoch seconds.

    ``site`` names a row of ``sites`` (migration 0006); no foreign key: ``site
    rm`` refuses a site with nodes, and the agent checks its site at start
    (docs/fleet-sites.md, "Decisions").
    """

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(text(63), primary_key=True)
    site: Mapped[str] = mapped_column(text(64), default="default")
    registered_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    applied_revision: Mapped[int | None] = mapped_column(Int64, nullable=True)
    kernel_bans: Mapped[int] = mapped_column(Int64, default=0)
    version: Mapped[str] = mapped_column(text(64), default="")
    log_lag_bytes: Mapped[int] = mapped_column(Int64, default=0)
    last_error: Mapped[str] = mapped_column(text(), default="")


class SiteRow(Base):
    """One configuration of the fleet (migration 0006); ``default`` always exists."""

    __tablename__ = "sites"

    name: Mapped[str] = mapped_column(text(64), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)


class CountryRuleRow(Base):
    """A country rule (migration 0010), part of one site's configuration."""

    __tablename__ = "country_rules"
    __table_args__ = (UniqueConstraint("site", "name", name="uq_country_rules_site_name"),)

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    #: the site whose configuration holds the rule (``default`` on one PBX)
    site: Mapped[str] = mapped_column(text(64), server_default="default")
    name: Mapped[str] = mapped_column(text(64))
    #: canonical, comma-separated: ``*``, ``unknown``, ISO codes
    codes: Mapped[str] = mapped_column(text())
    #: JSON object service key → "allow" | "block", the named services only
    services: Mapped[str] = mapped_column(text())


class FingerprintEditRow(Base):
    """An edit of one site's scanner fingerprint list (migration 0013)."""

    __tablename__ = "fingerprint_edits"
    __table_args__ = (
        UniqueConstraint("site", "header", "folded", name="uq_fingerprint_edits_key"),
    )

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    site: Mapped[str] = mapped_column(text(64), server_default="default")
    #: canonical header name (``User-Agent``)
    header: Mapped[str] = mapped_column(text(64))
    pattern: Mapped[str] = mapped_column(text(128))
    #: ``pattern`` case-folded: the uniqueness key
    folded: Mapped[str] = mapped_column(text(128))
    #: a shipped pattern switched off (else a pattern added)
    disabled: Mapped[bool] = mapped_column(Boolean)


class GeoDatabaseRow(Base):
    """The country database of the fleet (migration 0010): one row, id 1."""

    __tablename__ = "geo_database"

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    source: Mapped[str] = mapped_column(text(255))
    #: the data's date, ``YYYY-MM-DD``
    built: Mapped[str] = mapped_column(text(10))
    loaded_at: Mapped[float] = mapped_column(Float)
    ipv4_ranges: Mapped[int] = mapped_column(Int64)
    ipv6_ranges: Mapped[int] = mapped_column(Int64)
    #: the ranges, packed by storage/countries.py
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ConfigHistoryRow(Base):
    """One entry of the history of changes (migration 0015, storage/history.py).

    ``kind`` ``config``: a configuration revision of ``site``, with the whole
    document after the change (JSON, zlib-compressed); ``ban``: a ban made or
    lifted by an administrator (site ``''``: bans are the fleet's), no document.
    """

    __tablename__ = "config_history"
    __table_args__ = (Index("ix_config_history_site_kind_rev", "site", "kind", "rev"),)

    rev: Mapped[int] = mapped_column(Int64, primary_key=True)
    site: Mapped[str] = mapped_column(text(64))
    kind: Mapped[str] = mapped_column(text(16))
    at: Mapped[float] = mapped_column(Float)
    #: who: an administrator's name, or the OS user (``root (sudo: bob)``)
    actor: Mapped[str] = mapped_column(text(160))
    #: through what: cli, rest, web, import, fleet, system (domain.history.VIAS)
    via: Mapped[str] = mapped_column(text(16))
    #: from where: the client's address, ``local`` for the CLI
    client: Mapped[str] = mapped_column(text(64))
    summary: Mapped[str] = mapped_column(text())
    document: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class NotifyChannelRow(Base):
    """A notification channel (migration 0017), part of one site's configuration."""

    __tablename__ = "notify_channels"
    __table_args__ = (UniqueConstraint("site", "name", name="uq_notify_channels_site_name"),)

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    site: Mapped[str] = mapped_column(text(64), server_default="default")
    name: Mapped[str] = mapped_column(text(64))
    #: the target, secrets included (never shown: domain.notifications.masked)
    url: Mapped[str] = mapped_column(text())
    template: Mapped[str] = mapped_column(text(16))
    created_at: Mapped[float] = mapped_column(Float)


class NotifyStatusRow(Base):
    """What one node's agent last saw of one channel (migration 0017)."""

    __tablename__ = "notify_status"

    node: Mapped[str] = mapped_column(text(63), primary_key=True)
    site: Mapped[str] = mapped_column(text(64), primary_key=True)
    channel: Mapped[str] = mapped_column(text(64), primary_key=True)
    last_sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_error: Mapped[str] = mapped_column(text())
    last_error_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    sent: Mapped[int] = mapped_column(Int64)
    #: messages given up after their retries
    failed: Mapped[int] = mapped_column(Int64)
    #: messages dropped because the channel's queue was full
    dropped: Mapped[int] = mapped_column(Int64)
    #: when this node last sent this channel the daily digest
    digest_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)


class FeedRow(Base):
    """A blocklist feed (migration 0012), part of one site's configuration."""

    __tablename__ = "feeds"
    __table_args__ = (UniqueConstraint("site", "name", name="uq_feeds_site_name"),)

    id: Mapped[int] = mapped_column(Int64, primary_key=True)
    site: Mapped[str] = mapped_column(text(64), server_default="default")
    name: Mapped[str] = mapped_column(text(32))
    url: Mapped[str] = mapped_column(text())
    format: Mapped[str] = mapped_column(text(16))
    #: seconds between fetches
    every: Mapped[int] = mapped_column(Int64)
    #: ``all`` or comma-separated service keys
    scope: Mapped[str] = mapped_column(text())
    #: JSON list of ``[name, value]`` pairs
    headers: Mapped[str] = mapped_column(text())
    #: when an administrator asked for a fetch now (``feed update``); epoch seconds
    update_requested: Mapped[float | None] = mapped_column(Float, nullable=True)


class FeedStatusRow(Base):
    """What one node's agent last did with one feed (migration 0012)."""

    __tablename__ = "feed_status"

    node: Mapped[str] = mapped_column(text(63), primary_key=True)
    feed: Mapped[str] = mapped_column(text(32), primary_key=True)
    last_fetch: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_success: Mapped[float | None] = mapped_column(Float, nullable=True)
    next_fetch: Mapped[float | None] = mapped_column(Float, nullable=True)
    etag: Mapped[str] = mapped_column(text())
    last_modified: Mapped[str] = mapped_column(text())
    entries: Mapped[int] = mapped_column(Int64)
    #: JSON object reason → count
    refused: Mapped[str] = mapped_column(text())
    #: empty when the last fetch worked
    error: Mapped[str] = mapped_column(text())
    held_back: Mapped[bool] = mapped_column(Boolean)


class AttackHourRow(Base):
    """Failures per node, hour, jail and event (migration 0016; the dashboard)."""

    __tablename__ = "attack_hours"

    node: Mapped[str] = mapped_column(text(63), primary_key=True)
    #: epoch seconds of the hour's start (the log's own time)
    hour: Mapped[int] = mapped_column(Int64, primary_key=True, index=True)
    jail: Mapped[str] = mapped_column(text(32), primary_key=True)
    event: Mapped[str] = mapped_column(text(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Int64)


class AttackSourceRow(Base):
    """Failures per node, UTC day and source address (migration 0016; the dashboard)."""

    __tablename__ = "attack_sources"

    node: Mapped[str] = mapped_column(text(63), primary_key=True)
    #: epoch seconds of the UTC day's start
    day: Mapped[int] = mapped_column(Int64, primary_key=True, index=True)
    address: Mapped[str] = mapped_column(text(64), primary_key=True)
    #: the jail of the address's last failure counted that day
    jail: Mapped[str] = mapped_column(text(32))
    failures: Mapped[int] = mapped_column(Int64)


class AttackUserRow(Base):
    """Failures per node, hour, jail and account tried (migration 0018; the
    dashboard's top user names and extensions). Each (node, hour, jail) keeps
    at most ``aggregates.USERS_PER_HOUR`` accounts, those with most failures."""

    __tablename__ = "attack_users"

    node: Mapped[str] = mapped_column(text(63), primary_key=True)
    #: epoch seconds of the hour's start (the log's own time)
    hour: Mapped[int] = mapped_column(Int64, primary_key=True, index=True)
    jail: Mapped[str] = mapped_column(text(32), primary_key=True)
    #: the user name or extension as the daemon wrote it (``Failure.user``)
    account: Mapped[str] = mapped_column(text(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Int64)


class FailureTotalRow(Base):
    """Failures per node, jail and event since counting began (migration 0016; metrics)."""

    __tablename__ = "failure_totals"

    node: Mapped[str] = mapped_column(text(63), primary_key=True)
    jail: Mapped[str] = mapped_column(text(32), primary_key=True)
    event: Mapped[str] = mapped_column(text(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Int64)


class BanTotalRow(Base):
    """Bans a node made per jail and origin since counting began (migration 0016; metrics)."""

    __tablename__ = "ban_totals"

    node: Mapped[str] = mapped_column(text(63), primary_key=True)
    jail: Mapped[str] = mapped_column(text(32), primary_key=True)
    origin: Mapped[str] = mapped_column(text(96), primary_key=True)
    bans: Mapped[int] = mapped_column(Int64)


class DropCounterRow(Base):
    """Packets and bytes a node's table dropped per reason and jail, as last
    read from its nft counters (migration 0016; the dashboard, metrics)."""

    __tablename__ = "drop_counters"

    node: Mapped[str] = mapped_column(text(63), primary_key=True)
    reason: Mapped[str] = mapped_column(text(32), primary_key=True)
    #: the jail of a ``jail`` drop, else empty
    jail: Mapped[str] = mapped_column(text(32), primary_key=True)
    packets: Mapped[int] = mapped_column(Int64)
    bytes: Mapped[int] = mapped_column(Int64)
    updated_at: Mapped[float] = mapped_column(Float)
