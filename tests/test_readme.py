"""The README's examples work verbatim: each ``$ pbxfw …`` line of its console block."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", README.read_text(), re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_readme_has_the_two_commands_first() -> None:
    text = README.read_text()
    quick = text.index("## Quick start")
    assert text.index("make run", quick) < text.index("make test", quick) < text.index("## ", quick + 5)


def test_readme_examples_run_verbatim(tmp_path: Path) -> None:
    commands = readme_commands()
    assert len(commands) >= 15
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
