"""The web admin page and the REST API (``pbxfw serve``).

Public surface::

    create_app(store, *, applier=None, secret_key=None, web_log=..., clock=time.time) -> FastAPI
    serve(store, host="127.0.0.1", port=8080, *, applier=None, secret_key=None, ...)
    Applier   the protocol the dataplane implements for Apply / Keep / Roll back

Module map: ``app`` (factory, error mapping, middleware), ``api/`` (one
router per resource under ``/api/v1``), ``pages`` (the server-rendered
page), ``deps`` (dependency aliases, the Applier protocol), ``schemas``
(the API's shapes), ``security`` (signed tokens, sessions, CSRF, the record
of failed logins). See docs/web.md.
"""

from pbxfw.web.app import create_app, serve
from pbxfw.web.deps import Applier

__all__ = ["Applier", "create_app", "serve"]
