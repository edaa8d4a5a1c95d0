"""An edit made through the REST API after a rollback is what the next apply loads.

The REST API with pbxfw's own applier (FirewallApplier over FirewallService)
in a namespace this test creates, SSH checked with real packets from an
office address; the CLI applies on the same database (issue 13, item 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxfw.kernel.confirm import pending
from pbxfw.kernel.nft import without_flow_tag
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.firewall import FirewallApplier, FirewallService
from tests.helpers import wait_for
from tests.kernel.lab import Lab, Probe, require_kernel
from tests.web.conftest import CLIENT, TestClient

API = "/api/v1"
PBXFW = str(Path(sys.executable).with_name("pbxfw"))
PBX, OFFICE = "10.77.6.1", "10.77.6.10"
SSH = Probe("tcp", OFFICE, PBX, 22)
pytestmark = pytest.mark.kernel


@pytest.fixture
def lab() -> Iterator[tuple[Lab, str, str]]:
    require_kernel()
    with Lab(f"wr{os.getpid() % 10000}") as lab:
        pbx, office = lab.namespace("pbx"), lab.namespace("office")
        lab.link(pbx, "v-pbx", office, "v-office")
        lab.addr(pbx, "v-pbx", f"{PBX}/24")
        lab.addr(office, "v-office", f"{OFFICE}/24")
        lab.listen(pbx, tcp=[22])
        yield lab, pbx, office


@pytest.fixture
def applier(  # type: ignore[override]
    store: Store, lab: tuple[Lab, str, str], tmp_path: Path
) -> Iterator[FirewallApplier]:
    svc = ConfigService(store)
    svc.update_settings({"firewall_enabled": True})
    svc.add_network(NetworkChange(name="Office", subnet="10.77.6.0/24", allow=["ssh"]))
    # The test client's address keeps the web page (the anti-lockout rule).
    svc.add_network(NetworkChange(name="Admin", subnet=f"{CLIENT[0]}/32", allow=["web"]))
    # The state folder the CLI finds by itself: state/ beside the database.
    firewall = FirewallService(store, tmp_path / "state")
    firewall.apply(lab[1])  # the confirmed starting point
    yield FirewallApplier(firewall, lab[1])
    with contextlib.suppress(Exception):
        change = pending(tmp_path / "state", lab[1])
        if change is not None and change.watchdog_pid:
            os.kill(change.watchdog_pid, signal.SIGKILL)


def cli(db_url: str, state: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SSH_CLIENT"}
    env["PBXFW_STATE_DIR"] = str(state)  # beside a SQLite file anyway; PostgreSQL has no beside
    result = subprocess.run(
        [PBXFW, *args, "--db", db_url], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def ssh(lab: tuple[Lab, str, str]) -> str:
    return lab[0].probe(lab[2], [SSH])[SSH]


def table(lab: tuple[Lab, str, str]) -> str:
    return without_flow_tag(lab[0].nft(lab[1], "-s", "list", "table", "inet", "pbxfw"))


def office(client: TestClient, auth: dict[str, str]) -> dict[str, object]:
    for network in client.get(f"{API}/networks", headers=auth).json():
        if network["name"] == "Office":
            found: dict[str, object] = network
            return found
    raise AssertionError("no network Office")


def block_ssh(client: TestClient, auth: dict[str, str]) -> dict[str, object]:
    answer = client.patch(
        f"{API}/networks/{office(client, auth)['id']}", headers=auth, json={"block": ["ssh"]}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_a_rest_edit_after_a_rollback_is_what_the_next_apply_loads(
    client: TestClient,
    auth: dict[str, str],
    lab: tuple[Lab, str, str],
    db_url: str,
    tmp_path: Path,
) -> None:
    confirmed_table = table(lab)
    assert ssh(lab) == "open"
    block_ssh(client, auth)
    cli(db_url, tmp_path / "state", "apply", "--netns", lab[1], "--confirm", "3")
    assert ssh(lab) == "timeout"
    assert wait_for(lambda: table(lab) == confirmed_table, 10)  # rolled back
    assert ssh(lab) == "open"

    # The same edit again, through REST, right after the rollback ...
    assert block_ssh(client, auth)["services"]["ssh"] == "block"  # type: ignore[index]
    assert office(client, auth)["services"]["ssh"] == "block"  # type: ignore[index]
    # ... is what the REST apply loads and the REST confirm keeps.
    answer = client.post(f"{API}/apply", headers=auth, json={"confirm_seconds": 5})
    assert answer.status_code == 200 and answer.json()["status"] == "pending", answer.text
    assert ssh(lab) == "timeout"
    assert client.post(f"{API}/apply/confirm", headers=auth).json()["status"] == "confirmed"
    time.sleep(5.5)  # past the deadline: nothing comes back
    assert ssh(lab) == "timeout"
    assert office(client, auth)["services"]["ssh"] == "block"  # type: ignore[index]


def test_a_rest_edit_is_the_first_to_notice_an_expired_change(
    client: TestClient,
    auth: dict[str, str],
    lab: tuple[Lab, str, str],
    db_url: str,
    tmp_path: Path,
) -> None:
    """The watchdog is gone (killed, or the host rebooted): the REST edit that
    comes after the deadline rolls the kernel back, returns storage to the
    confirmed configuration, then makes its edit on top of it."""
    confirmed_table = table(lab)
    client.patch(
        f"{API}/networks/{office(client, auth)['id']}", headers=auth, json={"allow": ["web"]}
    )
    block_ssh(client, auth)
    applied = json.loads(
        cli(db_url, tmp_path / "state", "apply", "--netns", lab[1], "--confirm", "2", "--json")
    )
    watchdog = int(applied["pending"]["watchdog_pid"])
    os.kill(watchdog, signal.SIGKILL)
    assert wait_for(lambda: not Path(f"/proc/{watchdog}").exists(), 5)
    time.sleep(max(0.0, float(applied["pending"]["deadline"]) - time.time()) + 0.5)
    assert ssh(lab) == "timeout"  # expired, and nobody has noticed yet

    body = block_ssh(client, auth)  # the REST edit notices
    assert table(lab) == confirmed_table and ssh(lab) == "open"
    services = body["services"]
    assert isinstance(services, dict)
    assert services["ssh"] == "block" and services["web"] == "block"  # web: back to confirmed
    rejected = json.loads(
        (tmp_path / "state" / f"netns-{lab[1]}" / "rejected-config.json").read_text()
    )
    kept = next(n for n in rejected["networks"] if n["name"] == "Office")
    assert kept["services"]["web"] == "allow" and kept["services"]["ssh"] == "block"

    answer = client.post(f"{API}/apply", headers=auth, json={})
    assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text
    assert ssh(lab) == "timeout"
    assert office(client, auth)["services"]["ssh"] == "block"  # type: ignore[index]
