"""The ban list: add, remove, import, list; the whitelist is absolute.

The database is the source of truth for bans. Every change bumps the
``bans_revision`` meta value; the agent watches it and makes the kernel's
ban sets equal to the stored bans (each element with its remaining timeout),
so a ban made by the CLI, the REST API or the agent itself reaches the
kernel the same way, and lapses there even while the agent is down.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress

from pbxfw.domain.addresses import IPAddress, IPNetwork, ipv4_host_value, parse_subnet
from pbxfw.domain.bans import Ban
from pbxfw.domain.jails import JAIL_SCOPES, MANUAL_JAIL, validate_jail
from pbxfw.domain.setting_rules import check_ban_seconds
from pbxfw.domain.whitelist import Whitelist
from pbxfw.errors import FieldError, NotFoundError, ValidationError
from pbxfw.storage.repository import Repository, Store

__all__ = ["BanImportReport", "BanService"]


@dataclass(slots=True)
class BanImportReport:
    added: int = 0
    skipped: list[str] = field(default_factory=list)


def _check_jail_and_length(jail: str, seconds: int | None) -> None:
    errors = []
    try:
        validate_jail(jail)
    except ValidationError as exc:
        errors += exc.errors
    if seconds is not None:
        try:
            check_ban_seconds(seconds, "seconds")
        except ValidationError as exc:
            errors += exc.errors
    if errors:
        raise ValidationError(errors)


def bump_bans_revision(repo: Repository) -> None:
    current = int(repo.get_meta("bans_revision") or "0")
    repo.set_meta("bans_revision", str(current + 1))


def local_addresses() -> list[IPAddress]:
    """This host's own addresses (``ip -j addr``): never banned."""
    # Imported here: pbxfw.kernel pulls in the compiler, which `bans` commands skip.
    from pbxfw.kernel.host import host_addresses

    return host_addresses(None)


class BanService:
    """Stored bans. ``own_addresses`` returns this host's addresses (never
    banned); by default those of the namespace this process runs in."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], float] = time.time,
        own_addresses: Callable[[], Sequence[IPAddress]] = local_addresses,
        node: str = "",
    ) -> None:
        self.store = store
        self.clock = clock
        self.own_addresses = own_addresses
        #: the agent's node: ``record`` counts its bans in that node's counters
        self.node = node

    def active(self) -> list[Ban]:
        with self.store.read() as repo:
            return repo.bans(now=self.clock())

    def revision(self) -> int:
        with self.store.read() as repo:
            return int(repo.get_meta("bans_revision") or "0")

    def changed_since(self, revision: int | None) -> tuple[int, list[Ban] | None]:
        """The ban revision and, read in the same transaction, the active bans;
        ``None`` instead of the bans when the revision is still ``revision``
        (the agent's tick: 100,000 bans are read only when they changed)."""
        with self.store.read() as repo:
            current = int(repo.get_meta("bans_revision") or "0")
            if current == revision:
                return current, None
            return current, repo.bans(now=self.clock())

    def add(
        self,
        address: str,
        jail: str = MANUAL_JAIL,
        seconds: int | None = None,
        reason: str = "",
    ) -> Ban:
        """Ban ``address`` (an address or CIDR); refused for whitelisted addresses."""
        subnet = parse_subnet(address, "address")
        _check_jail_and_length(jail, seconds)
        now = self.clock()
        with self.store.write() as repo:
            config = repo.configuration().normalised()
            why = Whitelist(config, self.own_addresses()).reason(subnet)
            if why:
                raise ValidationError(FieldError("address", f"{subnet} is never banned: {why}"))
            length = seconds if seconds is not None else config.settings.ips_bantime
            ban = Ban(
                subnet=subnet,
                jail=jail,
                scope=JAIL_SCOPES[jail],
                reason=reason or f"{jail} ban",
                created_at=now,
                expires_at=now + length,
                first_failure=now,
                last_failure=now,
            )
            stored = repo.save_ban(ban)
            bump_bans_revision(repo)
        return stored

    def remove(self, address: str) -> list[Ban]:
        """Lift every ban of ``address`` (all jails)."""
        subnet = parse_subnet(address, "address")
        with self.store.write() as repo:
            removed = repo.remove_bans(str(subnet))
            if not removed:
                raise NotFoundError(f"{address} is not banned; see `pbxfw bans list`")
            bump_bans_revision(repo)
        return removed

    def import_lines(
        self, lines: Iterable[str], jail: str = MANUAL_JAIL, seconds: int | None = None
    ) -> BanImportReport:
        """Ban one address or CIDR per line (``#`` comments), all or nothing.

        A malformed line refuses the whole file, naming the line; whitelisted
        entries are skipped and reported, never banned.
        """
        _check_jail_and_length(jail, seconds)
        texts, hosts, others = _parse_ban_lines(lines)
        report = BanImportReport()
        now = self.clock()
        own = list(self.own_addresses())
        with self.store.write() as repo:
            config = repo.configuration().normalised()
            length = seconds if seconds is not None else config.settings.ips_bantime
            index = Whitelist(config, own).index()
            reasons = index.ipv4_host_reasons(hosts)
            for position, network in others.items():
                reasons[position] = index.reason(network)
            if any(reasons):
                report.skipped = [
                    f"{text}: {why}" for text, why in zip(texts, reasons, strict=True) if why
                ]
            # One ban per subnet, in the order of the file.
            banned = list(dict.fromkeys(compress(texts, map(operator.not_, reasons))))
            if banned:
                like = Ban(
                    parse_subnet(banned[0]),
                    jail,
                    JAIL_SCOPES[jail],
                    "imported",
                    now,
                    now + length,
                    now,
                    now,
                )
                repo.save_bans_like(banned, like)
            report.added = len(banned)
            bump_bans_revision(repo)
        return report

    def record(self, bans: Sequence[Ban]) -> int:
        """Store bans already decided (by the agent's detector), in one
        transaction, each counted under its jail's ``bans`` counter (of
        ``self.node``, the agent's node); returns
        the new ban revision (bumped once). No whitelist check here: the
        caller decided on the current whitelist; its next read of the
        whitelist lifts what a newer one covers."""
        with self.store.write() as repo:
            for ban in bans:
                repo.save_ban(ban)
                repo.add_ips_counters(ban.jail, node=self.node, bans=1)
            bump_bans_revision(repo)
            return int(repo.get_meta("bans_revision") or "0")

    def lift(self, bans: Sequence[Ban]) -> None:
        """Remove these stored bans (by id; the agent lifts the bans a whitelist
        it computed covers), bumping the ban revision once."""
        with self.store.write() as repo:
            repo.remove_ban_ids([b.id for b in bans if b.id is not None])
            bump_bans_revision(repo)

    def lift_whitelisted(self) -> list[Ban]:
        """Remove stored bans that the whitelist now covers (a network became never-block)."""
        with self.store.write() as repo:
            return lift_whitelisted(repo, list(self.own_addresses()))


def _parse_ban_lines(lines: Iterable[str]) -> tuple[list[str], list[int], dict[int, IPNetwork]]:
    """The entries of a ban list, in order: each one's canonical subnet text;
    each one's address as an integer when it is one IPv4 host (the common
    case, kept as an integer: building 100,000 network objects is what made
    imports slow), else -1; and the network of every other entry, by position.
    Raises ValidationError naming the bad lines (at most 20)."""
    texts: list[str] = []
    hosts: list[int] = []
    others: dict[int, IPNetwork] = {}
    errors: list[FieldError] = []
    for number, raw in enumerate(lines, 1):
        text = (raw.split("#", 1)[0] if "#" in raw else raw).strip()
        if not text:
            continue
        address = text[:-3] if text.endswith("/32") else text
        value = ipv4_host_value(address)
        if value is not None:
            hosts.append(value)
            texts.append(address + "/32")
            continue
        try:
            network = parse_subnet(text, f"line {number}")
        except ValidationError as exc:
            errors += exc.errors
            if len(errors) >= 20:
                break
            continue
        others[len(texts)] = network
        hosts.append(-1)  # below every address: no whitelist reason
        texts.append(str(network))
    if errors:
        raise ValidationError(errors)
    return texts, hosts, others


def lift_whitelisted(repo: Repository, own: Sequence[IPAddress] = ()) -> list[Ban]:
    """Inside a write unit of work: drop the bans the whitelist covers."""
    whitelist = Whitelist(repo.configuration().normalised(), own).index()
    lifted = [b for b in repo.bans() if whitelist.reason(b.subnet)]
    if lifted:
        repo.remove_ban_ids([b.id for b in lifted if b.id is not None])
        bump_bans_revision(repo)
    return lifted
