"""The master: one manager at a time, elected by a KV lease, fenced by the server.

Election: ``kv.create("lease")`` in bucket ``VIGIL_MASTER`` (max age = lease TTL, no limit markers)
wins; the winner renews with ``kv.update(last=revision)`` every third of the TTL and steps down
on a local monotonic deadline if renewals fail. After winning it appends
``MasterElected{epoch}`` to ``vigil.evt.master`` (epoch = previous + 1, with the expected
sequence so two winners cannot both append), catches its projections up to that event, and only
then acts. Every decision is appended fenced on that event's sequence: once another manager is
elected, the server refuses the old master's writes and it steps down at once.

Each tick the master (all decisions are pure functions in ``core``):

- distributes pending streams (``core.distribution.plan``);
- turns non-fatal failures into ``restarting`` with backoff, and requeues them when due;
- resets the restart counter of streams healthy for ``healthy_reset_s``;
- requeues ``in_progress`` streams whose feedback is older than their staleness period;
- downgrades agents silent for their downgrade period (after one period of its own reign) and
  requeues their streams; recovers agents that heartbeat again; removes long-gone ones;
- tells agents whose assignments changed to poll (``vigil.agent.<id>.notify``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from core import agent as A
from core import stream as S
from core.distribution import plan
from core.errors import DomainError
from events.codec import subject_of
from events.feedback import Feedback
from events.model import Cause, Event, MasterElected
from events.store import Append, Conflict, Fence, Fenced, Unavailable
from ops.agents import Heartbeats
from ops.config import ManagerSettings
from ops.tasks import cancel_and_wait

__all__ = ["MASTER_BUCKET", "Master"]

log = logging.getLogger(__name__)

MASTER_BUCKET = "VIGIL_MASTER"
LEASE_KEY = "lease"


class Master:
    """Runs the election and, while elected, the master loop. An async context manager."""

    def __init__(self, manager: Any, kv: KeyValue, settings: ManagerSettings,
                 *, clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.m = manager
        self.kv = kv
        self.settings = settings
        self.clock = clock
        self.fence: Fence | None = None
        self.epoch = 0
        self.since: float | None = None
        self._since_mono = 0.0
        self._deadline = 0.0
        self._renewed_at = 0.0
        self._revision = 0
        self._task: asyncio.Task[None] | None = None
        self.last_feedback: dict[str, float] = {}  # stream_id → monotonic time
        self.decisions = 0
        self.rejected = 0
        self.stepdowns = 0
        self._notified: dict[str, frozenset[tuple[str, int]]] = {}
        self._rng = random.Random()

    # ---- state -------------------------------------------------------------------------------

    @property
    def is_master(self) -> bool:
        return self.fence is not None and time.monotonic() < self._deadline

    def info(self) -> dict[str, Any]:
        return {"manager_id": self.m.manager_id, "is_master": self.is_master, "epoch": self.epoch,
                "since": self.since}  # fmt: skip

    def note_feedback(self, fb: Feedback) -> None:
        self.last_feedback[fb.stream_id] = time.monotonic()

    async def on_feedback_msg(self, msg: Any) -> None:
        """Core-NATS view of every feedback publish: liveness only (counting is elsewhere)."""
        from events.feedback import decode_feedback

        with contextlib.suppress(Exception):
            fb = decode_feedback(msg.data)
            self.last_feedback[fb.stream_id] = time.monotonic()

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Master:
        self._task = asyncio.create_task(self._run(), name="master")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)
        if self.fence is not None:
            self.fence = None
            with contextlib.suppress(Exception):
                await self.kv.delete(LEASE_KEY, last=self._revision)

    def step_down(self, why: str) -> None:
        if self.fence is not None:
            self.stepdowns += 1
            log.warning("manager %s steps down as master (epoch %d): %s", self.m.manager_id,
                        self.epoch, why)  # fmt: skip
        self.fence = None
        self.since = None

    async def _run(self) -> None:
        lease = self.settings.master_lease_s
        while True:
            try:
                if self.fence is None:
                    if await self._try_acquire():
                        await self._elected()
                    else:
                        # Standbys try often: a create is ~0.2 ms and decides takeover latency.
                        await asyncio.sleep(min(lease / 8, 0.25) * (0.8 + 0.4 * self._rng.random()))
                        continue
                await self._renew()
                if self.is_master:
                    await self.tick()
                await asyncio.sleep(self.settings.master_tick_s)
            except asyncio.CancelledError:
                raise
            except Fenced as exc:
                self.step_down(str(exc))
                with contextlib.suppress(Exception):  # let the rightful master renew or retake it
                    await self.kv.delete(LEASE_KEY, last=self._revision)
            except Exception:
                log.exception("master loop error; continuing")
                await asyncio.sleep(0.5)

    async def _try_acquire(self) -> bool:
        try:
            self._revision = await self.kv.create(LEASE_KEY, self.m.manager_id.encode())
        except KeyWrongLastSequenceError:
            return False
        except Exception as exc:
            log.debug("lease create: %r", exc)
            return False
        self._deadline = time.monotonic() + self.settings.master_lease_s * 0.9
        self._renewed_at = time.monotonic()
        return True

    async def _renew(self) -> None:
        lease = self.settings.master_lease_s
        if time.monotonic() - self._renewed_at < lease / 3:
            return
        try:
            self._revision = await self.kv.update(LEASE_KEY, self.m.manager_id.encode(),
                                                  last=self._revision)  # fmt: skip
            self._deadline = time.monotonic() + lease * 0.9
            self._renewed_at = time.monotonic()
        except KeyWrongLastSequenceError:
            self.step_down("lease taken by another manager")
        except Exception as exc:
            log.debug("lease renew: %r", exc)
            if time.monotonic() >= self._deadline:
                self.step_down("lease not renewed in time")

    async def _elected(self) -> None:
        store = self.m.store
        last_epoch, last_seq = 0, 0
        with contextlib.suppress(Exception):
            msg = await store.js.get_last_msg(store.stream, subject_of("master"))
            from events.codec import decode_event

            event = decode_event(msg.data)
            if isinstance(event, MasterElected):
                last_epoch = event.epoch
            last_seq = int(msg.seq or 0)
        epoch = last_epoch + 1
        event = MasterElected(at=self.clock(), epoch=epoch, manager_id=self.m.manager_id,
                              cause=Cause(kind="system", name="master.elected",
                                          manager_id=self.m.manager_id, epoch=epoch))  # fmt: skip
        try:
            [seq] = await store.append("master", [event], expected_seq=last_seq)
        except Conflict:
            log.warning("another manager appended an election concurrently; releasing the lease")
            with contextlib.suppress(Exception):
                await self.kv.delete(LEASE_KEY, last=self._revision)
            return
        await self.m.projector.wait_for(seq, timeout=60)
        self.fence = Fence("master", seq)
        self.epoch = epoch
        self.since = self.clock()
        self._since_mono = time.monotonic()
        self._notified.clear()
        log.info(
            "manager %s is master, epoch %d (election event seq %d)", self.m.manager_id, epoch, seq
        )

    # ---- the loop ----------------------------------------------------------------------------

    def _cause(self, name: str) -> Cause:
        return Cause(kind="master", name=name, manager_id=self.m.manager_id, epoch=self.epoch)

    async def _append(self, items: list[Append]) -> None:
        if not items:
            return
        assert self.fence is not None
        try:
            seqs = await self.m.store.append_batch(items, fence=self.fence)
        except Fenced:
            self.rejected += 1
            raise
        except Unavailable as exc:
            log.warning("master decisions not stored yet: %s", exc)
            return
        self.decisions += len(items)
        await self.m.projector.wait_for(max(seqs), timeout=10)

    def _decide_stream(
        self, items: list[Append], state: S.StreamState, cmd: S.StreamCommand
    ) -> None:
        try:
            events: list[Event] = list(S.decide(state, cmd))
        except DomainError:
            return
        for i, event in enumerate(events):
            mid = f"{type(event).__name__}:{state.stream_id}:{state.version}:{i}"
            items.append(Append(f"stream.{state.stream_id}", event, msg_id=mid))

    def _decide_agent(self, items: list[Append], state: A.AgentState, cmd: A.AgentCommand) -> None:
        try:
            events: list[Event] = list(A.decide(state, cmd))
        except DomainError:
            return
        for i, event in enumerate(events):
            mid = f"{type(event).__name__}:{state.agent_id}:{state.version}:{i}"
            items.append(Append(f"agent.{state.agent_id}", event, msg_id=mid))

    async def tick(self) -> None:
        await self._agents_phase()
        await self._streams_phase()
        await self._distribute()
        await self._notify()

    async def _agents_phase(self) -> None:
        now, mono = self.clock(), time.monotonic()
        reign = mono - self._since_mono
        hb: Heartbeats = self.m.heartbeats
        items: list[Append] = []
        requeue: list[tuple[S.StreamState, str]] = []
        for agent in list(self.m.agents.agents.values()):
            age = hb.age(agent.agent_id)
            if agent.status == "ready":
                silent = age if age is not None else reign
                if reign >= agent.downgrade_s and min(silent, reign) >= agent.downgrade_s:
                    self._decide_agent(items, agent, A.DowngradeAgent(
                        agent_id=agent.agent_id, at=now, cause=self._cause("agent.downgrade"),
                        reason=f"no heartbeat for {silent:.1f}s (downgrade period {agent.downgrade_s}s)",
                    ))  # fmt: skip
                    requeue += [
                        (s, "agent_down") for s in self.m.streams.assigned_to(agent.agent_id)
                    ]
            elif agent.status == "not_ready":
                if (
                    age is not None
                    and age < agent.downgrade_s
                    and (agent.not_ready_since is None or now - age > agent.not_ready_since)
                ):
                    self._decide_agent(items, agent, A.RecoverAgent(
                        agent_id=agent.agent_id, at=now, cause=self._cause("agent.recover")))  # fmt: skip
                elif (agent.not_ready_since is not None
                      and now - agent.not_ready_since > self.settings.agent_retention_s):  # fmt: skip
                    self._decide_agent(items, agent, A.RemoveAgent(
                        agent_id=agent.agent_id, at=now, cause=self._cause("agent.remove"),
                        reason=f"not_ready for more than {self.settings.agent_retention_s}s"))  # fmt: skip
                requeue += [(s, "agent_down") for s in self.m.streams.assigned_to(agent.agent_id)]
            else:  # gone: left or removed
                requeue += [(s, "agent_left") for s in self.m.streams.assigned_to(agent.agent_id)]
        for stream, reason in requeue:
            self._decide_stream(items, stream, S.RequeueStream(
                stream_id=stream.stream_id, at=now, cause=self._cause("stream.requeue"), reason=reason))  # fmt: skip
        await self._append(items)

    async def _streams_phase(self) -> None:
        now, mono = self.clock(), time.monotonic()
        items: list[Append] = []
        for s in list(self.m.streams.streams.values()):
            if s.status == "failure":
                err = s.last_error
                if err is None or not err.fatal:
                    self._decide_stream(items, s, S.ScheduleRestart(
                        stream_id=s.stream_id, at=now, cause=self._cause("stream.restart"),
                        jitter=self._rng.random()))  # fmt: skip
            elif s.status == "restarting":
                if s.restart_not_before is not None and now >= s.restart_not_before:
                    self._decide_stream(items, s, S.RequeueStream(
                        stream_id=s.stream_id, at=now, cause=self._cause("stream.requeue"),
                        reason=f"restart attempt {s.restarts}"))  # fmt: skip
            elif s.status == "in_progress":
                staleness = s.staleness_s or self.settings.stream_staleness_s
                seen = self.last_feedback.get(s.stream_id, self._since_mono)
                started = mono - (now - (s.running_since or now))
                quiet = mono - max(seen, started, self._since_mono)
                if quiet > staleness:
                    self._decide_stream(items, s, S.RequeueStream(
                        stream_id=s.stream_id, at=now, cause=self._cause("stream.requeue"),
                        reason=f"no feedback for {quiet:.1f}s (staleness period {staleness}s)"))  # fmt: skip
                elif (s.restarts > 0 and s.running_since is not None
                      and now - s.running_since >= s.autorestart.healthy_reset_s):  # fmt: skip
                    self._decide_stream(items, s, S.ResetRestarts(
                        stream_id=s.stream_id, at=now, cause=self._cause("stream.healthy")))  # fmt: skip
        await self._append(items)

    async def _distribute(self) -> None:
        now = self.clock()
        assignments = plan(self.m.streams.live(), self.m.agents.agents)
        items: list[Append] = []
        for a in assignments:
            state = self.m.streams.streams[a.stream_id]
            self._decide_stream(items, state, S.AssignStream(
                stream_id=a.stream_id, at=now, cause=self._cause("stream.assign"), agent_id=a.agent_id))  # fmt: skip
        await self._append(items)

    async def _notify(self) -> None:
        """Push "poll now" to every agent whose set of assignments changed since last tick."""
        current: dict[str, set[tuple[str, int]]] = {}
        for s in self.m.streams.streams.values():
            if s.is_live and s.agent_id is not None:
                current.setdefault(s.agent_id, set()).add((s.stream_id, s.assignment_version or 0))
        nc: Client = self.m.nc
        for agent_id in set(current) | set(self._notified):
            now_set = frozenset(current.get(agent_id, ()))
            if self._notified.get(agent_id) != now_set:
                self._notified[agent_id] = now_set
                with contextlib.suppress(Exception):
                    await nc.publish(f"vigil.agent.{agent_id}.notify", b"{}")
