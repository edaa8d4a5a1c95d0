"""A real Asterisk 22 in a Debian sid chroot, running inside a network namespace.

``ensure_chroot()`` builds the chroot (``scripts/e2e-build-chroot.sh``) or
reuses the cached one; ``Asterisk`` writes its configuration (20 PJSIP
extensions, the log files pbxfw reads), starts it in a namespace and stops it
again — unmounting ``/proc`` and ``/dev`` and killing leftovers whatever
happened.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "e2e-build-chroot.sh"

#: Change this to make every cache rebuild its chroot.
CHROOT_VERSION = "sid-asterisk22-v1"

#: extensions of the office: 101..120
EXTENSIONS = [str(n) for n in range(101, 121)]


def password(ext: str) -> str:
    return f"Pw-{ext}-k9x"


def cache_root() -> Path:
    """Where the chroot is kept between local runs (``PBXFW_E2E_CACHE``)."""
    env = os.environ.get("PBXFW_E2E_CACHE")
    if env:
        return Path(env)
    return Path("/var/cache/pbxfw-e2e")


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    base = os.path.realpath(path)
    found = []
    with open("/proc/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_all(path: Path) -> None:
    for point in mounts_under(path):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@dataclass
class Chroot:
    root: Path
    built: bool  # True: built in this run; False: taken from the cache
    seconds: float  # time spent getting it (build, or just the check)
    version: str  # `asterisk -V` inside


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """One run at a time uses (and builds) the cached chroot."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_chroot() -> tuple[Chroot, contextlib.AbstractContextManager[None]]:
    """The chroot, built when not cached (or ``PBXFW_E2E_REBUILD=1``), and the
    lock the caller holds while it uses it."""
    base = cache_root()
    root = base / CHROOT_VERSION / "root"
    lock = _locked(base / CHROOT_VERSION / "lock")
    lock.__enter__()
    try:
        start = time.monotonic()
        marker = root / ".asterisk-version"
        built = False
        if os.environ.get("PBXFW_E2E_REBUILD") == "1" or not marker.is_file():
            subprocess.run(["bash", str(BUILD_SCRIPT), str(root)], check=True, timeout=420)
            built = True
        unmount_all(root)  # leftovers of a run that was killed
        version = marker.read_text().strip()
        return Chroot(root, built, time.monotonic() - start, version), lock
    except BaseException:
        lock.__exit__(None, None, None)
        raise


# -- configuration -----------------------------------------------------------

LOGGER_CONF = """\
[general]
dateformat=%F %T
[logfiles]
security_log => security
messages => notice,warning,error
"""

# Not pbxfw's defaults (10000-10800): shows the ports come from `asterisk discover`.
RTP_PORTS = (12000, 12400)
RTP_CONF = f"""\
[general]
rtpstart={RTP_PORTS[0]}
rtpend={RTP_PORTS[1]}
"""

# Only what the lab needs: faster start, no modules wanting hardware or
# other services, and no module whose output could mask a missing line.
MODULES_CONF = """\
[modules]
autoload=no
load => res_sorcery_astdb.so
load => res_sorcery_config.so
load => res_sorcery_memory.so
load => res_sorcery_realtime.so
load => res_pjproject.so
load => res_pjsip.so
load => res_pjsip_session.so
load => res_pjsip_authenticator_digest.so
load => res_pjsip_endpoint_identifier_user.so
load => res_pjsip_endpoint_identifier_ip.so
load => res_pjsip_registrar.so
load => res_pjsip_outbound_registration.so
load => res_pjsip_logger.so
load => res_pjsip_options.so
load => res_pjsip_pubsub.so
load => res_pjsip_caller_id.so
load => res_pjsip_nat.so
load => res_security_log.so
load => res_rtp_asterisk.so
load => res_timing_timerfd.so
load => chan_pjsip.so
load => codec_ulaw.so
load => format_wav.so
load => pbx_config.so
load => app_dial.so
load => app_echo.so
load => func_callerid.so
"""

EXTENSIONS_CONF = """\
[general]
static=yes
writeprotect=no
[office]
exten => _1XX,1,Dial(PJSIP/${EXTEN},20)
exten => 600,1,Answer()
 same => n,Echo()
"""


def pjsip_conf() -> str:
    parts = [
        "[global]\ntype=global\nuser_agent=pbxfw-e2e-pbx\n",
        "[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n",
    ]
    for ext in EXTENSIONS:
        parts.append(
            f"[{ext}]\ntype=endpoint\ncontext=office\ndisallow=all\nallow=ulaw\n"
            f"auth={ext}\naors={ext}\n\n"
            f"[{ext}]\ntype=auth\nauth_type=userpass\nusername={ext}\npassword={password(ext)}\n\n"
            f"[{ext}]\ntype=aor\nmax_contacts=1\nremove_existing=yes\n"
        )
    return "\n".join(parts)


class Asterisk:
    """Asterisk inside ``netns``, chrooted into ``root``."""

    LOGS = ("security_log", "messages")

    def __init__(self, root: Path, netns: str) -> None:
        self.root = root
        self.netns = netns
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_seconds = 0.0

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "asterisk"

    @property
    def logdir(self) -> Path:
        return self.root / "var" / "log" / "asterisk"

    def log(self, name: str) -> Path:
        return self.logdir / name

    def write_config(self) -> None:
        files = {
            "logger.conf": LOGGER_CONF,
            "rtp.conf": RTP_CONF,
            "pjsip.conf": pjsip_conf(),
            "modules.conf": MODULES_CONF,
            "extensions.conf": EXTENSIONS_CONF,
        }
        for name, text in files.items():
            (self.etc / name).write_text(text)

    def _chroot(self, *argv: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["chroot", str(self.root), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cli(self, command: str, timeout: float = 10.0) -> str:
        """``asterisk -rx COMMAND``; its output."""
        result = self._chroot("asterisk", "-rx", command, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r}: {result.stderr.strip()}")
        return result.stdout

    def reset_logs(self) -> None:
        """Empty log folder: the run's lines only."""
        self.logdir.mkdir(parents=True, exist_ok=True)
        for entry in self.logdir.iterdir():
            if entry.is_file():
                entry.unlink()

    def start(self, timeout: float = 60.0) -> None:
        started = time.monotonic()
        self.write_config()
        self.reset_logs()
        for sub in ("proc", "dev"):
            target = self.root / sub
            target.mkdir(exist_ok=True)
            if not any(m == os.path.realpath(target) for m in mounts_under(target)):
                subprocess.run(["mount", "--bind", f"/{sub}", str(target)], check=True)
        run_dir = self.root / "run" / "asterisk"
        run_dir.mkdir(parents=True, exist_ok=True)
        for path in (
            run_dir,
            self.logdir,
            self.root / "var/lib/asterisk",
            self.root / "var/spool/asterisk",
        ):
            self._chroot("chown", "-R", "asterisk:asterisk", "/" + str(path.relative_to(self.root)))
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                "chroot",
                str(self.root),
                "asterisk",
                "-f",
                "-U",
                "asterisk",
                "-G",
                "asterisk",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"asterisk exited at start ({self.proc.returncode})")
            result = self._chroot("asterisk", "-rx", "core waitfullybooted", timeout=timeout)
            if result.returncode == 0 and "fully booted" in result.stdout.lower():
                break
            if time.monotonic() > deadline:
                raise RuntimeError("asterisk did not boot in time")
            time.sleep(0.2)
        # the transport is up once endpoints are listed
        while "101" not in self.cli("pjsip show endpoints"):
            if time.monotonic() > deadline:
                raise RuntimeError("asterisk loaded no PJSIP endpoints")
            time.sleep(0.2)
        self.started_seconds = time.monotonic() - started

    def stop(self) -> None:
        """Clean shutdown, then kill what is left, then unmount. Never raises."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self._chroot("asterisk", "-rx", "core stop now", timeout=10)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
        self.kill_leftovers()
        unmount_all(self.root / "proc")
        unmount_all(self.root / "dev")
        unmount_all(self.root)

    def kill_leftovers(self) -> None:
        """Any process whose root is this chroot (asterisk, a stray -rx)."""
        real = os.path.realpath(self.root)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "root") == real:
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue

    def registered(self) -> set[str]:
        """Extensions with a contact right now (``pjsip show contacts``)."""
        out = self.cli("pjsip show contacts")
        found = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "Contact:" and "/" in parts[1]:
                found.add(parts[1].split("/", 1)[0])
        return found
