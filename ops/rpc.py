"""Request/reply over NATS: routes ``vigil.cmd.<noun>.<verb>`` to handlers, with the envelope.

::

    {"ok": true,  "result": {...}, "seq": N}
    {"ok": false, "error": {"code": "...", "message": "...", "details": [...]}}

``seq`` is the event-log sequence the result reflects (read-your-writes for HTTP and CLI).
A body with ``request_id`` is answered once: the reply is kept in the KV bucket
``VIGIL_REQUESTS`` and repeated for the same request_id. Handlers run as tasks (bounded), so one
slow command never blocks the subscription. Nothing a client sends can crash the manager.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from core.errors import DomainError, Invalid
from events.store import Conflict, Fenced, Unavailable
from ops.requests import decode_request

__all__ = ["Route", "Router", "error_reply", "ok_reply"]

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[tuple[Any, int]]]

HTTP_STATUS = {
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "unavailable": 503,
    "internal": 500,
}


@dataclass(frozen=True)
class Route:
    name: str  # "stream.create"
    request: type[Any]
    handler: Handler
    writes: bool = True


class _HasRequestId(msgspec.Struct):
    request_id: str | None = None


_decode_rid = msgspec.json.Decoder(_HasRequestId).decode


def ok_reply(result: Any, seq: int) -> bytes:
    return orjson.dumps({"ok": True, "result": result, "seq": seq})


def error_reply(code: str, message: str, details: list[Any] | None = None) -> bytes:
    return orjson.dumps(
        {"ok": False, "error": {"code": code, "message": message, "details": details or []}}
    )


class Router:
    """Dispatches command bodies to handlers; used by the NATS subscription and by HTTP."""

    def __init__(
        self,
        routes: list[Route],
        *,
        requests_kv: KeyValue | None = None,
        max_in_flight: int = 256,
    ) -> None:
        self.routes = {r.name: r for r in routes}
        self.kv = requests_kv
        self._sem = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts: dict[str, int] = {}

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    async def dispatch(self, name: str, body: bytes) -> bytes:
        """The reply envelope for command ``name`` with JSON ``body``. Never raises."""
        route = self.routes.get(name)
        if route is None:
            self._count("unknown")
            return error_reply(
                "not_found", f"unknown command {name!r}; known: {sorted(self.routes)}"
            )
        key = self._request_key(name, body)
        if key is not None and self.kv is not None:
            try:
                cached = await self.kv.get(key)
                if cached.value:
                    self._count("replayed")
                    return cached.value
            except KeyNotFoundError:
                pass
        reply, final = await self._run(route, body)
        if key is not None and self.kv is not None and final:
            try:
                await self.kv.put(key, reply)
            except Exception as exc:  # the command is done; only its replay cache is missing
                log.warning("could not remember reply of %s: %r", name, exc)
        return reply

    async def _run(self, route: Route, body: bytes) -> tuple[bytes, bool]:
        """(reply, final): final replies are remembered for their request_id."""
        try:
            req = decode_request(body, route.request)
            result, seq = await route.handler(req)
            self._count(f"{route.name}.ok")
            return ok_reply(result, seq), True
        except Invalid as exc:
            self._count(f"{route.name}.invalid")
            return error_reply("invalid", exc.message, exc.details), True
        except DomainError as exc:
            self._count(f"{route.name}.{exc.code}")
            return error_reply(exc.code, exc.message, exc.details), True
        except Conflict as exc:
            self._count(f"{route.name}.conflict")
            return error_reply("conflict", f"{exc}; get the stream again and retry"), True
        except (TimeoutError, Unavailable, Fenced) as exc:
            self._count(f"{route.name}.unavailable")
            return error_reply("unavailable", f"event store unavailable, retry: {exc}"), False
        except Exception as exc:
            self._count(f"{route.name}.internal")
            log.exception("command %s failed", route.name)
            return error_reply("internal", f"internal error: {type(exc).__name__}: {exc}"), False

    @staticmethod
    def _request_key(name: str, body: bytes) -> str | None:
        try:
            rid = _decode_rid(body).request_id
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if not rid:
            return None
        return hashlib.sha256(f"{name}\x00{rid}".encode()).hexdigest()

    # ---- NATS --------------------------------------------------------------------------------

    async def serve(
        self, nc: Client, prefix: str = "vigil.cmd", queue: str = "vigil-managers"
    ) -> Any:
        """Answer ``<prefix>.<noun>.<verb>`` requests with the route of that name."""
        cut = len(prefix) + 1
        return await self.serve_subject(
            nc, f"{prefix}.>", lambda msg: (msg.subject[cut:], msg.data), queue=queue
        )

    async def serve_subject(
        self,
        nc: Client,
        subject: str,
        route_of: Callable[[Msg], tuple[str, bytes]],
        *,
        queue: str = "vigil-managers",
    ) -> Any:
        """Answer requests on ``subject``: ``route_of(msg)`` names the route and its body. Each
        request runs as its own (bounded) task, so a slow one never holds up the others."""

        async def on_msg(msg: Msg) -> None:
            name, body = route_of(msg)
            task = asyncio.create_task(self._answer(msg, name, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        sub = await nc.subscribe(subject, queue=queue, cb=on_msg)
        await nc.flush()  # the server knows us before we report ready
        return sub

    async def _answer(self, msg: Msg, name: str, body: bytes) -> None:
        async with self._sem:
            reply = await self.dispatch(name, body)
            if msg.reply:
                try:
                    await msg.respond(reply)
                except Exception as exc:
                    log.warning("could not reply to %s: %r", msg.subject, exc)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
