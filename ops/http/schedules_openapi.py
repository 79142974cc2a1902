"""The OpenAPI description of the schedule, launch config, scale policy and scaling routes
(``ops.http.schedules``), added to ``/openapi.json`` by ``ops.http.openapi``."""

from __future__ import annotations

from typing import Any

from ops.api import schedules as A

__all__ = ["openapi_paths", "schema_types"]


schema_types: list[type[Any]] = [
    A.CreateScheduleReq, A.ScheduleView, A.LaunchConfigReq, A.UpdateLaunchConfigReq,
    A.LaunchConfigView, A.LaunchConfigList, A.PolicyReq, A.UpdatePolicyReq, A.PolicyView,
    A.PolicyList, A.ScalingView, A.ScalingList, A.DeletedName,
]  # fmt: skip
"""The Structs ``ops.http.openapi`` adds to its schema components."""

_REF = "#/components/schemas/{name}"
_RED5_ERROR = {"application/json": {"schema": {"type": "object", "required": [
    "ok", "error", "errorMessage", "timestamp"], "properties": {
    "ok": {"const": False}, "error": {"$ref": _REF.format(name="Error") + "/properties/error"},
    "errorMessage": {"type": "string"},
    "timestamp": {"type": "integer", "description": "UTC milliseconds"}}}}}  # fmt: skip
_RED5_ERRORS = {str(c): {"description": t, "content": _RED5_ERROR} for c, t in (
    (400, "invalid: details name the field ($.date, $.data.region[0].info.min_agents…)"),
    (401, "no or unknown token"), (403, "a viewer token, or no token configured"),
    (404, "unknown schedule, group ($.data.group) or launch config ($.data.launch)"),
    (409, "duplicate eventName, a policy that exists, or an update of a schedule that ran"),
)}  # fmt: skip
_WRITE: list[dict[str, list[str]]] = [{"bearer": []}, {"accessToken": []}]
_SCHEDULE = {"application/json": {"schema": {"$ref": _REF.format(name="ScheduleView")}}}
_PATH_NAME = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "the schedule's eventName"}]  # fmt: skip


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=name)}}}


def _ok(description: str, name: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["ok", "result"],
        "properties": {"ok": {"const": True}, "result": {"$ref": _REF.format(name=name)}}}}}}  # fmt: skip


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI paths of these routes."""
    one = {"description": "the schedule (Red5 shape + plan)", "content": _SCHEDULE}
    paths: dict[str, Any] = {
        "/api/v1/schedules": {
            "get": {"summary": "scheduled events (Red5: a bare array)", "parameters": [
                {"name": "state", "in": "query", "schema": {"enum": ["pending", "running", "done",
                                                                     "failed", "cancelled"]}},
                {"name": "group", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "schedules", "content": {"application/json": {
                    "schema": {"type": "array", "items": {"$ref": _REF.format(name="ScheduleView")}}}}},
                    **_RED5_ERRORS}},
            "post": {"summary": "schedule a scale event (Red5 body; the lead time is computed)",
                     "security": _WRITE, "requestBody": {"required": True, "content": _json("CreateScheduleReq")},
                     "responses": {"201": {"description": "created", "content": _SCHEDULE}, **_RED5_ERRORS}},
        },
        "/api/v1/schedules/{name}": {
            "get": {"summary": "one schedule, with its planned start and the figures used",
                    "parameters": _PATH_NAME, "responses": {"200": one, **_RED5_ERRORS}},
            "put": {"summary": "change a pending schedule (fields given replace; data as a whole)",
                    "security": _WRITE, "parameters": _PATH_NAME,
                    "requestBody": {"required": True, "content": _json("CreateScheduleReq")},
                    "responses": {"200": one, **_RED5_ERRORS}},
            "delete": {"summary": "cancel (pending/running) or forget (ended) a schedule",
                       "security": _WRITE, "parameters": _PATH_NAME,
                       "responses": {"200": one, **_RED5_ERRORS}},
        },
        "/api/v1/scaling": {"get": {"summary": "autoscaling of every scaled group",
                                    "responses": {"200": _ok("groups", "ScalingList")}}},
        "/api/v1/scaling/{name}": {"get": {"summary": "one group's autoscaling",
                                           "parameters": [{"name": "name", "in": "path", "required": True,
                                                           "schema": {"type": "string"}}],
                                           "responses": {"200": _ok("group", "ScalingView")}}},
    }  # fmt: skip
    for path, view, lst, req, upd in (
        ("launch-configs", "LaunchConfigView", "LaunchConfigList", "LaunchConfigReq",
         "UpdateLaunchConfigReq"),
        ("scale-policies", "PolicyView", "PolicyList", "PolicyReq", "UpdatePolicyReq"),
    ):  # fmt: skip
        name = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
        paths[f"/api/v1/{path}"] = {
            "get": {"summary": f"list {path}", "responses": {"200": _ok(path, lst)}},
            "post": {"summary": f"create one of {path}", "security": _WRITE,
                     "requestBody": {"required": True, "content": _json(req)},
                     "responses": {"200": _ok("created", view)}},
        }  # fmt: skip
        paths[f"/api/v1/{path}/{{name}}"] = {
            "get": {"summary": "one", "parameters": name, "responses": {"200": _ok("one", view)}},
            "put": {"summary": "change (fields given replace)", "security": _WRITE,
                    "parameters": name, "requestBody": {"required": True, "content": _json(upd)},
                    "responses": {"200": _ok("changed", view)}},
            "delete": {"summary": "delete", "security": _WRITE, "parameters": name,
                       "responses": {"200": _ok("deleted", "DeletedName")}},
        }  # fmt: skip
    return paths
