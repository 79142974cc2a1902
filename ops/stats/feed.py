"""Daily statistics in the manager: the feed from ``VIGIL_FEEDBACK`` into `DailyStats`.

Every manager folds *all* feedback into its own `DailyStats` (an ordered push consumer from the
start of the stream, by callback, like ``projections.engine``), so any manager can answer the
query. This is not the shared durable work queue of ``ops.commands.feedback``: that one hands
each message to one manager only. The same consumer reads the close markers
(``vigil.stats.close``) that the rollup writer puts into the stream: a day closes at the same
position of the stream in every manager.

Skipped, counted, never fatal (``StatsFeed.counts``): undecodable bodies (``invalid``), a body
that names another agent than its subject (``agent_mismatch``), agents that never registered
(``unknown_agent``), already counted ``<agent_id>:<seq>`` (``duplicates``). Refusals are also
counted per agent (``refused_for``): an agent sees them in its poll reply and on
``agent.get``. Before calling an agent unknown the feed catches the events projection up with
the end of ``VIGIL_EVENTS``, so a registration that this manager has not folded yet does not
lose the agent's first feedback. Deregistered agents are still known: their feedback counts.

Retention: ``VIGIL_FEEDBACK`` keeps ``feedback_retention_s`` (40 days by default). Closed days
come from ``VIGIL_STATS`` (``ops.stats.rollups``, loaded before the feed starts); the feed
rebuilds the open days from what the stream still holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from events import subjects
from events.feedback import ForeignFeedback, decode_feedback, resolve
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.rollup import decode_close
from projections.stats import DailyStats

__all__ = ["StatsFeed"]

log = logging.getLogger(__name__)


class StatsFeed:
    """Folds ``VIGIL_FEEDBACK`` into `DailyStats`; an async context manager.

    Survives NATS restarts: the ordered consumer's idle heartbeat notices the lost consumer and
    re-creates it after the last sequence it delivered; anything delivered twice is ignored by
    stream sequence, and anything stored twice by the applied-seq set.
    """

    def __init__(
        self,
        nc: Client,
        stats: DailyStats,
        agents: AgentsProjection,
        projector: Projector,
        *,
        sync_timeout: float = 5.0,
        until: int | None = None,
    ) -> None:
        """`until`: fold only up to this stream sequence (a recomputation), else follow."""
        self.nc = nc
        self.stats = stats
        self.agents = agents
        self.projector = projector
        self.sync_timeout = sync_timeout
        self.until = until
        self.counts: Counter[str] = Counter()
        """applied, duplicates, corrected, late_empty, closes, unknown_agent, invalid,
        agent_mismatch, errors (for /metrics)."""
        self.caught_up = asyncio.Event()
        """Set once the feed has folded what the stream held when it started."""
        self.refused: dict[str, Counter[str]] = {}
        """agent_id → refusals per reason (known agents only: a subject is no identity)."""
        self._target = 0
        self._sub: Any = None
        self._progress = asyncio.Event()

    @property
    def last_seq(self) -> int:
        """The last ``VIGIL_FEEDBACK`` sequence folded."""
        return self.stats.state.feedback_seq

    async def wait_for(self, seq: int, timeout: float) -> bool:
        """Wait until stream sequence `seq` is folded; False after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while self.last_seq < seq:
                    self._progress.clear()
                    await self._progress.wait()
        except TimeoutError:
            return False
        return True

    def refused_for(self, agent_id: str) -> Mapping[str, int]:
        return self.refused.get(agent_id, {})

    async def run(self) -> None:
        """The supervised part: follow the feedback stream until cancelled."""
        async with self:
            await asyncio.Event().wait()

    async def __aenter__(self) -> StatsFeed:
        js = self.nc.jetstream()
        info = await js.stream_info(subjects.FEEDBACK_STREAM)
        self._target = int(info.state.last_seq)
        if self.until is not None:
            self._target = min(self._target, self.until)
        if self._target <= self.last_seq or not info.state.messages:  # nothing (left) to fold
            self._set_caught_up()
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq + 1,
        )
        self._sub = await js.subscribe(  # ">": every subject of the stream (deltas and markers)
            ">", stream=subjects.FEEDBACK_STREAM, cb=self._on_msg, ordered_consumer=True,
            idle_heartbeat=1.0, config=config, pending_msgs_limit=-1, pending_bytes_limit=-1,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # connection already closed: nothing to release
                log.debug("stats feed unsubscribe: %r", exc)

    async def _on_msg(self, msg: Msg) -> None:
        meta = msg.metadata
        seq = meta.sequence.stream
        if self.until is not None and seq > self.until:
            self._set_caught_up()
            return
        try:
            if seq > self.last_seq:
                await self.handle(seq, msg.subject, msg.data, meta.timestamp.timestamp())
        except Exception:
            # A bug, not bad input: count it, keep the seq unfolded-but-passed, and keep going so
            # one message cannot stop the statistics of the whole fleet.
            self.counts["errors"] += 1
            log.exception("stats: feedback at %s seq %d not folded", subjects.FEEDBACK_STREAM,
                          seq)  # fmt: skip
            self.stats.skip(seq)
        if meta.num_pending == 0 or self.last_seq >= self._target:
            self._set_caught_up()
        self._progress.set()

    def _set_caught_up(self) -> None:
        self.stats.caught_up = True
        self.caught_up.set()

    async def handle(self, seq: int, subject: str, data: bytes, stored_at: float = 0.0) -> str:
        """Fold one stored message (stored by JetStream at `stored_at`); returns the counter it
        went to."""
        if subject == subjects.STATS_CLOSE:
            return self._close(seq, data)
        try:
            agent_id = subjects.feedback_agent_of(subject)
        except ValueError:
            return self._skip(seq, "invalid")
        try:
            fb = resolve(decode_feedback(data), agent_id)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.debug("stats: undecodable feedback at seq %d on %s skipped: %s", seq, subject, exc)
            return self._refuse(seq, agent_id, "invalid")
        except ForeignFeedback as exc:
            log.debug("stats: feedback at seq %d skipped: %s", seq, exc)
            return self._refuse(seq, agent_id, "agent_mismatch")
        if not await self._is_known(agent_id):
            log.debug("stats: feedback from unknown agent %s skipped", agent_id)
            return self._skip(seq, "unknown_agent")
        outcome = self.stats.apply(seq, fb, stored_at=stored_at)
        key = "duplicates" if outcome == "duplicate" else outcome
        self.counts[key] += 1
        return key

    def _close(self, seq: int, data: bytes) -> str:
        try:
            marker = decode_close(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("stats: undecodable close marker at seq %d skipped: %s", seq, exc)
            return self._skip(seq, "invalid")
        closed = self.stats.close_through(marker.through, seq)
        if closed and self.until is None:  # a recomputation (verify) stays quiet
            log.info("stats: days closed through %s at feedback seq %d (%s, by %s): %s",
                     marker.through, seq, marker.reason, marker.by or "?", ", ".join(closed))  # fmt: skip
        self.counts["closes"] += 1
        return "closes"

    def _skip(self, seq: int, key: str) -> str:
        self.stats.skip(seq)
        self.counts[key] += 1
        return key

    def _refuse(self, seq: int, agent_id: str, reason: str) -> str:
        if agent_id in self.agents.agents:
            self.refused.setdefault(agent_id, Counter())[reason] += 1
        return self._skip(seq, reason)

    async def _is_known(self, agent_id: str) -> bool:
        """Ever registered (also if gone since). Catches the events projection up first when not."""
        if agent_id in self.agents.agents:
            return True
        try:
            info = await self.nc.jetstream().stream_info(subjects.EVENTS_STREAM)
            await self.projector.wait_for(int(info.state.last_seq), timeout=self.sync_timeout)
        except Exception as exc:  # NATS down: decide with what this manager knows
            log.warning("stats: could not catch up with %s (%r)", subjects.EVENTS_STREAM, exc)
        return agent_id in self.agents.agents

    def metrics(self) -> dict[str, int]:
        """Counters for /metrics: outcomes, gaps closed, last folded seq, caught-up flag."""
        return {
            **{
                k: self.counts[k]
                for k in (
                    "applied",
                    "duplicates",
                    "corrected",
                    "late_empty",
                    "closes",
                    "unknown_agent",
                    "invalid",
                    "agent_mismatch",
                )
            },
            "errors": self.counts["errors"],
            "gaps_closed": self.stats.gaps_closed,
            "feedback_seq": self.last_seq,
            "caught_up": int(self.stats.caught_up),
        }
