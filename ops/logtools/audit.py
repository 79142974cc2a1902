"""The audit trail of one aggregate: every event with its time, cause and status change.

``audit(nc, "s-…")`` reads ``vigil.evt.stream.<id>`` (or ``agent.<id>``) and folds it with the
pure ``core`` evolve functions, so each entry shows the status before → after and whether the
event changed anything (a superseded master decision is recorded but applies as a no-op).
Causes read: ``command stream.stop (request r-1) via m-1``, ``master epoch 3 (m-2)
stream.assign``, ``agent a-1 feedback #17``.

Served over HTTP by ``ops.http.routes`` (``GET /api/v1/streams/{id}/history``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from core import agent as core_agent
from core import stream as core_stream
from events import subjects
from events.codec import UndecodableEvent, decode_event
from events.jetstream import EVENTS_STREAM
from events.model import AgentEvent, Cause, Event, StreamEvent
from ops.api.views import iso
from ops.logtools.replay import ReplayError, read_log

__all__ = ["AuditEntry", "audit", "describe_cause"]

_SKIP = {"type", "v", "at", "cause", "stream_id", "agent_id"}


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    time: str | None  # when the event happened (its ``at``)
    stored: str | None  # when the log stored it
    event: str  # the event type
    cause: str  # human-readable
    cause_detail: dict[str, Any]
    before: str | None  # status before (None: did not exist)
    after: str | None
    version: int | None
    applied: bool  # False: recorded, but superseded (changed nothing)
    details: dict[str, Any]


def describe_cause(c: Cause) -> str:
    match c.kind:
        case "command":
            rid = f" (request {c.request_id})" if c.request_id else ""
            return f"command {c.name}{rid} via {c.manager_id or '?'}"
        case "master":
            return f"master epoch {c.epoch} ({c.manager_id or '?'}) {c.name}"
        case "feedback":
            return f"agent {c.agent_id} feedback #{c.feedback_seq} {c.name}".rstrip()
    who = f" {c.agent_id}" if c.agent_id else (f" {c.manager_id}" if c.manager_id else "")
    return f"{c.kind}{who} {c.name}".rstrip()


async def _resolve(nc: Client, ident: str, stream: str) -> str:
    """``stream.<id>`` / ``agent.<id>`` for an id (or an explicit ``stream.x``)."""
    candidates = [ident] if ident.startswith(("stream.", "agent.")) else [
        f"stream.{ident}", f"agent.{ident}"]  # fmt: skip
    js = nc.jetstream()
    for aggregate in candidates:
        try:
            await js.get_last_msg(stream, subjects.event(aggregate))
            return aggregate
        except NotFoundError:
            continue
    raise ReplayError(f"no events for {ident!r}: give a stream id (s-…) or an agent id")


def _fold(state: Any, event: Event) -> Any:
    if isinstance(event, StreamEvent):
        return core_stream.evolve(state, event)
    if isinstance(event, AgentEvent):
        return core_agent.evolve(state, event)
    return state


async def audit(nc: Client, ident: str, *, until_seq: int | None = None,
                stream: str = EVENTS_STREAM) -> tuple[str, list[AuditEntry]]:  # fmt: skip
    """(aggregate, entries) for a stream or agent id, oldest first, up to ``until_seq``."""
    aggregate = await _resolve(nc, ident, stream)
    entries: list[AuditEntry] = []
    state: Any = None
    async for rec in read_log(nc, subject=subjects.event(aggregate), until_seq=until_seq,
                              stream=stream):  # fmt: skip
        try:
            event = decode_event(rec.data)
        except UndecodableEvent as exc:
            entries.append(AuditEntry(
                seq=rec.seq, time=None, stored=iso(rec.ts), event="(undecodable)",
                cause=str(exc), cause_detail={}, before=None, after=None, version=None,
                applied=False, details={}))  # fmt: skip
            continue
        before = state
        state = _fold(state, event)
        raw = msgspec.to_builtins(event)
        entries.append(AuditEntry(
            seq=rec.seq, time=iso(event.at), stored=iso(rec.ts), event=type(event).__name__,
            cause=describe_cause(event.cause), cause_detail=msgspec.to_builtins(event.cause),
            before=getattr(before, "status", None), after=getattr(state, "status", None),
            version=getattr(state, "version", None), applied=state is not before,
            details={k: v for k, v in raw.items() if k not in _SKIP},
        ))  # fmt: skip
    return aggregate, entries
