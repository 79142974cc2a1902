"""``GET /openapi.json``: the HTTP API described as OpenAPI 3.1, generated from the route table.

Each `HttpRoute` names its query Struct, body Struct and result Struct; their JSON schemas come
from msgspec (the same types that validate the requests, ``ops.api.requests``, and that the
handlers return, ``ops.api.views``), and every answer is the envelope ``OkReply[Result]`` or
``ErrorReply``. So the document cannot drift from what the server accepts and answers; a route
without a description cannot be served. ``/docs`` renders it for people.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from events.protocol import ErrorReply, OkReply
from ops.http.respond import JSON, HttpRoute

__all__ = ["document", "document_bytes"]

_REF = "#/components/schemas/{name}"
_WRITE: list[dict[str, list[str]]] = [{"bearer": []}, {"accessToken": []}]
_ERROR_TEXT = {
    400: "invalid: details name the failing field's path ($.source.url)",
    401: "no token, or an unknown one (reads are open only when configured)",
    403: "the token's role may not do this, or this manager accepts no writes",
    404: "not_found",
    409: "conflict: the entity changed (expected_version) or the transition is not allowed",
    412: "If-Match names a version that is no longer current (code conflict)",
    413: "the body is over the size limit (1 MB)",
    503: "unavailable: this manager cannot serve now (catching up, NATS away); retry",
}
_TAGS = {
    "fleet": "the fleet at a glance, live updates, the master",
    "streams": "streams: create, start, stop, delete; their history and analysis records",
    "agents": "agents with their load and host figures",
    "groups": "redundancy groups (pools, active/standby)",
    "alarms": "alarms kept for the retention period, acknowledgements",
    "statistics": "daily statistics for billing (JSON or CSV)",
    "scheduling": "scheduled scale events (Red5's API), launch configs, scale policies",
    "health": "health, readiness and Prometheus metrics",
    "pages": "the dashboard and these documents",
}


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema: ``X | None`` is X (absent means None)."""
    options = schema.get("anyOf")
    if options:
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            return {**kept[0], **rest}
    return schema


def _operation_id(route: HttpRoute) -> str:
    words = re.sub(r"[{}]", "", route.path).strip("/").replace("api/v1/", "")
    return route.method.lower() + "_" + (re.sub(r"[^a-zA-Z0-9]+", "_", words) or "root")


def document(routes: Iterable[HttpRoute]) -> dict[str, Any]:
    routes = list(routes)
    types: list[Any] = [ErrorReply]
    for r in routes:
        types += [t for t in (r.query, r.body, *r.schemas) if t is not None]
        if r.result is not None:
            types.append(OkReply[r.result])  # type: ignore[name-defined]
    refs, schemas = msgspec.json.schema_components(types, ref_template=_REF)

    def ref(t: Any) -> dict[str, Any]:
        found: dict[str, Any] = refs[types.index(t)]
        return found

    error = {JSON: {"schema": ref(ErrorReply)}}
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        params = list(r.parameters)
        if r.query is not None:
            query = schemas[r.query.__name__]
            required = set(query.get("required", ()))
            params += [{"name": name, "in": "query", "required": name in required,
                        "schema": _strip_null(prop)}
                       for name, prop in query["properties"].items()]  # fmt: skip
        content: dict[str, Any] = {}
        if r.result is not None:
            content[JSON] = {"schema": ref(OkReply[r.result])}  # type: ignore[name-defined]
        content.update(r.content or {})
        ok: dict[str, Any] = {"description": r.summary}
        if content:
            ok["content"] = content
        if r.headers:
            ok["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                             for name, text in r.headers.items()}  # fmt: skip
        responses: dict[str, Any] = {str(r.status): ok}
        codes = set(r.errors)
        if r.role is not None:
            codes |= {401, 403}
        if r.body is not None:
            codes |= {400, 413}
        for code in sorted(codes):
            responses[str(code)] = {"description": _ERROR_TEXT[code], "content": error}
        op: dict[str, Any] = {"summary": r.summary, "operationId": _operation_id(r),
                              "tags": [r.tag], "responses": responses}  # fmt: skip
        if r.description:
            op["description"] = r.description
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {"required": True,
                                 "content": {JSON: {"schema": ref(r.body)}}}  # fmt: skip
        if r.role is not None:
            op["security"] = _WRITE
            op["x-vigil-role"] = r.role
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "vigil", "version": "1",
                 "description": "The HTTP API of a vigil manager. Answers are the envelope"
                 " {ok, result, seq} or {ok: false, error: {code, message, details}}. Reads need"
                 " a viewer token unless reads are open; writes an operator token"
                 " (Authorization: Bearer <token>, or ?accessToken=<token>)."},
        "tags": [{"name": name, "description": text} for name, text in _TAGS.items()],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "accessToken": {"type": "apiKey", "in": "query", "name": "accessToken"}}},
    }  # fmt: skip


def document_bytes(routes: Iterable[HttpRoute]) -> bytes:
    return msgspec.json.encode(document(routes))
