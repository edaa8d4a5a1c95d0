"""The agent in-process with the dry-run backend: what reaches the "kernel"."""

from __future__ import annotations

import time
from pathlib import Path

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.firewall import FirewallService


def failure(source: str, when: float | None = None) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when or time.time()))
    return (
        f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
        f"'<sip:101@10.0.0.1>' failed for '{source}:5060' (callid: c) - Failed to authenticate\n"
    )


def setup(svc: ConfigService, tmp_path: Path) -> Path:
    log = tmp_path / "messages"
    log.write_text("")
    svc.update_settings(
        {
            "ips_maxretry": "3",
            "log_asterisk_messages": str(log),
            "log_asterisk_security": str(tmp_path / "security_log"),
            "log_ssh": str(tmp_path / "auth.log"),
            "log_web": str(tmp_path / "error.log"),
            "asterisk_config_dir": "",
        }
    )
    return log


def agent(svc: ConfigService, tmp_path: Path, backend: DryRunBackend) -> Agent:
    a = Agent(svc.store, AgentOptions(state_dir=str(tmp_path / "state")), backend=backend)
    a.start()
    return a


def test_restart_counts_no_line_twice_and_skips_old_backlog(
    svc: ConfigService, tmp_path: Path
) -> None:
    log = setup(svc, tmp_path)
    old = time.time() - 7200  # older than ips_findtime (3600 s)
    log.write_text("".join(failure("198.51.100.1", old) for _ in range(5)))
    backend = DryRunBackend()
    first = agent(svc, tmp_path, backend)
    first.tick()
    assert backend.bans == {}  # the old backlog bans nobody
    with log.open("a") as f:
        f.write(failure("198.51.100.2") * 2)
    first.tick()
    first.flush()
    assert backend.bans == {}
    with svc.store.read() as repo:
        lines_before = repo.ips_counters()["asterisk"]["lines"]

    second = agent(svc, tmp_path, backend)  # a restart: offsets come from the database
    second.tick()
    second.flush()
    with svc.store.read() as repo:
        assert repo.ips_counters()["asterisk"]["lines"] == lines_before
    with log.open("a") as f:
        f.write(failure("198.51.100.2") * 3)
    second.tick()
    assert ("198.51.100.2/32", "asterisk") in backend.bans
    assert [b.address_text() for b in BanService(svc.store).active()] == ["198.51.100.2"]


def test_bans_from_the_cli_reach_the_kernel_and_leave_it(
    svc: ConfigService, tmp_path: Path
) -> None:
    setup(svc, tmp_path)
    backend = DryRunBackend()
    a = agent(svc, tmp_path, backend)
    bans = BanService(svc.store)
    bans.add("203.0.113.7", jail="ssh", seconds=600)
    a.tick()
    assert backend.bans[("203.0.113.7/32", "ssh")] in (599, 600)
    bans.remove("203.0.113.7")
    a.tick()
    assert backend.bans == {}


def test_the_table_is_applied_again_when_it_disappears(svc: ConfigService, tmp_path: Path) -> None:
    setup(svc, tmp_path)
    backend = DryRunBackend()
    a = agent(svc, tmp_path, backend)
    assert backend.calls.count("apply") == 1
    a.tick()
    assert backend.calls.count("apply") == 1
    backend.table = None  # someone deleted it
    a.rules.last_table_check = 0
    a.tick()
    assert backend.calls.count("apply") == 2


def test_the_pjsip_include_follows_the_local_networks(svc: ConfigService, tmp_path: Path) -> None:
    setup(svc, tmp_path)
    include = tmp_path / "pbxfw_pjsip_nat.conf"
    (tmp_path / "pjsip.conf").write_text("")  # the folder is Asterisk's
    # The include is written only in asterisk_config_dir.
    svc.update_settings({"asterisk_config_dir": str(tmp_path), "pjsip_include_path": str(include)})
    backend = DryRunBackend()
    options = AgentOptions(state_dir=str(tmp_path / "state"), discover_asterisk=False)
    a = Agent(svc.store, options, backend=backend)
    a.start()
    assert "local_net=192.168." not in include.read_text()
    svc.add_network(NetworkChange(name="Office", subnet="192.168.5.0/24", local=True))
    FirewallService(svc.store, tmp_path / "state", backend=lambda _ns: backend).apply()  # type: ignore[arg-type,return-value]
    a.tick()
    assert "local_net=192.168.5.0/24" in include.read_text()


def test_brute_force_on_the_web_page_is_banned_in_the_web_jail(
    svc: ConfigService, tmp_path: Path
) -> None:
    """The page writes failed logins (pbxfw.web.security); the agent follows
    that file and bans the address for WEB only."""
    from pbxfw.web.security import record_login_failure

    setup(svc, tmp_path)
    web_log = tmp_path / "web.log"
    backend = DryRunBackend()
    a = Agent(
        svc.store,
        AgentOptions(state_dir=str(tmp_path / "state"), web_log=str(web_log)),
        backend=backend,
    )
    a.start()
    for i in range(3):  # ips_maxretry is 3 in setup()
        record_login_failure(web_log, time.time(), f'admin" from 10.0.0.{i}', "198.51.100.77")
    a.tick()
    assert list(backend.bans) == [("198.51.100.77/32", "web")]
    (ban,) = BanService(svc.store).active()
    assert ban.scope == frozenset({"web"})


def test_a_network_marked_never_block_is_protected_before_any_apply(
    svc: ConfigService, tmp_path: Path
) -> None:
    log = setup(svc, tmp_path)
    backend = DryRunBackend()
    a = agent(svc, tmp_path, backend)
    svc.add_network(NetworkChange(name="Office", subnet="10.20.0.0/16", never_block=True))
    a.tick()  # stored, not applied: the whitelist follows it anyway
    with log.open("a") as f:
        f.write(failure("10.20.0.5") * 5 + failure("198.51.100.8") * 3)
    a.tick()
    assert list(backend.bans) == [("198.51.100.8/32", "asterisk")]
