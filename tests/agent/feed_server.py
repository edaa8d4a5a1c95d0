"""A real HTTP server on loopback serving blocklist feeds, good and broken (issue 17 tests).

``FeedServer`` runs ``http.server`` in a thread; ``serve(path, Page(...))``
sets what a path answers: a body with a status and headers, an ETag
(answered with 304 when the client sends it back), a body cut short (the
connection closes before Content-Length), a body of any size made on the
fly, or no answer at all (``hang``: the handler waits until the server
stops). Every request is recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FeedServer", "Page"]


@dataclass
class Page:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "text/plain"})
    etag: str = ""
    #: send only this many bytes of the body, then close (Content-Length says all)
    truncate: int | None = None
    #: a body of this many bytes, made while sending (a 50 MB answer)
    size: int = 0
    #: never answer
    hang: bool = False


class FeedServer:
    """``with FeedServer() as server: server.url("/list")``."""

    def __init__(self) -> None:
        self.pages: dict[str, Page] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.stopping = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                owner.requests.append((self.path, dict(self.headers.items())))
                page = owner.pages.get(self.path)
                if page is None:
                    self._send(404, b"not found", {"Content-Type": "text/plain"})
                    return
                if page.hang:
                    owner.stopping.wait(30)
                    return
                if page.etag and self.headers.get("If-None-Match") == page.etag:
                    self.send_response(304)
                    self.send_header("ETag", page.etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = dict(page.headers)
                if page.etag:
                    headers["ETag"] = page.etag
                if page.size:
                    self.send_response(page.status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(page.size))
                    self.end_headers()
                    chunk = b"192.0.2.1\n" * 6553
                    sent = 0
                    try:
                        while sent < page.size and not owner.stopping.is_set():
                            part = chunk[: page.size - sent]
                            self.wfile.write(part)
                            sent += len(part)
                    except OSError:
                        pass  # the client stopped reading at its limit
                    return
                body = page.body
                self.send_response(page.status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if page.truncate is not None:
                    self.wfile.write(body[: page.truncate])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def serve(self, path: str, page: Page) -> None:
        self.pages[path] = page

    def paths(self) -> Iterator[str]:
        return (p for p, _ in self.requests)
