"""Agent feedback → stream events, from JetStream ``VIGIL_FEEDBACK``.

All managers pull from one durable consumer, so each message is handled by one of them. A status
change (``in_progress``, ``done``, ``failure``) becomes a stream event appended with the msg id
``fb:<agent_id>:<seq>``, so a redelivered message never appends twice. Feedback that is invalid,
from an unknown agent, about a stream not assigned to that agent, or for an old assignment
version is acknowledged, skipped and counted (``counts``), never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import NotFoundError as JsNotFound

from core import stream as S
from core.errors import DomainError
from events.feedback import Feedback, decode_feedback
from events.jetstream import ensure_stream
from events.model import Cause, ErrorInfo
from events.store import Unavailable
from ops.service import StreamService
from ops.tasks import cancel_and_wait
from projections.agents import AgentsProjection

__all__ = ["FEEDBACK_STREAM", "FeedbackConsumer", "ensure_feedback_stream"]

log = logging.getLogger(__name__)

FEEDBACK_STREAM = "VIGIL_FEEDBACK"
DURABLE = "vigil-managers"


async def ensure_feedback_stream(
    nc: Client, *, duplicate_window: float = 120.0, replicas: int = 1, max_age: float = 40 * 86400
) -> None:
    config = api.StreamConfig(
        name=FEEDBACK_STREAM,
        subjects=["vigil.feedback.>"],
        storage=api.StorageType.FILE,
        duplicate_window=duplicate_window,
        num_replicas=replicas,
        max_age=max_age,
    )
    await ensure_stream(nc, config)


async def ensure_records_stream(
    nc: Client, *, replicas: int = 1, max_age: float = 30 * 86400
) -> None:
    """Stream ``VIGIL_RECORDS`` (``vigil.records.<stream_id>``) for the agents' analysis records."""
    config = api.StreamConfig(
        name="VIGIL_RECORDS", subjects=["vigil.records.>"], storage=api.StorageType.FILE,
        num_replicas=replicas, max_age=max_age, duplicate_window=120.0,
    )  # fmt: skip
    await ensure_stream(nc, config)


class FeedbackConsumer:
    """Pulls feedback and turns status changes into stream events; an async context manager."""

    def __init__(
        self,
        nc: Client,
        service: StreamService,
        agents: AgentsProjection,
        *,
        on_feedback: Callable[[Feedback], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nc = nc
        self.service = service
        self.agents = agents
        self.on_feedback = on_feedback
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FeedbackConsumer:
        js = self.nc.jetstream()
        config = api.ConsumerConfig(
            durable_name=DURABLE,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30,
            max_ack_pending=10_000,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        sub = await js.pull_subscribe("vigil.feedback.>", durable=DURABLE, stream=FEEDBACK_STREAM,
                                      config=config)  # fmt: skip
        self._task = asyncio.create_task(self._run(sub), name="feedback-consumer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)

    async def _run(self, sub: Any) -> None:
        while True:
            try:
                msgs = await sub.fetch(batch=256, timeout=1.0)
            except (TimeoutError, NatsTimeout):
                continue
            except JsNotFound:
                log.warning("feedback consumer missing; it will be recreated on restart")
                await asyncio.sleep(1.0)
                continue
            except Exception as exc:  # disconnected: the client reconnects by itself
                log.debug("feedback fetch: %r", exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        try:
            outcome = await self._apply(msg.subject, msg.data)
        except (TimeoutError, Unavailable) as exc:
            self.counts["retry"] += 1
            log.info("feedback will be retried: %s", exc)
            await msg.nak(delay=1.0)
            return
        self.counts[outcome] += 1
        await msg.ack()

    async def _apply(self, subject: str, data: bytes) -> str:
        try:
            fb = decode_feedback(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("invalid feedback on %s skipped: %s", subject, exc)
            return "invalid"
        if subject.rsplit(".", 1)[-1] != fb.agent_id:
            log.warning("feedback on %s names agent %s; skipped", subject, fb.agent_id)
            return "invalid"
        if fb.agent_id not in self.agents.agents:  # deregistered agents are still known
            log.warning("feedback from unknown agent %s skipped", fb.agent_id)
            return "unknown_agent"
        stream = self.service.streams.get(fb.stream_id)
        if stream is None or stream.agent_id != fb.agent_id:
            log.info("feedback %s:%d about stream %s not assigned to it skipped", fb.agent_id,
                     fb.seq, fb.stream_id)  # fmt: skip
            return "not_assigned"
        if fb.version != stream.assignment_version:
            return "stale"
        if self.on_feedback is not None:
            self.on_feedback(fb)
        error = ErrorInfo(**msgspec.structs.asdict(fb.error)) if fb.error else None
        cause = Cause(kind="feedback", name=f"feedback.{fb.status}", agent_id=fb.agent_id,
                      feedback_seq=fb.seq, manager_id=self.service.manager_id)  # fmt: skip

        def make(_state: S.StreamState | None) -> S.StreamCommand:
            return S.ReportFeedback(
                stream_id=fb.stream_id, at=self.clock(), cause=cause, agent_id=fb.agent_id,
                assignment_version=fb.version, status=fb.status, error=error,
            )  # fmt: skip

        try:
            await self.service.execute(fb.stream_id, make, msg_id=f"fb:{fb.agent_id}:{fb.seq}")
        except DomainError as exc:
            log.debug("feedback %s:%d ignored: %s", fb.agent_id, fb.seq, exc)
            return "stale"
        return "applied"
