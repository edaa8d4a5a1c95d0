"""pbxfw.kernel: the impure shell around nftables.

``NftBackend`` loads, reads and removes the one table pbxfw owns (optionally
inside a network namespace); ``apply_with_confirm`` / ``confirm`` /
``rollback`` / ``pending`` give the confirmation window of DESIGN §3, backed
by a detached watchdog process (``python -m pbxfw.kernel.watchdog``).
"""

from pbxfw.kernel.confirm import (
    PendingChange,
    apply_with_confirm,
    confirm,
    last_rollback,
    pending,
    rollback,
    shift_expiry,
)
from pbxfw.kernel.nft import NftBackend

__all__ = [
    "NftBackend",
    "PendingChange",
    "apply_with_confirm",
    "confirm",
    "last_rollback",
    "pending",
    "rollback",
    "shift_expiry",
]
