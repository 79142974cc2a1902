"""How a handler answers, and how a route is declared.

Every HTTP route is one `HttpRoute`: method, path, who may call it, the handler, and the types
of what it takes (query Struct, body Struct) and answers (result Struct, status, other content).
``ops.http.routes`` lists them, ``add_routes`` registers them and ``ops.http.openapi`` writes the
document from the same list, so a route cannot be served without being described.

Answers are the reply envelope (``ops.api.envelope``) with the HTTP status of its code; a
precondition (``If-Match``) that fails is 412 with code ``conflict``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from core.errors import DomainError
from events.protocol import ErrorReply
from ops.api.envelope import HTTP_STATUS, domain_error_body, encode, error_reply
from ops.api.router import Outcome
from ops.http.auth import AUTH, HttpRole
from ops.http.backend import BACKEND

__all__ = [
    "JSON",
    "Handler",
    "HttpRoute",
    "call",
    "etag",
    "expected_version",
    "invalid",
    "json_response",
    "needs",
    "query_values",
    "respond",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON = "application/json"

_NOT_QUERY = ("accessToken", "format")


@dataclass(frozen=True)
class HttpRoute:
    """One route of the API, as served and as documented."""

    method: str
    path: str
    handler: Handler
    summary: str
    role: HttpRole | None = "viewer"
    """The least role a token needs (None: open to anyone, e.g. health)."""
    query: type[Any] | None = None
    """A request Struct whose fields are the query parameters."""
    body: type[Any] | None = None
    """The request body's Struct."""
    result: type[Any] | None = None
    """The ``result`` Struct of the ok envelope."""
    status: int = 200
    errors: tuple[int, ...] = (400, 404, 503)
    content: Mapping[str, dict[str, Any]] | None = None
    """Other success content types than the envelope (media type → OpenAPI media object)."""
    parameters: tuple[dict[str, Any], ...] = ()
    """Extra OpenAPI parameters (path ids, headers, ``format``)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response headers of a success (name → description)."""
    description: str = ""
    tag: str = "api"
    schemas: tuple[type[Any], ...] = ()
    """Structs that ``content`` refers to by ``#/components/schemas/<name>`` (added to the
    document's components)."""
    guard: Callable[[HttpRole | None, Handler], Handler] | None = None
    """How the role is checked (default ``needs``; Red5's routes answer its own error shape)."""


def json_response(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def respond(outcome: Outcome, *, status: int = 200,
            headers: Mapping[str, str] | None = None) -> web.Response:  # fmt: skip
    """The envelope of ``outcome``: ``status`` when ok, else the status of its error code."""
    if outcome.code is None:
        return json_response(outcome.body, status, headers)
    return json_response(outcome.body, HTTP_STATUS.get(outcome.code, 500))


def invalid(exc: DomainError) -> web.Response:
    err = domain_error_body(exc)
    return json_response(encode(ErrorReply(error=err)), HTTP_STATUS.get(err.code, 400))


def query_values(request: web.Request) -> dict[str, object]:
    return {k: v for k, v in request.query.items() if k not in _NOT_QUERY}


async def call(
    request: web.Request, name: str, build: Callable[[], object]
) -> Outcome | web.Response:
    """Build the request (``Invalid`` → a 400 response with the path) and run command ``name``."""
    try:
        req = build()
    except DomainError as exc:
        return invalid(exc)
    return await request.app[BACKEND].router.call(name, req)


def needs(role: HttpRole | None, handler: Handler) -> Handler:
    """``handler`` for requests whose token has at least ``role`` (``ops.http.auth``)."""
    if role is None:
        return handler

    async def guarded(request: web.Request) -> web.StreamResponse:
        refused = request.app[AUTH].check(request, role)
        if refused is not None:
            status, message = refused
            reply = error_reply("unauthorized" if status == 401 else "forbidden", message)
            return json_response(reply, status)
        return await handler(request)

    return guarded


# ---- ETag / If-Match ---------------------------------------------------------------------------


def etag(version: int) -> str:
    """The entity tag of an aggregate's version (strong: a version names exactly one state)."""
    return f'"{version}"'


class PreconditionFailed(Exception):
    """``If-Match`` names no version this server could match."""


def expected_version(request: web.Request) -> int | None:
    """The ``expected_version`` an ``If-Match`` header asks for (None: no header, or ``*``).

    Raises `PreconditionFailed` for a tag that is not one of ours (it can never match)."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if len(tags) == 1:
        tag = tags[0].removeprefix("W/")
        inner = tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else ""
        if inner.isdigit() and 0 < len(inner) <= 18:
            return int(inner)
    raise PreconditionFailed(ascii(header)[:80])


def precondition_failed(message: str) -> web.Response:
    return json_response(error_reply("conflict", message), 412)
