"""``GET /openapi.json``: the HTTP API described as OpenAPI 3.1.

Request bodies, query parameters and results come from the same msgspec Structs that validate
the requests (``ops.api.requests``) and that the handlers return (``ops.api.views``), so the
document cannot drift from what the server accepts and answers.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from ops.api import requests as R
from ops.api import views as V
from ops.http.history import History
from ops.http.schedules_openapi import openapi_paths, schema_types
from ops.stats.queries import CorrectionsView, DailyStatsView, RangeStatsView

__all__ = ["document"]

_REF = "#/components/schemas/{name}"


def _ok(description: str, name: str | None = None) -> dict[str, Any]:
    result = {"$ref": _REF.format(name=name)} if name else {"type": "object"}
    return {
        "description": description,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["ok", "result"],
            "properties": {"ok": {"const": True}, "result": result,
                           "seq": {"type": "integer", "description": "event sequence reflected"}},
        }}},
    }  # fmt: skip


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": _REF.format(name="Error")}}}
_ERRORS = {
    str(code): {"description": text, "content": _ERROR_CONTENT}
    for code, text in (
        (400, "invalid: details name the failing field's path"),
        (401, "a write without a valid token"),
        (404, "not_found"),
        (409, "conflict: the stream changed (expected_version) or the transition is not allowed"),
        (503, "unavailable: the event store did not answer; retry"),
    )
}


def _query(struct: type[msgspec.Struct], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    props = schemas[struct.__name__]["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in props.items()]  # fmt: skip


def _body(name: str) -> dict[str, Any]:
    return {"required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(name=name)}}}}  # fmt: skip


_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
_FORMAT = {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}}
_WRITE: list[dict[str, list[str]]] = [{"bearer": []}, {"accessToken": []}]


_NAME = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]


def _groups_and_alarms(schemas: dict[str, Any]) -> dict[str, Any]:
    group = "a group view: members with their role, the active member, counts"
    return {
        "/api/v1/groups": {
            "get": {"summary": "redundancy groups", "responses": {"200": _ok("{groups}", "GroupList"), **_ERRORS}},
            "post": {"summary": "create a group", "security": _WRITE, "requestBody": _body("CreateGroupReq"),
                     "responses": {"200": _ok(group, "GroupView"), **_ERRORS}},
        },
        "/api/v1/groups/{name}": {
            "get": {"summary": "one group", "parameters": _NAME, "responses": {"200": _ok(group, "GroupView"), **_ERRORS}},
            "put": {"summary": "change a group (fields left out are kept)", "security": _WRITE,
                    "parameters": _NAME, "requestBody": _body("UpdateGroupBody"),
                    "responses": {"200": _ok(group, "GroupView"), **_ERRORS}},
            "delete": {"summary": "delete a group (refused with the count while streams name it)",
                       "security": _WRITE, "parameters": _NAME,
                       "responses": {"200": _ok("{name, deleted}", "GroupDeletedView"), **_ERRORS}},
        },
        "/api/v1/alarms": {"get": {"summary": "alarms kept (newest first)", "parameters": _query(R.ListAlarmsReq, schemas),
                                   "responses": {"200": _ok("{alarms, active}", "AlarmList"), **_ERRORS}}},
        "/api/v1/alarms/{id}/ack": {"post": {
            "summary": "acknowledge an alarm (who, when)", "security": _WRITE, "parameters": _ID,
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"by": {"type": "string"}, "request_id": {"type": "string"}}}}}},
            "responses": {"200": _ok("the alarm", "AlarmView"), **_ERRORS}}},
    }  # fmt: skip


@cache
def document() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(
        [R.CreateStreamReq, R.PatchBody, R.ListStreamsReq, R.ListAgentsReq, V.StreamView,
         V.StreamList, V.Deleted, V.AgentView, V.AgentList, V.MasterView, History,
         DailyStatsView, RangeStatsView, CorrectionsView, R.RangeStatsReq, R.MonthlyStatsReq,
         R.StatsCorrectionsReq, R.CreateGroupReq, R.UpdateGroupBody, R.ListAlarmsReq,
         V.GroupView, V.GroupList, V.GroupDeletedView, V.AlarmView, V.AlarmList,
         *schema_types],
        ref_template=_REF,
    )  # fmt: skip
    schemas["Error"] = {
        "type": "object",
        "required": ["ok", "error"],
        "properties": {
            "ok": {"const": False},
            "error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"enum": ["invalid", "unauthorized", "forbidden", "not_found", "conflict",
                                  "unavailable", "internal"]},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string"}, "message": {"type": "string"}}}},
            }},
        },
    }  # fmt: skip
    patch_body = {"$ref": _REF.format(name="PatchBody")}
    stream = "a stream view (CONTRACT §2)"
    paths: dict[str, Any] = {
        "/healthz": {"get": {"summary": "the process is alive", "responses": {"200": _ok("alive")}}},
        "/readyz": {"get": {"summary": "connected and projections caught up",
                            "responses": {"200": _ok("ready"), **_ERRORS}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "text exposition format"}}}},
        "/api/v1/streams": {
            "get": {"summary": "list streams, oldest first", "parameters": _query(R.ListStreamsReq, schemas),
                    "responses": {"200": _ok("{streams, next_cursor}", "StreamList"), **_ERRORS}},
            "post": {"summary": "create a stream", "security": _WRITE, "requestBody": _body("CreateStreamReq"),
                     "responses": {"200": _ok(stream, "StreamView"), **_ERRORS}},
        },
        "/api/v1/streams/{id}": {
            "get": {"summary": "one stream", "parameters": _ID, "responses": {"200": _ok(stream, "StreamView"), **_ERRORS}},
            "patch": {"summary": "start or stop", "security": _WRITE, "parameters": _ID,
                      "requestBody": {"required": True, "content": {"application/json": {"schema": patch_body}}},
                      "responses": {"200": _ok(stream, "StreamView"), **_ERRORS}},
            "delete": {"summary": "delete (final)", "security": _WRITE, "parameters": [*_ID,
                {"name": "expected_version", "in": "query", "schema": {"type": "integer", "minimum": 1}}],
                "responses": {"200": _ok("{stream_id, deleted}", "Deleted"), **_ERRORS}},
        },
        "/api/v1/streams/{id}/history": {"get": {"summary": "the audit trail of one stream",
                                                 "parameters": _ID, "responses": {"200": _ok("history", "History"), **_ERRORS}}},
        "/api/v1/agents": {"get": {"summary": "agents with load and last heartbeat",
                                   "parameters": _query(R.ListAgentsReq, schemas),
                                   "responses": {"200": _ok("{agents}", "AgentList"), **_ERRORS}}},
        "/api/v1/agents/{id}": {"get": {"summary": "one agent", "parameters": _ID,
                                        "responses": {"200": _ok("an agent view", "AgentView"), **_ERRORS}}},
        "/api/v1/master": {"get": {"summary": "current master, epoch, since",
                                   "responses": {"200": _ok("master", "MasterView")}}},
        "/api/v1/stats/daily": {"get": {"summary": "daily statistics (JSON, or CSV with format=csv)",
                                        "parameters": [
            {"name": "date", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}},
            *({"name": n, "in": "query", "schema": {"type": "string"}}
              for n in ("stream_id", "agent_id", "group", "by", "format", "cursor")),
            {"name": "limit", "in": "query", "schema": {"type": "integer"}}],
                                        "responses": {"200": _ok("daily statistics", "DailyStatsView"), **_ERRORS}}},
        "/api/v1/stats/range": {"get": {"summary": "statistics of the days from..to, per day or per range (JSON, or CSV with format=csv)",
                                        "parameters": [*_query(R.RangeStatsReq, schemas), _FORMAT],
                                        "responses": {"200": _ok("range statistics", "RangeStatsView"), **_ERRORS}}},
        "/api/v1/stats/monthly": {"get": {"summary": "statistics of one UTC month (JSON, or CSV with format=csv)",
                                          "parameters": [*_query(R.MonthlyStatsReq, schemas), _FORMAT],
                                          "responses": {"200": _ok("month statistics", "RangeStatsView"), **_ERRORS}}},
        "/api/v1/stats/corrections": {"get": {"summary": "late deltas counted after their day closed, with their cause",
                                              "parameters": _query(R.StatsCorrectionsReq, schemas),
                                              "responses": {"200": _ok("corrections", "CorrectionsView"), **_ERRORS}}},
    }  # fmt: skip
    paths.update(_groups_and_alarms(schemas))
    paths.update(openapi_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "vigil", "version": "1",
                 "description": "Reads are open; writes need a bearer token (VIGIL_API_TOKEN)."},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "accessToken": {"type": "apiKey", "in": "query", "name": "accessToken"}}},
    }  # fmt: skip
