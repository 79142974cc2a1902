"""Launch configs and scale policies: the small named objects autoscaling works from. Pure.

A **launch config** says how to start one agent: which provider (``local`` spawns ``vigil agent``
processes on the master's host; ``command`` runs a command set in the managers' configuration),
the agent's capacity, labels and analytics, the startup time assumed until launches of this
config have been measured, the deadline a launched agent has to register, and how many times a
launch is tried. A **scale policy** gives a group its base: ``min_agents``..``max_agents`` and the
load thresholds it scales out above and in below (load = the group's live streams / the
capacity of its ready agents), with a cooldown between load-driven steps. One policy per group.

::

    set ─► defined ──set──► defined (replaced) ──delete──► deleted (the name may be set again)

Both are aggregates on ``vigil.evt.launch.<name>`` and ``vigil.evt.policy.<name>``. A policy is
also set by the master: when a schedule without ``until`` is done (its figures become the base)
or creates a new group.
"""

from __future__ import annotations

import msgspec

from core.errors import IllegalTransition, Invalid, NotFound
from events.model import (
    Cause,
    LaunchConfigDeleted,
    LaunchConfigEvent,
    LaunchConfigSet,
    PolicyDeleted,
    PolicyEvent,
    PolicySet,
    ProviderKind,
)

__all__ = [
    "DeleteLaunchConfig",
    "DeletePolicy",
    "LaunchCommand",
    "LaunchConfig",
    "LaunchConfigState",
    "PolicyCommand",
    "PolicyConfig",
    "PolicyState",
    "SetLaunchConfig",
    "SetPolicy",
    "decide_launch",
    "decide_policy",
    "evolve_launch",
    "evolve_policy",
]


class LaunchConfig(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    provider: ProviderKind = "local"
    command: str | None = None
    capacity: int = 4
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    analytics: tuple[str, ...] = ()
    startup_s: float = 30.0
    deadline_s: float = 120.0
    attempts: int = 3
    parallel: bool | None = None

    @property
    def is_parallel(self) -> bool:
        """The local provider starts agents side by side; a command, one after another, unless
        the launch config says otherwise."""
        if self.parallel is not None:
            return self.parallel
        return self.provider == "local"


class LaunchConfigState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    name: str
    config: LaunchConfig
    created_at: float
    updated_at: float
    version: int = 1
    deleted: bool = False


class PolicyConfig(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    group: str
    launch: str
    min_agents: int = 0
    max_agents: int = 1
    scale_out_above: float = 0.8
    scale_in_below: float = 0.3
    cooldown_s: float = 60.0


class PolicyState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    name: str
    config: PolicyConfig
    created_at: float
    updated_at: float
    version: int = 1
    deleted: bool = False
    set_by: str = "command"
    """``command`` (a user) or ``master`` (a schedule made it)."""


# ---- commands --------------------------------------------------------------------------------


class _Command(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    name: str
    at: float
    cause: Cause


class SetLaunchConfig(_Command, frozen=True, kw_only=True):
    config: LaunchConfig
    create: bool = False
    """True: refuse when it exists (create); False: it must exist (update)."""


class DeleteLaunchConfig(_Command, frozen=True, kw_only=True):
    used_by: tuple[str, ...] = ()
    """Policies and pending/running schedules naming it: deleting is refused unless empty."""


class SetPolicy(_Command, frozen=True, kw_only=True):
    config: PolicyConfig
    create: bool = False
    upsert: bool = False
    """The master's set (a schedule): create or replace, whatever the state."""


class DeletePolicy(_Command, frozen=True, kw_only=True):
    pass


LaunchCommand = SetLaunchConfig | DeleteLaunchConfig
PolicyCommand = SetPolicy | DeletePolicy


def check_launch(c: LaunchConfig) -> None:
    if c.provider == "command" and not c.command:
        raise Invalid("$.command", "a command provider needs the name of a configured command"
                      " (VIGIL_SCALE_COMMANDS_FILE)")  # fmt: skip
    if c.provider == "local" and c.command:
        raise Invalid("$.command", "only the command provider takes a command")


def check_policy(c: PolicyConfig) -> None:
    if c.max_agents < c.min_agents:
        raise Invalid("$.max_agents", f"max_agents ({c.max_agents}) is below min_agents"
                      f" ({c.min_agents})")  # fmt: skip
    if c.scale_in_below >= c.scale_out_above:
        raise Invalid("$.scale_in_below", f"scale_in_below ({c.scale_in_below:g}) must be below"
                      f" scale_out_above ({c.scale_out_above:g}), or the group would flap")  # fmt: skip


def decide_launch(state: LaunchConfigState | None, cmd: LaunchCommand) -> list[LaunchConfigEvent]:
    name, at, cause = cmd.name, cmd.at, cmd.cause
    live = state is not None and not state.deleted
    match cmd:
        case SetLaunchConfig():
            if cmd.create and live:
                raise IllegalTransition(f"launch config {name} already exists: update it")
            if not cmd.create and not live:
                raise NotFound(f"launch config {name} not found")
            check_launch(cmd.config)
            if state is not None and live and state.config == cmd.config:
                return []
            c = cmd.config
            return [LaunchConfigSet(
                at=at, cause=cause, launch=name, provider=c.provider, command=c.command,
                capacity=c.capacity, labels=c.labels, analytics=c.analytics,
                startup_s=c.startup_s, deadline_s=c.deadline_s, attempts=c.attempts,
                parallel=c.parallel,
            )]  # fmt: skip
        case DeleteLaunchConfig():
            if not live:
                raise NotFound(f"launch config {name} not found")
            if cmd.used_by:
                raise IllegalTransition(f"launch config {name} is used by {', '.join(cmd.used_by)}:"
                                        " change or delete them first")  # fmt: skip
            return [LaunchConfigDeleted(at=at, cause=cause, launch=name)]
    raise TypeError(f"unknown command {type(cmd).__name__}")  # pragma: no cover


def evolve_launch(state: LaunchConfigState | None,
                  event: LaunchConfigEvent) -> LaunchConfigState | None:  # fmt: skip
    if isinstance(event, LaunchConfigSet):
        config = LaunchConfig(
            provider=event.provider, command=event.command, capacity=event.capacity,
            labels=event.labels, analytics=event.analytics, startup_s=event.startup_s,
            deadline_s=event.deadline_s, attempts=event.attempts, parallel=event.parallel,
        )  # fmt: skip
        if state is None or state.deleted:
            version = state.version + 1 if state is not None else 1
            return LaunchConfigState(name=event.launch, config=config, created_at=event.at,
                                     updated_at=event.at, version=version)  # fmt: skip
        return msgspec.structs.replace(state, config=config, updated_at=event.at,
                                       version=state.version + 1)  # fmt: skip
    if isinstance(event, LaunchConfigDeleted) and state is not None and not state.deleted:
        return msgspec.structs.replace(state, deleted=True, updated_at=event.at,
                                       version=state.version + 1)  # fmt: skip
    return state


def decide_policy(state: PolicyState | None, cmd: PolicyCommand) -> list[PolicyEvent]:
    name, at, cause = cmd.name, cmd.at, cmd.cause
    live = state is not None and not state.deleted
    match cmd:
        case SetPolicy():
            if not cmd.upsert:
                if cmd.create and live:
                    raise IllegalTransition(f"scale policy {name} already exists: update it")
                if not cmd.create and not live:
                    raise NotFound(f"scale policy {name} not found")
            check_policy(cmd.config)
            if state is not None and live and state.config == cmd.config:
                return []
            c = cmd.config
            return [PolicySet(
                at=at, cause=cause, policy=name, group=c.group, launch=c.launch,
                min_agents=c.min_agents, max_agents=c.max_agents,
                scale_out_above=c.scale_out_above, scale_in_below=c.scale_in_below,
                cooldown_s=c.cooldown_s,
            )]  # fmt: skip
        case DeletePolicy():
            if not live:
                raise NotFound(f"scale policy {name} not found")
            return [PolicyDeleted(at=at, cause=cause, policy=name)]
    raise TypeError(f"unknown command {type(cmd).__name__}")  # pragma: no cover


def evolve_policy(state: PolicyState | None, event: PolicyEvent) -> PolicyState | None:
    if isinstance(event, PolicySet):
        config = PolicyConfig(
            group=event.group, launch=event.launch, min_agents=event.min_agents,
            max_agents=event.max_agents, scale_out_above=event.scale_out_above,
            scale_in_below=event.scale_in_below, cooldown_s=event.cooldown_s,
        )  # fmt: skip
        if state is None or state.deleted:
            version = state.version + 1 if state is not None else 1
            return PolicyState(name=event.policy, config=config, created_at=event.at,
                               updated_at=event.at, version=version, set_by=event.cause.kind)  # fmt: skip
        return msgspec.structs.replace(state, config=config, updated_at=event.at,
                                       version=state.version + 1, set_by=event.cause.kind)  # fmt: skip
    if isinstance(event, PolicyDeleted) and state is not None and not state.deleted:
        return msgspec.structs.replace(state, deleted=True, updated_at=event.at,
                                       version=state.version + 1)  # fmt: skip
    return state
