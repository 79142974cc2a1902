"""HTTP routes of schedules (Red5's event scheduler), launch configs, scale policies, scaling.

::

    GET|POST /api/v1/schedules                    GET|PUT|DELETE /api/v1/schedules/{eventName}
    GET|POST /api/v1/launch-configs               GET|PUT|DELETE /api/v1/launch-configs/{name}
    GET|POST /api/v1/scale-policies               GET|PUT|DELETE /api/v1/scale-policies/{name}
    GET      /api/v1/scaling                      GET            /api/v1/scaling/{group}

Schedules answer as Red5 clients expect: ``201`` with ``{id, eventName, date, data, state}``
(and vigil's additions) on create, ``200`` with the schedule on get, update and delete, a bare
array on list; errors carry Red5's ``errorMessage`` and ``timestamp`` (UTC ms) besides vigil's
envelope (``ok``, ``error{code, message, details}``) with 400, 401, 403, 404 or 409. A token may
come as ``?accessToken=`` (Red5) or ``Authorization: Bearer``. The other routes answer in vigil's
envelope, like every other route.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from aiohttp import web

from core.errors import DomainError, Invalid
from events.bounded import decode as bounded_decode
from ops.api import schedules as A
from ops.api.envelope import HTTP_STATUS, domain_error_body
from ops.api.requests import EmptyReq, convert_request, decode_request
from ops.api.router import Outcome
from ops.http.auth import AUTH, HttpRole
from ops.http.backend import BACKEND
from ops.http.routes import Handler, call, needs, query_values

__all__ = ["add_routes"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _red5_error(
    status: int, code: str, message: str, details: list[Any] | None = None
) -> web.Response:
    body = {"ok": False, "error": {"code": code, "message": message, "details": details or []},
            "errorMessage": message, "timestamp": _now_ms()}  # fmt: skip
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _guard(role: HttpRole, handler: Handler) -> Handler:
    """``needs`` with Red5's error body."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        refused = request.app[AUTH].check(request, role)
        if refused is not None:
            status, message = refused
            return _red5_error(status, "unauthorized" if status == 401 else "forbidden", message)
        return await handler(request)

    return guarded


def _respond(outcome: Outcome, *, created: bool = False, unwrap: str | None = None) -> web.Response:
    reply = orjson.loads(outcome.body)
    if outcome.code is not None or not reply.get("ok"):
        err = reply.get("error") or {}
        code = outcome.code or err.get("code", "internal")
        return _red5_error(HTTP_STATUS.get(code, 500), code, err.get("message", ""),
                           err.get("details"))  # fmt: skip
    result = reply.get("result")
    if unwrap is not None and isinstance(result, dict):
        result = result.get(unwrap, [])
    return web.Response(body=orjson.dumps(result), status=201 if created else 200,
                        content_type="application/json")  # fmt: skip


async def _run(request: web.Request, name: str, build: Callable[[], object], *,
               created: bool = False, unwrap: str | None = None) -> web.Response:  # fmt: skip
    try:
        req = build()
    except DomainError as exc:
        err = domain_error_body(exc)
        details = [msgspec.to_builtins(d) for d in err.details]
        return _red5_error(HTTP_STATUS.get(err.code, 400), err.code, err.message, details)
    outcome = await request.app[BACKEND].router.call(name, req)
    return _respond(outcome, created=created, unwrap=unwrap)


# ---- schedules (Red5 shape) --------------------------------------------------------------------


async def list_schedules(request: web.Request) -> web.Response:
    return await _run(request, "schedule.list",
                      lambda: convert_request(query_values(request), A.ListSchedulesReq),
                      unwrap="schedules")  # fmt: skip


async def create_schedule(request: web.Request) -> web.Response:
    raw = await request.read()
    return await _run(request, "schedule.create",
                      lambda: decode_request(raw, A.CreateScheduleReq), created=True)  # fmt: skip


def _name(request: web.Request) -> str:
    return request.match_info["name"]


async def get_schedule(request: web.Request) -> web.Response:
    return await _run(request, "schedule.get",
                      lambda: convert_request({"eventName": _name(request)}, A.ScheduleNameReq))  # fmt: skip


class _UpdateBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Red5 PUTs the whole body, ``eventName`` included (it must be the path's)."""

    event_name: str | None = msgspec.field(default=None, name="eventName")
    date: A.Millis | None = None
    until: A.Millis | None = None
    buffer_s: A.Buffer | None = None
    data: A.ScheduleDataIn | None = None
    expected_version: A.Version | None = None
    request_id: A.RequestId | None = None


async def update_schedule(request: web.Request) -> web.Response:
    raw = await request.read()
    name = _name(request)

    def build() -> A.UpdateScheduleReq:
        body = decode_request(raw, _UpdateBody)
        if body.event_name is not None and body.event_name != name:
            raise Invalid("$.eventName", f"eventName {body.event_name!r} is not the path's"
                          f" {name!r} (a schedule is renamed by deleting and creating it)")  # fmt: skip
        values = {k: v for k, v in msgspec.to_builtins(body).items() if v is not None}
        values["eventName"] = name
        return convert_request(values, A.UpdateScheduleReq)

    return await _run(request, "schedule.update", build)


async def delete_schedule(request: web.Request) -> web.Response:
    return await _run(request, "schedule.delete",
                      lambda: convert_request({"eventName": _name(request)}, A.ScheduleNameReq))  # fmt: skip


# ---- launch configs, policies, scaling (vigil's envelope) ---------------------------------------


def _crud(noun: str, create_req: type[Any], update_req: type[Any]) -> dict[str, Handler]:
    async def list_(request: web.Request) -> web.Response:
        return await call(request, f"{noun}.list", EmptyReq)

    async def create(request: web.Request) -> web.Response:
        raw = await request.read()
        return await call(request, f"{noun}.create", lambda: decode_request(raw, create_req))

    async def get(request: web.Request) -> web.Response:
        name = _name(request)
        return await call(
            request, f"{noun}.get", lambda: convert_request({"name": name}, A.NameReq)
        )

    async def update(request: web.Request) -> web.Response:
        raw = await request.read()
        name = _name(request)

        def build() -> object:
            try:
                body = bounded_decode(raw if raw.strip() else b"{}", dict[str, Any])
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise Invalid("$", f"the body must be a JSON object: {exc}") from None
            body["name"] = name
            return convert_request(body, update_req)

        return await call(request, f"{noun}.update", build)

    async def delete(request: web.Request) -> web.Response:
        name = _name(request)
        return await call(request, f"{noun}.delete",
                          lambda: convert_request({"name": name}, A.NameReq))  # fmt: skip

    return {"list": list_, "create": create, "get": get, "update": update, "delete": delete}


async def list_scaling(request: web.Request) -> web.Response:
    return await call(request, "scaling.list", EmptyReq)


async def get_scaling(request: web.Request) -> web.Response:
    name = _name(request)
    return await call(request, "scaling.get", lambda: convert_request({"name": name}, A.NameReq))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/schedules", _guard("viewer", list_schedules))
    r.add_post("/api/v1/schedules", _guard("operator", create_schedule))
    r.add_get("/api/v1/schedules/{name}", _guard("viewer", get_schedule))
    r.add_put("/api/v1/schedules/{name}", _guard("operator", update_schedule))
    r.add_delete("/api/v1/schedules/{name}", _guard("operator", delete_schedule))
    for path, noun, create_req, update_req in (
        ("launch-configs", "launch", A.LaunchConfigReq, A.UpdateLaunchConfigReq),
        ("scale-policies", "policy", A.PolicyReq, A.UpdatePolicyReq),
    ):
        h = _crud(noun, create_req, update_req)
        r.add_get(f"/api/v1/{path}", needs("viewer", h["list"]))
        r.add_post(f"/api/v1/{path}", needs("operator", h["create"]))
        r.add_get(f"/api/v1/{path}/{{name}}", needs("viewer", h["get"]))
        r.add_put(f"/api/v1/{path}/{{name}}", needs("operator", h["update"]))
        r.add_delete(f"/api/v1/{path}/{{name}}", needs("operator", h["delete"]))
    r.add_get("/api/v1/scaling", needs("viewer", list_scaling))
    r.add_get("/api/v1/scaling/{name}", needs("viewer", get_scaling))
