"""The manager's side of the agent protocol (CONTRACT §4), and the analytics registry.

::

    vigil.agent.register               request (queue group)  → {agent_id, intervals}
    vigil.agent.<id>.heartbeat         publish (every manager listens)
    vigil.agent.<id>.streams           request (queue group)  → {start[...], stop[...]}
    vigil.agent.<id>.notify            push from the master: "poll now"
    vigil.agent.<id>.deregister        request (queue group)

Analytics exist only because agents registered them: a stream's analytics params are checked
against the JSON schema an agent registered for that analytic.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import jsonschema
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from core import agent as A
from core.agent import AgentState
from core.errors import Invalid, NotFound
from events.model import AnalyticOffer, Cause
from events.store import Conflict, EventStore
from ops import requests as R
from ops.config import ManagerSettings
from ops.rpc import Router, error_reply, ok_reply
from ops.views import agent_view, assignment_view
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.streams import StreamsProjection

__all__ = ["AgentService", "Heartbeats"]

log = logging.getLogger(__name__)

_decode_heartbeat = msgspec.json.Decoder(R.HeartbeatIn).decode


class Heartbeats:
    """Last heartbeat of each agent as seen by this manager (monotonic time + payload)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last: dict[str, tuple[float, R.HeartbeatIn]] = {}
        self.invalid = 0

    def record(self, agent_id: str, hb: R.HeartbeatIn) -> None:
        self.last[agent_id] = (self.clock(), hb)

    def age(self, agent_id: str) -> float | None:
        seen = self.last.get(agent_id)
        return None if seen is None else self.clock() - seen[0]

    async def on_msg(self, msg: Msg) -> None:
        parts = msg.subject.split(".")
        if len(parts) != 4:
            self.invalid += 1
            return
        try:
            hb = _decode_heartbeat(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.invalid += 1
            log.debug("invalid heartbeat on %s: %s", msg.subject, exc)
            return
        self.record(parts[2], hb)


class AgentService:
    def __init__(
        self,
        store: EventStore,
        projector: Projector,
        agents: AgentsProjection,
        streams: StreamsProjection,
        settings: ManagerSettings,
        *,
        manager_id: str,
        heartbeats: Heartbeats,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.projector = projector
        self.agents = agents
        self.streams = streams
        self.settings = settings
        self.manager_id = manager_id
        self.heartbeats = heartbeats
        self.clock = clock

    def intervals(self) -> tuple[float, float, float]:
        """(heartbeat, feedback, downgrade) periods: a healthy agent sends at least three
        heartbeats per downgrade period, so timing jitter never downgrades it."""
        s = self.settings
        downgrade = s.agent_downgrade_s
        heartbeat = min(s.heartbeat_interval_s, downgrade / 3)
        feedback = min(s.feedback_interval_s, s.stream_staleness_s / 3)
        return heartbeat, feedback, downgrade

    async def _execute(self, agent_id: str, cmd: A.AgentCommand) -> tuple[AgentState | None, int]:
        for attempt in range(4):
            if attempt == 0:
                state, seq = self.agents.agents.get(agent_id), self.agents.seq_of(agent_id)
            else:
                state, seq = None, 0
                for stored in await self.store.read(f"agent.{agent_id}"):
                    state = A.evolve(state, stored.event)  # type: ignore[arg-type]
                    seq = stored.seq
            new = A.decide(state, cmd)
            if not new:
                return state, seq
            try:
                seqs = await self.store.append(f"agent.{agent_id}", new, expected_seq=seq)
            except Conflict:
                continue
            for e in new:
                state = A.evolve(state, e)
            await self.projector.wait_for(seqs[-1])
            return state, seqs[-1]
        raise Conflict(f"agent {agent_id} keeps changing concurrently; retry")

    # ---- protocol handlers -------------------------------------------------------------------

    async def register(self, req: R.RegisterAgentReq) -> tuple[dict[str, Any], int]:
        for i, offer in enumerate(req.analytics):
            try:
                jsonschema.validators.validator_for(offer.params_schema).check_schema(
                    offer.params_schema
                )
            except jsonschema.SchemaError as exc:
                raise Invalid(
                    f"$.analytics[{i}].params_schema", f"not a JSON schema: {exc.message}"
                ) from None
        agent_id = req.agent_id or f"a-{uuid.uuid4().hex[:12]}"
        heartbeat, feedback, downgrade = self.intervals()
        cmd = A.RegisterAgent(
            agent_id=agent_id, at=self.clock(),
            cause=Cause(kind="agent", name="agent.register", agent_id=agent_id,
                        manager_id=self.manager_id),
            name=req.name,
            analytics=tuple(AnalyticOffer(name=a.name, version=a.version,
                                          params_schema=a.params_schema) for a in req.analytics),
            capacity=req.capacity, groups=tuple(req.groups), labels=dict(req.labels),
            host=dict(req.host), heartbeat_interval_s=heartbeat, feedback_interval_s=feedback,
            downgrade_s=downgrade,
        )  # fmt: skip
        _, seq = await self._execute(agent_id, cmd)
        self.heartbeats.record(agent_id, R.HeartbeatIn(ts=self.clock()))
        result = {
            "agent_id": agent_id,
            "heartbeat_interval_s": heartbeat,
            "feedback_interval_s": feedback,
            "downgrade_s": downgrade,
        }
        return result, seq

    async def deregister(self, req: R.AgentIdReq) -> tuple[dict[str, Any], int]:
        cmd = A.DeregisterAgent(
            agent_id=req.agent_id, at=self.clock(),
            cause=Cause(kind="agent", name="agent.deregister", agent_id=req.agent_id,
                        manager_id=self.manager_id),
        )  # fmt: skip
        _, seq = await self._execute(req.agent_id, cmd)
        return {"agent_id": req.agent_id, "deregistered": True}, seq

    def poll(self, agent_id: str, running: list[str] | None) -> dict[str, Any]:
        """What the agent should run (with assignment versions) and what it should stop."""
        if self.agents.get(agent_id) is None:
            raise NotFound(f"agent {agent_id} is not registered: register again")
        assigned = self.streams.assigned_to(agent_id)
        if running is None:
            hb = self.heartbeats.last.get(agent_id)
            running = list(hb[1].running) if hb else []
        keep = {s.stream_id for s in assigned}
        start = [assignment_view(s) for s in assigned]
        stop = sorted(set(running) - keep)
        return {"start": start, "stop": stop}

    async def poll_request(self, msg: Msg) -> tuple[dict[str, Any], int]:
        agent_id = msg.subject.split(".")[2]
        req = R.decode_request(msg.data, R.PollStreamsReq)
        return self.poll(agent_id, req.running), self.projector.last_seq

    # ---- reads -------------------------------------------------------------------------------

    def view(self, agent: AgentState) -> dict[str, Any]:
        load = len(self.streams.assigned_to(agent.agent_id))
        seen = self.heartbeats.last.get(agent.agent_id)
        hb = None
        if seen is not None:
            hb = msgspec.to_builtins(seen[1])
            hb["age_s"] = round(self.heartbeats.clock() - seen[0], 3)
        return agent_view(agent, load=load, heartbeat=hb)

    async def get(self, req: R.AgentIdReq) -> tuple[dict[str, Any], int]:
        agent = self.agents.get(req.agent_id)
        if agent is None:
            raise NotFound(f"agent {req.agent_id} not found")
        return self.view(agent), self.agents.seq_of(req.agent_id)

    async def list_agents(self, req: R.ListAgentsReq) -> tuple[dict[str, Any], int]:
        rows = [
            self.view(a)
            for a in sorted(self.agents.active().values(), key=lambda a: a.agent_id)
            if req.status is None or a.status == req.status
        ]
        return {"agents": rows}, self.projector.last_seq

    # ---- analytics registry ------------------------------------------------------------------

    def offers(self) -> dict[str, AnalyticOffer]:
        """The newest registered offer of each analytic among agents that have not left."""
        found: dict[str, tuple[float, AnalyticOffer]] = {}
        for agent in self.agents.active().values():
            for offer in agent.analytics:
                prev = found.get(offer.name)
                if prev is None or agent.updated_at > prev[0]:
                    found[offer.name] = (agent.updated_at, offer)
        return {name: offer for name, (_, offer) in found.items()}

    def validate_analytics(self, analytics: list[R.AnalyticIn], allow_unregistered: bool) -> None:
        offers = self.offers()
        for i, a in enumerate(analytics):
            offer = offers.get(a.name)
            if offer is None:
                if allow_unregistered:
                    continue
                known = ", ".join(sorted(offers)) or "none yet"
                raise Invalid(
                    f"$.analytics[{i}].name",
                    f"no agent offers analytic {a.name!r} (registered: {known});"
                    " set allow_unregistered to wait for one",
                )
            validator = jsonschema.validators.validator_for(offer.params_schema)(
                offer.params_schema
            )
            errors = sorted(validator.iter_errors(a.params), key=lambda e: list(e.absolute_path))
            if errors:
                details = [
                    {"path": f"$.analytics[{i}].params" + "".join(
                        f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path),
                     "message": e.message}
                    for e in errors
                ]  # fmt: skip
                err = Invalid(details[0]["path"], details[0]["message"])
                err.details = details
                raise err


async def serve_agent_protocol(nc: Client, svc: AgentService, router: Router) -> list[Any]:
    """Subscriptions of the agent protocol; returns them for unsubscribing."""
    queue = "vigil-managers"

    def deregister(msg: Msg) -> tuple[str, bytes]:
        return "agent.deregister", msgspec.json.encode({"agent_id": msg.subject.split(".")[2]})

    async def on_streams(msg: Msg) -> None:  # in memory and quick: answered inline
        try:
            result, seq = await svc.poll_request(msg)
            await msg.respond(ok_reply(result, seq))
        except (Invalid, NotFound) as exc:
            await msg.respond(error_reply(exc.code, exc.message, exc.details))

    subs = [
        await router.serve_subject(
            nc, "vigil.agent.register", lambda m: ("agent.register", m.data)
        ),
        await router.serve_subject(nc, "vigil.agent.*.deregister", deregister),
        await nc.subscribe("vigil.agent.*.streams", queue=queue, cb=on_streams),
        await nc.subscribe("vigil.agent.*.heartbeat", cb=svc.heartbeats.on_msg),
    ]
    await nc.flush()
    return subs
