"""The agent aggregate: registration, downgrade/recovery, leaving. Pure.

::

    register ─► ready ──no heartbeat for downgrade_s──► not_ready ──heartbeat──► ready
                  │                                          │ retention over
                  └──deregister──► gone ◄────────remove──────┘
    drain (scale-in): a ready agent is given no more streams (``draining``) until it is removed

Re-registering with the same ``agent_id`` (an agent restarting on its old outbox) replaces its
offer and makes it ``ready``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.errors import IllegalTransition, NotFound
from events.model import (
    AgentDeregistered,
    AgentDowngraded,
    AgentDraining,
    AgentEvent,
    AgentRecovered,
    AgentRegistered,
    AgentRemoved,
    AnalyticOffer,
    Cause,
    HostInfo,
)

__all__ = [
    "AgentCommand",
    "AgentState",
    "AgentStatus",
    "DeregisterAgent",
    "DowngradeAgent",
    "DrainAgent",
    "RecoverAgent",
    "RegisterAgent",
    "RemoveAgent",
    "decide",
    "evolve",
]

AgentStatus = Literal["ready", "not_ready", "gone"]


class AgentState(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    name: str
    analytics: tuple[AnalyticOffer, ...]
    capacity: int
    groups: tuple[str, ...]
    labels: dict[str, str]
    host: HostInfo
    heartbeat_interval_s: float
    feedback_interval_s: float
    downgrade_s: float
    registered_at: float
    updated_at: float
    status: AgentStatus = "ready"
    version: int = 1
    not_ready_since: float | None = None
    not_ready_reason: str | None = None
    draining: str | None = None
    """Why it is being drained (scale-in): no new streams; None when it is not."""

    def offers(self, names: frozenset[str]) -> bool:
        return names <= {a.name for a in self.analytics}


class _Command(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    at: float
    cause: Cause


class RegisterAgent(_Command, frozen=True, kw_only=True):
    name: str
    analytics: tuple[AnalyticOffer, ...] = ()
    capacity: int = 1
    groups: tuple[str, ...] = ()
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    host: HostInfo = msgspec.field(default_factory=HostInfo)
    heartbeat_interval_s: float = 2.0
    feedback_interval_s: float = 2.0
    downgrade_s: float = 10.0


class DowngradeAgent(_Command, frozen=True, kw_only=True):
    reason: str


class RecoverAgent(_Command, frozen=True, kw_only=True):
    pass


class DeregisterAgent(_Command, frozen=True, kw_only=True):
    pass


class RemoveAgent(_Command, frozen=True, kw_only=True):
    reason: str


class DrainAgent(_Command, frozen=True, kw_only=True):
    reason: str


AgentCommand = (
    RegisterAgent | DowngradeAgent | RecoverAgent | DeregisterAgent | RemoveAgent | DrainAgent
)


def decide(state: AgentState | None, cmd: AgentCommand) -> list[AgentEvent]:
    aid, at, cause = cmd.agent_id, cmd.at, cmd.cause
    if isinstance(cmd, RegisterAgent):
        return [
            AgentRegistered(
                at=at, cause=cause, agent_id=aid, name=cmd.name, analytics=cmd.analytics,
                capacity=cmd.capacity, groups=cmd.groups, labels=cmd.labels, host=cmd.host,
                heartbeat_interval_s=cmd.heartbeat_interval_s,
                feedback_interval_s=cmd.feedback_interval_s, downgrade_s=cmd.downgrade_s,
            )
        ]  # fmt: skip
    if state is None or state.status == "gone":
        raise NotFound(f"agent {aid} not found: register it first")
    match cmd:
        case DowngradeAgent():
            if state.status != "ready":
                raise IllegalTransition(f"agent {aid} is {state.status}")
            return [AgentDowngraded(at=at, cause=cause, agent_id=aid, reason=cmd.reason,
                                    base_version=state.version)]  # fmt: skip
        case RecoverAgent():
            if state.status != "not_ready":
                return []
            return [AgentRecovered(at=at, cause=cause, agent_id=aid, base_version=state.version)]
        case DeregisterAgent():
            return [AgentDeregistered(at=at, cause=cause, agent_id=aid)]
        case RemoveAgent():
            if state.status != "not_ready":
                raise IllegalTransition(
                    f"agent {aid} is {state.status}; only not_ready agents are removed"
                )
            return [AgentRemoved(at=at, cause=cause, agent_id=aid, reason=cmd.reason,
                                 base_version=state.version)]  # fmt: skip
        case DrainAgent():
            if state.draining is not None:
                return []
            return [AgentDraining(at=at, cause=cause, agent_id=aid, reason=cmd.reason,
                                  base_version=state.version)]  # fmt: skip
    raise TypeError(f"unknown command {type(cmd).__name__}")  # pragma: no cover


def evolve(state: AgentState | None, event: AgentEvent) -> AgentState | None:
    if isinstance(event, AgentRegistered):
        return AgentState(
            agent_id=event.agent_id, name=event.name, analytics=event.analytics,
            capacity=event.capacity, groups=event.groups, labels=event.labels, host=event.host,
            heartbeat_interval_s=event.heartbeat_interval_s,
            feedback_interval_s=event.feedback_interval_s, downgrade_s=event.downgrade_s,
            registered_at=state.registered_at if state else event.at, updated_at=event.at,
            version=state.version + 1 if state else 1,
        )  # fmt: skip
    if state is None or state.status == "gone":
        return state
    if isinstance(event, AgentDowngraded | AgentRecovered | AgentRemoved | AgentDraining):
        if event.base_version != state.version:
            return state
    version = state.version + 1
    match event:
        case AgentDowngraded():
            return msgspec.structs.replace(
                state, status="not_ready", not_ready_since=event.at, version=version,
                updated_at=event.at, not_ready_reason=event.reason,
            )  # fmt: skip
        case AgentRecovered():
            return msgspec.structs.replace(
                state,
                status="ready",
                not_ready_since=None,
                version=version,
                updated_at=event.at,
                not_ready_reason=None,
            )
        case AgentDraining():
            return msgspec.structs.replace(state, draining=event.reason, version=version,
                                           updated_at=event.at)  # fmt: skip
        case AgentDeregistered() | AgentRemoved():
            return msgspec.structs.replace(
                state, status="gone", version=version, updated_at=event.at
            )
    return state
