"""The HTTP status API (aiohttp), served by every manager from its own projections.

Every route builds the command's request Struct from the path, query and body, and calls the
same `Router` as NATS (``Router.call``: no second JSON parse). Every response — also aiohttp's
own 404/405/413 — uses the reply envelope with the matching HTTP status. Writes need a token
(``ops.http.auth``). Routes are listed in ``ops.http.routes``.
"""

from __future__ import annotations

import logging

from aiohttp import web

from ops.api.envelope import error_reply
from ops.http import routes, schedules
from ops.http.auth import AUTH, HttpAuth
from ops.http.backend import BACKEND, Backend

__all__ = ["build_app"]

log = logging.getLogger(__name__)

_REASONS = {404: ("not_found", "no such route"), 405: ("invalid", "method not allowed"),
            413: ("too_large", "request body too large")}  # fmt: skip


@web.middleware
async def envelope_errors(request: web.Request, handler: routes.Handler) -> web.StreamResponse:
    """aiohttp's own errors (unknown route, wrong method, body too large) in the envelope."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code, text = _REASONS.get(exc.status, ("invalid", exc.reason))
        body = error_reply(code, f"{text}: {request.method} {request.path}")  # type: ignore[arg-type]
        allow = {k: v for k, v in exc.headers.items() if k == "Allow"}
        return web.Response(body=body, status=exc.status, content_type="application/json",
                            headers=allow)  # fmt: skip
    except Exception:  # a bug: still a reply in the envelope, never a text page
        log.exception("HTTP %s %s failed", request.method, request.path)
        body = error_reply("internal", f"internal error serving {request.method} {request.path}")
        return web.Response(body=body, status=500, content_type="application/json")


def build_app(
    backend: Backend,
    *,
    token: str | None = None,
    auth: HttpAuth | None = None,
    open_reads: bool = False,
    max_body: int = 1024 * 1024,
) -> web.Application:
    """The API for ``backend``. ``auth`` (or just an admin ``token``) decides who may do what;
    ``open_reads`` lets reads through without a token. Bodies over ``max_body`` get 413."""
    app = web.Application(client_max_size=max_body, middlewares=[envelope_errors])
    app[BACKEND] = backend
    app[AUTH] = auth or HttpAuth.from_settings(admin_token=token, open_reads=open_reads)
    routes.add_routes(app)
    schedules.add_routes(app)  # schedules, launch configs, scale policies, scaling (issue 13)
    return app
