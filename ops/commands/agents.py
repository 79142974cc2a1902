"""The manager's side of the agent protocol (CONTRACT §4) and the agent queries.

::

    vigil.agent.register               request (queue group)  → Registered
    vigil.agent.<id>.heartbeat         publish (every manager listens: ``Heartbeats``)
    vigil.agent.<id>.streams           request (queue group)  → PollResult
    vigil.agent.<id>.notify            push from the master: "poll now"
    vigil.agent.<id>.deregister        request (queue group)  → Deregistered

The agent id of every per-agent request comes from the subject, never from the body.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from core import agent as A
from core.agent import AgentState
from core.errors import Invalid, NotFound
from events import subjects
from events.model import AgentEvent, AnalyticOffer, Cause
from events.protocol import Assignment, Deregistered, Poll, PollResult, Register, Registered
from ops.api import requests as R
from ops.api.router import AnyRoute, Route, Router
from ops.api.views import AgentList, AgentView, HeartbeatView, agent_view, assignment_of
from ops.commands.analytics import check_schema
from ops.commands.executor import AggregateType, Executor
from ops.commands.heartbeats import Heartbeats
from ops.commands.secrets import SecretStore
from ops.settings import ManagerSettings
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.streams import StreamsProjection

__all__ = ["AgentCommands", "PollReq", "agent_aggregate", "agent_routes", "serve_agent_protocol"]

log = logging.getLogger(__name__)

RefusedCounts = Callable[[str], Mapping[str, int]]
"""agent_id → feedback refused per reason (from the statistics fold, which sees every message)."""


def _no_refusals(_agent_id: str) -> Mapping[str, int]:
    return {}


POLL_PAGE_BYTES = 256 * 1024
"""A poll reply stays well below NATS's max payload (1 MB by default): more assignments than
fit are paged (``PollResult.next``)."""

_encode = msgspec.json.Encoder().encode


def _no_groups(_name: str) -> float | None:
    return None


def _no_roles(_name: str) -> tuple[list[str], list[str]]:
    return [], []


class PollReq(msgspec.Struct, frozen=True):
    """``agent.poll``: the agent id (from the subject) and its `Poll` body."""

    agent_id: str
    poll: Poll


class DeregisterReq(msgspec.Struct, frozen=True):
    agent_id: str


def agent_aggregate(
    agents: AgentsProjection,
) -> AggregateType[AgentState, A.AgentCommand, AgentEvent]:
    return AggregateType(
        kind="agent", event_type=AgentEvent, decide=A.decide, evolve=A.evolve,
        cached=lambda aid: (agents.agents.get(aid), agents.seq_of(aid)),
    )  # fmt: skip


class AgentCommands:
    def __init__(
        self,
        executor: Executor,
        projector: Projector,
        agents: AgentsProjection,
        streams: StreamsProjection,
        settings: ManagerSettings,
        *,
        manager_id: str,
        heartbeats: Heartbeats,
        refused: RefusedCounts = _no_refusals,
        secrets: SecretStore | None = None,
        keepalive: Callable[[str], float | None] = _no_groups,
        roles: Callable[[str], tuple[list[str], list[str]]] = _no_roles,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secrets = secrets or SecretStore(None)
        self.keepalive = keepalive
        """agent name → the shortest keep-alive of its groups (None: in no group)."""
        self.roles = roles
        """agent name → (groups it is active in, groups it stands by for)."""
        self.executor = executor
        self.projector = projector
        self.agents = agents
        self.agg = agent_aggregate(agents)
        self.streams = streams
        self.settings = settings
        self.manager_id = manager_id
        self.heartbeats = heartbeats
        self.refused = refused
        self.clock = clock

    def intervals(self, name: str | None = None) -> tuple[float, float, float]:
        """(heartbeat, feedback, downgrade) periods: a healthy agent sends at least three
        heartbeats per downgrade period, so timing jitter never downgrades it; a member of a
        group heartbeats at least every ``keepalive_s`` of its groups."""
        s = self.settings
        downgrade = s.agent_downgrade_s
        heartbeat = min(s.heartbeat_interval_s, downgrade / 3)
        keepalive = self.keepalive(name) if name is not None else None
        if keepalive is not None:
            heartbeat = min(heartbeat, keepalive)
        feedback = min(s.feedback_interval_s, s.stream_staleness_s / 3)
        return heartbeat, feedback, downgrade

    def _cause(self, name: str, agent_id: str) -> Cause:
        return Cause(kind="agent", name=name, agent_id=agent_id, manager_id=self.manager_id)

    # ---- protocol handlers -------------------------------------------------------------------

    async def register(self, req: Register) -> tuple[Registered, int]:
        for i, offer in enumerate(req.analytics):
            check_schema(offer.params_schema, f"$.analytics[{i}].params_schema")
        agent_id = req.agent_id or f"a-{uuid.uuid4().hex[:12]}"
        heartbeat, feedback, downgrade = self.intervals(req.name)
        cmd = A.RegisterAgent(
            agent_id=agent_id, at=self.clock(), cause=self._cause("agent.register", agent_id),
            name=req.name,
            analytics=tuple(AnalyticOffer(name=a.name, version=a.version,
                                          params_schema=a.params_schema) for a in req.analytics),
            capacity=req.capacity, groups=tuple(req.groups), labels=dict(req.labels),
            host=req.host, heartbeat_interval_s=heartbeat, feedback_interval_s=feedback,
            downgrade_s=downgrade,
        )  # fmt: skip
        _, seq = await self.executor.execute(self.agg, agent_id, lambda _s: cmd)
        result = Registered(agent_id=agent_id, heartbeat_interval_s=heartbeat,
                            feedback_interval_s=feedback, downgrade_s=downgrade)  # fmt: skip
        return result, seq

    async def deregister(self, req: DeregisterReq) -> tuple[Deregistered, int]:
        cmd = A.DeregisterAgent(agent_id=req.agent_id, at=self.clock(),
                                cause=self._cause("agent.deregister", req.agent_id))  # fmt: skip
        _, seq = await self.executor.execute(self.agg, req.agent_id, lambda _s: cmd)
        # its heartbeats are forgotten by every manager's fold (``Heartbeats.on_agent``)
        return Deregistered(agent_id=req.agent_id), seq

    async def poll(self, req: PollReq) -> tuple[PollResult, int]:
        """What the agent should run (with assignment versions) and what it should stop."""
        agent_id = req.agent_id
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id} is not registered: register again")
        assigned = self.streams.assigned_to(agent_id)
        running = req.poll.running
        if running is None:
            hb = self.heartbeats.last.get(agent_id)
            running = list(hb[1].running) if hb else []
        keep = {s.stream_id for s in assigned}
        after = req.poll.after
        start: list[Assignment] = []
        size = 0
        next_after: str | None = None
        for s in assigned:  # sorted by stream id: pages are stable
            if after is not None and s.stream_id <= after:
                continue
            secret = await self.secrets.get(s.source.secret) if s.source.secret else None
            assignment = assignment_of(s, credentials=secret)
            size += len(_encode(assignment))
            if start and size > POLL_PAGE_BYTES:
                next_after = start[-1].stream_id
                break
            start.append(assignment)
        result = PollResult(start=start,
                            stop=sorted(set(running) - keep) if after is None else [],
                            refused=dict(self.refused(agent_id)), next=next_after,
                            heartbeat_interval_s=self.intervals(agent.name)[0])  # fmt: skip
        return result, self.projector.last_seq

    # ---- reads -------------------------------------------------------------------------------

    def view(self, agent: AgentState) -> AgentView:
        seen = self.heartbeats.last.get(agent.agent_id)
        hb = None
        if seen is not None:
            age = round(self.heartbeats.clock() - seen[0], 3)
            hb = HeartbeatView(**msgspec.structs.asdict(seen[1]), age_s=age)
        return agent_view(agent, load=self.streams.load_of(agent.agent_id), heartbeat=hb,
                          refused=dict(self.refused(agent.agent_id)),
                          roles=self.roles(agent.name))  # fmt: skip

    async def get(self, req: R.AgentIdReq) -> tuple[AgentView, int]:
        agent = self.agents.get(req.agent_id)
        if agent is None:
            raise NotFound(f"agent {req.agent_id} not found")
        return self.view(agent), self.agents.seq_of(req.agent_id)

    async def list_agents(self, req: R.ListAgentsReq) -> tuple[AgentList, int]:
        rows = [
            self.view(a)
            for a in sorted(self.agents.active().values(), key=lambda a: a.agent_id)
            if req.status is None or a.status == req.status
        ]
        return AgentList(agents=rows), self.projector.last_seq


def agent_routes(cmds: AgentCommands) -> list[AnyRoute]:
    return [
        Route("agent.register", Register, cmds.register, result=Registered),
        Route(
            "agent.deregister", DeregisterReq, cmds.deregister, result=Deregistered, exposed=False
        ),
        Route("agent.poll", PollReq, cmds.poll, writes=False, result=PollResult, exposed=False),
        Route("agent.get", R.AgentIdReq, cmds.get, writes=False, result=AgentView),
        Route("agent.list", R.ListAgentsReq, cmds.list_agents, writes=False, result=AgentList),
    ]


async def serve_agent_protocol(
    nc: Client, router: Router, heartbeats: Heartbeats, *, requests: bool = True
) -> list[Subscription]:
    """Subscriptions of the agent protocol; returns them for unsubscribing. Per-agent requests
    take the agent id from the subject and answer through the router (same envelope, same
    bounds, same gate as every command). ``requests=False``: heartbeats only (a manager of
    role ``master`` hears every agent but answers none)."""

    def deregister(msg: Msg) -> tuple[str, object]:
        return "agent.deregister", DeregisterReq(subjects.agent_id_of(msg.subject))

    def poll(msg: Msg) -> tuple[str, object]:
        agent_id = subjects.agent_id_of(msg.subject)
        return "agent.poll", PollReq(agent_id, R.decode_request(msg.data, Poll))

    def register(msg: Msg) -> tuple[str, object]:
        return "agent.register", msg.data

    def register_as(msg: Msg) -> tuple[str, object]:
        """``vigil.agent.<id>.register``: the subject (which only that identity may publish
        to, when permissions are on) decides the id; a body naming another is refused."""
        agent_id = subjects.agent_id_of(msg.subject)
        body = R.decode_request(msg.data, Register)
        if body.agent_id is not None and body.agent_id != agent_id:
            raise Invalid("$.agent_id", f"registering on the subject of agent {agent_id} as"
                          f" {body.agent_id}: an agent registers only as itself")  # fmt: skip
        return "agent.register", msgspec.structs.replace(body, agent_id=agent_id)

    subs = [await nc.subscribe(subjects.AGENT_HEARTBEAT_ALL, cb=heartbeats.on_msg)]
    if requests:
        requests_by_subject: tuple[tuple[str, Callable[[Msg], tuple[str, object]]], ...] = (
            (subjects.AGENT_REGISTER, register),
            (subjects.AGENT_REGISTER_ALL, register_as),
            (subjects.AGENT_DEREGISTER_ALL, deregister),
            (subjects.AGENT_STREAMS_ALL, poll),
        )
        for subject, request in requests_by_subject:
            subs.append(await router.serve_subject(nc, subject, request, internal=True))
    await nc.flush()
    return subs
