"""The agent (in-process, dry-run kernel) counts one SSH attempt on a PAM host
once, also when its two lines arrive in different polls (issue 13, item 3)."""

from __future__ import annotations

import time
from pathlib import Path

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService

HOST = "198.51.100.33"


def syslog(body: str, pid: int, offset: float) -> str:
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(time.time() - 60 + offset))
    return f"{stamp} pbx sshd[{pid}]: {body}\n"


def pam_line(pid: int, offset: float) -> str:
    return syslog(
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser="
        f" rhost={HOST}  user=root",
        pid,
        offset,
    )


def failed_line(pid: int, offset: float) -> str:
    return syslog(f"Failed password for root from {HOST} port 50022 ssh2", pid, offset)


def test_the_agent_bans_after_maxretry_attempts_not_half(
    svc: ConfigService, tmp_path: Path
) -> None:
    auth = tmp_path / "auth.log"
    auth.write_text("")
    svc.update_settings(
        {
            "ips_maxretry": "3",
            "log_asterisk_messages": str(tmp_path / "messages"),
            "log_asterisk_security": str(tmp_path / "security_log"),
            "log_ssh": str(auth),
            "log_web": str(tmp_path / "error.log"),
            "asterisk_config_dir": "",
        }
    )
    backend = DryRunBackend()
    agent = Agent(svc.store, AgentOptions(state_dir=str(tmp_path / "state")), backend=backend)
    agent.start()

    def append(text: str) -> None:
        with auth.open("a") as handle:
            handle.write(text)
        agent.tick()

    # Two attempts of one connection: four lines, the second pair split
    # across two polls.
    append(pam_line(4242, 0) + failed_line(4242, 2))
    append(pam_line(4242, 4))
    append(failed_line(4242, 6))
    assert backend.bans == {}
    agent.flush()
    with svc.store.read() as repo:
        assert repo.ips_counters()["ssh"]["failures"] == 2
    # The third attempt bans (ips_maxretry 3).
    append(pam_line(4243, 8))
    assert (f"{HOST}/32", "ssh") in backend.bans
