"""The group aggregate: redundancy groups of agents (AddPac's "streaming server groups"). Pure.

A group names its members by agent *name* with a priority (lowest number first). Modes:

- ``pool``: any ready member (or any agent labelled with the group) runs the group's streams,
  as labels always did;
- ``active_standby``: one member, the *active* one, runs every stream of the group; the others
  stand by. The master (``core.redundancy``) activates the best ready member, fails over when
  the active member is lost, and fails back to a better member once it has been healthy for
  ``failback_hold_s`` (when ``failback`` is on).

::

    create ─► (no active) ──activate──► active=A ──failover──► active=B ──failback──► active=A
    update: configuration replaced; the active member is kept while it is still a member
    delete: refused while streams name the group (their count is in the command)

``version`` counts applied events; master decisions carry ``base_version`` and are ignored by
``evolve`` when the group moved on meanwhile.
"""

from __future__ import annotations

import msgspec

from core.errors import IllegalTransition, Invalid, NotFound, VersionMismatch
from events.model import (
    Cause,
    GroupActivated,
    GroupCreated,
    GroupDeleted,
    GroupEvent,
    GroupFailback,
    GroupFailover,
    GroupMember,
    GroupMode,
    GroupUpdated,
)

__all__ = [
    "ActivateGroup",
    "CreateGroup",
    "DeleteGroup",
    "FailBack",
    "FailOver",
    "GroupCommand",
    "GroupConfig",
    "GroupState",
    "UpdateGroup",
    "check_config",
    "decide",
    "evolve",
]


class GroupConfig(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a user sets on a group (create and update)."""

    mode: GroupMode = "pool"
    members: tuple[GroupMember, ...] = ()
    keepalive_s: float = 1.0
    failover_s: float = 3.0
    failback: bool = True
    failback_hold_s: float = 10.0


class GroupState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    name: str
    config: GroupConfig
    created_at: float
    updated_at: float
    version: int = 1
    active: str | None = None
    """The active member's agent name (``active_standby``), or None."""
    active_since: float | None = None
    last_change: str | None = None
    """Why the active member is the active member (the last activation/failover/failback)."""
    failovers: int = 0
    failbacks: int = 0
    deleted: bool = False

    @property
    def is_redundant(self) -> bool:
        return self.config.mode == "active_standby"

    def members_by_priority(self) -> list[GroupMember]:
        return sorted(self.config.members, key=lambda m: (m.priority, m.agent))

    def member(self, agent_name: str) -> GroupMember | None:
        for m in self.config.members:
            if m.agent == agent_name:
                return m
        return None

    @property
    def primary(self) -> str | None:
        ranked = self.members_by_priority()
        return ranked[0].agent if ranked else None


# ---- commands --------------------------------------------------------------------------------


class _Command(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    group: str
    at: float
    cause: Cause


class CreateGroup(_Command, frozen=True, kw_only=True):
    config: GroupConfig


class UpdateGroup(_Command, frozen=True, kw_only=True):
    config: GroupConfig
    expected_version: int | None = None


class DeleteGroup(_Command, frozen=True, kw_only=True):
    streams: int
    """How many (not deleted) streams name this group now: deleting is refused unless 0."""
    expected_version: int | None = None


class ActivateGroup(_Command, frozen=True, kw_only=True):
    to_agent: str
    reason: str


class FailOver(_Command, frozen=True, kw_only=True):
    to_agent: str
    reason: str


class FailBack(_Command, frozen=True, kw_only=True):
    to_agent: str
    reason: str


GroupCommand = CreateGroup | UpdateGroup | DeleteGroup | ActivateGroup | FailOver | FailBack


# ---- decide ----------------------------------------------------------------------------------


def check_config(config: GroupConfig) -> None:
    """Rules a group's configuration keeps (raises ``Invalid`` with the field path)."""
    names = [m.agent for m in config.members]
    if len(set(names)) != len(names):
        raise Invalid("$.members", "an agent may be a member of a group only once")
    if config.failover_s < 2 * config.keepalive_s:
        raise Invalid(
            "$.failover_s",
            f"failover_s ({config.failover_s}) must be at least twice keepalive_s"
            f" ({config.keepalive_s}): one late keep-alive must not fail a group over",
        )
    if config.mode == "active_standby" and not config.members:
        raise Invalid("$.members", "an active_standby group needs at least one member")


def _version(state: GroupState, expected: int | None) -> None:
    if expected is not None and expected != state.version:
        raise VersionMismatch(
            f"group {state.name} is at version {state.version}, not {expected}: get it again"
        )


def decide(state: GroupState | None, cmd: GroupCommand) -> list[GroupEvent]:
    name, at, cause = cmd.group, cmd.at, cmd.cause
    if isinstance(cmd, CreateGroup):
        if state is not None and not state.deleted:
            raise IllegalTransition(f"group {name} already exists: update it instead")
        check_config(cmd.config)
        c = cmd.config
        return [
            GroupCreated(
                at=at, cause=cause, group=name, mode=c.mode, members=c.members,
                keepalive_s=c.keepalive_s, failover_s=c.failover_s, failback=c.failback,
                failback_hold_s=c.failback_hold_s,
            )
        ]  # fmt: skip
    if state is None or state.deleted:
        raise NotFound(f"group {name} not found")
    match cmd:
        case UpdateGroup():
            _version(state, cmd.expected_version)
            check_config(cmd.config)
            c = cmd.config
            if c == state.config:
                return []
            return [
                GroupUpdated(
                    at=at, cause=cause, group=name, mode=c.mode, members=c.members,
                    keepalive_s=c.keepalive_s, failover_s=c.failover_s, failback=c.failback,
                    failback_hold_s=c.failback_hold_s,
                )
            ]  # fmt: skip
        case DeleteGroup():
            _version(state, cmd.expected_version)
            if cmd.streams:
                raise IllegalTransition(
                    f"group {name} has {cmd.streams} stream(s): delete them or move them to"
                    " another group first"
                )
            return [GroupDeleted(at=at, cause=cause, group=name)]
        case ActivateGroup():
            _redundant_member(state, cmd.to_agent)
            if state.active is not None:
                raise IllegalTransition(f"group {name} already has an active member")
            return [GroupActivated(at=at, cause=cause, group=name, to_agent=cmd.to_agent,
                                   reason=cmd.reason, base_version=state.version)]  # fmt: skip
        case FailOver() | FailBack():
            _redundant_member(state, cmd.to_agent)
            if state.active is None or state.active == cmd.to_agent:
                raise IllegalTransition(f"group {name}: {cmd.to_agent} is already active")
            kind = GroupFailover if isinstance(cmd, FailOver) else GroupFailback
            return [kind(at=at, cause=cause, group=name, from_agent=state.active,
                         to_agent=cmd.to_agent, reason=cmd.reason,
                         base_version=state.version)]  # fmt: skip
    raise TypeError(f"unknown command {type(cmd).__name__}")  # pragma: no cover


def _redundant_member(state: GroupState, agent_name: str) -> None:
    if not state.is_redundant:
        raise IllegalTransition(f"group {state.name} is a pool: it has no active member")
    if state.member(agent_name) is None:
        raise IllegalTransition(f"{agent_name} is not a member of group {state.name}")


# ---- evolve ----------------------------------------------------------------------------------

_replace = msgspec.structs.replace


def _config(e: GroupCreated | GroupUpdated) -> GroupConfig:
    return GroupConfig(mode=e.mode, members=e.members, keepalive_s=e.keepalive_s,
                       failover_s=e.failover_s, failback=e.failback,
                       failback_hold_s=e.failback_hold_s)  # fmt: skip


def evolve(state: GroupState | None, event: GroupEvent) -> GroupState | None:
    """The state after ``event`` (never raises; superseded decisions change nothing)."""
    if isinstance(event, GroupCreated):
        if state is not None and not state.deleted:
            return state
        version = state.version + 1 if state is not None else 1
        return GroupState(name=event.group, config=_config(event), created_at=event.at,
                          updated_at=event.at, version=version)  # fmt: skip
    if state is None or state.deleted:
        return state
    version = state.version + 1
    if isinstance(event, GroupUpdated):
        config = _config(event)
        keep = config.mode == "active_standby" and any(
            m.agent == state.active for m in config.members
        )
        if keep:
            return _replace(state, config=config, version=version, updated_at=event.at)
        why = state.last_change
        if state.active is not None:
            why = ("mode changed to pool" if config.mode == "pool"
                   else f"active member {state.active} removed by an update")  # fmt: skip
        return _replace(state, config=config, version=version, updated_at=event.at, active=None,
                        active_since=None, last_change=why)  # fmt: skip
    if isinstance(event, GroupDeleted):
        return _replace(state, deleted=True, version=version, updated_at=event.at)
    if isinstance(event, GroupActivated | GroupFailover | GroupFailback):
        if event.base_version != state.version:
            return state
        return _replace(
            state, active=event.to_agent, active_since=event.at, last_change=event.reason,
            failovers=state.failovers + isinstance(event, GroupFailover),
            failbacks=state.failbacks + isinstance(event, GroupFailback),
            version=version, updated_at=event.at,
        )  # fmt: skip
    return state
