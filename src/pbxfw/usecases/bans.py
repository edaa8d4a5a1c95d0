"""The ban list: add, remove, import, list; the whitelist is absolute.

The database is the source of truth for bans. Every change bumps the
``bans_revision`` meta value (storage.bans ``bans_written``); the agent
watches it and reads the bans written since the revision it has (or every
ban, after a removal: ``changed_since``), so a ban made by the CLI, the REST
API or any node's agent reaches every kernel the same way, and lapses there
even while the agent is down.

Origins (DESIGN §7, docs/fleet-bans.md): ``record`` stores the detector's
bans with the origin ``jail:NAME`` and the node and site that detected them
(``Ban.from_decision``); ``add`` and ``import_lines`` (the CLI, the web page,
REST) store ``manual`` bans without a node, enforced at every node.
"""

from __future__ import annotations

import operator
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress

from pbxfw.domain.addresses import IPAddress, IPNetwork, ipv4_host_value, parse_subnet
from pbxfw.domain.bans import Ban
from pbxfw.domain.evidence import BanEvidence
from pbxfw.domain.jails import JAIL_SCOPES, MANUAL_JAIL, validate_jail
from pbxfw.domain.setting_rules import check_ban_seconds
from pbxfw.domain.sharing import Here, origin_seen_from
from pbxfw.domain.whitelist import Whitelist
from pbxfw.errors import FieldError, NotFoundError, ValidationError
from pbxfw.storage.evidence import ban_history, prune, save_evidence
from pbxfw.storage.nodes import nodes
from pbxfw.storage.repository import Repository, Store
from pbxfw.usecases.actor import ban_who

__all__ = ["EVIDENCE_PRUNE_INTERVAL", "BanDelta", "BanImportReport", "BanRecord", "BanService"]

#: The agent prunes old evidence (and long-ended bans) at most this often (seconds).
EVIDENCE_PRUNE_INTERVAL = 3600.0


@dataclass(frozen=True, slots=True)
class BanDelta:
    """What ``BanService.changed_since`` read: the ban revision, and the bans
    (None: nothing changed since the revision given) — every active ban when
    ``full``, else only those written since that revision (none removed)."""

    revision: int
    bans: list[Ban] | None
    full: bool
    #: each site's ``ips_share``, read with the bans (domain.sharing)
    shares: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BanRecord:
    """One stored ban of an address as ``bans show`` tells it: the ban (with
    ``who``) and its evidence (None: not a jail's ban, or none kept)."""

    ban: Ban
    evidence: BanEvidence | None

    def as_json(self, now: float) -> dict[str, object]:
        return {
            **self.ban.as_json(now),
            "who": self.ban.who,
            "active": self.ban.active(now),
            "evidence": None if self.evidence is None else self.evidence.as_json(),
        }


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


def bump_bans_revision(repo: Repository) -> int:
    """Count this unit of work's change of the ban list (once: storage.bans ``bans_written``)."""
    return repo.bans_written()


def _span(seconds: float) -> str:
    """A ban's length in one unit: ``1h``, ``10m``, ``2d``, ``90s``."""
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def _record(repo: Repository, summary: str) -> None:
    """An administrator's ban change in the history (usecases.history; the
    ban use cases other than ``record`` and ``lift`` are the administrators')."""
    from pbxfw.usecases.history import record_ban

    record_ban(repo, summary)


def site_shares(repo: Repository) -> dict[str, str]:
    """Each site's ``ips_share`` (domain.sharing: a site not named shares ``fleet``)."""
    return repo.site_shares()


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
        #: when ``record`` last pruned old evidence (the clock's time)
        self.pruned_at = 0.0

    def active(self) -> list[Ban]:
        with self.store.read() as repo:
            return repo.bans(now=self.clock())

    def seen_from(self, node: str) -> list[Ban]:
        """The active bans the node ``node`` enforces by ``ips_share``
        (domain.sharing; its own whitelist is its agent's check), each origin
        as that node names it: another node's detection reads ``fleet:NODE``.
        An unknown node is refused naming ``node``."""
        with self.store.read() as repo:
            found = next((n for n in nodes(repo) if n.name == node), None)
            if found is None:
                raise ValidationError(
                    FieldError("node", f"there is no node {node!r}; see `pbxfw node list`")
                )
            here = Here(found.name, found.site, repo.site_shares())
            bans = repo.bans(now=self.clock())
        return [
            replace(b, origin=origin_seen_from(b.origin, b.node, node))
            for b in bans
            if here.enforces(b.node, b.site)
        ]

    def revision(self) -> int:
        with self.store.read() as repo:
            return int(repo.get_meta("bans_revision") or "0")

    def changed_since(self, revision: int | None) -> BanDelta:
        """What changed since the ban revision ``revision`` (None: read all),
        read in one transaction (the agent's tick, agent.rules): nothing when
        it is still the revision; only the active bans written since it (one
        indexed query) when none was removed since; else every active ban.
        The bans are ``kernel_bans``: what the kernel needs, no reasons or
        failure counts."""
        with self.store.read() as repo:
            current, removed = repo.ban_revisions()
            if current == revision:
                return BanDelta(current, None, full=False)
            full = revision is None or removed > revision or current < revision
            bans = repo.kernel_bans(self.clock(), since=None if full else revision)
            return BanDelta(current, bans, full, site_shares(repo))

    def add(
        self,
        address: str,
        jail: str = MANUAL_JAIL,
        seconds: int | None = None,
        reason: str = "",
        who: str | None = None,
    ) -> Ban:
        """Ban ``address`` (an address or CIDR); refused for whitelisted
        addresses. ``who``: the administrator (``cli:USER``, ``web:ADMIN``,
        ``rest:ADMIN``), kept with the ban (``show``); by default the actor
        the adapter named (usecases.actor ``ban_who``)."""
        who = who if who is not None else ban_who()
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
                who=who,
            )
            stored = repo.save_ban(ban)
            bump_bans_revision(repo)
            _record(repo, f"ban {stored.address_text()} ({jail}, {_span(length)})")
        return stored

    def remove(self, address: str) -> list[Ban]:
        """Lift every ban of ``address`` (all jails)."""
        subnet = parse_subnet(address, "address")
        with self.store.write() as repo:
            removed = repo.remove_bans(str(subnet))
            if not removed:
                raise NotFoundError(f"{address} is not banned; see `pbxfw bans list`")
            bump_bans_revision(repo)
            jails = ", ".join(sorted({b.jail for b in removed}))
            _record(repo, f"unban {removed[0].address_text()} ({jails})")
        return removed

    def import_lines(
        self,
        lines: Iterable[str],
        jail: str = MANUAL_JAIL,
        seconds: int | None = None,
        who: str | None = None,
    ) -> BanImportReport:
        """Ban one address or CIDR per line (``#`` comments), all or nothing.

        A malformed line refuses the whole file, naming the line; whitelisted
        entries are skipped and reported, never banned. ``who``: as ``add``.
        """
        who = who if who is not None else ban_who()
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
                    who=who,
                )
                repo.save_bans_like(banned, like)
            report.added = len(banned)
            bump_bans_revision(repo)
            skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
            _record(
                repo, f"ban import: {len(banned)} address(es) ({jail}, {_span(length)}){skipped}"
            )
        return report

    def record(self, bans: Sequence[Ban]) -> int:
        """Store bans already decided (by the agent's detector), in one
        transaction, each counted under its jail's ``bans`` counter (of
        ``self.node``, the agent's node); returns
        the new ban revision (bumped once). No whitelist check here: the
        caller decided on the current whitelist; its next read of the
        whitelist lifts what a newer one covers."""
        now = self.clock()
        with self.store.write() as repo:
            repo.save_bans(bans)  # one statement for the batch
            save_evidence(repo, bans, now)  # the bans' lines (none: nothing done)
            for jail, count in Counter(ban.jail for ban in bans).items():
                repo.add_ips_counters(jail, node=self.node, bans=count)
            if now - self.pruned_at >= EVIDENCE_PRUNE_INTERVAL:
                self.pruned_at = now
                _prune(repo, now)
            return bump_bans_revision(repo)

    def show(self, address: str) -> list[BanRecord]:
        """Every stored ban of ``address`` (an address or CIDR; active or
        ended, until pruned), newest first, with who made it and the
        evidence. None stored: NotFoundError naming the address."""
        subnet = parse_subnet(address, "address")
        with self.store.read() as repo:
            found = ban_history(repo, str(subnet))
        if not found:
            raise NotFoundError(
                f"{address} has no ban stored (none, or pruned after ips_evidence_days); "
                "see `pbxfw bans list`"
            )
        return [BanRecord(ban, evidence) for ban, evidence in found]

    def prune(self) -> tuple[int, int]:
        """Delete evidence older than ``ips_evidence_days`` and the bans
        that ended before then; returns (evidence rows, bans) deleted."""
        now = self.clock()
        with self.store.write() as repo:
            self.pruned_at = now
            return _prune(repo, now)

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


def _prune(repo: Repository, now: float) -> tuple[int, int]:
    """Inside a write: prune by this site's ``ips_evidence_days`` (bans are
    the fleet's: with sites that differ, the shortest keeping wins)."""
    return prune(repo, now - repo.settings().ips_evidence_days * 86400)


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
    """Inside a write unit of work: drop the bans the whitelist covers that
    are this site's (detected at one of its nodes) or an administrator's (no
    site). Another site's bans stay stored: that site enforces them, and this
    site's nodes leave them out by their own whitelist (agent.receive)."""
    whitelist = Whitelist(repo.configuration().normalised(), own).index()
    site = repo.site
    lifted = [
        b for b in repo.bans() if (b.site is None or b.site == site) and whitelist.reason(b.subnet)
    ]
    if lifted:
        repo.remove_ban_ids([b.id for b in lifted if b.id is not None])
    return lifted
