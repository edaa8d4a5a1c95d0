"""Real receivers for the notification tests: an HTTP server in a thread and an
SMTP server (aiosmtpd) on loopback, with STARTTLS or TLS from the start, AUTH,
and a test CA made by openssl.

Every server is stopped by its fixture; a receiver told to hang releases its
handlers when stopped (no thread outlives the test).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message as MailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "MAIL_PASSWORD",
    "MAIL_USER",
    "Certs",
    "Mailbox",
    "Receiver",
    "certs",
    "receiver",
    "smtp_ssl",
    "smtp_starttls",
]

MAIL_USER, MAIL_PASSWORD = "pbx", "s3cret:pass/word"


class Receiver:
    """A local HTTP receiver: records every POST's JSON body; answers ``status``
    after ``delay`` seconds (``hang``: never, until stopped)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 200
        self.hang = False
        self.released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver._lock:
                    receiver.bodies.append(body)
                    receiver.paths.append(self.path)
                if receiver.hang:
                    receiver.released.wait(60)  # bounded; released at stop
                    return
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)

    def wait(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.received()) < count:
            time.sleep(0.02)
        return self.received()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@dataclass(frozen=True)
class Certs:
    """A test CA and a server certificate for 127.0.0.1 and localhost it signed."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("certs")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, cwd=folder)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pbxfw test CA",
        "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "server.key", "-out", "server.csr",
    )  # fmt: skip
    (folder / "ext.cnf").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf",
    )  # fmt: skip
    return Certs(folder / "ca.pem", folder / "server.pem", folder / "server.key")


@dataclass
class Mailbox:
    """What the SMTP server took: parsed messages, the envelope and the login used."""

    port: int = 0
    messages: list[MailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    #: the connection was encrypted when the message came in
    secure: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.messages.append(message_from_bytes(envelope.original_content or b""))
        self.recipients.append(list(envelope.rcpt_tos))
        transport = server.transport
        self.secure.append(
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        return "250 OK"

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == MAIL_USER
            and data.password.decode() == MAIL_PASSWORD
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)

    def wait(self, count: int, timeout: float = 10.0) -> list[MailMessage]:
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.messages) < count:
            time.sleep(0.02)
        return list(self.messages)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_starttls(certs: Certs) -> Iterator[Mailbox]:
    """SMTP on loopback that requires STARTTLS before AUTH and before mail."""
    box = Mailbox(port=_free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        tls_context=certs.server_context(),
        require_starttls=True,
        authenticator=box.authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def smtp_ssl(certs: Certs) -> Iterator[Mailbox]:
    """SMTP over TLS from the start (what port 465 speaks), with AUTH."""
    box = Mailbox(port=_free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        ssl_context=certs.server_context(),
        authenticator=box.authenticate,
        # aiosmtpd does not count TLS from the start as TLS for AUTH: AUTH is
        # offered on this connection (it is encrypted) and checked, and the
        # test asserts the login.
        auth_require_tls=False,
    )
    controller.start()
    yield box
    controller.stop()
