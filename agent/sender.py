"""Feedback sender: drains the agent's `Outbox` into JetStream ``VIGIL_FEEDBACK``, exactly once.

Rows are claimed from the outbox in seq order and published, as stored, to
``vigil.feedback.<agent_id>`` with ``Nats-Msg-Id: <agent_id>:<seq>`` as acked, pipelined
publishes (up to ``max_in_flight`` awaiting their ack, through `events.acks.AckInbox`). Acks
are matched in seq order and only the contiguous acknowledged prefix is deleted from the
outbox. On any failure the window is abandoned, the sender backs off (exponential, capped,
jittered) and re-publishes from the first unacked row with the *same* msg ids: the stream's
duplicate window drops copies that were stored after all (a publish that timed out during a
disconnect may still be stored). After a failure it probes with a single message and reopens the
full window only once that one is acked, so an outage does not fill the client's reconnect
buffer with copies.

Order: rows are published in seq order, but after a reconnect JetStream may *store* some out of
order (nats-py flushes its reconnect buffer, holding newer rows, before the sender's retry of
rows lost in the dead socket). Consumers must therefore deduplicate by seq set (e.g. a contiguous
floor plus the seqs applied above it), not by "ignore seq <= max seen", and take a stream's
status from its highest seq.

Errors: an unreachable server, a missing ``VIGIL_FEEDBACK`` stream (no manager yet), JetStream
API errors and ack timeouts are *not* raised: they are retried forever while the outbox keeps
accumulating, and shown in `SenderStats.last_error`. The background task stops with
`SenderStopped` only if the NATS connection is closed for good: create the client with
``max_reconnect_attempts=-1`` and close the sender before the connection. Outbox errors
(disk problems) propagate: they are bugs or environment failures to alarm about.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from agent.outbox import Outbox
from events import subjects
from events.acks import Ack, AckInbox, PubRefused
from events.feedback import Feedback

__all__ = [
    "FEEDBACK_STREAM",
    "Backoff",
    "FeedbackSender",
    "SenderStats",
    "SenderStopped",
    "feedback_subject",
    "msg_id",
    "row_msg_id",
]

log = logging.getLogger(__name__)

FEEDBACK_STREAM = subjects.FEEDBACK_STREAM


def feedback_subject(agent_id: str) -> str:
    """The subject an agent publishes its feedback to."""
    return subjects.feedback(agent_id)


def msg_id(fb: Feedback) -> str:
    """The JetStream dedup id of a feedback row: ``<agent_id>:<seq>``."""
    return row_msg_id(fb.agent_id, fb.seq)


def row_msg_id(agent_id: str | None, seq: int) -> str:
    """`msg_id` from the agent id and the row's seq (the sender has no decoded row)."""
    return f"{agent_id}:{seq}"


class SenderStopped(Exception):
    """The NATS connection was closed for good; the sender cannot continue.

    Unsent rows stay in the outbox. Use a client with ``max_reconnect_attempts=-1`` and exit the
    sender before closing the connection.
    """


@dataclass(frozen=True, slots=True)
class SenderStats:
    """A snapshot for heartbeats and metrics."""

    depth: int
    """Rows in the outbox not yet acknowledged by JetStream."""
    in_flight: int
    sent: int
    """Rows acknowledged as newly stored."""
    duplicates: int
    """Rows acknowledged as duplicates (a retry of a publish that had been stored after all)."""
    retries: int
    """Failed attempts followed by a backoff."""
    last_error: str | None
    last_error_at: float | None
    """Wall-clock time of `last_error`."""
    available: bool
    """False while the last attempt failed (server down, stream missing...)."""


class Backoff:
    """Exponential backoff, capped, with "equal jitter": each delay is in [d/2, d]."""

    def __init__(
        self, initial: float = 0.1, cap: float = 10.0, rng: random.Random | None = None
    ) -> None:
        self.initial = initial
        self.cap = cap
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        base = min(self.cap, self.initial * 2.0**self._attempt)
        self._attempt = min(self._attempt + 1, 62)
        return base / 2 + self._rng.uniform(0, base / 2)

    def reset(self) -> None:
        self._attempt = 0


class _AttemptFailed(Exception):
    """Internal: one drain attempt failed with a retryable error (message in args[0])."""


def _describe(exc: BaseException, stream: str | None, ack_timeout: float) -> str:
    if isinstance(exc, nats.js.errors.NoStreamResponseError):
        return (
            f"no JetStream stream {stream or ''} for the feedback subject (is a manager"
            " running?): retrying"
        )
    if isinstance(exc, TimeoutError):
        return f"no ack within {ack_timeout}s (server unreachable?): retrying"
    return f"{type(exc).__name__}: {exc}"


class FeedbackSender:
    """Publishes the outbox's rows in order, exactly once, in a background task.

    Use as ``async with FeedbackSender(nc, outbox) as sender:``; the task is cancelled and
    awaited on exit (unsent rows stay in the outbox). Or await `run` in a TaskGroup.
    """

    def __init__(
        self,
        nc: Client,
        outbox: Outbox,
        *,
        stream: str | None = FEEDBACK_STREAM,
        max_in_flight: int = 1024,
        claim_batch: int = 512,
        ack_every: int = 512,
        ack_timeout: float = 5.0,
        poll_interval: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        """`stream`: expected stream name (sent as ``Nats-Expected-Stream``), None to skip."""
        self._acks = AckInbox(nc)
        self._outbox = outbox
        self._subject = feedback_subject(outbox.agent_id)
        self._stream = stream
        self._max_in_flight = max_in_flight
        self._claim_batch = claim_batch
        self._ack_every = ack_every
        self._ack_timeout = ack_timeout
        self._poll_interval = poll_interval
        self._backoff = backoff or Backoff()
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._sent = 0
        self._duplicates = 0
        self._retries = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._available = True
        outbox.add_listener(self.wake)

    # -- public --------------------------------------------------------------------------------

    def wake(self) -> None:
        """Send now instead of at the next poll (does not cut short a failure backoff)."""
        self._wake.set()

    def stats(self) -> SenderStats:
        return SenderStats(
            depth=self._outbox.depth(),
            in_flight=self._in_flight,
            sent=self._sent,
            duplicates=self._duplicates,
            retries=self._retries,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            available=self._available,
        )

    async def wait_empty(self) -> None:
        """Return once the outbox is empty; bound it with ``asyncio.timeout``.

        Raises the sender's fatal error if its background task died.
        """
        while True:
            self._progress.clear()
            if self._outbox.depth() == 0:
                return
            if self._task is not None and self._task.done():
                self._task.result()
                raise SenderStopped("the sender task ended with rows unsent")
            self.wake()
            try:
                await asyncio.wait_for(self._progress.wait(), 0.5)
            except TimeoutError:
                continue

    async def run(self) -> None:
        """Send forever. Raises `SenderStopped` when the connection is closed for good."""
        probe = False
        while True:
            try:
                await self._drain(probe=probe)
            except _AttemptFailed as failed:
                self._retries += 1
                self._available = False
                self._last_error = str(failed)
                self._last_error_at = time.time()
                delay = self._backoff.next()
                log.warning("feedback send failed (%s); retry in %.2fs", failed, delay)
                self._progress.set()
                await asyncio.sleep(delay)
                probe = True
                continue
            probe = False
            self._available = True
            self._backoff.reset()
            self._progress.set()
            self._wake.clear()
            if self._outbox.depth() > 0:
                continue  # rows arrived while the last ones were in flight
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            except TimeoutError:
                pass

    async def __aenter__(self) -> FeedbackSender:
        self._task = asyncio.create_task(self.run(), name=f"feedback-sender-{self._subject}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # we ourselves are being cancelled
        # Any other exception of the task (SenderStopped, outbox errors) propagates.

    # -- one attempt ---------------------------------------------------------------------------

    async def _drain(self, *, probe: bool) -> None:
        """Publish until the outbox is empty. Raises `_AttemptFailed` on a retryable failure."""
        try:
            await self._acks.start()
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
            raise SenderStopped(self._closed_message()) from exc
        except nats.errors.Error as exc:
            raise _AttemptFailed(_describe(exc, self._stream, self._ack_timeout)) from exc
        loop = asyncio.get_running_loop()
        window = 1 if probe else self._max_in_flight
        pending: deque[tuple[int, bytes]] = deque()
        in_flight: deque[tuple[int, asyncio.Future[Ack], float]] = deque()
        last_claimed = 0
        more = True
        acked_upto = 0
        unflushed = 0
        try:
            while True:
                if len(pending) < window and (more or not (pending or in_flight)):
                    rows = await self._outbox.claim_encoded(self._claim_batch, after=last_claimed)
                    more = len(rows) == self._claim_batch
                    if rows:
                        last_claimed = rows[-1][0]
                        pending.extend(rows)
                    elif not (pending or in_flight):
                        return
                # Refill in bursts (hysteresis): topping up one slot per ack would send one
                # message per TCP write and halve the throughput.
                if len(in_flight) <= window // 2:
                    deadline = loop.time() + self._ack_timeout
                    while pending and len(in_flight) < window:
                        seq, body = pending.popleft()
                        fut = await self._publish(seq, body)
                        in_flight.append((seq, fut, deadline))
                    self._in_flight = len(in_flight)
                seq, fut, deadline = in_flight[0]
                duplicate = await self._await_ack(fut, deadline - loop.time())
                in_flight.popleft()
                self._count(duplicate)
                acked_upto, unflushed = seq, unflushed + 1
                # Take every further head that is already acked without yielding.
                while in_flight and in_flight[0][1].done():
                    seq, fut, _ = in_flight.popleft()
                    self._count(await self._await_ack(fut, 0.0))
                    acked_upto, unflushed = seq, unflushed + 1
                self._in_flight = len(in_flight)
                window = self._max_in_flight  # the probe got through: open the window
                if unflushed >= self._ack_every or not in_flight:
                    await self._outbox.ack(acked_upto)
                    unflushed = 0
                    self._progress.set()
        finally:
            self._acks.abandon()  # what is still in flight is published again, same msg ids
            self._in_flight = 0
            if unflushed:
                # Runs on failure and on cancellation too: never forget what JetStream has.
                await asyncio.shield(self._outbox.ack(acked_upto))
                self._progress.set()

    async def _publish(self, seq: int, body: bytes) -> asyncio.Future[Ack]:
        headers = {"Nats-Msg-Id": row_msg_id(self._outbox.agent_id, seq)}
        if self._stream is not None:
            headers["Nats-Expected-Stream"] = self._stream
        try:
            return await self._acks.publish(self._subject, body, headers)
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
            raise SenderStopped(self._closed_message()) from exc
        except nats.errors.Error as exc:  # buffer full while reconnecting...
            raise _AttemptFailed(_describe(exc, self._stream, self._ack_timeout)) from exc

    def _closed_message(self) -> str:
        return (
            f"NATS connection closed while {self._outbox.depth()} feedback rows are unsent:"
            " use max_reconnect_attempts=-1 and stop the sender before closing the client"
        )

    async def _await_ack(self, fut: asyncio.Future[Ack], budget_s: float) -> bool:
        """The ack's ``duplicate`` flag, or `_AttemptFailed`."""
        if not fut.done() and budget_s > 0:
            await asyncio.wait((fut,), timeout=budget_s)
        if not fut.done():
            raise _AttemptFailed(_describe(TimeoutError(), self._stream, self._ack_timeout))
        if fut.cancelled():
            raise _AttemptFailed("publish was abandoned: retrying")
        exc = fut.exception()
        if isinstance(exc, PubRefused):
            raise _AttemptFailed(f"JetStream refused the message: {exc}") from exc
        if isinstance(exc, nats.errors.Error):
            raise _AttemptFailed(_describe(exc, self._stream, self._ack_timeout)) from exc
        return fut.result().duplicate  # raises any other (unexpected) exception

    def _count(self, duplicate: bool) -> None:
        self._available = True
        if duplicate:
            self._duplicates += 1
        else:
            self._sent += 1
