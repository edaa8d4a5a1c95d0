"""`pbxfw apply --confirm`, `confirm`, `rollback` through the CLI, in a namespace:
the stored configuration follows the kernel back to the last confirmed one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pbxfw.errors import ValidationError
from tests.kernel.lab import Lab, require_kernel

PBXFW = str(Path(sys.executable).with_name("pbxfw"))
pytestmark = pytest.mark.kernel


def run(
    db: Path | str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PBXFW, *args, "--db", str(db)], capture_output=True, text=True, timeout=60, env=env
    )


def test_unconfirmed_change_rolls_back_storage_too(
    db_url: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_kernel()
    db = db_url
    # Beside a SQLite file by default; given for PostgreSQL.
    monkeypatch.setenv("PBXFW_STATE_DIR", str(state_dir))
    with Lab(f"ap{os.getpid() % 10000}") as lab:
        ns = lab.namespace("pbx")
        assert run(db, "init").returncode == 0
        assert run(db, "network", "add", "Office", "10.0.0.0/8", "--allow", "ssh").returncode == 0
        assert run(db, "apply", "--netns", ns).returncode == 0
        confirmed = run(db, "export").stdout

        # A change kept with `confirm` stays.
        run(db, "network", "add", "Lab", "10.1.0.0/16", "--block", "ssh")
        assert run(db, "apply", "--netns", ns, "--confirm", "30").returncode == 0
        assert run(db, "confirm", "--netns", ns).stdout.startswith("confirmed")
        kept = run(db, "export").stdout
        assert "Lab" in kept

        # A change not confirmed: the kernel and the stored configuration come back.
        before_table = lab.nft(ns, "-s", "list", "table", "inet", "pbxfw")
        run(db, "settings", "set", "firewall_enabled=true")
        run(db, "network", "rm", "Lab")
        assert run(db, "apply", "--netns", ns, "--confirm", "1").returncode == 0
        assert lab.nft(ns, "-s", "list", "table", "inet", "pbxfw") != before_table
        time.sleep(2.5)
        assert lab.nft(ns, "-s", "list", "table", "inet", "pbxfw") == before_table
        result = run(db, "rollback", "--netns", ns)
        assert "rejected configuration is kept in" in result.stdout
        assert run(db, "export").stdout == kept
        rejected = Path(result.stdout.split("kept in ")[1].split(";")[0])
        document = json.loads(rejected.read_text())
        assert document["settings"]["firewall_enabled"] is True
        assert "Lab" not in [n["name"] for n in document["networks"]]
        assert confirmed != kept


def test_apply_refuses_to_lock_out_the_ssh_admin(tmp_path: Path) -> None:
    require_kernel()
    db = tmp_path / "pbxfw.db"
    with Lab(f"lo{os.getpid() % 10000}") as lab:
        ns = lab.namespace("pbx")
        run(db, "init")
        run(db, "settings", "set", "firewall_enabled=true")
        env = {**os.environ, "SSH_CLIENT": "192.0.2.55 50000 22"}
        result = run(db, "apply", "--netns", ns, env=env)
        assert result.returncode == 6
        assert 'network "Internet" (0.0.0.0/0) blocks it' in result.stderr
        assert "pbxfw" not in lab.nft(ns, "list", "tables")
        run(db, "network", "add", "Me", "192.0.2.55/32", "--allow", "ssh")
        assert run(db, "apply", "--netns", ns, env=env).returncode == 0
        assert run(db, "apply", "--netns", ns, "--force").returncode == 0


def test_describe_changes_names_what_apply_changes() -> None:
    from pbxfw.usecases.firewall import describe_changes

    before = {
        "networks": [
            {
                "name": "Office",
                "subnet": "10.0.0.0/8",
                "services": {"sip": "allow", "ssh": "block"},
                "local": False,
            },
            {"name": "Old", "subnet": "10.9.0.0/16", "services": {}},
        ],
        "settings": {"firewall_enabled": False},
    }
    after = {
        "networks": [
            {
                "name": "HQ",
                "subnet": "10.0.0.0/8",
                "services": {"sip": "allow", "ssh": "allow"},
                "local": True,
            },
            {"name": "Lab", "subnet": "10.1.0.0/16", "services": {"sip": "allow"}},
        ],
        "settings": {"firewall_enabled": True},
    }
    assert describe_changes(before, after) == [
        'network "HQ" 10.0.0.0/8: ssh block → allow, local on, renamed from "Office"',
        'add network "Lab" 10.1.0.0/16: allows sip',
        'remove network "Old" 10.9.0.0/16',
        "setting firewall_enabled: False → True",
    ]
    assert describe_changes(before, before) == []
    assert describe_changes(None, after) == [
        "Nothing was applied yet: the whole configuration will be loaded."
    ]


def test_admin_access_reads_the_applied_services_only(svc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``apply`` names the administrator's service from the applied configuration,
    without reading its networks: the same answer as the whole configuration
    gives, before the first apply and after it; nothing read without SSH_CLIENT."""
    from pbxfw.usecases.config import document_of, stored_configuration
    from pbxfw.usecases.firewall import AdminAccess, FirewallService

    fw = FirewallService(svc.store, tmp_path / "state")
    values = [None, "", " ", "192.0.2.5", "192.0.2.5 40000 22", "192.0.2.5 40000 2222", "x y z"]

    def same_as_whole() -> None:
        config = fw.applied_configuration()[1]
        for value in values:
            assert fw.admin_access(value) == AdminAccess.from_ssh_client(value, config), value

    svc.add_service("admin", "Admin console", tcp="2222")
    same_as_whole()
    assert fw.admin_access("192.0.2.5 40000 2222") == AdminAccess("192.0.2.5", "admin")
    with svc.store.write() as repo:
        document = json.dumps(document_of(stored_configuration(repo)), sort_keys=True)
        repo.set_meta("applied_document", document)
        repo.set_meta("applied_revision", str(repo.revision()))
    svc.remove_service("admin")  # stored, not applied: the kernel still serves it
    same_as_whole()
    assert fw.admin_access("192.0.2.5 40000 2222") == AdminAccess("192.0.2.5", "admin")
    with svc.store.write() as repo:
        repo.set_meta("applied_document", "not json")
    assert fw.admin_access(None) is None
    with pytest.raises(ValidationError, match="applied configuration is unreadable"):
        fw.admin_access("192.0.2.5 40000 22")
