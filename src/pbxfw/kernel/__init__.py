"""pbxfw.kernel: the impure shell around nftables.

``Backend`` is the seam (a protocol): load a ruleset, buffer ban-set changes
and commit them as one transaction, read the table back, metrics.
``NftBackend`` implements it on the kernel (optionally inside a network
namespace), ``DryRunBackend`` in memory. ``BanSets`` mirrors the kernel's
ban sets and computes the element changes (guard sets included) that a
backend commits. ``apply_with_confirm`` / ``confirm`` /
``rollback`` / ``pending`` give the confirmation window of DESIGN §3, backed
by a detached watchdog process (``python -m pbxfw.kernel.watchdog``).
"""

from pbxfw.kernel.backend import Backend, BackendMetrics
from pbxfw.kernel.bansets import BanChanges, BanSets, commit_changes
from pbxfw.kernel.confirm import (
    PendingChange,
    apply_with_confirm,
    confirm,
    last_rollback,
    pending,
    rollback,
    shift_expiry,
)
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.kernel.nft import NftBackend

__all__ = [
    "Backend",
    "BackendMetrics",
    "BanChanges",
    "BanSets",
    "DryRunBackend",
    "NftBackend",
    "PendingChange",
    "apply_with_confirm",
    "commit_changes",
    "confirm",
    "last_rollback",
    "pending",
    "rollback",
    "shift_expiry",
]
