"""pbxfw in the lab: its database, its CLI and its agent inside the PBX namespace."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .monitor import BanMonitor, nft_json

PBXFW = str(Path(sys.executable).parent / "pbxfw")


class PbxfwCommandFailed(AssertionError):
    pass


@dataclass
class Firewall:
    db: Path
    workdir: Path
    netns: str
    monitor: BanMonitor
    agent: subprocess.Popen[bytes] | None = None
    agent_log: Path | None = None

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("SSH_CLIENT", "SSH_CONNECTION")}
        env["PBXFW_DB"] = str(self.db)
        return env

    def cli(self, *args: str, timeout: float = 60) -> str:
        """``pbxfw ARGS --db DB``; its stdout. A failure fails the test and
        says which command of the contract is missing or broken."""
        argv = [PBXFW, *args, "--db", str(self.db)]
        result = subprocess.run(
            argv,
            cwd=self.workdir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise PbxfwCommandFailed(
                f"`pbxfw {' '.join(args)} --db DB` failed with exit {result.returncode}:\n"
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result.stdout

    def bans(self) -> list[dict[str, Any]]:
        """``pbxfw bans list --json``."""
        doc = json.loads(self.cli("bans", "list", "--json") or "[]")
        if isinstance(doc, dict):
            doc = doc.get("bans", [])
        return list(doc)

    def banned_addresses(self) -> set[str]:
        return {str(b["address"]).removesuffix("/32").removesuffix("/128") for b in self.bans()}

    def apply(self) -> None:
        self.cli("apply", "--netns", self.netns)

    def start_agent(self, timeout: float = 20) -> None:
        self.agent_log = self.workdir / "agent.log"
        log = open(self.agent_log, "ab")  # noqa: SIM115 - kept open by the child
        self.agent = subprocess.Popen(
            [PBXFW, "agent", "--netns", self.netns, "--db", str(self.db)],
            cwd=self.workdir,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.agent.poll() is not None:
                raise PbxfwCommandFailed(
                    f"`pbxfw agent --netns NS --db DB` exited with {self.agent.returncode}:\n"
                    f"{self.agent_log.read_text(errors='replace')[-2000:]}"
                )
            if self.table_ready():
                return
            time.sleep(0.1)
        raise PbxfwCommandFailed(
            f"`pbxfw agent --netns NS` did not load table inet pbxfw (ban sets and sip_rate) "
            f"in {timeout} s:\n{self.agent_log.read_text(errors='replace')[-2000:]}"
        )

    def table_ready(self) -> bool:
        names = set()
        for item in nft_json(self.netns, "table", "inet", "pbxfw").get("nftables", []):
            for kind in ("set", "chain"):
                if kind in item:
                    names.add(item[kind]["name"])
        return {"ban_asterisk_v4", "never_block_v4", "bans", "sip_rate"} <= names

    def stop(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.terminate()
            try:
                self.agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.agent.wait(timeout=5)
        self.monitor.close()

    def agent_tail(self) -> str:
        if self.agent_log is None or not self.agent_log.exists():
            return ""
        return self.agent_log.read_text(errors="replace")[-3000:]
