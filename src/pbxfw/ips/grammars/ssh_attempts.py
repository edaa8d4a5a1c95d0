"""Counting one SSH attempt, and one SSH connection, once (docs/ips-formats.md,
"Counting one SSH attempt once", "Counting one connection once").

sshd and PAM write several lines for one attempt, and a connection that tried
a user name ends with a line of its own. :class:`SshAttempts` keeps, per
recogniser (i.e. per file, across calls), the attempts and connections under
way, so that only the first line of each counts. Stages: the tens are the
family, the units the order within it (:data:`POSTPONED` … :data:`FAILED_PAM`
for the lines of one try, :data:`MAXTRIES`, :data:`DISCONNECT` for the last
try of a connection, :data:`CONN_END` for the end of a connection; 0 for a
line that always counts).
"""

from __future__ import annotations

from pbxfw.domain.addresses import IPAddress

__all__ = [
    "CONN_END",
    "DISCONNECT",
    "FAILED_PAM",
    "MAXTRIES",
    "PAM_ERROR",
    "PAM_UNIX",
    "POSTPONED",
    "SSH_ATTEMPT_SECONDS",
    "SSH_CONNECTION_SECONDS",
    "SSH_TAG",
    "SshAttempts",
    "ssh_tag",
]

# A PAM host writes, for one password attempt, pam_unix's line and then
# sshd's "Failed password" (both from the per-connection process: same pid);
# keyboard-interactive/pam starts with "Postponed" (counted for an invalid
# user only) and adds sshd's "PAM: Authentication failure" before "Failed",
# and pam_unix then runs in a child process (another pid). dropbear built
# with PAM writes pam_unix's line and "Bad PAM password attempt", same pid.
# The last try of a connection writes "maximum authentication attempts
# exceeded" and then "Disconnecting ...: Too many authentication failures",
# same pid. CONN_END ends a connection that sent a user name.
POSTPONED, PAM_UNIX, PAM_ERROR, FAILED_PAM = 10, 11, 12, 13
MAXTRIES, DISCONNECT = 21, 22
CONN_END = 30
#: The stage that closes each family of one attempt.
_LAST_STAGE = {1: 3, 2: 2}
#: Seconds within which a later line of an attempt follows its first one
#: (pam_unix delays a failure by 2 s ± 25 %; pam_faildelay may add more).
SSH_ATTEMPT_SECONDS = 30
#: Seconds within which a connection's end follows its other lines (longer
#: than sshd's LoginGraceTime, 120 s by default).
SSH_CONNECTION_SECONDS = 600

#: Marks the key of an ssh failure that a parallel scan's worker leaves to
#: the scan to pair (see Recogniser(pair_ssh=False)); never seen outside it.
SSH_TAG = "\x00ssh|"


def ssh_tag(stage: int, pid: str, any_pid: bool) -> str:
    """The key a parallel scan's worker gives an ssh line (paired by the scan)."""
    return f"{SSH_TAG}{stage}|{int(any_pid)}|{pid}"


class SshAttempts:
    """Counts one SSH attempt once although sshd and PAM write several lines for it.

    Per host, the attempts under way: (stage, "prog[pid]", epoch) of the last
    line seen of each. A line whose stage comes later in the same family than
    an attempt under way of the same host — from the same process, from any
    process when PAM ran in a child (keyboard-interactive), or after a
    "Postponed" — within :data:`SSH_ATTEMPT_SECONDS` continues that attempt
    (oldest first): the caller does not count it. Any other line starts an
    attempt and counts, so a PAM line without its sshd line still counts,
    and a host's count never falls below the number of its PAM (or sshd)
    lines. Per connection ("host|prog[pid]"), the time of its last line: a
    :data:`CONN_END` line continues a connection seen within
    :data:`SSH_CONNECTION_SECONDS`. Bounded: at most 64 attempts per host,
    and hosts and connections with nothing recent are dropped in sweeps.
    """

    __slots__ = ("_connections", "_hosts", "_newest")

    #: Hosts kept before a sweep drops those with nothing recent (and eight
    #: times as many connections).
    MAX_HOSTS = 8192

    def __init__(self) -> None:
        self._hosts: dict[str, list[tuple[int, str, int]]] = {}
        self._connections: dict[str, int] = {}
        self._newest = 0

    def follows(self, host: str, stage: int, pid: str, any_pid: bool, epoch: int) -> bool:
        """Whether this line continues an attempt or connection already counted; records it."""
        if epoch > self._newest:
            self._newest = epoch
        connection = f"{host}|{pid}"
        connections = self._connections
        if stage == CONN_END:
            seen = connections.pop(connection, None)
            return seen is not None and abs(epoch - seen) <= SSH_CONNECTION_SECONDS
        if len(connections) >= 8 * self.MAX_HOSTS and connection not in connections:
            connections = self._sweep_connections()
        connections[connection] = epoch
        if stage == 0:
            return False
        family, order = divmod(stage, 10)
        last = order == _LAST_STAGE[family]
        entries = self._hosts.get(host)
        if entries is not None:
            for i, (seen, seen_pid, seen_epoch) in enumerate(entries):
                if (
                    seen // 10 == family
                    and seen % 10 < order
                    # pam_unix runs in a child for keyboard-interactive: a line
                    # of any pid continues its line, or the "Postponed" before it.
                    and (seen_pid == pid or (any_pid and seen % 10 == 1) or seen % 10 == 0)
                    and -SSH_ATTEMPT_SECONDS <= epoch - seen_epoch <= SSH_ATTEMPT_SECONDS
                ):
                    if last:
                        del entries[i]
                    else:
                        entries[i] = (stage, pid, epoch)
                    return True
        if not last:
            if entries is None:
                if len(self._hosts) >= self.MAX_HOSTS:
                    self._sweep()
                entries = self._hosts[host] = []
            else:
                # Attempts that can no longer be continued.
                entries[:] = [e for e in entries if epoch - e[2] <= SSH_ATTEMPT_SECONDS][-63:]
            entries.append((stage, pid, epoch))
        return False

    def follows_tag(self, tag: str, host: IPAddress, epoch: int) -> bool:
        """:meth:`follows` for a failure a parallel scan's worker tagged (key ``tag``)."""
        stage, any_pid, pid = tag[len(SSH_TAG) :].split("|", 2)
        return self.follows(str(host), int(stage), pid, any_pid == "1", epoch)

    def _sweep(self) -> None:
        horizon = self._newest - SSH_ATTEMPT_SECONDS
        self._hosts = {
            host: entries
            for host, entries in self._hosts.items()
            if entries and entries[-1][2] >= horizon
        }
        if len(self._hosts) >= self.MAX_HOSTS:  # a flood of fresh hosts: start over
            self._hosts = {}

    def _sweep_connections(self) -> dict[str, int]:
        horizon = self._newest - SSH_CONNECTION_SECONDS
        kept = {c: e for c, e in self._connections.items() if e >= horizon}
        if len(kept) >= 8 * self.MAX_HOSTS:  # a flood of fresh connections: start over
            kept = {}
        self._connections = kept
        return kept
