"""``pbxfw history restore`` goes through the usual confirm window, in a namespace
(issue 19): the restored revision is staged, `apply --confirm` loads it, and
an unconfirmed restore rolls the kernel and storage back (recorded as pbxfw's
own entry); a confirmed one stays. Real processes of the CLI, with
``SUDO_USER`` as sudo sets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kernel.lab import Lab, require_kernel

PBXFW = str(Path(sys.executable).with_name("pbxfw"))
pytestmark = pytest.mark.kernel


def run(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUDO_USER": "alice"}
    env.pop("SSH_CLIENT", None)
    return subprocess.run(
        [PBXFW, *args, "--db", db], capture_output=True, text=True, timeout=60, env=env
    )


def ssh_allowed(lab: Lab, ns: str) -> str:
    return lab.nft(ns, "list", "set", "inet", "pbxfw", "allow_ssh_v4")


def test_a_restore_is_applied_through_the_confirm_window(
    db_url: str, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_kernel()
    monkeypatch.setenv("PBXFW_STATE_DIR", str(state_dir))
    with Lab(f"hr{os.getpid() % 10000}") as lab:
        ns = lab.namespace("pbx")
        assert run(db_url, "init").returncode == 0
        assert run(db_url, "settings", "set", "firewall_enabled=true").returncode == 0
        assert (
            run(db_url, "network", "add", "Office", "10.0.0.0/8", "--allow", "ssh").returncode == 0
        )
        assert run(db_url, "apply", "--netns", ns).returncode == 0
        assert "10.0.0.0/8" in ssh_allowed(lab, ns)
        allowed = json.loads(run(db_url, "history", "--json", "--limit", "1").stdout)[0]

        assert run(db_url, "network", "set", "Office", "--block", "ssh").returncode == 0
        assert run(db_url, "apply", "--netns", ns).returncode == 0
        assert "10.0.0.0/8" not in ssh_allowed(lab, ns)
        blocked = json.loads(run(db_url, "history", "--json", "--limit", "1").stdout)[0]
        assert blocked["summary"] == "network Office: ssh allow → block"
        assert blocked["actor"].endswith("(sudo: alice)") and blocked["via"] == "cli"

        # Restored and applied, but not confirmed: both come back by themselves.
        restored = run(db_url, "history", "restore", str(allowed["rev"]))
        assert restored.returncode == 0, restored.stderr
        assert run(db_url, "apply", "--netns", ns, "--confirm", "1").returncode == 0
        assert "10.0.0.0/8" in ssh_allowed(lab, ns)
        time.sleep(2.5)
        assert "10.0.0.0/8" not in ssh_allowed(lab, ns)
        entries = json.loads(run(db_url, "history", "--json", "--limit", "3").stdout)
        assert (entries[0]["actor"], entries[0]["via"]) == ("pbxfw", "system")
        assert entries[0]["summary"].startswith("not confirmed, back to the last confirmed: ")
        assert entries[1]["summary"].startswith(f"restore of revision {allowed['rev']}: ")
        office = [n for n in json.loads(run(db_url, "export").stdout)["networks"]]
        assert {n["name"]: n["services"]["ssh"] for n in office}["Office"] == "block"

        # Restored, applied and confirmed: it stays.
        assert run(db_url, "history", "restore", str(allowed["rev"])).returncode == 0
        assert run(db_url, "apply", "--netns", ns, "--confirm", "30").returncode == 0
        assert run(db_url, "confirm", "--netns", ns).stdout.startswith("confirmed")
        assert "10.0.0.0/8" in ssh_allowed(lab, ns)
        shown = run(db_url, "history", "show", str(blocked["rev"]))
        assert "  network Office: ssh allow → block" in shown.stdout
