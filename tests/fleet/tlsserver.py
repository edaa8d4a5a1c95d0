"""A PostgreSQL server set up as docs/fleet.md tells an operator: TCP, TLS, passwords.

The session's test server (tests/pgserver.py) listens on a unix socket with
``trust``; the walk-through needs what a real fleet has: a TCP listener on
127.0.0.1 (a free port), ``ssl = on`` with a certificate for ``localhost``
signed by a CA made here with openssl, ``hostssl … scram-sha-256`` in
pg_hba.conf for every TCP client (a clear-text connection is refused), and
the unix socket with ``trust`` for the ``postgres`` user only (the
administrator's ``psql``, ``pg_dump``, ``pg_restore`` on the server itself).
Everything lives in one temporary folder; ``stop()`` removes it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.pgserver import pg_binaries

__all__ = ["TlsPgServer"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)


class TlsPgServer:
    """One PostgreSQL cluster with TLS on 127.0.0.1:``port``; ``ca`` is its CA's certificate."""

    def __init__(self) -> None:
        binaries = pg_binaries()
        assert binaries is not None
        self.bin = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="pbxfw-pgtls-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self.port = _free_port()
        self.ca = self.folder / "ca.pem"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._certificates()
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
                 "--auth-host=reject", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
                 "--no-instructions")  # fmt: skip
        for name in ("server.crt", "server.key"):
            shutil.copy(self.folder / name, self.data / name)
        (self.data / "pg_hba.conf").write_text(
            "# TYPE  DATABASE  USER      ADDRESS       METHOD\n"
            "local   all       postgres                trust\n"
            "hostssl all       all       127.0.0.1/32  scram-sha-256\n"
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\n"
                "ssl = on\n"
                "ssl_cert_file = 'server.crt'\n"
                "ssl_key_file = 'server.key'\n"
                "password_encryption = scram-sha-256\n"
                "fsync = off\n"
                "max_connections = 100\n"
            )
        if self._as:
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.data)], check=True)
        self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log))

    def _certificates(self) -> None:
        """A CA, and a server certificate for ``localhost`` (the name the URL uses) signed by it."""
        folder = self.folder
        _openssl(folder, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=pbxfw test CA", "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
        _openssl(folder, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                 "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
        (folder / "san.ext").write_text("subjectAltName=DNS:localhost\n")
        _openssl(folder, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey",
                 "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
                 "-out", "server.crt")  # fmt: skip
        os.chmod(folder / "server.key", 0o600)
        os.chmod(self.ca, 0o644)

    def run(
        self, program: str, *args: str, cwd: Path | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``program`` of the server's binaries as the server's user, on its unix socket."""
        environ = {**os.environ, "PGHOST": str(self.folder), "PGPORT": str(self.port)}
        result = subprocess.run(
            [*self._as, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=cwd or self.folder,
            env=environ,
            input=input,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {result.stderr}{result.stdout}\n{log[-3000:]}")
        return result

    def shell(self, command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        """A shell line of the documentation run as the server's user, the binaries first
        on the path (``pg_dump``, ``createdb``…), on the server's unix socket."""
        environ = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "PGHOST": str(self.folder),
            "PGPORT": str(self.port),
            "HOME": str(cwd),
        }
        argv = [*self._as, "env", *(f"{k}={v}" for k, v in environ.items()), "sh", "-c", command]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)

    def stop(self) -> None:
        try:
            self.run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
