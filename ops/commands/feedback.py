"""Agent feedback → stream events, from JetStream ``VIGIL_FEEDBACK``.

All managers pull from one durable consumer, so each message is handled by one of them. A status
change (``in_progress``, ``done``, ``failure``) becomes a stream event appended with the msg id
``fb:<agent_id>:<seq>``, so a redelivered message never appends twice.

The agent is the one in the subject (``vigil.feedback.<agent_id>``). Outcomes, counted in
``counts``:

- ``applied`` / ``stale`` / ``not_assigned``: processed and acknowledged (stale and not-assigned
  feedback is a normal race: the stream moved on);
- ``invalid`` (does not decode), ``agent_mismatch`` (the body names another agent),
  ``unknown_agent``: **refused** — terminated (``AckTerm``: never redelivered), the agent is
  told on ``vigil.agent.<id>.refused`` with the reason, and ``on_refused`` hears it (the
  ``invalid_feedback`` alarm);
- ``error``: a bug while handling one message — logged, terminated, and the consumer goes on.
  One poisonous message never stops status processing.
- ``retry``: the event store did not answer — negatively acknowledged, redelivered later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import NotFoundError as JsNotFound

from core import stream as S
from core.errors import DomainError
from events import subjects
from events.feedback import Feedback, ForeignFeedback, decode_feedback, resolve
from events.model import Cause, ErrorInfo
from events.protocol import Refused
from events.store import Unavailable
from ops.commands.streams import StreamCommands
from projections.agents import AgentsProjection

__all__ = ["REFUSALS", "FeedbackConsumer", "OnRefused"]

log = logging.getLogger(__name__)
_LOG_EVERY_S = 60.0

REFUSALS = ("invalid", "agent_mismatch", "unknown_agent")
"""Outcomes that refuse a message (terminated, counted, the agent told)."""

_encode = msgspec.json.Encoder().encode

OnRefused = Callable[[str, str, str], Awaitable[object]]
"""(agent_id, reason, message) of a refused feedback message."""


class _Refusal(Exception):
    def __init__(self, reason: str, message: str, fb: Feedback | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.fb = fb


class FeedbackConsumer:
    """Pulls feedback and turns status changes into stream events; ``run`` is a supervised part."""

    def __init__(
        self,
        nc: Client,
        streams: StreamCommands,
        agents: AgentsProjection,
        *,
        on_feedback: Callable[[Feedback], None] | None = None,
        on_refused: OnRefused | None = None,
        clock: Callable[[], float] = time.time,
        batch: int = 256,
    ) -> None:
        self.nc = nc
        self.streams = streams
        self.agents = agents
        self.on_feedback = on_feedback
        self.on_refused = on_refused
        self._logged: dict[tuple[str, str], float] = {}
        self.clock = clock
        self.batch = batch
        self.counts: Counter[str] = Counter()

    async def run(self) -> None:
        js = self.nc.jetstream()
        config = api.ConsumerConfig(
            durable_name=subjects.FEEDBACK_DURABLE,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=10,
            max_ack_pending=10_000,
            deliver_policy=api.DeliverPolicy.ALL,
        )
        sub = await js.pull_subscribe(subjects.FEEDBACK_ALL, durable=subjects.FEEDBACK_DURABLE,
                                      stream=subjects.FEEDBACK_STREAM, config=config)  # fmt: skip
        try:
            while True:
                try:
                    msgs = await sub.fetch(batch=self.batch, timeout=5.0)
                except (TimeoutError, NatsTimeout):
                    continue
                except JsNotFound:
                    log.warning("feedback consumer missing; recreating it")
                    raise
                except (ConnectionError, OSError) as exc:  # reconnecting: the client retries
                    log.debug("feedback fetch: %r", exc)
                    await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    await self.handle(msg)
        finally:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # connection already closed
                log.debug("feedback unsubscribe: %r", exc)

    def _log_refusal(self, subject: str, refusal: _Refusal) -> None:
        """A warning per agent and reason a minute (a broken agent refused every few seconds must
        not flood the log; the counts and the agent's ``feedback_refused`` keep every one)."""
        key = (subject, refusal.reason)
        now = time.monotonic()
        if now - self._logged.get(key, -_LOG_EVERY_S) < _LOG_EVERY_S:
            log.debug("feedback on %s refused (%s): %s", subject, refusal.reason, refusal.message)
            return
        if len(self._logged) > 10_000:
            self._logged.clear()
        self._logged[key] = now
        log.warning("feedback on %s refused (%s): %s (repeats within %.0f s are not logged)",
                    subject, refusal.reason, refusal.message, _LOG_EVERY_S)  # fmt: skip

    async def handle(self, msg: Msg) -> str:
        """Handle one message and settle it (ack / term / nak); returns its outcome."""
        try:
            outcome = await self._apply(msg.subject, msg.data)
        except (TimeoutError, Unavailable) as exc:
            self.counts["retry"] += 1
            log.info("feedback will be retried: %s", exc)
            await _settle(msg.nak(delay=1.0))
            return "retry"
        except _Refusal as refusal:
            self.counts[refusal.reason] += 1
            self._log_refusal(msg.subject, refusal)
            await self._tell(msg.subject, refusal)
            await _settle(msg.term())
            if self.on_refused is not None:
                try:
                    agent_id = subjects.feedback_agent_of(msg.subject)
                except ValueError:
                    agent_id = ""
                if agent_id:
                    await self.on_refused(agent_id, refusal.reason, refusal.message)
            return refusal.reason
        except Exception:
            self.counts["error"] += 1
            log.exception("feedback on %s could not be handled; terminated", msg.subject)
            await _settle(msg.term())
            return "error"
        self.counts[outcome] += 1
        await _settle(msg.ack())
        return outcome

    async def _tell(self, subject: str, refusal: _Refusal) -> None:
        try:
            agent_id = subjects.feedback_agent_of(subject)
        except ValueError:
            return
        fb = refusal.fb
        notice = Refused(seq=fb.seq if fb else None, reason=refusal.reason,
                         message=refusal.message[:1024], stream_id=fb.stream_id if fb else None)  # fmt: skip
        try:
            await self.nc.publish(subjects.agent_refused(agent_id), _encode(notice))
        except Exception as exc:  # best effort: the count on agent.get remains
            log.debug("could not tell %s about refused feedback: %r", agent_id, exc)

    async def _apply(self, subject: str, data: bytes) -> str:
        try:
            agent_id = subjects.feedback_agent_of(subject)
        except ValueError as exc:
            raise _Refusal("invalid", str(exc)) from None
        try:
            raw = decode_feedback(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _Refusal("invalid", f"feedback does not decode: {exc}") from None
        try:
            fb = resolve(raw, agent_id)
        except ForeignFeedback as exc:
            raise _Refusal("agent_mismatch", str(exc), raw) from None
        if agent_id not in self.agents.agents:  # deregistered agents are still known
            raise _Refusal("unknown_agent", f"agent {agent_id} never registered", fb)
        stream = self.streams.streams.get(fb.stream_id)
        if stream is None or stream.agent_id != agent_id:
            log.debug("feedback %s:%d about stream %s not assigned to it skipped", agent_id,
                     fb.seq, fb.stream_id)  # fmt: skip
            return "not_assigned"
        if fb.version != stream.assignment_version:
            return "stale"
        if self.on_feedback is not None:
            self.on_feedback(fb)
        error = ErrorInfo(**msgspec.structs.asdict(fb.error)) if fb.error else None
        cause = Cause(kind="feedback", name=f"feedback.{fb.status}", agent_id=agent_id,
                      feedback_seq=fb.seq, manager_id=self.streams.manager_id)  # fmt: skip
        at = self.clock()

        def make(_state: S.StreamState | None) -> S.StreamCommand:
            return S.ReportFeedback(
                stream_id=fb.stream_id, at=at, cause=cause, agent_id=agent_id,
                assignment_version=fb.version, status=fb.status, error=error,
            )  # fmt: skip

        try:
            await self.streams.execute(fb.stream_id, make, msg_id=f"fb:{agent_id}:{fb.seq}")
        except DomainError as exc:
            log.debug("feedback %s:%d ignored: %s", agent_id, fb.seq, exc)
            return "stale"
        return "applied"


async def _settle(ack: object) -> None:
    """Ack/term/nak; a lost connection only means JetStream redelivers later."""
    try:
        await ack  # type: ignore[misc]
    except Exception as exc:
        log.debug("feedback settle: %r", exc)
