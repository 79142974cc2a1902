"""Request/reply: routes ``vigil.cmd.<noun>.<verb>`` (and the agent protocol) to handlers.

A `Route` names a command, the request Struct its body decodes into, and its handler, which
returns a result Struct and the event-log sequence it reflects. The same `Router` serves NATS
(``dispatch``: JSON bytes in, envelope bytes out) and HTTP (``call``: a request Struct already
built from the HTTP body, path and query — no second JSON parse).

A body with ``request_id`` takes effect once: a successful reply is kept in the KV bucket
``VIGIL_REQUESTS`` and repeated for the same request_id. A refusal (invalid, not found, conflict)
changed nothing and is not kept: the same request_id sent again once its cause is fixed (the
agent offering the analytic has registered, say) is judged afresh. While the manager cannot serve (its
projections are rebuilding, NATS is gone) every command answers ``unavailable``: never a read of
a dead projection. Requests run as bounded tasks, so one slow command never blocks the
subscription; nothing a client sends can crash the manager, and every request gets a reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from core.errors import DomainError
from events import subjects
from events.bounded import decode as bounded_decode
from events.protocol import ErrorReply, ReplyCode
from events.store import Conflict, Fenced, Unavailable
from ops.api.envelope import domain_error_body, encode, error_reply, ok_reply
from ops.api.requests import decode_request

__all__ = ["AnyRoute", "Outcome", "Route", "Router"]

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(frozen=True)
class Route(Generic[Req, Res]):
    name: str
    """``stream.create``: the subject is ``vigil.cmd.<name>``."""
    request: type[Req]
    handler: Callable[[Req], Awaitable[tuple[Res, int]]]
    writes: bool = True
    result: type[Any] | None = None
    """The result Struct (for the OpenAPI document)."""
    exposed: bool = True
    """Served on ``vigil.cmd.<name>``; False for the agent protocol's own subjects."""
    remember: bool = True
    """Keep the reply of a ``request_id`` in ``VIGIL_REQUESTS``. False where the handler is
    idempotent by itself (``stream.create``: the request_id fixes the stream id and the event's
    msg id, so a repeat finds the stream): two KV round trips saved per command."""


AnyRoute = Route[Any, Any]
"""A route of any request and result type (what a router holds)."""


@dataclass(frozen=True)
class Outcome:
    """A reply as bytes, with its error code (None when ok) for the HTTP status."""

    body: bytes
    code: ReplyCode | None = None
    result: object | None = None
    """The result Struct when the handler ran now (None for errors and replayed replies)."""


class _HasRequestId(msgspec.Struct):
    request_id: str | None = None


class _Head(msgspec.Struct):
    ok: bool = False
    error: _CodeOnly | None = None


class _CodeOnly(msgspec.Struct):
    code: ReplyCode = "internal"


_RID_DECODER = msgspec.json.Decoder(_HasRequestId)
_decode_head = msgspec.json.Decoder(_Head).decode

RouteOf = Callable[[Msg], tuple[str, object]]
"""A subscription's message → (route name, JSON body bytes or an already-built request)."""

Gate = Callable[[], str | None]
"""Returns why the manager cannot serve now, or None when it can."""


def _always() -> str | None:
    return None


class Router:
    """Dispatches commands to handlers; used by the NATS subscriptions and by HTTP."""

    def __init__(
        self,
        routes: list[AnyRoute],
        *,
        requests_kv: KeyValue | None = None,
        max_in_flight: int = 256,
        gate: Gate = _always,
    ) -> None:
        self.routes: dict[str, AnyRoute] = {r.name: r for r in routes}
        self.kv = requests_kv
        self.gate = gate
        self._sem = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts: Counter[str] = Counter()
        self.last_at = -1e9
        """``time.monotonic()`` of the last command received (``serving``)."""
        self.observe: Callable[[str, str, float], None] | None = None
        """Told (command, ``ok`` or the error code, seconds) after every command: metrics."""

    # ---- entry points ------------------------------------------------------------------------

    async def dispatch(self, name: str, body: bytes) -> bytes:
        """The reply envelope for command ``name`` with JSON ``body``. Never raises."""
        return (await self._dispatch(name, body, None)).body

    async def call(self, name: str, req: object) -> Outcome:
        """The reply for command ``name`` with an already-built request Struct. Never raises."""
        return await self._dispatch(name, None, req)

    def serving(self, within_s: float = 0.5) -> bool:
        """Whether a command came in the last ``within_s`` (the master then works in small
        steps, ``ops.master.loop.BATCH_FOREGROUND``)."""
        return time.monotonic() - self.last_at < within_s

    async def _dispatch(
        self, name: str, body: bytes | None, req: object | None, *, internal: bool = False
    ) -> Outcome:
        self.last_at = time.monotonic()
        began = time.perf_counter()
        outcome = await self._dispatch_timed(name, body, req, internal)
        if self.observe is not None:
            known = name if name in self.routes else "unknown"
            self.observe(known, outcome.code or "ok", time.perf_counter() - began)
        return outcome

    async def _dispatch_timed(
        self, name: str, body: bytes | None, req: object | None, internal: bool
    ) -> Outcome:
        route = self.routes.get(name)
        if route is None or not (route.exposed or internal):
            self.counts["unknown"] += 1
            return Outcome(error_reply("not_found", f"unknown command {name!r}; known: "
                                       f"{', '.join(sorted(self.exposed()))}"), "not_found")  # fmt: skip
        why = self.gate()
        if why is not None:
            self.counts[f"{name}.unavailable"] += 1
            return Outcome(error_reply("unavailable", f"this manager cannot serve now: {why};"
                                       " retry (another manager may answer)"), "unavailable")  # fmt: skip
        key = self._request_key(name, body, req) if route.remember else None
        if key is not None and self.kv is not None:
            cached = await self._cached(key)
            if cached is not None:
                self.counts["replayed"] += 1
                return cached
        outcome, final = await self._run(route, body, req)
        if key is not None and self.kv is not None and final:
            try:
                await self.kv.put(key, outcome.body)
            except Exception as exc:  # the command is done; only its replay cache is missing
                log.warning("could not remember the reply of %s: %r", name, exc)
        return outcome

    def exposed(self) -> list[str]:
        return [n for n, r in self.routes.items() if r.exposed]

    async def _cached(self, key: str) -> Outcome | None:
        try:
            entry = await self.kv.get(key)  # type: ignore[union-attr]
        except KeyNotFoundError:
            return None
        except Exception as exc:  # the cache is an optimisation of idempotency, not its basis
            log.warning("request cache unavailable: %r", exc)
            return None
        if not entry.value:
            return None
        head = _decode_head(entry.value)
        return Outcome(entry.value, None if head.ok or head.error is None else head.error.code)

    async def _run(self, route: AnyRoute, body: bytes | None,
                   req: object | None) -> tuple[Outcome, bool]:  # fmt: skip
        """(reply, final): final (successful) replies are remembered for their request_id."""
        name = route.name
        try:
            request = req if body is None else decode_request(body, route.request)
            result, seq = await route.handler(request)
            self.counts[f"{name}.ok"] += 1
            return Outcome(ok_reply(result, seq), None, result), True
        except DomainError as exc:
            self.counts[f"{name}.{exc.code}"] += 1
            err = domain_error_body(exc)
            return Outcome(encode(ErrorReply(error=err)), err.code), False
        except Conflict as exc:
            self.counts[f"{name}.conflict"] += 1
            return Outcome(error_reply("conflict", f"{exc}; get it again and retry"),
                           "conflict"), False  # fmt: skip
        except (TimeoutError, Unavailable, Fenced) as exc:
            self.counts[f"{name}.unavailable"] += 1
            return Outcome(error_reply("unavailable", f"event store unavailable, retry: {exc}"),
                           "unavailable"), False  # fmt: skip
        except Exception as exc:
            self.counts[f"{name}.internal"] += 1
            log.exception("command %s failed", name)
            return Outcome(error_reply("internal", f"internal error: {type(exc).__name__}"),
                           "internal"), False  # fmt: skip

    @staticmethod
    def _request_key(name: str, body: bytes | None, req: object | None) -> str | None:
        rid: str | None
        if body is not None:
            try:
                rid = bounded_decode(body, _HasRequestId, decoder=_RID_DECODER).request_id
            except (msgspec.DecodeError, msgspec.ValidationError):
                return None
        else:
            rid = getattr(req, "request_id", None)
        if not rid:
            return None
        return hashlib.sha256(f"{name}\x00{rid}".encode()).hexdigest()

    # ---- NATS --------------------------------------------------------------------------------

    async def serve(self, nc: Client) -> Subscription:
        """Answer ``vigil.cmd.<noun>.<verb>`` requests with the route of that name."""
        return await self.serve_subject(
            nc, subjects.CMD_ALL, lambda msg: (subjects.command_of(msg.subject), msg.data)
        )

    async def serve_subject(
        self,
        nc: Client,
        subject: str,
        route_of: RouteOf,
        *,
        queue: str = subjects.MANAGERS_QUEUE,
        internal: bool = False,
    ) -> Subscription:
        """Answer requests on ``subject``: ``route_of(msg)`` names the route and gives its JSON
        body (or the request Struct, built from the subject and the body). ``internal`` serves
        routes that are not exposed on ``vigil.cmd``. Each request runs as its own (bounded)
        task, so a slow one never holds up the others."""

        async def on_msg(msg: Msg) -> None:
            task = asyncio.create_task(self._answer(msg, route_of, internal))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        sub = await nc.subscribe(subject, queue=queue, cb=on_msg)
        await nc.flush()  # the server knows us before we report ready
        return sub

    async def _answer(self, msg: Msg, route_of: RouteOf, internal: bool) -> None:
        async with self._sem:
            try:
                name, payload = route_of(msg)
            except DomainError as exc:
                reply = encode(ErrorReply(error=domain_error_body(exc)))
            except ValueError as exc:
                reply = error_reply("invalid", f"bad subject {msg.subject!r}: {exc}")
            else:
                if isinstance(payload, bytes):
                    outcome = await self._dispatch(name, payload, None, internal=internal)
                else:
                    outcome = await self._dispatch(name, None, payload, internal=internal)
                reply = outcome.body
            if msg.reply:
                try:
                    await msg.respond(reply)
                except Exception as exc:
                    log.warning("could not reply to %s: %r", msg.subject, exc)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
