"""The pages and documents: the dashboard, the API docs, health, metrics, the OpenAPI document.

::

    GET /                 the dashboard (static/index.html + plain ES modules, no build step)
    GET /docs             the API reference, rendered in the browser from /openapi.json
    GET /static/{file}    the dashboard's modules and styles
    GET /healthz          the process answers (always open)
    GET /readyz           connected, every part running, projections caught up (else 503)
    GET /metrics          Prometheus text format (viewer; ``?streams=0``, ``?agents=0``: without
                          the per-stream, per-agent series)
    GET /openapi.json     OpenAPI 3.1, generated from the route table (ops.http.openapi)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import msgspec
from aiohttp import web

from core.errors import DomainError
from ops.api import requests as R
from ops.api.envelope import error_reply, ok_reply
from ops.http.backend import BACKEND
from ops.http.metrics import CONTENT_TYPE, render
from ops.http.respond import HttpRoute, invalid, json_response, query_values

__all__ = ["OPENAPI", "PAGE_ROUTES", "STATIC", "Health"]

STATIC = Path(__file__).parent / "static"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
          ".svg": "image/svg+xml", ".json": "application/json"}  # fmt: skip


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: Literal["alive", "ready"]
    manager_id: str
    seq: int
    """The last event sequence this manager's projections applied."""


async def healthz(request: web.Request) -> web.Response:
    backend = request.app[BACKEND]
    seq = backend.last_seq
    return json_response(ok_reply(Health(status="alive", manager_id=backend.manager_id, seq=seq),
                                  seq))  # fmt: skip


async def readyz(request: web.Request) -> web.Response:
    backend = request.app[BACKEND]
    why = backend.readiness()
    if why is not None:
        return json_response(error_reply("unavailable", f"not ready: {why}"), 503)
    seq = backend.last_seq
    return json_response(ok_reply(Health(status="ready", manager_id=backend.manager_id, seq=seq),
                                  seq))  # fmt: skip


class MetricsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    streams: bool = True
    """The per-stream series (7 per running stream: 140,000 samples at 20,000 streams)."""
    agents: bool = True
    """The per-agent series (10 per agent)."""


async def metrics(request: web.Request) -> web.Response:
    """The families are built on the loop in chunks; the formatting (most of a large scrape's
    cost) runs in a worker thread, so a scrape never stalls commands (``ops.http.metrics``)."""
    try:
        query = R.convert_request(query_values(request), MetricsQuery)
    except DomainError as exc:
        return invalid(exc)
    built = await request.app[BACKEND].metric_families(agents=query.agents, streams=query.streams)
    body = await asyncio.to_thread(render, built)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


OPENAPI: web.AppKey[bytes] = web.AppKey("openapi", bytes)
"""The OpenAPI document of the app's routes (written by ``ops.http.app.build_app``)."""


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])


def _file(name: str) -> web.StreamResponse:
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or not path.is_file() or path.suffix not in _TYPES:
        return json_response(error_reply("not_found", f"no such file: {name}"), 404)
    return web.FileResponse(path, headers={"Content-Type": _TYPES[path.suffix] + "; charset=utf-8",
                                           "Cache-Control": "no-cache"})  # fmt: skip


async def dashboard(request: web.Request) -> web.StreamResponse:
    return _file("index.html")


async def docs(request: web.Request) -> web.StreamResponse:
    return _file("docs.html")


async def static(request: web.Request) -> web.StreamResponse:
    return _file(request.match_info["name"])


_HTML = {"text/html": {"schema": {"type": "string"}}}

PAGE_ROUTES = [
    HttpRoute("GET", "/", dashboard, "the dashboard", role=None, content=_HTML, errors=(),
              tag="pages"),
    HttpRoute("GET", "/docs", docs, "this API's reference (rendered from /openapi.json)",
              role=None, content=_HTML, errors=(), tag="pages"),
    HttpRoute("GET", "/static/{name}", static, "the dashboard's modules and styles", role=None,
              parameters=({"name": "name", "in": "path", "required": True,
                           "schema": {"type": "string", "pattern": "^[a-z0-9_-]+[.](js|css|html|svg)$"}},),
              content={"text/javascript": {"schema": {"type": "string"}},
                       "text/css": {"schema": {"type": "string"}}},
              errors=(404,), tag="pages"),
    HttpRoute("GET", "/healthz", healthz, "the process is alive", role=None, result=Health,
              errors=(), tag="health"),
    HttpRoute("GET", "/readyz", readyz, "connected to NATS, every part running, projections"
              " caught up (else 503 with the reason)", role=None, result=Health, errors=(503,),
              tag="health"),
    HttpRoute("GET", "/metrics", metrics, "Prometheus metrics (text exposition format)",
              query=MetricsQuery, content={"text/plain": {"schema": {"type": "string"}}},
              errors=(400, 401), tag="health"),
    HttpRoute("GET", "/openapi.json", openapi, "this document", role=None,
              content={"application/json": {"schema": {"type": "object"}}}, errors=(),
              tag="pages"),
]  # fmt: skip
