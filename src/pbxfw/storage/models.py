"""Tables. Rows are mapped to domain objects by the repository, never leaked."""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "CustomServiceRow", "MetaRow", "NetworkRow", "SettingRow"]


class Base(DeclarativeBase):
    pass


class NetworkRow(Base):
    __tablename__ = "networks"
    __table_args__ = (
        UniqueConstraint("name", name="uq_networks_name"),
        UniqueConstraint("subnet", name="uq_networks_subnet"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    #: canonical text, e.g. ``10.0.0.0/8`` or ``2001:db8::/32``
    subnet: Mapped[str] = mapped_column(String(64))
    #: JSON object service key → "allow" | "block", in catalogue order
    services: Mapped[str] = mapped_column(Text)
    local: Mapped[bool] = mapped_column(Boolean, default=False)
    never_block: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(255), default="")
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)


class CustomServiceRow(Base):
    __tablename__ = "custom_services"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    #: ports as text, e.g. ``5000,6000-6010``
    tcp: Mapped[str] = mapped_column(Text, default="")
    udp: Mapped[str] = mapped_column(Text, default="")


class SettingRow(Base):
    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: JSON value
    value: Mapped[str] = mapped_column(Text)


class MetaRow(Base):
    """Small named values: ``revision`` (bumped by every configuration change)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
