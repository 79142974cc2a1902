"""The HTTP status API (aiohttp), served by every manager from its own projections.

Reads are open; writes need ``Authorization: Bearer <token>`` or ``?accessToken=<token>`` when the
manager has an API token. Every response uses the command envelope of ``ops.rpc`` with the
matching HTTP status. Writes go through the same ``Router`` as NATS commands.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ops.audit import history
from ops.http_stats import daily_stats
from ops.rpc import HTTP_STATUS, Router, error_reply

__all__ = ["MANAGER", "build_app"]

MANAGER: web.AppKey[Any] = web.AppKey("manager", object)
TOKEN: web.AppKey[str | None] = web.AppKey("token", object)  # type: ignore[arg-type]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _respond(reply: bytes) -> web.Response:
    body = orjson.loads(reply)
    status = 200 if body.get("ok") else HTTP_STATUS.get(body["error"]["code"], 500)
    return web.Response(body=reply, status=status, content_type="application/json")


def _authorized(request: web.Request) -> bool:
    token: str | None = request.app[TOKEN]
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    given = header[7:] if header.startswith("Bearer ") else request.query.get("accessToken", "")
    return hmac.compare_digest(given.encode(), token.encode())


def _writes(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not _authorized(request):
            reply = error_reply(
                "unauthorized",
                "writes need 'Authorization: Bearer <token>' (VIGIL_API_TOKEN in .vigil/vigil.env)",
            )
            return web.Response(body=reply, status=401, content_type="application/json")
        return await handler(request)

    return guarded


def _router(request: web.Request) -> Router:
    router: Router = request.app[MANAGER].router
    return router


async def _json_body(request: web.Request) -> dict[str, Any] | bytes:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw  # let the router produce the 'invalid' reply
    return body if isinstance(body, dict) else raw


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    if manager.ready:
        return web.json_response({"ok": True, "seq": manager.projector.last_seq})
    return web.json_response({"ok": False, "error": {"code": "unavailable"}}, status=503)


async def list_streams(request: web.Request) -> web.Response:
    query: dict[str, Any] = dict(request.query)
    if "limit" in query:
        try:
            query["limit"] = int(query["limit"])
        except ValueError:
            pass
    return _respond(await _router(request).dispatch("stream.list", orjson.dumps(query)))


async def create_stream(request: web.Request) -> web.Response:
    body = await _json_body(request)
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return _respond(await _router(request).dispatch("stream.create", raw))


async def get_stream(request: web.Request) -> web.Response:
    body = orjson.dumps({"stream_id": request.match_info["id"]})
    return _respond(await _router(request).dispatch("stream.get", body))


async def patch_stream(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if isinstance(body, bytes):
        return _respond(await _router(request).dispatch("stream.patch", body))
    body["stream_id"] = request.match_info["id"]
    return _respond(await _router(request).dispatch("stream.patch", orjson.dumps(body)))


async def delete_stream(request: web.Request) -> web.Response:
    body: dict[str, Any] = {"stream_id": request.match_info["id"]}
    if "expected_version" in request.query:
        try:
            body["expected_version"] = int(request.query["expected_version"])
        except ValueError:
            body["expected_version"] = request.query["expected_version"]
    return _respond(await _router(request).dispatch("stream.delete", orjson.dumps(body)))


def _read(name: str, body_of: Callable[[web.Request], dict[str, Any]]) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return _respond(await _router(request).dispatch(name, orjson.dumps(body_of(request))))

    return handler


async def metrics(request: web.Request) -> web.Response:
    from ops.metrics import CONTENT_TYPE, render

    return web.Response(body=render(request.app[MANAGER]), headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    from ops.openapi import document

    return web.json_response(document())


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(Path(__file__).parent / "dashboard.html")


def build_app(manager: Any, *, token: str | None) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[MANAGER] = manager
    app[TOKEN] = token
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", dashboard)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/api/v1/streams", list_streams)
    app.router.add_post("/api/v1/streams", _writes(create_stream))
    app.router.add_get("/api/v1/streams/{id}", get_stream)
    app.router.add_get("/api/v1/streams/{id}/history", history)  # ops.audit (issue 7)
    app.router.add_patch("/api/v1/streams/{id}", _writes(patch_stream))
    app.router.add_delete("/api/v1/streams/{id}", _writes(delete_stream))
    app.router.add_get("/api/v1/agents", _read("agent.list", lambda r: dict(r.query)))
    app.router.add_get(
        "/api/v1/agents/{id}", _read("agent.get", lambda r: {"agent_id": r.match_info["id"]})
    )
    app.router.add_get("/api/v1/master", _read("master.get", lambda r: {}))
    app.router.add_get("/api/v1/stats/daily", daily_stats)
    return app
