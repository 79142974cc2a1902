"""The scaling aggregate: the master's launches and removals for one group. Pure.

Only the master writes it (fenced on its election), so a launch is *decided* once: a new master
folds the same log and continues what the old one started — waiting for the agent to register,
running the provider if the old master died before it did, failing the launch at its deadline.

::

    decide ─► launching ──started (provider ran)──► launching ──registered──► running
                  │ deadline passed / provider error                            │ drained
                  ▼                                                             ▼
               failed (retried by the next decision; consecutive failures    removing
               counted: a schedule fails after its launch config's attempts)

``launched`` numbers the launches: launch ``n`` of group ``lobby`` is ``lobby-auto-n``, the name
its agent registers under with the ``local`` provider. Registered launches are the agents the
autoscaler may remove (agents started by hand are never removed). Startup samples for learning
are the ``took_s`` of registrations (kept by ``projections.scaling``).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from core.errors import IllegalTransition
from events.model import (
    Cause,
    ProviderKind,
    ScaleAgentRemoved,
    ScaleLaunchDecided,
    ScaleLaunchFailed,
    ScaleLaunchRegistered,
    ScaleLaunchStarted,
    ScalingEvent,
)

__all__ = [
    "HISTORY",
    "DecideLaunch",
    "FailLaunch",
    "LaunchEntry",
    "LaunchStatus",
    "MarkRegistered",
    "MarkStarted",
    "RemoveLaunched",
    "ScalingCommand",
    "ScalingState",
    "decide",
    "evolve",
    "launch_name",
    "launch_of",
]

HISTORY = 20
"""Ended launches and removals kept per group (for the views)."""

LaunchStatus = Literal["launching", "running", "failed", "removed"]


def launch_name(group: str, n: int) -> str:
    """The id of launch ``n`` of ``group``, and the name its agent registers under (local)."""
    return f"{group}-auto-{n}"


def launch_of(event: ScalingEvent) -> str:
    """The launch an event is about ('' for none)."""
    if isinstance(event, ScaleLaunchDecided | ScaleLaunchStarted | ScaleLaunchRegistered
                  | ScaleLaunchFailed):  # fmt: skip
        return event.launch_id
    if isinstance(event, ScaleAgentRemoved):
        return event.launch_id or ""
    return ""


class LaunchEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    launch_id: str
    agent_name: str
    launch: str
    provider: ProviderKind
    region: str | None
    schedule: str | None
    attempt: int
    decided_at: float
    deadline_at: float
    target: int
    reason: str
    status: LaunchStatus = "launching"
    started: bool = False
    detail: str = ""
    agent_id: str | None = None
    took_s: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None


class ScalingState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    group: str
    version: int = 0
    launched: int = 0
    live: dict[str, LaunchEntry] = msgspec.field(default_factory=dict)
    """Launches ``launching`` or ``running`` (their agent is in the fleet), by launch id."""
    history: tuple[LaunchEntry, ...] = ()
    """The last `HISTORY` failed or removed launches, oldest first."""
    failures: int = 0
    """Consecutive failed launches (0 after a registration)."""
    failure_schedule: str | None = None
    last_failure: str | None = None
    last_change_at: float = 0.0
    """When the group last gained or lost an agent, or a launch failed (cooldowns count from
    it)."""

    def launching(self) -> list[LaunchEntry]:
        return [e for e in self.live.values() if e.status == "launching"]

    def running(self) -> list[LaunchEntry]:
        return [e for e in self.live.values() if e.status == "running"]

    def by_agent(self, agent_id: str) -> LaunchEntry | None:
        for e in self.live.values():
            if e.agent_id == agent_id:
                return e
        return None


# ---- commands (the master's) ------------------------------------------------------------------


class _Command(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    group: str
    at: float
    cause: Cause


class DecideLaunch(_Command, frozen=True, kw_only=True):
    launch: str
    provider: ProviderKind
    deadline_s: float
    target: int
    reason: str
    region: str | None = None
    schedule: str | None = None


class MarkStarted(_Command, frozen=True, kw_only=True):
    launch_id: str
    detail: str = ""


class MarkRegistered(_Command, frozen=True, kw_only=True):
    launch_id: str
    agent_id: str
    agent_name: str
    registered_at: float


class FailLaunch(_Command, frozen=True, kw_only=True):
    launch_id: str
    reason: str


class RemoveLaunched(_Command, frozen=True, kw_only=True):
    agent_id: str
    reason: str


ScalingCommand = DecideLaunch | MarkStarted | MarkRegistered | FailLaunch | RemoveLaunched


def decide(state: ScalingState | None, cmd: ScalingCommand) -> list[ScalingEvent]:
    group, at, cause = cmd.group, cmd.at, cmd.cause
    state = state or ScalingState(group=group)
    if isinstance(cmd, DecideLaunch):
        n = state.launched + 1
        name = launch_name(group, n)
        return [ScaleLaunchDecided(
            at=at, cause=cause, group=group, launch_id=name, agent_name=name, launch=cmd.launch,
            provider=cmd.provider, region=cmd.region, schedule=cmd.schedule,
            attempt=state.failures + 1, deadline_at=at + cmd.deadline_s, target=cmd.target,
            reason=cmd.reason,
        )]  # fmt: skip
    if isinstance(cmd, RemoveLaunched):
        entry = state.by_agent(cmd.agent_id)
        if entry is None or entry.status != "running":
            raise IllegalTransition(f"agent {cmd.agent_id} was not launched for group {group}")
        return [ScaleAgentRemoved(at=at, cause=cause, group=group, launch_id=entry.launch_id,
                                  agent_id=cmd.agent_id, agent_name=entry.agent_name,
                                  reason=cmd.reason)]  # fmt: skip
    live = state.live.get(cmd.launch_id)
    if live is None or live.status != "launching":
        raise IllegalTransition(f"launch {cmd.launch_id} is not in flight")
    match cmd:
        case MarkStarted():
            if live.started:
                return []
            return [ScaleLaunchStarted(at=at, cause=cause, group=group, launch_id=cmd.launch_id,
                                       detail=cmd.detail)]  # fmt: skip
        case MarkRegistered():
            took = max(cmd.registered_at - live.decided_at, 0.0)
            return [ScaleLaunchRegistered(at=at, cause=cause, group=group,
                                          launch_id=cmd.launch_id, agent_id=cmd.agent_id,
                                          agent_name=cmd.agent_name, took_s=round(took, 3))]  # fmt: skip
        case FailLaunch():
            return [ScaleLaunchFailed(at=at, cause=cause, group=group, launch_id=cmd.launch_id,
                                      reason=cmd.reason)]  # fmt: skip
    raise TypeError(f"unknown command {type(cmd).__name__}")  # pragma: no cover


_replace = msgspec.structs.replace


def _ended(state: ScalingState, entry: LaunchEntry) -> tuple[LaunchEntry, ...]:
    return (*state.history, entry)[-HISTORY:]


def evolve(state: ScalingState | None, event: ScalingEvent) -> ScalingState:
    state = state or ScalingState(group=event.group)
    version = state.version + 1
    if isinstance(event, ScaleLaunchDecided):
        new = LaunchEntry(
            launch_id=event.launch_id, agent_name=event.agent_name, launch=event.launch,
            provider=event.provider, region=event.region, schedule=event.schedule,
            attempt=event.attempt, decided_at=event.at, deadline_at=event.deadline_at,
            target=event.target, reason=event.reason,
        )  # fmt: skip
        return _replace(state, version=version, launched=state.launched + 1,
                        live={**state.live, event.launch_id: new})  # fmt: skip
    if isinstance(event, ScaleAgentRemoved):
        found = state.by_agent(event.agent_id)
        if found is None:
            return _replace(state, version=version)
        live = {k: v for k, v in state.live.items() if k != found.launch_id}
        gone = _replace(found, status="removed", ended_at=event.at, end_reason=event.reason)
        return _replace(state, version=version, live=live, history=_ended(state, gone),
                        last_change_at=event.at)  # fmt: skip
    entry = state.live.get(event.launch_id) if isinstance(
        event, ScaleLaunchStarted | ScaleLaunchRegistered | ScaleLaunchFailed) else None  # fmt: skip
    if entry is None:
        return _replace(state, version=version)
    if isinstance(event, ScaleLaunchStarted):
        started = _replace(entry, started=True, detail=event.detail)
        return _replace(state, version=version, live={**state.live, entry.launch_id: started})
    if isinstance(event, ScaleLaunchRegistered):
        running = _replace(entry, status="running", agent_id=event.agent_id,
                           agent_name=event.agent_name, took_s=event.took_s)  # fmt: skip
        return _replace(state, version=version, live={**state.live, entry.launch_id: running},
                        failures=0, failure_schedule=None, last_change_at=event.at)  # fmt: skip
    if isinstance(event, ScaleLaunchFailed):
        live = {k: v for k, v in state.live.items() if k != entry.launch_id}
        failed = _replace(entry, status="failed", ended_at=event.at, end_reason=event.reason)
        return _replace(state, version=version, live=live, history=_ended(state, failed),
                        failures=state.failures + 1, failure_schedule=entry.schedule,
                        last_failure=event.reason, last_change_at=event.at)  # fmt: skip
    return _replace(state, version=version)
