"""``GET /metrics``: the Prometheus text format, for a scraper holding the metrics token.

The token is the content of a file (``pbxfw serve --metrics-token-file``,
default ``metrics-token`` in the state folder, beside ``web-secret.key``), sent
as ``Authorization: Bearer TOKEN`` (Prometheus: ``authorization:
credentials_file:``). Without a token configured, or without the right one,
the answer is 401: the metrics name attackers' jails and the fleet's nodes.
The families are those of the agents' own ``/metrics``, read from the
database for every node (usecases.metrics; docs/observability.md, "Metrics").
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from pbxfw.storage.repository import Store

__all__ = ["install_metrics"]


def install_metrics(
    app: FastAPI, store: Store, clock: Callable[[], float], token: str | None
) -> None:
    """Add ``GET /metrics`` to ``app``, answering only a bearer of ``token``."""
    made: list[object] = []  # the registry, made at the first scrape

    def scrape_text() -> tuple[bytes, str]:
        # prometheus_client is loaded at the first scrape, not at start-up.
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from pbxfw.usecases.metrics import registry

        if not made:
            made.append(registry(store, clock))
        return generate_latest(made[0]), CONTENT_TYPE_LATEST  # type: ignore[arg-type]

    @app.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if token is None:
            return _unauthorized(
                "no metrics token is configured: write one to the file given by "
                "`pbxfw serve --metrics-token-file` (default: metrics-token in the state folder)"
            )
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.strip().encode(), token.encode()
        ):
            return _unauthorized("send the metrics token: Authorization: Bearer TOKEN")
        body, content_type = await run_in_threadpool(scrape_text)
        return Response(body, media_type=content_type)


def _unauthorized(detail: str) -> Response:
    return PlainTextResponse(
        detail + "\n", status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'}
    )
