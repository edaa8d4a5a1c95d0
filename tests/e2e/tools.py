"""The phones and the attackers: SIPp scenarios and sipvicious, run in namespaces.

Every tool runs in the foreground of its own process with a bounded count
(``-m``) and a timeout, so it ends by itself; ``Tool.wait`` collects its
output. Scenario files are in ``tests/e2e/sipp/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .pbx import EXTENSIONS, password

SCENARIOS = Path(__file__).resolve().parent / "sipp"


def sipvicious_bin(name: str = "sipvicious_svcrack") -> str | None:
    """The sipvicious command next to this interpreter (the venv), else on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    return shutil.which(name)


def missing_tools() -> list[str]:
    """What the suite needs and this machine lacks (and where it comes from)."""
    missing = []
    if shutil.which("sipp") is None:
        missing.append("sipp (Debian package sip-tester)")
    if sipvicious_bin() is None:
        missing.append("sipvicious_svcrack (PyPI package sipvicious)")
    if shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        missing.append("debootstrap (Debian package debootstrap)")
    return missing


@dataclass
class Tool:
    """A running tool; ``wait()`` returns when it ended (or was killed at its timeout)."""

    name: str
    argv: list[str]
    proc: subprocess.Popen[str]
    workdir: Path
    timeout: float
    started: float = field(default_factory=time.time)
    ended: float | None = None
    returncode: int | None = None
    output: str = ""

    def wait(self) -> Tool:
        if self.ended is not None:
            return self
        left = max(1.0, self.started + self.timeout - time.time())
        try:
            self.output, _ = self.proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate(timeout=5)
            self.output += f"\n[killed after {self.timeout} s]"
        self.ended = time.time()
        self.returncode = self.proc.returncode
        return self

    @property
    def seconds(self) -> float:
        return (self.ended or time.time()) - self.started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


def _spawn(name: str, ns: str, argv: Sequence[str], workdir: Path, timeout: float) -> Tool:
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, *argv],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TERM": "dumb"},
    )
    return Tool(name, list(argv), proc, workdir, timeout)


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    """A SIPp injection file read in order (``SEQUENTIAL``)."""
    path.write_text("SEQUENTIAL\n" + "".join(";".join(r) + "\n" for r in rows))
    return path


def auth_field(ext: str, secret: str) -> str:
    return f"[authentication username={ext} password={secret}]"


class Sipp:
    """SIPp runs from one namespace and source address."""

    def __init__(self, ns: str, src: str, pbx: str, workdir: Path) -> None:
        self.ns, self.src, self.pbx, self.workdir = ns, src, pbx, workdir

    def _run(
        self,
        name: str,
        scenario: str,
        rows: Sequence[Sequence[str]],
        *,
        port: int,
        calls: int,
        rate: float,
        timeout: float,
        extra: Sequence[str] = (),
    ) -> Tool:
        work = self.workdir / name
        work.mkdir(parents=True, exist_ok=True)
        csv = write_csv(work / "inject.csv", rows)
        argv = [
            "sipp",
            "-sf",
            str(SCENARIOS / scenario),
            "-inf",
            str(csv),
            "-i",
            self.src,
            "-p",
            str(port),
            "-m",
            str(calls),
            "-r",
            str(rate),
            "-nostdin",
            "-nd",  # no default behaviours: no BYE/CANCEL on aborted calls
            "-trace_logs",
            "-log_file",
            str(work / "messages.log"),
            "-trace_err",
            "-error_file",
            str(work / "errors.log"),
            "-timeout",
            f"{int(timeout)}s",
            *extra,
            f"{self.pbx}:5060",
        ]
        return _spawn(name, self.ns, argv, work, timeout + 10)

    def register(
        self,
        name: str,
        phones: Sequence[tuple[str, str]],
        *,
        loops: int = 1,
        interval_ms: int = 5000,
        port: int = 5062,
        rate: float = 10,
    ) -> Tool:
        """Phones ``(ext, password)`` register with digest auth, ``loops`` times
        each, ``interval_ms`` apart. ``registrations_ok`` counts the 200 OKs."""
        rows = [(ext, auth_field(ext, pw)) for ext, pw in phones]
        duration = len(phones) / rate + loops * (interval_ms / 1000 + 1) + 10
        return self._run(
            name,
            "register.xml",
            rows,
            port=port,
            calls=len(phones),
            rate=rate,
            timeout=duration,
            extra=[
                "-set",
                "loops",
                str(loops),
                "-set",
                "interval",
                str(interval_ms),
                "-recv_timeout",
                "8000",
            ],
        )

    def stale(self, name: str, ext: str, wrong: str, *, attempts: int, port: int = 5064) -> Tool:
        """A phone with a stale password: ``attempts`` authenticated REGISTERs,
        each refused, 300 ms apart; it stops when Asterisk no longer answers."""
        return self._run(
            name,
            "stale.xml",
            [(ext, auth_field(ext, wrong))],
            port=port,
            calls=1,
            rate=1,
            timeout=attempts * 1.5 + 10,
            extra=["-set", "loops", str(attempts), "-set", "interval", "300"],
        )

    def enumerate(
        self, name: str, extensions: Sequence[str], *, rate: float, port: int = 5066
    ) -> Tool:
        """One unanswered-challenge REGISTER per extension, ``rate`` a second."""
        return self._run(
            name,
            "enumerate.xml",
            [(e,) for e in extensions],
            port=port,
            calls=len(extensions),
            rate=rate,
            timeout=len(extensions) / rate + 10,
        )

    def flood(self, name: str, ext: str, *, rate: int, count: int, port: int = 5068) -> Tool:
        """``count`` unauthenticated REGISTERs at ``rate`` a second, fire and forget."""
        return self._run(
            name,
            "flood.xml",
            [(ext,)],
            port=port,
            calls=count,
            rate=rate,
            timeout=count / rate + 10,
            extra=["-l", str(max(count, 1))],
        )


def registrations_ok(tool: Tool) -> list[str]:
    """Extensions of every 200 OK a ``register`` run got, one entry per OK."""
    log = tool.workdir / "messages.log"
    if not log.exists():
        return []
    return [
        line.split()[1]
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("REGOK ")
    ]


def svcrack(
    ns: str, src: str, pbx: str, ext: str, words: Sequence[str], workdir: Path, *, name: str
) -> Tool:
    """sipvicious_svcrack guessing ``ext``'s password from ``words``, one
    guess every 50 ms at most (``-t 0.05``); gives up 3 s after the last answer."""
    work = workdir / name
    work.mkdir(parents=True, exist_ok=True)
    wordlist = work / "words.txt"
    wordlist.write_text("".join(w + "\n" for w in words))
    bin_ = sipvicious_bin()
    assert bin_ is not None
    argv = [
        bin_,
        "-u",
        ext,
        "-d",
        str(wordlist),
        "-b",
        src,
        "-t",
        "0.05",
        "--maximumtime",
        "3",
        pbx,
    ]
    return _spawn(name, ns, argv, work, timeout=40)


def office_phones() -> list[tuple[str, str]]:
    return [(ext, password(ext)) for ext in EXTENSIONS]
