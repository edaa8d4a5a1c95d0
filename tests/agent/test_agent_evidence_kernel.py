"""The evidence behind a ban, end to end (issue 19): a real ``pbxfw agent`` tails
real log files in a network namespace, bans an address, and the real
``pbxfw bans show`` prints the lines that caused it with their file and line
number, as the files hold them; ``--json`` gives the same; once the ban is
removed, its evidence is gone too. Both engines (``tests/agent/``).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.agent.agent_process import PBXFW, start_agent, stop_agent, wait_until
from tests.kernel.lab import Lab, require_kernel

PBX = "10.79.2.1"
ATTACKER = "198.51.100.77"
SECOND = "198.51.100.78"

pytestmark = pytest.mark.kernel


def _pbxfw(db: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PBXFW_STATE_DIR": str(tmp / "state")}
    return subprocess.run(
        [PBXFW, *args, "--db", db], capture_output=True, text=True, timeout=60, env=environ
    )


def _fail(tmp: Path, count: int, source: str = ATTACKER) -> None:
    """``count`` PJSIP failures as Asterisk writes them: a NOTICE line in
    messages and a SECURITY line in security_log (one attempt, counted once),
    between lines of normal traffic, so line numbers are not just counts."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with (
        open(tmp / "messages", "a") as messages,
        open(tmp / "security_log", "a") as security,
    ):
        for n in range(count):
            messages.write(f"[{stamp}] VERBOSE[3] pbx.c: a call from a phone that works {n}\n")
            messages.write(
                f"[{stamp}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
                f"'<sip:101@{PBX}>' failed for '{source}:5060' (callid: call-{source}-{n}) - "
                "Failed to authenticate\n"
            )
            security.write(
                f'[{stamp}] SECURITY[2] res_security_log.c: SecurityEvent="ChallengeResponseFailed",'
                f'EventTV="x",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="101",'
                f'SessionID="call-{source}-{n}",LocalAddress="IPV4/UDP/{PBX}/5060",'
                f'RemoteAddress="IPV4/UDP/{source}/5060",Challenge="c",Response="r",'
                'ExpectedResponse=""\n'
            )


def _check_lines(tmp: Path, ban: dict[str, object], source: str, stdout: str) -> None:
    evidence = ban["evidence"]
    assert isinstance(evidence, dict)
    lines = evidence["lines"]
    assert len(lines) == 4 and evidence["lost"] == 0
    files = {name: (tmp / name).read_text().splitlines() for name in ("messages", "security_log")}
    for line in lines:
        # The file and line number point at the very line, as the file holds it.
        path = Path(line["file"])
        assert path.parent == tmp
        assert files[path.name][line["line"] - 1] == line["text"]
        assert source in line["text"]
        assert f"{line['file']}:{line['line']} " in stdout
    # One line per attempt: the NOTICE and SECURITY lines of one attempt count once.
    attempts = {line["text"].split(f"call-{source}-")[1][0] for line in lines}
    assert attempts == {"0", "1", "2", "3"}


def test_bans_show_prints_the_lines_with_file_and_line_and_they_go_with_the_ban(
    tmp_path: Path, db_url: str
) -> None:
    require_kernel()
    with Lab(f"ev{os.getpid() % 10000}") as lab:
        pbx = lab.namespace("pbx")
        for name in ("messages", "security_log"):
            (tmp_path / name).touch()
        assert _pbxfw(db_url, tmp_path, "init").returncode == 0
        settings = [
            "ips_maxretry=4",
            f"log_asterisk_messages={tmp_path / 'messages'}",
            f"log_asterisk_security={tmp_path / 'security_log'}",
            f"log_ssh={tmp_path / 'auth.log'}",
            f"log_web={tmp_path / 'nginx.log'}",
            "asterisk_config_dir=",
        ]
        assert _pbxfw(db_url, tmp_path, "settings", "set", *settings).returncode == 0

        def shown(source: str) -> bool:
            return _pbxfw(db_url, tmp_path, "bans", "show", source).returncode == 0

        agent = start_agent(pbx, db_url, tmp_path)
        try:
            assert wait_until(lambda: "pbxfw" in lab.nft(pbx, "list", "tables"), 15) is not None
            _fail(tmp_path, 4)
            banned = wait_until(lambda: shown(ATTACKER), 10, step=0.2)
            assert banned is not None, (tmp_path / "agent.log").read_text()
            assert ATTACKER in lab.nft(pbx, "list", "set", "inet", "pbxfw", "ban_asterisk_v4")
            time.sleep(0.5)  # the read positions are stored after the ban
        finally:
            stop_agent(agent)

        text = _pbxfw(db_url, tmp_path, "bans", "show", ATTACKER)
        assert text.returncode == 0, text.stderr
        assert "jail asterisk, origin jail:asterisk" in text.stdout
        assert "rule: jail asterisk, 4 failures within 3600 s" in text.stdout
        answer = _pbxfw(db_url, tmp_path, "bans", "show", ATTACKER, "--json")
        [ban] = json.loads(answer.stdout)
        _check_lines(tmp_path, ban, ATTACKER, text.stdout)

        # A restarted agent resumes at its stored positions, and still numbers
        # the lines as the files do.
        _fail(tmp_path, 4, SECOND)
        agent = start_agent(pbx, db_url, tmp_path)
        try:
            banned = wait_until(lambda: shown(SECOND), 15, step=0.2)
            assert banned is not None, (tmp_path / "agent.log").read_text()
        finally:
            stop_agent(agent)
        text = _pbxfw(db_url, tmp_path, "bans", "show", SECOND)
        [ban] = json.loads(_pbxfw(db_url, tmp_path, "bans", "show", SECOND, "--json").stdout)
        _check_lines(tmp_path, ban, SECOND, text.stdout)
        assert min(line["line"] for line in ban["evidence"]["lines"]) > 4  # not from 1 again

        removed = _pbxfw(db_url, tmp_path, "bans", "rm", ATTACKER)
        assert removed.returncode == 0, removed.stderr
        gone = _pbxfw(db_url, tmp_path, "bans", "show", ATTACKER)
        assert gone.returncode != 0 and f"{ATTACKER} has no ban stored" in gone.stderr
        engine = sa.create_engine(db_url)
        try:
            with engine.connect() as connection:
                left = connection.execute(sa.text("SELECT count(*) FROM ban_evidence"))
                assert left.scalar_one() == 1  # the second ban's
        finally:
            engine.dispose()
