"""Networks and custom services: rows ↔ domain objects (part of ``Repository``).

A mix-in of :class:`pbxfw.storage.repository.Repository`: the methods work
on ``self.session``, the unit of work the Repository was given, and on the
rows of ``self.site`` only (names, subnets and service keys are unique per
site; a network's id is unique in the whole database).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pbxfw.domain.addresses import IPNetwork, networks_from_text
from pbxfw.domain.network_model import Network, Verdict, network_id
from pbxfw.domain.services import CustomService, format_ports, parse_ports
from pbxfw.errors import ConflictError, FieldError, NotFoundError
from pbxfw.storage import history_track
from pbxfw.storage.models import CustomServiceRow, NetworkRow

__all__ = ["NetworkRows"]


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


def _network_values(network: Network, site: str) -> dict[str, Any]:
    return {
        "site": site,
        "name": network.name,
        "subnet": str(network.subnet),
        "services": json.dumps({k: str(v) for k, v in network.services.items()}),
        "local": network.local,
        "never_block": network.never_block,
        "description": network.description,
        "permanent": network.permanent,
    }


class NetworkRows:
    """Reads and writes of networks and custom services on ``self.session``."""

    session: Session
    site: str

    # -- networks -------------------------------------------------------
    def networks(self) -> list[Network]:
        # Core rows, not ORM objects: listing 10,000 networks must stay fast.
        table = NetworkRow.__table__
        rows = self.session.execute(
            select(table).where(NetworkRow.site == self.site).order_by(NetworkRow.id)
        ).all()
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
            if row is not None and row.site != self.site:
                row = None  # another site's network: not one of this configuration
        if row is None:
            row = self.session.scalar(
                select(NetworkRow).where(NetworkRow.site == self.site, NetworkRow.name == str(ref))
            )
        if row is None:
            raise NotFoundError(f"no network {ref!r}; see `pbxfw network list`")
        return _network_from_row(row)

    def _check_unique(self, network: Network) -> None:
        clash = self.session.execute(
            select(NetworkRow.id, NetworkRow.name, NetworkRow.subnet).where(
                NetworkRow.site == self.site,
                (NetworkRow.name == network.name) | (NetworkRow.subnet == str(network.subnet)),
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
        row = NetworkRow(**_network_values(network, self.site))
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError as exc:  # a race the pre-check could not see
            raise ConflictError(
                FieldError("name", f"name or subnet already taken: {exc.orig}")
            ) from None
        history_track.touch(self.session, self.site, row.id, added=True)
        return network.with_changes(id=row.id)

    def add_networks(self, networks: Sequence[Network]) -> None:
        """Bulk insert (import); uniqueness is the caller's, checked beforehand.

        A network keeps its id unless another site's network has it (ids are
        unique in the whole database: a document exported from one site and
        imported into another gets new ones).
        """
        history_track.everything(self.session, self.site)
        wanted = [n.id for n in networks if n.id is not None]
        taken: set[int] = set()
        for start in range(0, len(wanted), 1000):  # bound the statement's parameters
            taken.update(
                self.session.scalars(
                    select(NetworkRow.id).where(NetworkRow.id.in_(wanted[start : start + 1000]))
                )
            )
        keep = [n for n in networks if n.id is not None and n.id not in taken]
        with_id = [_network_values(n, self.site) | {"id": n.id} for n in keep]
        kept = {id(n) for n in keep}
        without = [_network_values(n, self.site) for n in networks if id(n) not in kept]
        if with_id:
            self.session.execute(insert(NetworkRow), with_id)
            if self.session.get_bind().dialect.name == "postgresql":
                # Ids given explicitly do not advance PostgreSQL's sequence: without
                # this, the next `network add` (or a row below) is handed a taken id.
                self.session.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('networks', 'id'), "
                        "(SELECT max(id) FROM networks))"
                    )
                )
        if without:
            self.session.execute(insert(NetworkRow), without)

    def update_network(self, network: Network) -> Network:
        self._check_unique(network)
        history_track.touch(self.session, self.site, network.id)
        self.session.execute(
            update(NetworkRow)
            .where(NetworkRow.site == self.site, NetworkRow.id == network.id)
            .values(**_network_values(network, self.site))
        )
        return network

    def remove_network(self, network_id: int) -> None:
        history_track.touch(self.session, self.site, network_id)
        self.session.execute(
            delete(NetworkRow).where(NetworkRow.site == self.site, NetworkRow.id == network_id)
        )

    def remove_all_networks(self, keep_permanent: bool = True) -> None:
        history_track.everything(self.session, self.site)
        stmt = delete(NetworkRow).where(NetworkRow.site == self.site)
        if keep_permanent:
            stmt = stmt.where(NetworkRow.permanent.is_(False))
        self.session.execute(stmt)

    # -- custom services ------------------------------------------------
    def custom_services(self) -> list[CustomService]:
        rows = self.session.scalars(
            select(CustomServiceRow)
            .where(CustomServiceRow.site == self.site)
            .order_by(CustomServiceRow.key)
        )
        return [CustomService(r.key, r.label, parse_ports(r.tcp), parse_ports(r.udp)) for r in rows]

    def add_custom_service(self, service: CustomService) -> None:
        if self.session.get(CustomServiceRow, (self.site, service.key)) is not None:
            raise ConflictError(FieldError("key", f"a service {service.key!r} exists already"))
        self.session.add(
            CustomServiceRow(
                site=self.site,
                key=service.key,
                label=service.label,
                tcp=format_ports(service.tcp).replace(" ", ""),
                udp=format_ports(service.udp).replace(" ", ""),
            )
        )
        self.session.flush()

    def remove_custom_service(self, key: str) -> None:
        self.session.execute(
            delete(CustomServiceRow).where(
                CustomServiceRow.site == self.site, CustomServiceRow.key == key
            )
        )

    def remove_all_custom_services(self) -> None:
        self.session.execute(delete(CustomServiceRow).where(CustomServiceRow.site == self.site))
