"""The README's examples work verbatim: each ``$ pbxfw …`` line of its console block."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.kernel.lab import require_kernel

README = Path(__file__).parent.parent / "README.md"


def readme_blocks() -> list[list[str]]:
    blocks = re.findall(r"```console\n(.*?)```", README.read_text(), re.S)
    return [[line[2:] for line in block.splitlines() if line.startswith("$ ")] for block in blocks]


def readme_commands() -> list[str]:
    return [command for block in readme_blocks() for command in block]


def test_readme_has_the_two_commands_first() -> None:
    text = README.read_text()
    quick = text.index("## Quick start")
    assert (
        text.index("make run", quick)
        < text.index("make test", quick)
        < text.index("## ", quick + 5)
    )


@pytest.mark.kernel
def test_readme_examples_run_verbatim(tmp_path: Path) -> None:
    """Both console blocks; the second applies in the namespace `pbxfw-sandbox`."""
    require_kernel()
    commands = readme_commands()
    assert len(commands) >= 15
    created = (
        subprocess.run(["ip", "netns", "add", "pbxfw-sandbox"], capture_output=True).returncode == 0
    )
    try:
        _run_all(commands, tmp_path)
    finally:
        subprocess.run(
            ["ip", "netns", "exec", "pbxfw-sandbox", "nft", "delete", "table", "inet", "pbxfw"],
            capture_output=True,
        )
        if created:
            subprocess.run(["ip", "netns", "del", "pbxfw-sandbox"], capture_output=True)


def _run_all(commands: list[str], tmp_path: Path) -> None:
    bindir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("PBXFW_DB", "SSH_CLIENT")}
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    for command in commands:
        assert shlex.split(command)[0] == "pbxfw"
        result = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
    assert (tmp_path / "var" / "pbxfw.db").exists()
