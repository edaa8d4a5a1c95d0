"""The real ``pbxfw agent`` in a namespace, a real log file and a real HTTP receiver
that takes each request and never answers (issue 19 acceptance): while 1,000
attackers are banned the channel times out, yet every ban is in the kernel's
set and in the store at once, the bans are told in one batched message (not
1,000), and ``pbxfw notify list`` reports the channel's error."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.agent.agent_process import PBXFW, start_agent, stop_agent, wait_until
from tests.kernel.lab import Lab, require_kernel
from tests.notify_servers import Receiver, receiver

__all__ = ["receiver"]  # the fixture, used by name

pytestmark = pytest.mark.kernel

PBX = "10.79.2.1"
COUNT = 1000


def pbxfw(db: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PBXFW_STATE_DIR": str(tmp / "state")}
    return subprocess.run(
        [PBXFW, *args, "--db", db], capture_output=True, text=True, timeout=60, env=environ
    )


def kernel_bans(lab: Lab, ns: str) -> int:
    listed = json.loads(lab.nft(ns, "-j", "list", "set", "inet", "pbxfw", "ban_asterisk_v4"))
    for item in listed["nftables"]:
        if "set" in item:
            return len(item["set"].get("elem", []))
    return 0


def test_a_hanging_channel_never_holds_1000_bans_back(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    require_kernel()
    receiver.hang = True
    messages = tmp_path / "messages"
    messages.touch()
    assert pbxfw(db_url, tmp_path, "init").returncode == 0
    settings = [
        "ips_maxretry=3",
        f"log_asterisk_messages={messages}",
        f"log_asterisk_security={tmp_path / 'security_log'}",
        f"log_ssh={tmp_path / 'auth.log'}",
        f"log_web={tmp_path / 'nginx.log'}",
        "asterisk_config_dir=",
    ]
    assert pbxfw(db_url, tmp_path, "settings", "set", *settings).returncode == 0
    added = pbxfw(db_url, tmp_path, "notify", "add", "hook", receiver.url + "/hook")
    assert added.returncode == 0, added.stderr
    with Lab(f"nt{os.getpid() % 10000}") as lab:
        pbx = lab.namespace("pbx")
        agent = start_agent(pbx, db_url, tmp_path)
        try:
            tables = lambda: "pbxfw" in lab.nft(pbx, "list", "tables")  # noqa: E731
            assert wait_until(tables, 20) is not None, (tmp_path / "agent.log").read_text()
            time.sleep(2)  # past the agent's start (its sender threads get ready meanwhile)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            lines = "".join(
                f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
                f"'<sip:101@{PBX}>' failed for '10.{100 + i // 250}.{i % 250}.7:5060' "
                f"(callid: c{i}) - Failed to authenticate\n" * 3
                for i in range(COUNT)
            )
            began = time.monotonic()
            with messages.open("a") as f:
                f.write(lines)
            took = wait_until(lambda: kernel_bans(lab, pbx) == COUNT, 30, step=0.1)
            assert took is not None, (kernel_bans(lab, pbx), (tmp_path / "agent.log").read_text())
            stored = json.loads(pbxfw(db_url, tmp_path, "bans", "list", "--json").stdout)
            assert len(stored) == COUNT
            print(f"1,000 bans in the kernel {time.monotonic() - began:.2f} s after the lines")

            # The channel took the first batch's request and hangs: one message
            # for many bans (the rest wait for the minute), never one per ban.
            got = receiver.wait(1)
            assert len(got) == 1, (tmp_path / "agent.log").read_text()[-3000:]
            first = got[0]
            assert first["event"] == "bans" and 1 <= first["details"]["count"] <= COUNT
            assert len(first["details"]["top_sources"]) == 10

            def reported() -> bool:
                listed = json.loads(pbxfw(db_url, tmp_path, "notify", "list", "--json").stdout)
                return bool(listed[0]["last_error"])

            # 10 s per attempt (the default timeout), then the error is stored.
            assert wait_until(reported, 40, step=0.5) is not None
            [channel] = json.loads(pbxfw(db_url, tmp_path, "notify", "list", "--json").stdout)
            assert channel["last_error"] == "timed out after 10 s"
            assert {b["id"] for b in receiver.received()} == {first["id"]}  # retries, same id
            assert agent.poll() is None
        finally:
            stop_agent(agent)
