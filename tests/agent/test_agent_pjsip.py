"""The agent writes the PJSIP include as root: a refused write is logged, never a crash.

Issue 13 item 4: once ``pjsip_include_path`` named ``/etc/passwd``, the agent
replaced that file on its next tick. Here the agent meets what an attacker
or an old database leaves: a path outside the Asterisk folder stored before
the rule existed, a symlink planted in the folder, a file it did not write.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.asterisk.pjsip import HEADER
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.settings import Settings
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage import repository as storage_repository
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.firewall import FirewallService

VICTIM = "root:x:0:0:root:/root:/bin/bash\n"


@pytest.fixture
def folder(svc: ConfigService, tmp_path: Path) -> Path:
    """An Asterisk folder in the settings; the logs the agent follows are empty."""
    asterisk = tmp_path / "asterisk"
    asterisk.mkdir()
    (asterisk / "pjsip.conf").write_text("")
    for name in ("messages", "security_log", "auth.log", "error.log"):
        (tmp_path / name).write_text("")
    svc.update_settings(
        {
            "log_asterisk_messages": str(tmp_path / "messages"),
            "log_asterisk_security": str(tmp_path / "security_log"),
            "log_ssh": str(tmp_path / "auth.log"),
            "log_web": str(tmp_path / "error.log"),
            "asterisk_config_dir": str(asterisk),
        }
    )
    return asterisk


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "passwd"
    path.write_text(VICTIM)
    return path


def start(svc: ConfigService, tmp_path: Path) -> tuple[Agent, DryRunBackend]:
    backend = DryRunBackend()
    options = AgentOptions(state_dir=str(tmp_path / "state"), discover_asterisk=False)
    agent = Agent(svc.store, options, backend=backend)
    agent.start()
    return agent, backend


def apply(svc: ConfigService, tmp_path: Path, backend: DryRunBackend) -> None:
    FirewallService(svc.store, tmp_path / "state", backend=lambda _ns: backend).apply()  # type: ignore[arg-type,return-value]


def test_a_path_stored_before_the_rule_is_never_written(
    svc: ConfigService,
    folder: Path,
    victim: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each ignored setting is reported once per process: as if this were the
    # first (the same test on the other engine may have reported it already).
    monkeypatch.setattr(storage_repository, "_REPORTED_SETTINGS", set())
    # As an older pbxfw stored it: straight into the table, unchecked.
    with svc.store.write() as repo:
        repo.save_settings({"pjsip_include_path": str(victim)})
    with caplog.at_level(logging.WARNING):
        agent, backend = start(svc, tmp_path)
        svc.add_network(NetworkChange(name="Office", subnet="192.168.5.0/24", local=True))
        apply(svc, tmp_path, backend)
        agent.tick()
    assert victim.read_text() == VICTIM
    assert backend.calls.count("apply") >= 2  # the agent went on
    assert "pjsip_include_path: stored value" in caplog.text
    assert svc.settings().pjsip_include_path == ""


def test_the_writer_refuses_a_stale_setting_it_is_handed(
    svc: ConfigService, folder: Path, victim: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Even if a configuration with an unchecked path reached the writer."""
    agent, _ = start(svc, tmp_path)
    stale = Settings.model_construct(
        asterisk_config_dir=str(folder), pjsip_include_path=str(victim)
    )
    with caplog.at_level(logging.ERROR):
        agent.pjsip.write(Configuration(settings=stale))
    assert victim.read_text() == VICTIM
    assert "PJSIP include: refusing to write pjsip_include_path" in caplog.text


def test_a_planted_symlink_is_refused_logged_and_the_agent_goes_on(
    svc: ConfigService, folder: Path, victim: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    include = folder / "pbxfw_pjsip_nat.conf"
    include.symlink_to(victim)
    svc.update_settings({"pjsip_include_path": str(include)})
    with caplog.at_level(logging.ERROR):
        agent, backend = start(svc, tmp_path)
        for _ in range(3):
            agent.tick()
    assert victim.read_text() == VICTIM
    assert "symbolic link" in caplog.text
    # Once the link is gone, the next change is written, as pbxfw's own file.
    include.unlink()
    svc.add_network(NetworkChange(name="Office", subnet="192.168.5.0/24", local=True))
    apply(svc, tmp_path, backend)
    agent.tick()
    assert not include.is_symlink()
    text = include.read_text()
    assert text.startswith(HEADER + "\n") and "local_net=192.168.5.0/24" in text


def test_a_file_pbxfw_did_not_write_is_left_alone(
    svc: ConfigService, folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pjsip = folder / "pjsip.conf"
    pjsip.write_text("[transport-udp]\ntype=transport\n")
    svc.update_settings({"pjsip_include_path": str(pjsip)})
    with caplog.at_level(logging.ERROR):
        agent, _ = start(svc, tmp_path)
        agent.tick()
    assert pjsip.read_text() == "[transport-udp]\ntype=transport\n"
    assert "pbxfw did not write this file" in caplog.text


def test_an_applied_configuration_stored_before_the_rules_is_still_enforced(
    svc: ConfigService, folder: Path, victim: Path, tmp_path: Path
) -> None:
    """The agent enforces the applied document; one with a value a newer rule
    refuses still loads (that value takes its default), so the agent runs."""
    backend = DryRunBackend()
    apply(svc, tmp_path, backend)
    firewall = FirewallService(svc.store, tmp_path / "state", backend=lambda _ns: backend)  # type: ignore[arg-type,return-value]
    with svc.store.write() as repo:
        document = json.loads(repo.get_meta("applied_document") or "{}")
        document["settings"] |= {"pjsip_include_path": str(victim), "ips_bantime_max": 10**12}
        repo.set_meta("applied_document", json.dumps(document))
    _, config = firewall.applied_configuration()
    assert config.settings.pjsip_include_path == ""
    assert config.settings.ips_bantime_max == 30 * 86400
    agent, _ = start(svc, tmp_path)
    agent.tick()
    assert victim.read_text() == VICTIM
