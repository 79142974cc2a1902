"""Requests and views of schedules, launch configs, scale policies and scaling (issue 13).

Schedules keep Red5's shape (``eventName``, ``date`` in UTC milliseconds as a string or a
number, ``data{group | launch + policy, region[{name, info{min_agents, max_agents}}]}``) and
accept Red5's own names for the data (``nodeGroup``, ``launchConfig``, ``scalePolicy``).
Counts may be strings (``"15"``), as Red5 clients send them. The views answer in the same shape,
with vigil's additions (the plan and the figures it used, the reason, the agents).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from core.errors import Invalid
from events.protocol import Id, LabelKey, Labels, LabelValue

__all__ = [
    "AgentsView",
    "CreateScheduleReq",
    "DeletedName",
    "LaunchConfigList",
    "LaunchConfigReq",
    "LaunchConfigView",
    "LaunchView",
    "ListSchedulesReq",
    "NameReq",
    "PlanView",
    "PolicyList",
    "PolicyReq",
    "PolicyView",
    "RegionIn",
    "RegionInfoIn",
    "RegionInfoView",
    "RegionView",
    "ScalingList",
    "ScalingView",
    "ScheduleDataIn",
    "ScheduleDataView",
    "ScheduleList",
    "ScheduleNameReq",
    "ScheduleView",
    "UpdateLaunchConfigReq",
    "UpdatePolicyReq",
    "UpdateScheduleReq",
    "count_of",
    "ms_of",
]

RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Version = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
EventName = Annotated[str, msgspec.Meta(min_length=1, max_length=128,
                                        pattern=r"^[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]*$")]  # fmt: skip
Millis = int | Annotated[str, msgspec.Meta(max_length=32)]
"""UTC milliseconds since 1970, as a number or a string of digits (Red5 sends strings)."""
CountIn = Annotated[int, msgspec.Meta(ge=0, le=10_000)] | Annotated[str, msgspec.Meta(max_length=8)]
Buffer = Annotated[float, msgspec.Meta(ge=0, le=86400, description="setup buffer (s)")]
ScheduleStatus = Literal["pending", "running", "done", "failed", "cancelled"]

MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def ms_of(value: int | str, path: str) -> int:
    """UTC milliseconds from a number or a string of digits; ``Invalid`` naming ``path``."""
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii():
            raise Invalid(path, f"{value!r} is not a date in UTC milliseconds since 1970")
        value = int(text)
    if not 0 < value <= MAX_MS:
        raise Invalid(path, f"{value} is not a date in UTC milliseconds since 1970")
    return value


def count_of(value: int | str, path: str) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii() or int(text) > 10_000:
            raise Invalid(path, f"{value!r} is not a count of agents (0..10000)")
        return int(text)
    return value


# ---- schedules -------------------------------------------------------------------------------


class RegionInfoIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_agents: CountIn
    max_agents: CountIn | None = None
    """Default: ``min_agents``."""


class RegionIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "default"
    info: RegionInfoIn | None = None


class ScheduleDataIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``data``: an existing ``group`` (resize), or a new group: ``launch`` (an existing launch
    config) and ``policy`` (a new scale policy; the group is named ``group``, else after the
    policy). Red5's names are accepted too."""

    group: Id | None = None
    node_group: Id | None = msgspec.field(default=None, name="nodeGroup")
    launch: Id | None = None
    launch_config: Id | None = msgspec.field(default=None, name="launchConfig")
    policy: Id | None = None
    scale_policy: Id | None = msgspec.field(default=None, name="scalePolicy")
    region: Annotated[list[RegionIn], msgspec.Meta(max_length=16)] = []


class CreateScheduleReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Body of ``vigil.cmd.schedule.create`` and ``POST /api/v1/schedules``."""

    event_name: EventName = msgspec.field(name="eventName")
    date: Millis
    until: Millis | None = None
    """Optional end (UTC ms): the group returns to its base policy after it."""
    buffer_s: Buffer | None = None
    data: ScheduleDataIn
    request_id: RequestId | None = None


class UpdateScheduleReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Body of ``vigil.cmd.schedule.update`` and ``PUT /api/v1/schedules/{eventName}``: the
    fields given replace the schedule's (``data`` as a whole)."""

    event_name: EventName = msgspec.field(name="eventName")
    date: Millis | None = None
    until: Millis | None = None
    buffer_s: Buffer | None = None
    data: ScheduleDataIn | None = None
    expected_version: Version | None = None
    request_id: RequestId | None = None


class ScheduleNameReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    event_name: EventName = msgspec.field(name="eventName")
    request_id: RequestId | None = None


class ListSchedulesReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    state: ScheduleStatus | None = None
    group: Id | None = None


class RegionInfoView(msgspec.Struct, frozen=True, kw_only=True):
    min_agents: int
    max_agents: int


class RegionView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    info: RegionInfoView


class ScheduleDataView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    group: str
    launch: str | None = None
    policy: str | None = None
    region: list[RegionView] = []


class PlanView(msgspec.Struct, frozen=True, kw_only=True):
    """When the schedule starts (or started) and the figures that say so."""

    start: str
    """UTC milliseconds, like ``date``."""
    start_at: str | None
    lead_s: float
    mode: Literal["parallel", "sequential"]
    formula: str
    """``date − (to_add × startup_s + buffer_s)`` with the figures."""
    agents_now: int
    agents_target: int
    agents_to_add: int
    startup_s: float
    startup_from: str
    """``learned: median of N launch(es) of launch config L`` or ``default: …``."""
    buffer_s: float
    launch: str
    fixed: bool
    """True once started: the figures it started with; False: computed now (they follow what
    is measured and the agents of the group until the start)."""
    late: bool = False
    late_s: float = 0.0
    note: str = ""


class AgentsView(msgspec.Struct, frozen=True, kw_only=True):
    ready: int
    launching: int
    target: int


class ScheduleView(msgspec.Struct, frozen=True, kw_only=True):
    """Red5's ``{id, eventName, date, data, state}`` and vigil's additions."""

    id: int
    event_name: str = msgspec.field(name="eventName")
    date: str
    data: ScheduleDataView
    state: ScheduleStatus
    until: str | None = None
    buffer_s: float | None = None
    plan: PlanView | None = None
    reason: str | None = None
    agents: AgentsView | None = None
    version: int = 1
    created_at: str | None = None
    updated_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class ScheduleList(msgspec.Struct, frozen=True, kw_only=True):
    schedules: list[ScheduleView]


# ---- launch configs and policies ---------------------------------------------------------------

Seconds = Annotated[float, msgspec.Meta(gt=0, le=86400)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=10)]
Agents = Annotated[int, msgspec.Meta(ge=0, le=10_000)]


class LaunchConfigReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A launch config: how one agent of a group is started."""

    name: Id
    provider: Literal["local", "command"] = "local"
    command: Id | None = None
    """``command`` provider: a command configured on the managers (VIGIL_SCALE_COMMANDS_FILE)."""
    capacity: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 4
    labels: Labels = {}
    analytics: Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]],
                         msgspec.Meta(max_length=32)] = []  # fmt: skip
    """Offer only these analytics (empty: all of the agent's)."""
    startup_s: Annotated[float, msgspec.Meta(gt=0, le=86400,
                         description="startup time assumed until measured (s)")] = 30.0  # fmt: skip
    deadline_s: Annotated[float, msgspec.Meta(gt=0, le=86400,
                          description="a launch must register within this (s)")] = 120.0  # fmt: skip
    attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    parallel: bool | None = None
    request_id: RequestId | None = None


class UpdateLaunchConfigReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True,
                            kw_only=True):  # fmt: skip
    name: Id
    provider: Literal["local", "command"] | None = None
    command: Id | None = None
    capacity: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    labels: Labels | None = None
    analytics: Annotated[list[Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")]],
                         msgspec.Meta(max_length=32)] | None = None  # fmt: skip
    startup_s: Seconds | None = None
    deadline_s: Seconds | None = None
    attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] | None = None
    parallel: bool | None = None
    request_id: RequestId | None = None


class PolicyReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A scale policy: a group's base (min..max agents) and its load thresholds."""

    name: Id
    group: Id | None = None
    """Default: the policy's name."""
    launch: Id
    min_agents: Agents = 0
    max_agents: Agents = 1
    scale_out_above: Fraction = 0.8
    """Load (live streams / capacity of ready agents) above which agents are launched."""
    scale_in_below: Fraction = 0.3
    cooldown_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] = 60.0
    request_id: RequestId | None = None


class UpdatePolicyReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Id
    launch: Id | None = None
    min_agents: Agents | None = None
    max_agents: Agents | None = None
    scale_out_above: Fraction | None = None
    scale_in_below: Fraction | None = None
    cooldown_s: Annotated[float, msgspec.Meta(ge=0, le=86400)] | None = None
    request_id: RequestId | None = None


class NameReq(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Id
    request_id: RequestId | None = None


class LaunchConfigView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    provider: Literal["local", "command"]
    command: str | None
    capacity: int
    labels: dict[LabelKey, LabelValue]
    analytics: list[str]
    startup_s: float
    """The configured default."""
    startup_learned_s: float | None
    """The median of measured launches (None: none measured yet)."""
    startup_samples: list[float]
    deadline_s: float
    attempts: int
    parallel: bool
    version: int
    updated_at: str | None


class LaunchConfigList(msgspec.Struct, frozen=True, kw_only=True):
    launch_configs: list[LaunchConfigView]


class PolicyView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    group: str
    launch: str
    min_agents: int
    max_agents: int
    scale_out_above: float
    scale_in_below: float
    cooldown_s: float
    set_by: str
    version: int
    updated_at: str | None


class PolicyList(msgspec.Struct, frozen=True, kw_only=True):
    policies: list[PolicyView]


class DeletedName(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    deleted: bool = True


# ---- scaling ---------------------------------------------------------------------------------


class LaunchView(msgspec.Struct, frozen=True, kw_only=True):
    launch_id: str
    agent_name: str
    launch: str
    provider: str
    status: str
    attempt: int
    schedule: str | None
    region: str | None
    reason: str
    decided_at: str | None
    deadline_at: str | None
    started: bool
    detail: str
    agent_id: str | None
    took_s: float | None
    ended_at: str | None
    end_reason: str | None
    draining: str | None = None


class ScalingView(msgspec.Struct, frozen=True, kw_only=True):
    """One group's autoscaling: the figures in force and where they come from, its agents, the
    launches in flight and the recent ones."""

    group: str
    policy: str | None
    bounds: RegionInfoView | None
    bounds_from: str | None
    launch: str | None
    ready: int
    launching: int
    desired: int
    reason: str
    demand: int
    capacity: int
    failures: int
    last_failure: str | None
    live: list[LaunchView]
    history: list[LaunchView]
    schedules: list[str]


class ScalingList(msgspec.Struct, frozen=True, kw_only=True):
    groups: list[ScalingView]
