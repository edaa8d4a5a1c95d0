"""Changing a feed's kernel sets by the difference only (issue 17).

A refresh of a feed sends only the entries that changed
(``compiler.feeds.feed_changes``): single addresses as one netlink batch
of ``NEWSETELEM``/``DELSETELEM`` messages (kernel.netlink, no ``nft``
process, no read-back), CIDR blocks as one ``nft -f`` transaction of
``delete element``/``add element``. A full load of the table carries every
feed's kept list in the text (compiler.feeds), so the kernel and the kept
lists agree after either.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from pbxfw.compiler.elements import SetElements, set_commands
from pbxfw.errors import KernelError
from pbxfw.kernel.netlink import ElementOp, send_element_batch

__all__ = ["send_feed_changes"]

_NFT_TIMEOUT = 120.0


def _ops(plans: Sequence[SetElements], action: str) -> list[ElementOp]:
    out = []
    for plan in plans:
        size = 4 if plan.version == 4 else 16
        keys = [first.to_bytes(size, "big") for first, _, _ in plan.spans]
        out.append(ElementOp(action, plan.set_name, keys))
    return out


def _nft(payload: str, netns: str | None) -> None:
    argv = ["nft", "-f", "-"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    try:
        result = subprocess.run(
            argv, input=payload, capture_output=True, text=True, timeout=_NFT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"cannot run nft for the feed elements: {exc}", payload) from exc
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip()
        raise KernelError(f"nftables refused the feed elements:\n{message}", payload)


def send_feed_changes(
    adds: Sequence[SetElements], dels: Sequence[SetElements], netns: str | None
) -> int:
    """Send one feed's changes (deletions first); returns the elements sent.

    Raises KernelError when the kernel refuses (a set missing: the caller
    reloads the whole table, which carries the kept lists).
    """
    hosts_del = [p for p in dels if p.hosts and p.spans]
    hosts_add = [p for p in adds if p.hosts and p.spans]
    nets = [(p, "delete") for p in dels if not p.hosts] + [(p, "add") for p in adds if not p.hosts]
    if hosts_del or hosts_add:
        ops = _ops(hosts_del, "delete") + _ops(hosts_add, "add")
        try:
            send_element_batch(ops, netns)
        except OSError:  # netlink unusable here: nft does the same
            nets = [(p, "delete") for p in hosts_del] + [(p, "add") for p in hosts_add] + nets
    payload = "".join(
        line + "\n"
        for plan, action in nets
        for line in (
            [f"delete element inet pbxfw {plan.set_name} {{ {_items(plan)} }}"]
            if action == "delete"
            else set_commands(plan, "add", refresh=False)
        )
        if plan.spans
    )
    if payload:
        _nft(payload, netns)
    return sum(len(p.spans) for p in (*adds, *dels))


def _items(plan: SetElements) -> str:
    from pbxfw.compiler.elements import interval_text
    from pbxfw.domain.addresses import address_text

    v = plan.version
    return ", ".join(
        address_text(a, v) if a == b else interval_text(a, b, v) for a, b, _ in plan.spans
    )
