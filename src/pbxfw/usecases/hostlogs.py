"""What the host's logs look like, for the defaults ``pbxfw init`` stores.

Reads the file system (the use case's side of ``domain.logsource.ssh_log_default``).
"""

from __future__ import annotations

import os
import stat
import time

from pbxfw.domain.logsource import AUTH_LOG, ssh_log_default

__all__ = ["auth_log_age", "ssh_log_for_host"]


def auth_log_age(path: str = AUTH_LOG, now: float | None = None) -> float | None:
    """Seconds since ``path`` was last written; None when it is not a regular file."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return max(0.0, (time.time() if now is None else now) - st.st_mtime)


def ssh_log_for_host(path: str = AUTH_LOG, now: float | None = None) -> str:
    """``log_ssh`` for this host: ``path`` when it is written, else sshd's journal."""
    choice = ssh_log_default(auth_log_age(path, now))
    # The domain names the system's auth.log; a test's stand-in keeps its own path.
    return path if choice == AUTH_LOG else choice
