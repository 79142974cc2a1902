"""A read-only manager stand-in over rebuilt (historical) projections: ``replay --serve``.

``build_app`` (``ops.http``) serves it unchanged: reads answer from the state as of ``as_of_seq``;
every write answers ``forbidden`` (HTTP 403) — a replay can never change the log.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client

from core.errors import DomainError
from events.jetstream import JetStreamStore
from ops import requests as R
from ops.agents import AgentService, Heartbeats
from ops.config import ManagerSettings
from ops.replay import Rebuilt
from ops.rpc import Route, Router
from ops.service import StreamService
from projections.engine import Projector

__all__ = ["ReadOnly", "ReadOnlyManager"]

_WRITES = ("stream.create", "stream.patch", "stream.delete", "agent.register",
           "agent.deregister")  # fmt: skip


class ReadOnly(DomainError):
    code = "forbidden"


async def _refuse(_req: Any) -> tuple[Any, int]:
    raise ReadOnly("this is a read-only replay of the past; send writes to a running manager")


class ReadOnlyManager:
    """Looks like ``ops.manager.Manager`` to ``ops.http`` (router, projector, ready, nc)."""

    def __init__(self, nc: Client, rebuilt: Rebuilt) -> None:
        by_name = rebuilt.by_name()
        self.nc = nc
        self.manager_id = f"replay@{rebuilt.seq}"
        self.as_of_seq = rebuilt.seq
        self.streams = by_name["streams"]
        self.agents = by_name["agents"]
        self._projections = rebuilt.projections
        self.projector = Projector(nc, [], start_seq=rebuilt.seq + 1)  # never started: frozen
        store = JetStreamStore(nc)
        self.service = StreamService(store, self.projector, self.streams,
                                     manager_id=self.manager_id)  # fmt: skip
        self.agent_service = AgentService(store, self.projector, self.agents, self.streams,
                                          ManagerSettings(), manager_id=self.manager_id,
                                          heartbeats=Heartbeats())  # fmt: skip
        svc, agents = self.service, self.agent_service
        routes = [
            Route("stream.get", R.GetStreamReq, svc.get, writes=False),
            Route("stream.list", R.ListStreamsReq, svc.list_streams, writes=False),
            Route("agent.get", R.AgentIdReq, agents.get, writes=False),
            Route("agent.list", R.ListAgentsReq, agents.list_agents, writes=False),
            Route("master.get", R.EmptyReq, self.master_info, writes=False),
        ] + [Route(name, R.EmptyReq, _refuse) for name in _WRITES]
        self.router = Router(routes)

    @property
    def ready(self) -> bool:
        return True

    def projections(self) -> list[Any]:
        return self._projections

    async def master_info(self, _req: R.EmptyReq) -> tuple[dict[str, Any], int]:
        return {"manager_id": None, "replay_of_seq": self.as_of_seq}, self.as_of_seq
