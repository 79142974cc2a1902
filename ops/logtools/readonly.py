"""A read-only manager stand-in over rebuilt (historical) projections: ``replay --serve``.

``ops.http.app.build_app`` serves it unchanged: reads answer from the state as of
``as_of_seq``; every write answers ``forbidden`` (HTTP 403) — a replay can never change the log.
"""

from __future__ import annotations

from nats.aio.client import Client
from prometheus_client.core import Metric

from core.errors import DomainError
from events.jetstream import JetStreamStore
from ops.api import requests as R
from ops.api.router import AnyRoute, Route, Router
from ops.api.views import (
    AgentList,
    AgentView,
    GroupList,
    GroupView,
    MasterView,
    StreamList,
    StreamView,
)
from ops.commands.agents import AgentCommands
from ops.commands.executor import Executor
from ops.commands.groups import GroupCommands
from ops.commands.heartbeats import Heartbeats
from ops.commands.scaling import ScaleFacts, ScalingCommands, scaling_routes
from ops.commands.schedules import ScheduleCommands, schedule_routes
from ops.commands.streams import StreamCommands
from ops.logtools.replay import Rebuilt
from ops.settings import ManagerSettings
from projections.engine import Projector

__all__ = ["ReadOnly", "ReadOnlyManager"]

_WRITES = (
    "stream.create",
    "stream.patch",
    "stream.delete",
    "agent.register",
    "group.create",
    "group.update",
    "group.delete",
    "schedule.create",
    "schedule.update",
    "schedule.delete",
    "launch.create",
    "launch.update",
    "launch.delete",
    "policy.create",
    "policy.update",
    "policy.delete",
)


class ReadOnly(DomainError):
    code = "forbidden"


async def _refuse(_req: R.EmptyReq) -> tuple[None, int]:
    raise ReadOnly("this is a read-only replay of the past; send writes to a running manager")


class ReadOnlyManager:
    """What ``ops.http`` needs from a manager (router, nc, readiness), over a past state."""

    def __init__(self, nc: Client, rebuilt: Rebuilt) -> None:
        self.nc = nc
        self.manager_id = f"replay@{rebuilt.seq}"
        self.as_of_seq: int | None = rebuilt.seq
        self.streams = rebuilt.fleet.streams
        self.agents = rebuilt.fleet.agents
        projector = Projector(nc, [], start_seq=rebuilt.seq + 1)  # never started: frozen
        executor = Executor(JetStreamStore(nc), projector)
        svc = StreamCommands(executor, projector, self.streams, manager_id=self.manager_id)
        agents = AgentCommands(executor, projector, self.agents, self.streams, ManagerSettings(),
                               manager_id=self.manager_id, heartbeats=Heartbeats(),
                               roles=rebuilt.fleet.groups.roles_of)  # fmt: skip
        groups = GroupCommands(executor, projector, rebuilt.fleet.groups, self.agents,
                               self.streams, manager_id=self.manager_id)  # fmt: skip
        routes: list[AnyRoute] = [
            Route("stream.get", R.GetStreamReq, svc.get, writes=False, result=StreamView),
            Route("stream.list", R.ListStreamsReq, svc.list_streams, writes=False,
                  result=StreamList),
            Route("agent.get", R.AgentIdReq, agents.get, writes=False, result=AgentView),
            Route("agent.list", R.ListAgentsReq, agents.list_agents, writes=False,
                  result=AgentList),
            Route("master.get", R.EmptyReq, self.master_info, writes=False, result=MasterView),
            Route("group.get", R.GroupNameReq, groups.get, writes=False, result=GroupView),
            Route("group.list", R.ListGroupsReq, groups.list_groups, writes=False,
                  result=GroupList),
        ]  # fmt: skip
        facts = ScaleFacts(self.agents, rebuilt.fleet.groups, self.streams, rebuilt.fleet.scaling,
                           rebuilt.fleet.schedules, buffer_s=ManagerSettings().schedule_buffer_s)  # fmt: skip
        reads = schedule_routes(ScheduleCommands(executor, projector, facts,
                                                 manager_id=self.manager_id))  # fmt: skip
        reads += scaling_routes(ScalingCommands(executor, projector, facts,
                                                manager_id=self.manager_id))  # fmt: skip
        routes += [r for r in reads if not r.writes]
        routes += [Route(name, R.EmptyReq, _refuse) for name in _WRITES]
        self.router = Router(routes)

    @property
    def last_seq(self) -> int:
        return self.as_of_seq or 0

    def readiness(self) -> str | None:
        return None

    async def metric_families(self, *, agents: bool, streams: bool) -> list[Metric]:
        return []

    def read_side(self) -> None:
        """No live read side: the past does not change (no overview, no live updates)."""
        return None

    async def master_info(self, _req: R.EmptyReq) -> tuple[MasterView, int]:
        seq = self.as_of_seq or 0
        return MasterView(replay_of_seq=seq), seq
