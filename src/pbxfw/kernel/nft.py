"""The nftables backend (``pbxfw.kernel.Backend``): load, read and remove the
one table pbxfw owns, and commit buffered ban-set changes to it.

The flow tag (docs/nftables.md, "flow cache") is the kernel side's: every
load and every commit that adds bans puts a fresh tag in the two rules that hold
it, after deleting the conntrack entries that carry that tag, so a flow the
cache accepts was decided under the running policy and the running bans.

Everything but ban elements of single addresses and the flow tag
(``pbxfw.kernel.netlink``) goes through the ``nft`` command (``nft -f -`` reads a whole
payload as one kernel transaction: the kernel holds the old table or the new
one, never a mix). With ``netns`` set, every call runs as
``ip netns exec NAME nft ...`` and touches only that namespace.

No method touches a table other than ``inet pbxfw``: ``apply`` refuses text
that declares anything else at top level.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Literal, TypeAlias

from pbxfw.compiler.nft import (
    FLOW_CACHE_COMMENT,
    FLOW_MARK_COMMENT,
    TABLE,
    TABLE_FAMILY,
    BanElement,
    SetElements,
    as_guard_plans,
    flow_cache_rule,
    flow_mark_rule,
    plan_elements,
    set_commands,
)
from pbxfw.errors import KernelError
from pbxfw.kernel.backend import BackendMetrics
from pbxfw.kernel.flowtag import TAG_RULES, random_flow_tag, without_flow_tag
from pbxfw.kernel.netlink import (
    FlowTagRules,
    element_ops,
    flow_tag_rules,
    forget_flows,
    ruleset_generation,
    send_element_batch,
)

__all__ = ["NFT_TIMEOUT_SECONDS", "NftBackend", "random_flow_tag", "without_flow_tag"]

log = logging.getLogger(__name__)

#: An nft call that takes longer than this is treated as failed.
NFT_TIMEOUT_SECONDS = 60.0

_TABLE_HEAD = f"table {TABLE_FAMILY} {TABLE} {{"
# Declaring the table empty first makes the delete valid whether or not the
# table exists yet; both lines are part of the same transaction as the load.
_REPLACE_PREFIX = f"table {TABLE_FAMILY} {TABLE} {{}}\ndelete table {TABLE_FAMILY} {TABLE}\n"
#: One buffered change: its planned sets, add or delete, refresh.
_Stage: TypeAlias = tuple[list[SetElements], Literal["add", "delete"], bool]


class NftBackend:
    """nftables in one network namespace (``None``: the current one): the
    real ``pbxfw.kernel.Backend``.

    Methods raise KernelError carrying nft's message and the payload sent.
    Ban-set changes are buffered by ``add`` / ``delete`` and sent by
    ``commit``.
    """

    __slots__ = ("_metrics", "_ready", "_staged", "flow_tags", "netns", "nft")

    def __init__(
        self,
        netns: str | None = None,
        *,
        nft: str = "nft",
        flow_tags: Callable[[], int] = random_flow_tag,
    ) -> None:
        if netns is not None and (not netns or "/" in netns or netns.startswith(".")):
            raise ValueError(f"{netns!r} is not a network namespace name")
        self.netns = netns
        self.nft = nft
        self.flow_tags = flow_tags
        # The next flow tag, its conntrack entries already deleted, and the
        # ruleset generation after that: valid while the generation holds.
        self._ready: tuple[int, int] | None = None
        self._staged: list[_Stage] = []
        self._metrics = BackendMetrics()

    def __repr__(self) -> str:
        return f"NftBackend(netns={self.netns!r})"

    # -- plumbing ----------------------------------------------------------
    def _argv(self, *args: str) -> list[str]:
        base = [self.nft, *args]
        return ["ip", "netns", "exec", self.netns, *base] if self.netns else base

    def _run(
        self, args: Sequence[str], payload: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = self._argv(*args)
        try:
            return subprocess.run(
                argv,
                input=payload,
                capture_output=True,
                text=True,
                timeout=NFT_TIMEOUT_SECONDS,
                check=False,
            )
        except FileNotFoundError as exc:
            raise KernelError(
                f"cannot run {argv[0]!r}: {exc.strerror}; is nftables installed?", payload
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise KernelError(
                f"{' '.join(argv)} did not finish in {NFT_TIMEOUT_SECONDS:.0f}s", payload
            ) from exc

    def _load(self, payload: str, *, check_only: bool = False) -> None:
        args = ["-c", "-f", "-"] if check_only else ["-f", "-"]
        result = self._run(args, payload)
        if result.returncode != 0:
            where = f" in network namespace {self.netns}" if self.netns else ""
            message = (
                result.stderr or result.stdout
            ).strip() or f"nft exited with {result.returncode}"
            raise KernelError(f"nftables refused the change{where}:\n{message}", payload)

    # -- the table ---------------------------------------------------------
    @staticmethod
    def replace_payload(ruleset_text: str) -> str:
        """The one-transaction payload that swaps ``ruleset_text`` in.

        Raises KernelError when the text declares anything at top level but
        ``table inet pbxfw`` (so an apply can never touch another table).
        """
        head = next((line for line in ruleset_text.splitlines() if line.strip()), "")
        if head.strip() != _TABLE_HEAD:
            raise KernelError(f"the ruleset must start with {_TABLE_HEAD!r}", ruleset_text)
        for line in ruleset_text.splitlines():
            if (
                line
                and not line[0].isspace()
                and line not in (_TABLE_HEAD, "}")
                and not line.startswith("#")
            ):
                raise KernelError(
                    f"the ruleset may only declare table {TABLE_FAMILY} {TABLE}; found {line!r}",
                    ruleset_text,
                )
        return _REPLACE_PREFIX + ruleset_text

    def apply(self, ruleset_text: str) -> None:
        """Replace ``table inet pbxfw`` by ``ruleset_text`` in one transaction.

        The flow tag in the text is replaced by a fresh one (see the module
        docstring). On refusal the running ruleset is untouched and
        KernelError carries nft's message and the full payload.
        """
        payload = self.replace_payload(ruleset_text)
        tag = None
        if FLOW_CACHE_COMMENT in payload:
            tag = self._fresh_tag(self._tag_rules())
            payload = TAG_RULES[FLOW_CACHE_COMMENT].sub(
                lambda m: m.group(1) + flow_cache_rule(tag), payload
            )
            payload = TAG_RULES[FLOW_MARK_COMMENT].sub(
                lambda m: m.group(1) + flow_mark_rule(tag), payload
            )
        self._load(payload)
        self._metrics = replace(self._metrics, loads=self._metrics.loads + 1)
        if tag is not None:
            self._prepare(tag)
        log.info(
            "applied table %s %s%s",
            TABLE_FAMILY,
            TABLE,
            f" in netns {self.netns}" if self.netns else "",
        )

    def check(self, ruleset_text: str) -> None:
        """Ask the kernel whether ``apply`` would succeed, changing nothing."""
        self._load(self.replace_payload(ruleset_text), check_only=True)

    def list_table(self, *, stateless: bool = False) -> str | None:
        """The running table as nft prints it, or None when there is none.

        The default output keeps counters and each ban's ``expires``, and can
        be loaded again with ``apply`` (the kernel accepts ``expires``);
        ``stateless`` leaves out counters and expiry (for comparisons).
        """
        args = (
            ["-s", "list", "table", TABLE_FAMILY, TABLE]
            if stateless
            else ["list", "table", TABLE_FAMILY, TABLE]
        )
        result = self._run(args)
        if result.returncode == 0:
            return result.stdout
        if "No such file or directory" in result.stderr:
            return None
        raise KernelError(f"cannot list table {TABLE_FAMILY} {TABLE}: {result.stderr.strip()}")

    def structure(self) -> str | None:
        """The table's chains, rules and set declarations without any set
        elements, counters or expiry (``nft -t -s``): equal while nobody but
        pbxfw changes the table, whatever bans come and go. None: no table."""
        result = self._run(["-t", "-s", "list", "table", TABLE_FAMILY, TABLE])
        if result.returncode == 0:
            # The flow tag changes with every ban batch: not a change of structure.
            return without_flow_tag(result.stdout)
        if "No such file or directory" in result.stderr:
            return None
        raise KernelError(f"cannot list table {TABLE_FAMILY} {TABLE}: {result.stderr.strip()}")

    def chains(self) -> str | None:
        """The names of the table's chains (``nft list chains``: no rules, no
        sets, a few milliseconds whatever the sets hold). None: no table."""
        result = self._run(["-s", "list", "chains", TABLE_FAMILY])
        if result.returncode != 0:
            raise KernelError(f"cannot list chains: {result.stderr.strip()}")
        head = f"table {TABLE_FAMILY} {TABLE} {{"
        lines = result.stdout.splitlines()
        if head not in lines:
            return None
        block = []
        for line in lines[lines.index(head) + 1 :]:
            if line == "}":
                break
            block.append(line)
        return "\n".join(block)

    def delete_table(self) -> None:
        """Remove ``table inet pbxfw`` if present (no filtering by pbxfw after)."""
        self._load(_REPLACE_PREFIX)

    # -- ban-set changes: buffered, then one commit ----------------------------
    def add(
        self,
        bans: Sequence[BanElement],
        guard: Sequence[BanElement] | None = None,
        *,
        refresh: bool = True,
    ) -> None:
        """Buffer: put ``guard`` (default: ``bans``) in the guard sets and add
        (or, with ``refresh``, renew the timeout of) ``bans`` in their jails'
        sets. ``refresh=False`` is for elements the caller knows are absent
        (one step instead of three). Planned here, sent by ``commit``."""
        plans = plan_elements(bans)
        if guard is None:
            plans = as_guard_plans(plans) + plans
        else:
            plans = plan_elements(guard, guard=True) + plans
        self._staged.append((plans, "add", refresh))

    def delete(
        self, bans: Sequence[BanElement], unguard: Sequence[BanElement] | None = None
    ) -> None:
        """Buffer: remove ``bans`` (absent ones are fine) and ``unguard``
        (default: ``bans``) from the guard sets."""
        plans = plan_elements(bans, action="delete") + plan_elements(
            bans if unguard is None else unguard, guard=True, action="delete"
        )
        self._staged.append((plans, "delete", True))

    def discard(self) -> None:
        """Forget what is buffered."""
        self._staged = []

    def commit(self) -> None:
        """Send what ``add`` and ``delete`` buffered, in their order: the
        addresses in one netlink transaction (guard and jails together: a
        drop starts when both have landed), the subnets in one nft
        transaction. The buffer is empty afterwards, whatever happens.
        Raises KernelError if refused (a subnet inside a broader banned
        subnet: reload the table)."""
        staged, self._staged = self._staged, []
        if not staged:
            return
        added = sum(len(p.spans) for plans, a, _ in staged if a == "add" for p in plans)
        deleted = sum(len(p.spans) for plans, a, _ in staged if a == "delete" for p in plans)
        started = time.perf_counter()
        m = self._metrics
        try:
            self._send(staged)
        except BaseException:
            self._metrics = replace(m, failed_commits=m.failed_commits + 1)
            raise
        self._metrics = replace(
            m,
            commits=m.commits + 1,
            elements_added=m.elements_added + added,
            elements_deleted=m.elements_deleted + deleted,
            last_commit_seconds=time.perf_counter() - started,
        )

    def retag(self) -> None:
        """Put a fresh flow tag in the two tag rules (one netlink transaction),
        so flows cached under the old one are decided again at their next
        packet: what a commit of new bans does, for changes made outside
        ``commit`` (a blocklist feed's new entries, kernel.feedsets)."""
        try:
            tagged = self._next_tag()
            if tagged is None:
                return
            send_element_batch([], self.netns, retag=tagged)
        except OSError as exc:
            raise KernelError(f"cannot change the flow tag: {exc}") from exc
        self._prepare(tagged[1])

    def metrics(self) -> BackendMetrics:
        """Counters of what this backend has sent (no kernel read)."""
        return self._metrics

    def _send(self, staged: list[_Stage]) -> None:
        hosts = [(p, a, r) for plans, a, r in staged for p in plans if p.spans and p.hosts]
        text = [(p, a, r) for plans, a, r in staged for p in plans if p.spans and not p.hosts]
        # New bans must cut the flows the cache would accept: a fresh tag,
        # in the same transaction as the address elements when there are any.
        retag = any(a == "add" for _, a, _ in hosts + text)
        tagged: tuple[FlowTagRules, int] | None = None
        if hosts:
            try:
                tagged = self._next_tag() if retag else None
                ops = element_ops(hosts)
                send_element_batch(ops, self.netns, retag=tagged)
                retag = False
            except OSError as exc:  # netlink unusable here: nft does the same
                log.warning("netlink for ban elements: %s; using nft", exc)
                tagged = None
                text = hosts + text
        payload = "".join(line + "\n" for p, a, r in text for line in set_commands(p, a, r))
        if payload:
            self._load(payload)
        if retag:  # subnets only (or no netlink for the addresses): a second step
            try:
                tagged = self._next_tag()
                send_element_batch([], self.netns, retag=tagged)
            except OSError as exc:
                raise KernelError(f"cannot change the flow tag: {exc}") from exc
        if tagged is not None:
            self._prepare(tagged[1])

    # -- the flow tag --------------------------------------------------------
    def _tag_rules(self) -> FlowTagRules | None:
        """The running table's flow-tag rules; None: no table, no flow cache,
        or netlink unusable (then a load picks its tag blind)."""
        try:
            return flow_tag_rules(self.netns)
        except (OSError, KernelError) as exc:
            log.warning("cannot read the flow tag: %s", exc)
            return None

    def _pick(self, used: int | None) -> int:
        tag = self.flow_tags()
        for _ in range(16):
            if tag != used:
                break
            tag = self.flow_tags()
        return tag

    def _forget(self, tag: int) -> bool:
        """Delete the conntrack entries carrying ``tag``; False if that failed."""
        try:
            forget_flows(tag, self.netns)
        except (OSError, KernelError) as exc:
            # Then a flow cached under an earlier use of this (random) tag
            # could match it: one chance in 65,535 per change, per such flow.
            log.warning("cannot delete the conntrack entries of flow tag %#x: %s", tag, exc)
            return False
        return True

    def _fresh_tag(self, rules: FlowTagRules | None) -> int:
        """A tag other than the running one, with no conntrack entry carrying
        it: the one ``_prepare`` readied when nothing changed the ruleset
        since (the usual case: no conntrack walk while a ban waits), else a
        new one (its entries deleted now: one walk of the conntrack table,
        ~50 ms per 230,000 entries here)."""
        ready, self._ready = self._ready, None
        current = None if rules is None else rules.tag
        if ready is not None and rules is not None:
            tag, generation = ready
            if generation == rules.generation and tag != current:
                return tag
        tag = self._pick(current)
        self._forget(tag)
        return tag

    def _prepare(self, used: int) -> None:
        """Ready the tag after ``used``, after a change has landed. Nothing
        marks a flow with a tag that no rule holds, so it stays clean until
        the ruleset changes (another load could put it in use)."""
        tag = self._pick(used)
        if not self._forget(tag):
            return
        try:
            self._ready = (tag, ruleset_generation(self.netns))
        except (OSError, KernelError):
            self._ready = None

    def _next_tag(self) -> tuple[FlowTagRules, int] | None:
        """The flow-tag rules and a fresh tag for them; None: no flow cache."""
        rules = flow_tag_rules(self.netns)
        return None if rules is None else (rules, self._fresh_tag(rules))
