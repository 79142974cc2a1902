"""The master's redundancy rules for ``active_standby`` groups. Pure: members' health arrives
as arguments (``MemberHealth``: what the master saw of their heartbeats and connections).

A member is *healthy* when an agent of that name is ``ready``, its NATS connection has not
been seen to close since its last keep-alive, and its last keep-alive is younger than the
group's ``failover_s``. Rules, for one group now::

    no active member, some member healthy          → activate the best healthy member
    active member lost (connection closed, silent
      for failover_s, not ready, or removed)       → fail over to the best healthy member
    active healthy, failback on, a better member
      healthy for failback_hold_s                  → fail back to it
    otherwise                                      → nothing (streams wait, with a reason)

"Best" is the lowest priority number, then the name. A new master has not seen anyone's
keep-alives: it holds silence against a member only once it has reigned ``failover_s`` itself.
``group_due`` says when the rule could next fire if nothing else happens, so the master keeps a
heap of due times instead of looking at every group every tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import msgspec

from core import group as G
from core.group import GroupState
from events.model import Cause

__all__ = [
    "MemberHealth",
    "group_due",
    "group_rule",
    "is_healthy",
    "lost_because",
]

NEVER = math.inf

CauseOf = Callable[[str], Cause]


class MemberHealth(msgspec.Struct, frozen=True, kw_only=True):
    """What the master knows about one member (by agent name) right now."""

    name: str
    ready: bool
    """An agent of this name is registered and ``ready``."""
    connected: bool = True
    """No connection loss seen since its last keep-alive."""
    silent_s: float | None = None
    """Seconds since its last keep-alive (None: none seen during this reign)."""
    healthy_for: float | None = None
    """Seconds it has been healthy without a gap (None: not healthy now)."""
    disconnect_reason: str | None = None


def _silence(h: MemberHealth, reign_s: float) -> float:
    silent = h.silent_s if h.silent_s is not None else reign_s
    return min(silent, reign_s)


def is_healthy(h: MemberHealth, failover_s: float) -> bool:
    """Ready, connected, and a keep-alive seen less than ``failover_s`` ago."""
    return h.ready and h.connected and h.silent_s is not None and h.silent_s < failover_s


def lost_because(h: MemberHealth | None, failover_s: float, reign_s: float) -> str | None:
    """Why the active member counts as lost (None: it does not)."""
    if h is None:
        return "no agent of that name is registered"
    if not h.connected:
        return f"its NATS connection closed ({h.disconnect_reason or 'disconnected'})"
    if not h.ready:
        return "its agent is not ready"
    if reign_s >= failover_s and _silence(h, reign_s) >= failover_s:
        return f"no keep-alive for {_silence(h, reign_s):.1f}s (failover_s {failover_s:g})"
    return None


def _ranked(group: GroupState, health: Mapping[str, MemberHealth],
            failover_s: float) -> list[tuple[int, str]]:  # fmt: skip
    """Healthy members as (priority, name), best first."""
    return sorted(
        (m.priority, m.agent)
        for m in group.config.members
        if (h := health.get(m.agent)) is not None and is_healthy(h, failover_s)
    )


def group_rule(
    group: GroupState,
    health: Mapping[str, MemberHealth],
    *,
    now: float,
    reign_s: float,
    cause: CauseOf,
) -> G.GroupCommand | None:
    """The decision about ``group`` now (None: nothing to do)."""
    if not group.is_redundant or group.deleted:
        return None
    c = group.config
    healthy = _ranked(group, health, c.failover_s)
    name = group.name
    active = group.active
    if active is None:
        if not healthy:
            return None
        best = healthy[0][1]
        return G.ActivateGroup(group=name, at=now, cause=cause("group.activate"), to_agent=best,
                               reason=f"{best} is the best ready member")  # fmt: skip
    member = group.member(active)
    why = "it is no longer a member" if member is None else lost_because(
        health.get(active), c.failover_s, reign_s)  # fmt: skip
    if why is not None:
        others = [n for _, n in healthy if n != active]
        if not others:
            return None
        return G.FailOver(group=name, at=now, cause=cause("group.failover"), to_agent=others[0],
                          reason=f"active member {active} lost: {why}")  # fmt: skip
    if not c.failback or not healthy:
        return None
    assert member is not None
    priority, best = healthy[0]
    if best == active or priority >= member.priority:
        return None
    held = health[best].healthy_for or 0.0
    if held < c.failback_hold_s:
        return None
    return G.FailBack(group=name, at=now, cause=cause("group.failback"), to_agent=best,
                      reason=f"{best} (priority {priority}) healthy for {held:.1f}s"
                      f" (failback_hold_s {c.failback_hold_s:g})")  # fmt: skip


def group_due(
    group: GroupState, health: Mapping[str, MemberHealth], *, now: float, reign_s: float
) -> float:
    """When `group_rule` could next fire for unchanged states (membership changes, connection
    losses and members becoming healthy are pushed to the master as they happen)."""
    if not group.is_redundant or group.deleted or group.active is None:
        return NEVER
    c = group.config
    h = health.get(group.active)
    if h is None or lost_because(h, c.failover_s, reign_s) is not None:
        return NEVER
    due = now + max(c.failover_s - _silence(h, reign_s), 0.0) + 0.001
    if c.failback:
        member = group.member(group.active)
        for priority, name in _ranked(group, health, c.failover_s):
            if member is None or priority >= member.priority:
                break
            held = health[name].healthy_for or 0.0
            due = min(due, now + max(c.failback_hold_s - held, 0.0) + 0.001)
            break
    return due
