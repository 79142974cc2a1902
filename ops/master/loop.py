"""The master: one manager at a time (``ops.master.election``), running its duties each tick.

Each tick, while elected, over what changed only (``ops.master.index``):

- ``liveness``: downgrade silent or disconnected agents, recover returning ones, remove
  long-gone ones;
- ``redundancy``: activate, fail over and fail back ``active_standby`` groups, and requeue the
  streams of a group that moved (``core.redundancy``);
- ``lifecycle``: restarts with backoff, requeues of stale / never-started streams and of the
  streams of agents that went down, restart-counter resets;
- ``autoscale``: start schedules at their lead time, launch, drain and remove agents of groups
  with a scale policy or schedule (``core.autoscale``; providers run in ``ops.master.provision``);
- ``placement``: pending streams onto agents with free capacity;
- ``notify``: tell agents whose assignments changed to poll.

Alarms are raised and cleared by ``ops.master.alarms.AlarmDuty``, its own task, so storing an
alarm never delays a failover. A connection loss reported by the server wakes the loop at once.

Decisions are pure (``core.rules``, ``core.distribution``, ``core.stream``/``core.agent``
decide), appended in small fenced batches, and the loop yields between batches, so a master
with 100k streams never stalls its event loop (``bench/master.py``). A deposed master's
appends are refused by the server (``Fenced``): it steps down at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg

from core.agent import AgentState
from core.rules import agent_due, stream_due
from core.stream import StreamState
from events.codec import UndecodableEvent, decode_event
from events.feedback import Feedback, decode_feedback
from events.jetstream import JetStreamStore
from events.model import MasterElected
from events.store import Fence, Fenced, Unavailable
from ops.api.views import MasterView, ThisManager, iso
from ops.commands.connections import Connections
from ops.commands.heartbeats import Heartbeats
from ops.master.alarms import AlarmDuty
from ops.master.autoscale import Autoscale
from ops.master.decisions import Decisions
from ops.master.election import Election, Reign
from ops.master.health import Health
from ops.master.index import MasterIndex
from ops.master.lifecycle import Lifecycle
from ops.master.liveness import Liveness
from ops.master.notify import Notify
from ops.master.placement import Placement
from ops.master.redundancy import Redundancy
from ops.settings import ManagerSettings
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.groups import GroupsProjection
from projections.streams import StreamsProjection

__all__ = ["Master"]

log = logging.getLogger(__name__)

BATCH = 16
"""Decisions per pass of a duty and per fenced append when no command is being served: deciding,
encoding and folding one batch keeps the loop busy for about a millisecond (10-40 µs per
decision), and 25,000 placements take ~2.5 s (bench/master.py: with 32 an iteration of the loop
that met a decide, an ack burst and a fold of one batch together reached 5-6 ms)."""
BATCH_FOREGROUND = 8
"""The same while commands flow (``foreground()``): a command waits behind the master at each of
its hops through the loop, so the master's steps stay well under a millisecond and it lets
everything ready run first (``lull``). With placement in O(log agents) (``ops.master.placement``)
this took the steady ``stream.create`` p99 (bench/commands.py, 1,000 cmd/s beside 1,000
placements/s) from 7-11 ms to ~4 ms."""
TICK_SLICE_S = 1.0
"""A tick with work left after this long returns (and the next starts at once): a tick always
ends, and the lease keeper, the notifier and ``tick()``'s callers get their turn."""


async def lull(most_s: float = 0.002) -> None:
    """Let everything else that is ready run first: the master's work is background work, and a
    command waiting behind it pays at each of its ~6 hops through the loop (read, dispatch,
    append, ack, reply, flush). Returns once a pass of the loop found nothing else ready, or
    after ``most_s`` (under a flood of commands the master still takes a step every few
    milliseconds: downgrades, restarts and placements are never starved)."""
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)  # asyncio's run queue; absent in other loops
    until = loop.time() + most_s
    while True:
        await asyncio.sleep(0)
        if not ready or loop.time() >= until:
            return


class Master:
    """The election loop and, while elected, the duties. ``run`` is a supervised part."""

    def __init__(
        self,
        election: Election,
        store: JetStreamStore,
        projector: Projector,
        streams: StreamsProjection,
        agents: AgentsProjection,
        heartbeats: Heartbeats,
        nc: Client,
        settings: ManagerSettings,
        *,
        manager_id: str,
        groups: GroupsProjection | None = None,
        connections: Connections | None = None,
        alarms: AlarmDuty | None = None,
        autoscale: Autoscale | None = None,
        clock: Callable[[], float] = time.time,
        foreground: Callable[[], bool] = lambda: False,
    ) -> None:
        self.autoscale = autoscale
        self.foreground = foreground
        """True while this process serves commands that its ticks should not hold up."""
        groups = groups or GroupsProjection()
        connections = connections or Connections()
        self.alarms = alarms
        self._wake = asyncio.Event()
        self.election = election
        self.store = store
        self.projector = projector
        self.settings = settings
        self.heartbeats = heartbeats
        self.manager_id = manager_id
        self.clock = clock
        self.last_feedback: dict[str, float] = {}
        self.index = MasterIndex(streams, agents, stream_due=self._stream_due,
                                 agent_due=self._agent_due, groups=groups, clock=clock)  # fmt: skip
        self.index.wake = self._wake.set
        heartbeats.listeners.append(self.index.on_heartbeat)
        self.health = Health(agents, groups, heartbeats, connections)
        self.health.on_healthy.append(self.index.on_healthy)
        connections.listeners.append(self.index.on_connection)
        self.liveness = Liveness(self.index, agents, heartbeats,
                                 retention_s=settings.agent_retention_s,
                                 connections=connections)  # fmt: skip
        self.redundancy = Redundancy(self.index, groups, streams, agents, self.health)
        self.lifecycle = Lifecycle(self.index, streams, agents, self.last_feedback,
                                   default_staleness_s=settings.stream_staleness_s,
                                   start_deadline_s=settings.stream_start_deadline_s)  # fmt: skip
        self.placement = Placement(self.index, streams, agents, groups)
        self.notify = Notify(self.index, nc)
        self.decisions = 0
        self.rejected = 0
        self.ticks = 0
        self.behind = False
        """The last tick ended its slice with work left (the next one starts at once)."""
        self.last_tick_s = 0.0
        self.on_tick: Callable[[float], None] | None = None
        """Told every tick's duration (seconds): the manager's metrics."""
        self._rng = random.Random()
        self._reindex = False

    # ---- state -------------------------------------------------------------------------------

    @property
    def is_master(self) -> bool:
        return self.election.is_master

    @property
    def epoch(self) -> int:
        """Epoch of this manager's current or last reign."""
        return self.election.epoch

    @property
    def fence(self) -> Fence | None:
        reign = self.election.reign
        return None if reign is None else reign.fence

    @property
    def stepdowns(self) -> int:
        return self.election.stepdowns

    def this_manager(self) -> ThisManager:
        reign = self.election.reign
        return ThisManager(manager_id=self.manager_id, is_master=self.is_master,
                           epoch=self.epoch, since=iso(reign.since) if reign else None,
                           role=self.settings.role)  # fmt: skip

    async def view(self) -> MasterView:
        """The current master as recorded in the log (any manager can answer)."""
        epoch, seq = await self.election.last_election()
        manager_id, since = None, None
        if seq:
            msg = await self.store.js.get_msg(self.store.stream, seq)
            try:
                event = decode_event(msg.data or b"")
            except UndecodableEvent:
                event = None
            if isinstance(event, MasterElected):
                manager_id, since = event.manager_id, iso(event.at)
        return MasterView(manager_id=manager_id, epoch=epoch, since=since,
                          election_seq=seq or None, this_manager=self.this_manager())  # fmt: skip

    def note_feedback(self, fb: Feedback) -> None:
        self.last_feedback[fb.stream_id] = self.clock()

    async def on_feedback_msg(self, msg: Msg) -> None:
        """Core-NATS view of every feedback publish: liveness only (counting is elsewhere)."""
        try:
            fb = decode_feedback(msg.data)
        except ValueError:
            return
        self.last_feedback[fb.stream_id] = self.clock()

    def _stream_due(self, state: StreamState, now: float) -> float:
        reign = self.election.reign
        return stream_due(
            state, now=now, last_feedback=self.last_feedback.get(state.stream_id),
            reign_since=reign.since if reign else now,
            default_staleness_s=self.settings.stream_staleness_s,
            start_deadline_s=self.settings.stream_start_deadline_s,
        )  # fmt: skip

    def _agent_due(self, agent: AgentState, now: float) -> float:
        reign = self.election.reign
        reign_s = 0.0 if reign is None else time.monotonic() - reign.since_mono
        return agent_due(
            agent, now=now, silent_s=self.heartbeats.age(agent.agent_id),
            reign_s=reign_s, retention_s=self.settings.agent_retention_s,
        )  # fmt: skip

    # ---- the election loop -------------------------------------------------------------------

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.election.keep())
            await self._run()

    async def _run(self) -> None:
        lease = self.settings.master_lease_s
        try:
            while True:
                if self.election.reign is None:
                    if await self.election.try_acquire():
                        reign = await self.election.elect()
                        if reign is not None:
                            await self._take_office()
                    else:
                        # Standbys try often: a create is ~0.2 ms and decides takeover latency.
                        await asyncio.sleep(min(lease / 8, 0.25) * (0.8 + 0.4 * self._rng.random()))
                        continue
                if self.election.is_master:
                    await self.tick()
                elif self.index.active:
                    self._leave_office()
                await self._pause(self.settings.master_tick_s)
        finally:
            if self.election.reign is not None:
                self.election.step_down("manager stopping")
                await self.election.release()

    async def _pause(self, seconds: float) -> None:
        """Sleep until the next tick, or less when something needs the master at once."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _take_office(self) -> None:
        self.placement.reset()
        self.redundancy.reset()
        await self.index.rebuild()
        if self.autoscale is not None:
            self.autoscale.activate()
        if self.alarms is not None:
            await self.alarms.activate()

    def _leave_office(self) -> None:
        self.index.deactivate()
        self.placement.reset()
        self.redundancy.reset()
        if self.autoscale is not None:
            self.autoscale.deactivate()
        if self.alarms is not None:
            self.alarms.deactivate()

    async def tick(self) -> None:
        """One pass of every duty over what changed; repeats at once while work is left."""
        t0 = time.perf_counter()
        reign = self.election.reign
        if reign is None:
            return
        if self._reindex:
            self._reindex = False
            await self.index.rebuild()
        self.behind = False
        try:
            more = True
            while more and self.election.is_master:
                now = self.clock()
                budget = BATCH_FOREGROUND if self.foreground() else BATCH
                d = Decisions(manager_id=self.manager_id, epoch=reign.epoch)
                self.liveness.decide(d, reign, now)
                await self._append(d, reign)
                self.redundancy.decide(d, reign, now)
                await self._append(d, reign)
                moving = self.redundancy.reconcile(d, now, budget)
                if self.autoscale is not None:  # schedules, launches, drains (issue 13)
                    moving = self.autoscale.decide(d, now, budget) or moving
                more = self.lifecycle.decide(d, reign, now, budget) or moving
                await self._append(d, reign)
                more = self.placement.decide(d, now, budget) or more
                await self._append(d, reign)
                if more and time.perf_counter() - t0 > TICK_SLICE_S:
                    self._wake.set()  # the rest in the next tick, right after this one
                    self.behind = True
                    break
                await lull()
            await self.notify.send()
        except Fenced as exc:
            self.rejected += 1
            self.election.step_down(str(exc))
            self._leave_office()
            await self.election.release()  # let the rightful master renew or retake it
        except Unavailable as exc:
            log.warning("master decisions not stored yet (%s); re-indexing", exc)
            self._reindex = True
        finally:
            self.ticks += 1
            self.last_tick_s = time.perf_counter() - t0
            if self.on_tick is not None:
                self.on_tick(self.last_tick_s)

    async def _append(self, d: Decisions, reign: Reign) -> None:
        """Append the decided events in fenced chunks, letting other work run between chunks, and
        wait until this manager's projections show them."""
        items = d.take()
        size = BATCH_FOREGROUND if self.foreground() else BATCH
        for i in range(0, len(items), size):
            chunk = items[i : i + size]
            seqs = await self.store.append_batch(chunk, fence=reign.fence)
            self.decisions += len(chunk)
            await self.projector.wait_for(max(seqs), timeout=10)
            await lull()
