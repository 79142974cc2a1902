"""Every HTTP route, in one table (``ROUTES``), and the handlers of streams, agents, groups,
alarms and the master.

::

    GET  /  /docs  /static/{file}  /healthz  /readyz  /metrics  /openapi.json
    GET  /api/v1/overview           GET /api/v1/live (server-sent events)
    GET|POST /api/v1/streams        GET|PATCH|DELETE /api/v1/streams/{id}
    GET  /api/v1/streams/{id}/history   /api/v1/streams/{id}/records
         /api/v1/streams/{id}/records/{seq}/frames/{index}     (image/jpeg)
    GET  /api/v1/agents /api/v1/agents/{id} /api/v1/master
    GET  /api/v1/stats/daily /range /monthly /corrections      (JSON, or CSV with format=csv)
    GET|POST /api/v1/groups         GET|PUT|DELETE /api/v1/groups/{name}
    GET  /api/v1/alarms             POST /api/v1/alarms/{id}/ack

Handlers build the command's request Struct from the path, the query and the body and call the
router: the same handler, validation and envelope as over NATS. Creates answer 201 with
``Location``; a stream's or group's ``ETag`` is its version, and ``If-Match`` on a change is its
``expected_version`` (a stale one: 412).

A new route: a handler, one `HttpRoute` in ``ROUTES`` (or in the module's own list added to it);
``add_routes`` serves it and ``ops.http.openapi`` describes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from events.protocol import Name
from ops.api import requests as R
from ops.api import views as V
from ops.api.router import Outcome
from ops.http import pages
from ops.http.backend import BACKEND
from ops.http.history import History, history
from ops.http.live import live
from ops.http.overview import Overview, overview
from ops.http.records import RecordList, frame, records
from ops.http.respond import (
    HttpRoute,
    PreconditionFailed,
    call,
    etag,
    expected_version,
    needs,
    precondition_failed,
    query_values,
    respond,
)
from ops.http.schedules import SCHEDULE_ROUTES
from ops.http.stats import STATS_ROUTES

__all__ = ["ROUTES", "add_routes"]

# ---- streams ---------------------------------------------------------------------------------


def _versioned(outcome: Outcome, status: int = 200, location: str | None = None) -> web.Response:
    """The envelope, with the ``ETag`` of the result's version (and ``Location`` on a create)."""
    headers: dict[str, str] = {}
    version = getattr(outcome.result, "version", None)
    if outcome.code is None and isinstance(version, int):
        headers["ETag"] = etag(version)
    if outcome.code is None and location is not None:
        headers["Location"] = location
    return respond(outcome, status=status, headers=headers)


async def _precondition(request: web.Request, outcome: Outcome, expected: int | None,
                        get: tuple[str, object]) -> web.Response | None:  # fmt: skip
    """412 when ``If-Match`` asked for a version the entity no longer has."""
    if expected is None or outcome.code != "conflict":
        return None
    current = await request.app[BACKEND].router.call(*get)
    version = getattr(current.result, "version", None)
    if version is not None and version != expected:
        return precondition_failed(f"If-Match: the current version is {version}, not"
                                   f" {expected}; get it again (ETag) and retry")  # fmt: skip
    return None


async def list_streams(request: web.Request) -> web.StreamResponse:
    got = await call(request, "stream.list",
                     lambda: R.convert_request(query_values(request), R.ListStreamsReq))  # fmt: skip
    return got if isinstance(got, web.Response) else respond(got)


async def create_stream(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    got = await call(request, "stream.create", lambda: R.decode_request(raw, R.CreateStreamReq))
    if isinstance(got, web.Response):
        return got
    sid = getattr(got.result, "stream_id", None)
    if sid is None and got.code is None:  # a replayed reply (same request_id): read the id back
        sid = msgspec.json.decode(got.body).get("result", {}).get("stream_id")
    return _versioned(got, 201, f"/api/v1/streams/{sid}" if sid else None)


async def get_stream(request: web.Request) -> web.StreamResponse:
    sid = request.match_info["id"]
    got = await call(request, "stream.get",
                     lambda: R.convert_request({"stream_id": sid}, R.GetStreamReq))  # fmt: skip
    return got if isinstance(got, web.Response) else _versioned(got)


async def patch_stream(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    sid = request.match_info["id"]
    try:
        if_match = expected_version(request)
    except PreconditionFailed as exc:
        return precondition_failed(f"If-Match {exc} names no version of stream {sid}")

    def build() -> R.PatchStreamReq:
        body = msgspec.structs.asdict(R.decode_request(raw, R.PatchBody))
        if if_match is not None:
            body["expected_version"] = if_match
        return R.convert_request({"stream_id": sid, **body}, R.PatchStreamReq)

    got = await call(request, "stream.patch", build)
    if isinstance(got, web.Response):
        return got
    failed = await _precondition(request, got, if_match,
                                 ("stream.get", R.GetStreamReq(stream_id=sid)))  # fmt: skip
    return failed or _versioned(got)


async def delete_stream(request: web.Request) -> web.StreamResponse:
    sid = request.match_info["id"]
    values: dict[str, object] = {"stream_id": sid}
    try:
        if_match = expected_version(request)
    except PreconditionFailed as exc:
        return precondition_failed(f"If-Match {exc} names no version of stream {sid}")
    if "expected_version" in request.query:
        values["expected_version"] = request.query["expected_version"]
    if if_match is not None:
        values["expected_version"] = if_match
    got = await call(request, "stream.delete",
                     lambda: R.convert_request(values, R.DeleteStreamReq))  # fmt: skip
    if isinstance(got, web.Response):
        return got
    if if_match is not None and got.code == "conflict":
        failed = await _precondition(request, got, if_match,
                                     ("stream.get", R.GetStreamReq(stream_id=sid)))  # fmt: skip
        if failed is not None:
            return failed
    return respond(got)


# ---- agents, master ----------------------------------------------------------------------------


async def list_agents(request: web.Request) -> web.StreamResponse:
    got = await call(request, "agent.list",
                     lambda: R.convert_request(query_values(request), R.ListAgentsReq))  # fmt: skip
    return got if isinstance(got, web.Response) else respond(got)


async def get_agent(request: web.Request) -> web.StreamResponse:
    aid = request.match_info["id"]
    got = await call(request, "agent.get",
                     lambda: R.convert_request({"agent_id": aid}, R.AgentIdReq))  # fmt: skip
    return got if isinstance(got, web.Response) else _versioned(got)


async def get_master(request: web.Request) -> web.StreamResponse:
    got = await call(request, "master.get", R.EmptyReq)
    return got if isinstance(got, web.Response) else respond(got)


# ---- groups and alarms ------------------------------------------------------------------------


async def list_groups(request: web.Request) -> web.StreamResponse:
    got = await call(request, "group.list", R.ListGroupsReq)
    return got if isinstance(got, web.Response) else respond(got)


async def create_group(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    got = await call(request, "group.create", lambda: R.decode_request(raw, R.CreateGroupReq))
    if isinstance(got, web.Response):
        return got
    name = getattr(got.result, "name", None)
    if name is None and got.code is None:
        name = msgspec.json.decode(got.body).get("result", {}).get("name")
    return _versioned(got, 201, f"/api/v1/groups/{name}" if name else None)


async def get_group(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    got = await call(request, "group.get",
                     lambda: R.convert_request({"name": name}, R.GroupNameReq))  # fmt: skip
    return got if isinstance(got, web.Response) else _versioned(got)


async def update_group(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    name = request.match_info["name"]
    try:
        if_match = expected_version(request)
    except PreconditionFailed as exc:
        return precondition_failed(f"If-Match {exc} names no version of group {name}")

    def build() -> R.UpdateGroupReq:
        body = R.decode_request(raw, R.UpdateGroupBody)
        values = {k: v for k, v in msgspec.to_builtins(body).items() if v is not None}
        if if_match is not None:
            values["expected_version"] = if_match
        return R.convert_request({"name": name, **values}, R.UpdateGroupReq)

    got = await call(request, "group.update", build)
    if isinstance(got, web.Response):
        return got
    failed = await _precondition(request, got, if_match, ("group.get", R.GroupNameReq(name=name)))
    return failed or _versioned(got)


async def delete_group(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    values: dict[str, object] = {"name": name}
    try:
        if_match = expected_version(request)
    except PreconditionFailed as exc:
        return precondition_failed(f"If-Match {exc} names no version of group {name}")
    if "expected_version" in request.query:
        values["expected_version"] = request.query["expected_version"]
    if if_match is not None:
        values["expected_version"] = if_match
    got = await call(request, "group.delete",
                     lambda: R.convert_request(values, R.DeleteGroupReq))  # fmt: skip
    if isinstance(got, web.Response):
        return got
    failed = await _precondition(request, got, if_match, ("group.get", R.GroupNameReq(name=name)))
    return failed or respond(got)


async def list_alarms(request: web.Request) -> web.StreamResponse:
    got = await call(request, "alarm.list",
                     lambda: R.convert_request(query_values(request), R.ListAlarmsReq))  # fmt: skip
    return got if isinstance(got, web.Response) else respond(got)


class AckBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /api/v1/alarms/{id}/ack`` body (optional)."""

    by: Name | None = None
    """Who acknowledges (default: ``anonymous``)."""
    request_id: R.RequestId | None = None


async def ack_alarm(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    alarm_id = request.match_info["id"]

    def build() -> R.AckAlarmReq:
        body = R.decode_request(raw, AckBody)
        values = {k: v for k, v in msgspec.to_builtins(body).items() if v is not None}
        return R.convert_request({"alarm_id": alarm_id, **values}, R.AckAlarmReq)

    got = await call(request, "alarm.ack", build)
    return got if isinstance(got, web.Response) else respond(got)


# ---- the table -------------------------------------------------------------------------------


def _path(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}  # fmt: skip


_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_.:@-]+$"}
STREAM_ID = _path("id", _ID, "stream id (s-…)")
AGENT_ID = _path("id", _ID, "agent id (a-…)")
GROUP = _path("name", _ID, "group name")
ALARM_ID = _path("id", {"type": "string", "minLength": 1, "maxLength": 64,
                        "pattern": "^[A-Za-z0-9_.:-]+$"}, "alarm id (al-…)")  # fmt: skip
IF_MATCH = {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"},
            "description": 'the ETag of the version this change expects, e.g. "3" (412 when it'
                           " is no longer current)"}  # fmt: skip
EXPECTED = {"name": "expected_version", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}  # fmt: skip
ETAG = {"ETag": "the version of the entity, for If-Match"}
CREATED = {"ETag": "the version of the entity, for If-Match",
           "Location": "the URL of the created entity"}  # fmt: skip
WRITE_ERRORS = (400, 401, 403, 404, 409, 412, 413, 503)
READ_ERRORS = (400, 401, 404, 503)


def _v(*args: Any, **kw: Any) -> HttpRoute:
    return HttpRoute(*args, **kw)


ROUTES: list[HttpRoute] = [
    *pages.PAGE_ROUTES,
    _v("GET", "/api/v1/overview", overview, "the fleet at a glance: streams by status and"
       " by waiting reason, agents' load and health, groups, alarms, master", result=Overview,
       errors=READ_ERRORS, tag="fleet"),
    _v("GET", "/api/v1/live", live, "live changes as server-sent events (overview, streams,"
       " agents, groups, alarms): what the dashboard shows without polling", errors=READ_ERRORS,
       content={"text/event-stream": {"schema": {"type": "string"}}}, tag="fleet"),
    _v("GET", "/api/v1/streams", list_streams, "list streams (oldest first, or newest), with"
       " filters and a search; follow next_cursor for the next page", query=R.ListStreamsReq,
       result=V.StreamList, errors=READ_ERRORS, tag="streams"),
    _v("POST", "/api/v1/streams", create_stream, "create a stream", role="operator",
       body=R.CreateStreamReq, result=V.StreamView, status=201, headers=CREATED,
       errors=WRITE_ERRORS, tag="streams"),
    _v("GET", "/api/v1/streams/{id}", get_stream, "one stream", parameters=(STREAM_ID,),
       result=V.StreamView, headers=ETAG, errors=READ_ERRORS, tag="streams"),
    _v("PATCH", "/api/v1/streams/{id}", patch_stream, "start or stop a stream", role="operator",
       parameters=(STREAM_ID, IF_MATCH), body=R.PatchBody, result=V.StreamView, headers=ETAG,
       errors=WRITE_ERRORS, tag="streams"),
    _v("DELETE", "/api/v1/streams/{id}", delete_stream, "delete a stream (final); answers the"
       " deleted view", role="operator", parameters=(STREAM_ID, IF_MATCH, EXPECTED),
       result=V.Deleted, errors=WRITE_ERRORS, tag="streams"),
    _v("GET", "/api/v1/streams/{id}/history", history, "the audit trail of one stream: every"
       " event with its time, cause and status change", parameters=(STREAM_ID,), result=History,
       errors=READ_ERRORS, tag="streams"),
    _v("GET", "/api/v1/streams/{id}/records", records, "the newest analysis records of a"
       " stream (VIGIL_RECORDS), with the URLs of their JPEG frames",
       parameters=(STREAM_ID, {"name": "limit", "in": "query", "required": False,
                               "schema": {"type": "integer", "minimum": 1, "maximum": 100}}),
       result=RecordList, errors=READ_ERRORS, tag="streams"),
    _v("GET", "/api/v1/streams/{id}/records/{seq}/frames/{index}", frame, "one JPEG frame of a"
       " record's window", parameters=(STREAM_ID,
            _path("seq", {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}),
            _path("index", {"type": "integer", "minimum": 0, "maximum": 1000})),
       content={"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
       errors=READ_ERRORS, tag="streams"),
    _v("GET", "/api/v1/agents", list_agents, "agents with load, groups and their last heartbeat"
       " (CPU, memory, disk, outbox)", query=R.ListAgentsReq, result=V.AgentList,
       errors=READ_ERRORS, tag="agents"),
    _v("GET", "/api/v1/agents/{id}", get_agent, "one agent", parameters=(AGENT_ID,),
       result=V.AgentView, headers=ETAG, errors=READ_ERRORS, tag="agents"),
    _v("GET", "/api/v1/master", get_master, "the current master, its epoch and since when",
       result=V.MasterView, errors=READ_ERRORS, tag="fleet"),
    *STATS_ROUTES,
    _v("GET", "/api/v1/groups", list_groups, "redundancy groups", result=V.GroupList,
       errors=READ_ERRORS, tag="groups"),
    _v("POST", "/api/v1/groups", create_group, "create a group", role="operator",
       body=R.CreateGroupReq, result=V.GroupView, status=201, headers=CREATED,
       errors=WRITE_ERRORS, tag="groups"),
    _v("GET", "/api/v1/groups/{name}", get_group, "one group: members with their role, the"
       " active member and why", parameters=(GROUP,), result=V.GroupView, headers=ETAG,
       errors=READ_ERRORS, tag="groups"),
    _v("PUT", "/api/v1/groups/{name}", update_group, "change a group (fields left out are"
       " kept)", role="operator", parameters=(GROUP, IF_MATCH), body=R.UpdateGroupBody,
       result=V.GroupView, headers=ETAG, errors=WRITE_ERRORS, tag="groups"),
    _v("DELETE", "/api/v1/groups/{name}", delete_group, "delete a group (refused while streams"
       " name it)", role="operator", parameters=(GROUP, IF_MATCH, EXPECTED),
       result=V.GroupDeletedView, errors=WRITE_ERRORS, tag="groups"),
    _v("GET", "/api/v1/alarms", list_alarms, "alarms kept for the retention period, newest"
       " first", query=R.ListAlarmsReq, result=V.AlarmList, errors=READ_ERRORS, tag="alarms"),
    _v("POST", "/api/v1/alarms/{id}/ack", ack_alarm, "acknowledge an alarm (who, when)",
       role="operator", parameters=(ALARM_ID,), body=AckBody, result=V.AlarmView,
       errors=WRITE_ERRORS, tag="alarms"),
    *SCHEDULE_ROUTES,
]  # fmt: skip


def add_routes(app: web.Application, routes: list[HttpRoute] | None = None,
               extra: Callable[[web.Application], None] | None = None) -> None:  # fmt: skip
    for route in routes if routes is not None else ROUTES:
        guard = route.guard or needs
        app.router.add_route(route.method, route.path, guard(route.role, route.handler))
    if extra is not None:
        extra(app)
