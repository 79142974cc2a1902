"""What the HTTP API needs from a manager (a live one, or a read-only replay of the past).

Every route goes through ``router`` (the commands). The dashboard's overview and its live
updates read the projections themselves (``read_side()``): a live manager offers them, a replay
does not (those two routes answer 404 there).
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from nats.aio.client import Client
from prometheus_client.core import Metric

from ops.api.router import Router
from ops.commands.agents import AgentCommands
from ops.commands.groups import GroupCommands
from ops.commands.heartbeats import Heartbeats
from ops.commands.waiting import WaitingReasons
from ops.master.loop import Master
from projections.agents import AgentsProjection
from projections.alarms import AlarmsProjection
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["BACKEND", "Backend", "FleetView"]


class FleetView(Protocol):
    """A live manager's read side: projections with listeners, and what builds their views."""

    manager_id: str
    streams: StreamsProjection
    agents: AgentsProjection
    groups: GroupsProjection
    alarms: AlarmsProjection
    heartbeats: Heartbeats
    waiting: WaitingReasons
    agent_commands: AgentCommands
    group_commands: GroupCommands
    master: Master

    @property
    def last_seq(self) -> int: ...


class Backend(Protocol):
    manager_id: str
    nc: Client
    router: Router
    as_of_seq: int | None
    """Set on a replay: the event sequence whose state is served."""

    @property
    def last_seq(self) -> int: ...
    def readiness(self) -> str | None: ...
    async def metric_families(self, *, agents: bool, streams: bool) -> list[Metric]:
        """This manager's metrics for ``/metrics`` (none on a replay)."""
        ...

    def read_side(self) -> FleetView | None: ...


BACKEND: web.AppKey[Backend] = web.AppKey("backend", Backend)
