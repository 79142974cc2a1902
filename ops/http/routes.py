"""Every HTTP route, in one table (``add_routes``), and their handlers.

::

    GET  /healthz /readyz /metrics /openapi.json /        (ops.http.metrics, .openapi, dashboard)
    GET  /api/v1/streams            POST /api/v1/streams
    GET|PATCH|DELETE /api/v1/streams/{id}                 GET /api/v1/streams/{id}/history
    GET  /api/v1/agents /api/v1/agents/{id} /api/v1/master /api/v1/stats/daily
         /api/v1/stats/range /api/v1/stats/monthly /api/v1/stats/corrections
    GET|POST /api/v1/groups         GET|PUT|DELETE /api/v1/groups/{name}
    GET  /api/v1/alarms             POST /api/v1/alarms/{id}/ack

Handlers build the command's request Struct from the path, the query and the body and call the
router: the same handler, validation and envelope as over NATS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
from aiohttp import web

from core.errors import DomainError
from events.protocol import ErrorReply
from ops.api import requests as R
from ops.api.envelope import HTTP_STATUS, domain_error_body, encode, error_reply
from ops.api.router import Outcome
from ops.http.auth import AUTH, HttpRole
from ops.http.backend import BACKEND
from ops.http.history import history
from ops.http.metrics import CONTENT_TYPE, render
from ops.http.openapi import document
from ops.http.stats import corrections, daily_stats, monthly_stats, range_stats

__all__ = ["Handler", "add_routes", "json_response", "needs", "query_values", "respond"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_NOT_QUERY = ("accessToken", "format")


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def respond(outcome: Outcome) -> web.Response:
    status = 200 if outcome.code is None else HTTP_STATUS.get(outcome.code, 500)
    return json_response(outcome.body, status)


def invalid(exc: DomainError) -> web.Response:
    err = domain_error_body(exc)
    return json_response(encode(ErrorReply(error=err)), HTTP_STATUS.get(err.code, 400))


def query_values(request: web.Request) -> dict[str, object]:
    return {k: v for k, v in request.query.items() if k not in _NOT_QUERY}


async def call(request: web.Request, name: str, build: Callable[[], object]) -> web.Response:
    """Build the request (``Invalid`` → 400 with the path) and run command ``name``."""
    try:
        req = build()
    except DomainError as exc:
        return invalid(exc)
    return respond(await request.app[BACKEND].router.call(name, req))


def needs(role: HttpRole, handler: Handler) -> Handler:
    """``handler`` for requests whose token has at least ``role`` (``ops.http.auth``)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        refused = request.app[AUTH].check(request, role)
        if refused is not None:
            status, message = refused
            reply = error_reply("unauthorized" if status == 401 else "forbidden", message)
            return json_response(reply, status)
        return await handler(request)

    return guarded


# ---- health and documents --------------------------------------------------------------------


class _Health(msgspec.Struct, frozen=True):
    ok: bool
    seq: int | None = None
    manager_id: str | None = None


async def healthz(request: web.Request) -> web.Response:
    return json_response(encode(_Health(True)))


async def readyz(request: web.Request) -> web.Response:
    backend = request.app[BACKEND]
    why = backend.readiness()
    if why is None:
        return json_response(encode(_Health(True, backend.last_seq, backend.manager_id)))
    return json_response(error_reply("unavailable", f"not ready: {why}"), 503)


async def metrics(request: web.Request) -> web.Response:
    collector = request.app[BACKEND].collector()
    return web.Response(body=render(collector), headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return json_response(encode(document()))


async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(Path(__file__).parent / "dashboard.html")


# ---- streams, agents, master ------------------------------------------------------------------


async def list_streams(request: web.Request) -> web.Response:
    return await call(request, "stream.list",
                      lambda: R.convert_request(query_values(request), R.ListStreamsReq))  # fmt: skip


async def create_stream(request: web.Request) -> web.Response:
    raw = await request.read()
    return await call(request, "stream.create", lambda: R.decode_request(raw, R.CreateStreamReq))


async def get_stream(request: web.Request) -> web.Response:
    sid = request.match_info["id"]
    return await call(request, "stream.get",
                      lambda: R.convert_request({"stream_id": sid}, R.GetStreamReq))  # fmt: skip


async def patch_stream(request: web.Request) -> web.Response:
    raw = await request.read()
    sid = request.match_info["id"]

    def build() -> R.PatchStreamReq:
        body = R.decode_request(raw, R.PatchBody)
        return R.convert_request({"stream_id": sid, **msgspec.structs.asdict(body)},
                                 R.PatchStreamReq)  # fmt: skip

    return await call(request, "stream.patch", build)


async def delete_stream(request: web.Request) -> web.Response:
    values: dict[str, object] = {"stream_id": request.match_info["id"]}
    if "expected_version" in request.query:
        values["expected_version"] = request.query["expected_version"]
    return await call(request, "stream.delete",
                      lambda: R.convert_request(values, R.DeleteStreamReq))  # fmt: skip


async def list_agents(request: web.Request) -> web.Response:
    return await call(request, "agent.list",
                      lambda: R.convert_request(query_values(request), R.ListAgentsReq))  # fmt: skip


async def get_agent(request: web.Request) -> web.Response:
    aid = request.match_info["id"]
    return await call(request, "agent.get",
                      lambda: R.convert_request({"agent_id": aid}, R.AgentIdReq))  # fmt: skip


async def get_master(request: web.Request) -> web.Response:
    return await call(request, "master.get", R.EmptyReq)


# ---- groups and alarms ------------------------------------------------------------------------


async def list_groups(request: web.Request) -> web.Response:
    return await call(request, "group.list", R.ListGroupsReq)


async def create_group(request: web.Request) -> web.Response:
    raw = await request.read()
    return await call(request, "group.create", lambda: R.decode_request(raw, R.CreateGroupReq))


async def get_group(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return await call(request, "group.get",
                      lambda: R.convert_request({"name": name}, R.GroupNameReq))  # fmt: skip


async def update_group(request: web.Request) -> web.Response:
    raw = await request.read()
    name = request.match_info["name"]

    def build() -> R.UpdateGroupReq:
        body = R.decode_request(raw, R.UpdateGroupBody)
        values = {k: v for k, v in msgspec.to_builtins(body).items() if v is not None}
        return R.convert_request({"name": name, **values}, R.UpdateGroupReq)

    return await call(request, "group.update", build)


async def delete_group(request: web.Request) -> web.Response:
    values: dict[str, object] = {"name": request.match_info["name"]}
    if "expected_version" in request.query:
        values["expected_version"] = request.query["expected_version"]
    return await call(request, "group.delete",
                      lambda: R.convert_request(values, R.DeleteGroupReq))  # fmt: skip


async def list_alarms(request: web.Request) -> web.Response:
    return await call(request, "alarm.list",
                      lambda: R.convert_request(query_values(request), R.ListAlarmsReq))  # fmt: skip


class _AckBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    by: str | None = None
    request_id: str | None = None


async def ack_alarm(request: web.Request) -> web.Response:
    raw = await request.read()
    alarm_id = request.match_info["id"]

    def build() -> R.AckAlarmReq:
        body = R.decode_request(raw, _AckBody)
        values = {k: v for k, v in msgspec.to_builtins(body).items() if v is not None}
        return R.convert_request({"alarm_id": alarm_id, **values}, R.AckAlarmReq)

    return await call(request, "alarm.ack", build)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/openapi.json", openapi)
    r.add_get("/", dashboard)
    r.add_get("/metrics", needs("viewer", metrics))
    r.add_get("/api/v1/streams", needs("viewer", list_streams))
    r.add_post("/api/v1/streams", needs("operator", create_stream))
    r.add_get("/api/v1/streams/{id}", needs("viewer", get_stream))
    r.add_patch("/api/v1/streams/{id}", needs("operator", patch_stream))
    r.add_delete("/api/v1/streams/{id}", needs("operator", delete_stream))
    r.add_get("/api/v1/streams/{id}/history", needs("viewer", history))
    r.add_get("/api/v1/agents", needs("viewer", list_agents))
    r.add_get("/api/v1/agents/{id}", needs("viewer", get_agent))
    r.add_get("/api/v1/master", needs("viewer", get_master))
    r.add_get("/api/v1/stats/daily", needs("viewer", daily_stats))
    r.add_get("/api/v1/stats/range", needs("viewer", range_stats))
    r.add_get("/api/v1/stats/monthly", needs("viewer", monthly_stats))
    r.add_get("/api/v1/stats/corrections", needs("viewer", corrections))
    r.add_get("/api/v1/groups", needs("viewer", list_groups))
    r.add_post("/api/v1/groups", needs("operator", create_group))
    r.add_get("/api/v1/groups/{name}", needs("viewer", get_group))
    r.add_put("/api/v1/groups/{name}", needs("operator", update_group))
    r.add_delete("/api/v1/groups/{name}", needs("operator", delete_group))
    r.add_get("/api/v1/alarms", needs("viewer", list_alarms))
    r.add_post("/api/v1/alarms/{id}/ack", needs("operator", ack_alarm))
