"""What users see: JSON views of streams and agents (CONTRACT §2), with ISO-8601 UTC times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from core.agent import AgentState
from core.stream import StreamState

__all__ = ["agent_view", "assignment_view", "iso", "stream_view"]


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _analytics(s: StreamState) -> list[dict[str, Any]]:
    return [{"name": a.name, "params": a.params} for a in s.analytics]


def assignment_view(s: StreamState) -> dict[str, Any]:
    """What an agent gets for a stream assigned to it (CONTRACT §4, ``start[]``)."""
    return {
        "stream_id": s.stream_id,
        "version": s.assignment_version,
        "name": s.name,
        "source": {"url": s.source.url},
        "kind": s.kind,
        "analytics": _analytics(s),
        "labels": s.labels,
        "stall_timeout_s": s.staleness_s,
        "spool": msgspec.to_builtins(s.spool) if s.spool else None,
    }


def stream_view(s: StreamState) -> dict[str, Any]:
    return {
        "stream_id": s.stream_id,
        "name": s.name,
        "source": {"url": s.source.url},
        "kind": s.kind,
        "analytics": _analytics(s),
        "group": s.group,
        "status": s.status,
        "version": s.version,
        "agent_id": s.agent_id,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "last_error": msgspec.to_builtins(s.last_error) if s.last_error else None,
        "restarts": s.restarts,
        "restart_not_before": iso(s.restart_not_before),
        "labels": s.labels,
        "autorestart": msgspec.to_builtins(s.autorestart),
        "staleness_s": s.staleness_s,
        "spool": msgspec.to_builtins(s.spool) if s.spool else None,
    }


def agent_view(
    a: AgentState, *, load: int = 0, heartbeat: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "agent_id": a.agent_id,
        "name": a.name,
        "status": a.status,
        "version": a.version,
        "capacity": a.capacity,
        "load": load,
        "free": max(a.capacity - load, 0),
        "analytics": [msgspec.to_builtins(x) for x in a.analytics],
        "groups": list(a.groups),
        "labels": a.labels,
        "host": a.host,
        "registered_at": iso(a.registered_at),
        "updated_at": iso(a.updated_at),
        "not_ready_since": iso(a.not_ready_since),
        "heartbeat_interval_s": a.heartbeat_interval_s,
        "feedback_interval_s": a.feedback_interval_s,
        "downgrade_s": a.downgrade_s,
        "last_heartbeat": heartbeat,
    }
