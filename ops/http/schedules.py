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
from ops.http.respond import JSON, Handler, HttpRoute, call, query_values, respond

__all__ = ["SCHEDULE_ROUTES"]


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
        response: web.StreamResponse = await handler(request)
        return response

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


async def _call(request: web.Request, name: str, build: Callable[[], object]) -> web.Response:
    """``call`` answered in vigil's envelope."""
    outcome = await call(request, name, build)
    return outcome if isinstance(outcome, web.Response) else respond(outcome)


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


class UpdateScheduleBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
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
        body = decode_request(raw, UpdateScheduleBody)
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
        return await _call(request, f"{noun}.list", EmptyReq)

    async def create(request: web.Request) -> web.Response:
        raw = await request.read()
        return await _call(request, f"{noun}.create", lambda: decode_request(raw, create_req))

    async def get(request: web.Request) -> web.Response:
        name = _name(request)
        return await _call(
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

        return await _call(request, f"{noun}.update", build)

    async def delete(request: web.Request) -> web.Response:
        name = _name(request)
        return await _call(request, f"{noun}.delete",
                          lambda: convert_request({"name": name}, A.NameReq))  # fmt: skip

    return {"list": list_, "create": create, "get": get, "update": update, "delete": delete}


async def list_scaling(request: web.Request) -> web.Response:
    return await _call(request, "scaling.list", EmptyReq)


async def get_scaling(request: web.Request) -> web.Response:
    name = _name(request)
    return await _call(request, "scaling.get", lambda: convert_request({"name": name}, A.NameReq))


_REF = "#/components/schemas/{name}"
_SCHEDULE = {JSON: {"schema": {"$ref": _REF.format(name="ScheduleView")}}}
_SCHEDULES = {JSON: {"schema": {"type": "array",
                                "items": {"$ref": _REF.format(name="ScheduleView")}}}}  # fmt: skip
_NAME = {"name": "name", "in": "path", "required": True,
         "schema": {"type": "string", "minLength": 1, "maxLength": 128}}  # fmt: skip
_EVENT = {**_NAME, "description": "the schedule's eventName"}
_READ = (400, 401, 404, 503)
_WRITE = (400, 401, 403, 404, 409, 413, 503)
_RED5 = ("Red5's shape: the schedule itself (not the envelope); errors carry errorMessage and"
         " timestamp (UTC ms) besides the envelope's error")  # fmt: skip


def _red5_guard(role: HttpRole | None, handler: Handler) -> Handler:
    return handler if role is None else _guard(role, handler)


def _routes() -> list[HttpRoute]:
    def red5(method: str, path: str, handler: Handler, summary: str, **kw: Any) -> HttpRoute:
        return HttpRoute(method, path, handler, summary, description=_RED5, tag="scheduling",
                         schemas=(A.ScheduleView,), guard=_red5_guard, **kw)  # fmt: skip

    table = [
        red5("GET", "/api/v1/schedules", list_schedules, "scheduled scale events (a bare array)",
             query=A.ListSchedulesReq, content=_SCHEDULES, errors=_READ),
        red5("POST", "/api/v1/schedules", create_schedule, "schedule a scale event (Red5's"
             " body; the lead time is computed)", role="operator", body=A.CreateScheduleReq,
             content=_SCHEDULE, status=201, errors=_WRITE),
        red5("GET", "/api/v1/schedules/{name}", get_schedule, "one schedule, with its planned"
             " start and the figures used", parameters=(_EVENT,), content=_SCHEDULE,
             errors=_READ),
        red5("PUT", "/api/v1/schedules/{name}", update_schedule, "change a pending schedule"
             " (fields given replace; data as a whole)", role="operator", parameters=(_EVENT,),
             body=UpdateScheduleBody, content=_SCHEDULE, errors=_WRITE),
        red5("DELETE", "/api/v1/schedules/{name}", delete_schedule, "cancel (pending/running) or"
             " forget (ended) a schedule", role="operator", parameters=(_EVENT,),
             content=_SCHEDULE, errors=_WRITE),
    ]  # fmt: skip
    for path, noun, what, create_req, update_req, view, listing in (
        ("launch-configs", "launch", "launch config", A.LaunchConfigReq, A.UpdateLaunchConfigReq,
         A.LaunchConfigView, A.LaunchConfigList),
        ("scale-policies", "policy", "scale policy", A.PolicyReq, A.UpdatePolicyReq, A.PolicyView,
         A.PolicyList),
    ):  # fmt: skip
        h = _crud(noun, create_req, update_req)
        one = f"/api/v1/{path}/{{name}}"
        table += [
            HttpRoute("GET", f"/api/v1/{path}", h["list"], f"every {what}", result=listing,
                      errors=_READ, tag="scheduling"),
            HttpRoute("POST", f"/api/v1/{path}", h["create"], f"create a {what}",
                      role="operator", body=create_req, result=view, errors=_WRITE,
                      tag="scheduling"),
            HttpRoute("GET", one, h["get"], f"one {what}", parameters=(_NAME,), result=view,
                      errors=_READ, tag="scheduling"),
            HttpRoute("PUT", one, h["update"], f"change a {what} (fields given replace)",
                      role="operator", parameters=(_NAME,), body=update_req, result=view,
                      errors=_WRITE, tag="scheduling"),
            HttpRoute("DELETE", one, h["delete"], f"delete a {what}", role="operator",
                      parameters=(_NAME,), result=A.DeletedName, errors=_WRITE,
                      tag="scheduling"),
        ]  # fmt: skip
    table += [
        HttpRoute("GET", "/api/v1/scaling", list_scaling, "autoscaling of every scaled group:"
                  " desired and live agents, launches", result=A.ScalingList, errors=_READ,
                  tag="scheduling"),
        HttpRoute("GET", "/api/v1/scaling/{name}", get_scaling, "one group's autoscaling",
                  parameters=({**_NAME, "description": "group name"},), result=A.ScalingView,
                  errors=_READ, tag="scheduling"),
    ]  # fmt: skip
    return table


SCHEDULE_ROUTES: list[HttpRoute] = _routes()
