"""Encode and decode events; upcast old schema versions on the raw dict before typed decoding.

Fast path: current bodies decode straight into their Struct (one decode, then a version check).
Otherwise a tiny head decode (``type``, ``v``) says why: older bodies go through
``events.upcast`` as plain dicts first; newer or unknown ones are refused.
Unknown types and bodies that fail validation raise ``UndecodableEvent`` (projections count and
skip them; they never stop a fold).
"""

from __future__ import annotations

from typing import Any

import msgspec

from events import model
from events.upcast import CURRENT_VERSIONS, upcast

__all__ = ["UndecodableEvent", "aggregate_of", "decode_event", "encode_event", "subject_of"]


class UndecodableEvent(ValueError):
    """A stored event this code cannot read (unknown type, newer version, or corrupt body)."""


class _Head(msgspec.Struct):
    type: str = ""
    v: int = 1


_encoder = msgspec.json.Encoder()
_decode_head = msgspec.json.Decoder(_Head).decode
_decode_typed = msgspec.json.Decoder(model.AnyEvent).decode


def encode_event(event: model.Event) -> bytes:
    return _encoder.encode(event)


_CURRENT_BY_CLASS: dict[type, int] = {
    cls: CURRENT_VERSIONS[cls.__name__] for cls in model.AnyEvent.__args__
}


def decode_event(data: bytes) -> model.Event:
    """Decode one stored event body into its current typed Struct."""
    try:  # fast path (replays): one typed decode; anything not current takes the slow path
        fast: model.Event = _decode_typed(data)
        if fast.v == _CURRENT_BY_CLASS[type(fast)]:
            return fast
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    try:
        head = _decode_head(data)
    except msgspec.DecodeError as exc:
        raise UndecodableEvent(f"not an event: {exc}") from None
    current = CURRENT_VERSIONS.get(head.type)
    if current is None:
        raise UndecodableEvent(f"unknown event type {head.type!r}")
    if head.v > current:
        raise UndecodableEvent(f"{head.type} v{head.v} is newer than this code (v{current})")
    try:
        if head.v == current:
            event: model.Event = _decode_typed(data)
            return event
        raw: dict[str, Any] = msgspec.json.decode(data)
        converted: model.Event = msgspec.convert(upcast(raw), model.AnyEvent)
        return converted
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UndecodableEvent(f"{head.type} v{head.v}: {exc}") from None


def aggregate_of(event: model.Event) -> str:
    """The aggregate an event belongs to: ``stream.<id>``, ``agent.<id>``, ``group.<name>``,
    ``schedule.<name>``, ``scaling.<group>``, ``launch.<name>``, ``policy.<name>``, ``master``
    (in VIGIL_EVENTS), or ``<kind>.<source>`` for an alarm (in VIGIL_ALARMS)."""
    if isinstance(event, model.StreamEvent):
        return f"stream.{event.stream_id}"
    if isinstance(event, model.AgentEvent):
        return f"agent.{event.agent_id}"
    if isinstance(event, model.MasterElected):
        return "master"
    if isinstance(event, model.LogStarted):
        return "log"
    if isinstance(event, model.GroupEvent):
        return f"group.{event.group}"
    if isinstance(event, model.AlarmEvent):
        return f"{event.kind}.{event.source}"
    if isinstance(event, model.ScheduleEvent):
        return f"schedule.{event.schedule}"
    if isinstance(event, model.ScalingEvent):
        return f"scaling.{event.group}"
    if isinstance(event, model.LaunchConfigEvent):
        return f"launch.{event.launch}"
    if isinstance(event, model.PolicyEvent):
        return f"policy.{event.policy}"
    raise TypeError(f"no aggregate for {type(event).__name__}")


def subject_of(aggregate: str) -> str:
    return f"vigil.evt.{aggregate}"
