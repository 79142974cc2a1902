"""The JetStream event store: stream ``VIGIL_EVENTS`` on subjects ``vigil.evt.>``.

Appends are acked publishes with ``Nats-Msg-Id`` (idempotent) and
``Nats-Expected-Last-Subject-Sequence`` (optimistic concurrency per aggregate; JetStream error
10071 becomes ``Conflict``). A clustered stream's leader admits one expected-sequence check per
subject in flight: a second one is answered 10164 ("wrong last sequence", without numbers) before
it is even checked, so 10164 — like 10163 and 10158, "not ready yet" — is retried (after the
window settles, one by one), never taken for a conflict. Master decisions are fenced with
``Nats-Expected-Last-Subject-Sequence-Subject: vigil.evt.master`` instead, so a deposed master's
writes are refused by the server (``Fenced``). A publish that times out is retried with the same
msg id: if the first attempt was stored after all, the dedup window returns its sequence.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import api
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from events.acks import Ack, AckInbox, PubRefused
from events.codec import UndecodableEvent, decode_event, encode_event
from events.model import Event
from events.store import Append, Conflict, Fence, Fenced, StoredEvent, Unavailable

__all__ = ["EVENTS_STREAM", "TRANSIENT_CODES", "WRONG_LAST_SEQUENCE", "JetStreamStore",
           "ensure_stream"]  # fmt: skip

log = logging.getLogger(__name__)

EVENTS_STREAM = "VIGIL_EVENTS"
# "Wrong last sequence": the check was made and failed (single server or cluster).
WRONG_LAST_SEQUENCE = frozenset({10071})
# A clustered stream's "try again": another expected-sequence write on the same subject is in flight
# (10164, checked only once that one is stored), the check is not ready after a leader change
# (10163), or the same msg id is still being stored (10158). Measured: 20 pipelined fenced appends
# on a 3-node cluster got one success and nineteen 10164.
TRANSIENT_CODES = frozenset({10164, 10163, 10158})
_H_MSG_ID = "Nats-Msg-Id"
_H_EXPECT = "Nats-Expected-Last-Subject-Sequence"
_H_EXPECT_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
_H_BATCH_ID = "Nats-Batch-Id"
_H_BATCH_SEQ = "Nats-Batch-Sequence"
_H_BATCH_COMMIT = "Nats-Batch-Commit"
ATOMIC_MAX = 500  # events per atomic batch (the server's default ceiling is 1,000)
_ATOMIC_DISABLED = frozenset({10174})  # the stream does not allow atomic batches
_ATOMIC_DUPLICATE = frozenset({10201, 10177})  # a msg id already stored (10177 on 2.12)
_ATOMIC_RETRY = frozenset({10176, 10175, 10179})  # incomplete / sequence missing: send again


async def ensure_stream(nc: Client, config: api.StreamConfig) -> None:
    """Create a JetStream stream, or bring an existing one to ``config`` (idempotent; safe when
    many managers start at once)."""
    js = nc.jetstream()
    try:
        await js.add_stream(config)
    except APIError as exc:
        if exc.err_code != 10058:  # stream name already in use with a different config
            raise
        await js.update_stream(config)


class JetStreamStore:
    """``EventStore`` over a nats-py client. Call ``ensure()`` once before use."""

    def __init__(
        self,
        nc: Client,
        *,
        stream: str = EVENTS_STREAM,
        subject_prefix: str = "vigil.evt",
        publish_timeout: float = 2.0,
        attempts: int = 8,
        duplicate_window: float = 120.0,
        replicas: int = 1,
        window: int = 512,
    ) -> None:
        self.nc = nc
        self.observe: Callable[[str, str, float], None] | None = None
        """Told (``append`` | ``append_batch``, ``ok`` | the error's name, seconds) after every
        append: the manager's metrics."""
        self.js = nc.jetstream(timeout=publish_timeout)
        self.stream = stream
        self.prefix = subject_prefix
        self.publish_timeout = publish_timeout
        self.attempts = attempts
        self.duplicate_window = duplicate_window
        self.replicas = replicas
        self.window = window
        self.clustered = False
        """The stream lives in a JetStream cluster: fenced batches are sent atomically."""
        self.atomic = True
        """Atomic batches are accepted (cleared when the server says they are not)."""
        self._pipe: AckInbox | None = None

    async def ensure(self) -> None:
        """Create the stream, or update its config to ours (idempotent, safe from many managers)."""
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            duplicate_window=self.duplicate_window,
            num_replicas=self.replicas,
            allow_direct=True,
            allow_atomic=True,  # fenced decisions on a cluster go as atomic batches (server 2.12+)
        )
        await ensure_stream(self.nc, config)
        info = await self.js.stream_info(self.stream)
        self.clustered = info.cluster is not None and info.cluster.name is not None

    def subject(self, aggregate: str) -> str:
        """``<prefix>.<aggregate>`` (``vigil.evt.stream.s-1``; alarms: ``vigil.alarm.<kind>...``)."""
        return f"{self.prefix}.{aggregate}"

    # ---- append ------------------------------------------------------------------------------

    def _headers(
        self, expected_seq: int | None, msg_id: str | None, fence: Fence | None
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if msg_id is not None:
            headers[_H_MSG_ID] = msg_id
        if fence is not None:
            headers[_H_EXPECT_SUBJECT] = self.subject(fence.aggregate)
            headers[_H_EXPECT] = str(fence.seq)
        elif expected_seq is not None:
            headers[_H_EXPECT] = str(expected_seq)
        return headers

    @classmethod
    def _map_error(cls, exc: APIError, aggregate: str, fence: Fence | None) -> Exception:
        mapped = cls._map_code(exc.err_code, str(exc.description), aggregate, fence)
        return exc if isinstance(mapped, PubRefused) else mapped

    @staticmethod
    def _map_code(
        code: int | None, description: str, aggregate: str, fence: Fence | None
    ) -> Exception:
        if code in WRONG_LAST_SEQUENCE:
            if fence is not None:
                return Fenced(
                    f"fenced out: {fence.aggregate} moved past {fence.seq} ({description})"
                )
            return Conflict(f"{aggregate} changed concurrently ({description})")
        return PubRefused(code, description)

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str]) -> int:
        """One acked publish, retried on timeouts with the same headers (so the same msg id)."""
        delay = 0.05
        last: Exception | None = None
        attempt = 0
        busy_until = asyncio.get_running_loop().time() + 10 * self.publish_timeout
        pipe = await self._ack_pipe()  # nats-py's js.publish costs ~20 µs more per event
        while attempt < self.attempts:
            attempt += 1
            try:
                fut = await pipe.publish(subject, body, headers)
                try:
                    return (await asyncio.wait_for(fut, self.publish_timeout)).seq
                except PubRefused as exc:
                    raise APIError(description=exc.description, err_code=exc.err_code) from None
            except (TimeoutError, NatsTimeout, NoRespondersError, NoStreamResponseError,
                    APIError) as exc:  # fmt: skip
                if isinstance(exc, APIError) and exc.err_code not in TRANSIENT_CODES:
                    raise
                last = exc
                if isinstance(exc, APIError):  # refused before storing: soon ready again
                    if asyncio.get_running_loop().time() < busy_until:
                        attempt -= 1  # does not count as a timeout
                    await asyncio.sleep(0.005)
                    continue
                if _H_MSG_ID not in headers:
                    break  # without a msg id a retry could store the event twice
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        raise Unavailable(f"event store did not acknowledge {subject}: {last!r}")

    async def append(
        self,
        aggregate: str,
        events: Sequence[Event],
        *,
        expected_seq: int | None = None,
        msg_id: str | None = None,
        fence: Fence | None = None,
    ) -> list[int]:
        subject = self.subject(aggregate)
        seqs: list[int] = []
        began, outcome = time.perf_counter(), "ok"
        try:
            for i, event in enumerate(events):
                mid = None if msg_id is None else f"{msg_id}:{i}"
                headers = self._headers(expected_seq, mid, fence)
                try:
                    seq = await self._publish(subject, encode_event(event), headers)
                except APIError as exc:
                    raise self._map_error(exc, aggregate, fence) from None
                seqs.append(seq)
                expected_seq = seq
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            if self.observe is not None:
                self.observe("append", outcome, time.perf_counter() - began)
        return seqs

    async def append_batch(
        self, items: Sequence[Append], *, fence: Fence | None = None
    ) -> list[int]:
        """Pipelined appends (``window`` acks outstanding) through our own ack inbox.

        Items whose ack timed out, or that a clustered leader asked to retry, are published again
        one by one with the same msg id; the events of one aggregate keep their order (a second
        event of an aggregate waits until the first is stored). A fenced batch that meets a
        clustered leader's "one fenced write at a time" goes on one by one. Raises the first
        refusal (``Fenced`` / ``Conflict``) once the in-flight ones have settled.
        """
        began, outcome = time.perf_counter(), "ok"
        try:
            return await self._append_batch(items, fence)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            if self.observe is not None:
                self.observe("append_batch", outcome, time.perf_counter() - began)

    async def _append_batch(self, items: Sequence[Append], fence: Fence | None) -> list[int]:
        """``append_batch`` itself (its caller times it)."""
        if fence is not None and self.clustered and self.atomic:
            atomic = await self._append_atomic(items, fence)
            if atomic is not None:
                return atomic
        pipe = await self._ack_pipe()
        seqs: list[int] = [0] * len(items)
        pending: list[tuple[int, asyncio.Future[Ack]]] = []
        in_flight: Counter[str] = Counter()  # aggregate → events sent, not yet stored
        retry: list[int] = []
        failure: Exception | None = None
        serial = False

        async def settle(upto: int) -> None:
            nonlocal failure, serial
            while len(pending) > upto:
                i, fut = pending.pop(0)
                try:
                    seqs[i] = (await asyncio.wait_for(fut, self.publish_timeout)).seq
                    in_flight[items[i].aggregate] -= 1
                except PubRefused as exc:
                    if exc.err_code in TRANSIENT_CODES:
                        retry.append(i)
                        serial = serial or fence is not None
                        continue
                    failure = failure or self._map_code(
                        exc.err_code, str(exc), items[i].aggregate, fence
                    )
                except (TimeoutError, NoStreamResponseError):
                    retry.append(i)

        async def one(i: int) -> None:
            item = items[i]
            try:
                seqs[i] = await self._publish(
                    self.subject(item.aggregate),
                    encode_event(item.event),
                    self._headers(None, item.msg_id, fence),
                )
            except APIError as exc:
                raise self._map_error(exc, item.aggregate, fence) from None

        async def drain() -> None:
            """Everything sent is stored (or failed) before anything else is sent."""
            await settle(0)
            if failure is None:
                for i in sorted(retry):
                    await one(i)
            retry.clear()
            in_flight.clear()

        for i, item in enumerate(items):
            if failure is not None:
                break
            if serial:
                await drain()
                if failure is None:
                    await one(i)
                continue
            if in_flight[item.aggregate] > 0:
                await drain()  # this aggregate's earlier event first
                if failure is not None:
                    break
            headers = self._headers(None, item.msg_id, fence)
            try:
                fut = await pipe.publish(
                    self.subject(item.aggregate), encode_event(item.event), headers
                )
            except Exception as exc:  # disconnected: fall back to the retrying path
                log.debug("pipelined publish refused (%r); retrying item %d", exc, i)
                retry.append(i)
                in_flight[item.aggregate] += 1
                continue
            pending.append((i, fut))
            in_flight[item.aggregate] += 1
            if len(pending) >= self.window:
                await settle(self.window // 2)
        await drain()
        if failure is not None:
            raise failure
        return seqs

    async def _append_atomic(self, items: Sequence[Append], fence: Fence) -> list[int] | None:
        """Fenced appends to a clustered stream as atomic batches (ADR-50) of up to
        ``ATOMIC_MAX`` events: the fence is checked once, on the first event, and the batch is
        stored whole, in order, or not at all — where pipelined fenced publishes would be
        admitted one at a time by the leader. None: the server does not take atomic batches
        (the caller falls back to one by one)."""
        seqs: list[int] = []
        for start in range(0, len(items), ATOMIC_MAX):
            chunk = items[start : start + ATOMIC_MAX]
            got = await self._atomic_chunk(chunk, fence)
            if got is None:
                if seqs:  # the server changed its mind mid-way: the rest one by one
                    rest = await self.append_batch(items[start:], fence=fence)
                    return seqs + rest
                return None
            seqs += got
        return seqs

    async def _atomic_chunk(self, chunk: Sequence[Append], fence: Fence) -> list[int] | None:
        delay = 0.05
        last: object = None
        for _ in range(self.attempts):
            batch_id = uuid.uuid4().hex
            try:
                for k, item in enumerate(chunk, 1):
                    headers = {_H_BATCH_ID: batch_id, _H_BATCH_SEQ: str(k)}
                    if item.msg_id is not None:
                        headers[_H_MSG_ID] = item.msg_id
                    if k == 1:
                        headers |= self._headers(None, None, fence)
                    subject, body = self.subject(item.aggregate), encode_event(item.event)
                    if k < len(chunk):
                        await self.nc.publish(subject, body, headers=headers)
                        continue
                    headers[_H_BATCH_COMMIT] = "1"
                    reply = await self.nc.request(subject, body, headers=headers,
                                                  timeout=max(self.publish_timeout, 5.0))  # fmt: skip
            except (TimeoutError, NatsTimeout, NoRespondersError) as exc:
                last = exc  # lost, or stored with its reply lost: the next try tells (10201)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            try:
                resp = orjson.loads(reply.data)
            except orjson.JSONDecodeError:
                last = reply.data[:200]
                continue
            err = resp.get("error")
            if not err:
                count, end = int(resp.get("count", 0)), int(resp["seq"])
                if count != len(chunk):
                    raise Unavailable(f"atomic batch stored {count} of {len(chunk)} events")
                return list(range(end - count + 1, end + 1))
            code = err.get("err_code")
            if code in _ATOMIC_DISABLED:
                log.warning("%s does not take atomic batches (%s): fenced appends go one by one",
                            self.stream, err.get("description"))  # fmt: skip
                self.atomic = False
                return None
            if code in _ATOMIC_DUPLICATE:  # stored before (its ack was lost): each msg id's seq
                return await self._one_by_one(chunk, fence)
            if code in _ATOMIC_RETRY or code in TRANSIENT_CODES:
                last = err
                await asyncio.sleep(delay)
                continue
            raise self._map_code(code, str(err.get("description", err)), chunk[0].aggregate,
                                 fence)  # fmt: skip
        raise Unavailable(f"event store did not acknowledge an atomic batch: {last!r}")

    async def _one_by_one(self, chunk: Sequence[Append], fence: Fence) -> list[int]:
        seqs: list[int] = []
        for item in chunk:
            try:
                seqs.append(await self._publish(self.subject(item.aggregate),
                                                encode_event(item.event),
                                                self._headers(None, item.msg_id, fence)))  # fmt: skip
            except APIError as exc:
                raise self._map_error(exc, item.aggregate, fence) from None
        return seqs

    async def _ack_pipe(self) -> AckInbox:
        if self._pipe is None:
            pipe = AckInbox(self.nc)
            await pipe.start()
            self._pipe = pipe
        return self._pipe

    # ---- read --------------------------------------------------------------------------------

    async def _last_subject_seq(self, subject: str) -> int:
        try:
            msg = await self.js.get_last_msg(self.stream, subject)
        except NotFoundError:
            return 0
        return int(msg.seq or 0)

    async def read(self, aggregate: str) -> list[StoredEvent]:
        subject = self.subject(aggregate)
        last = await self._last_subject_seq(subject)
        if last == 0:
            return []
        return [e async for e in self._consume(subject, 1, last)]

    async def read_all(self, from_seq: int = 1) -> AsyncIterator[StoredEvent]:
        last = await self.last_seq()
        if last < from_seq:
            return
        async for e in self._consume(f"{self.prefix}.>", from_seq, last):
            yield e

    async def _consume(
        self, subject: str, from_seq: int, until_seq: int
    ) -> AsyncIterator[StoredEvent]:
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=max(from_seq, 1),
        )
        sub = await self.js.subscribe(
            subject, stream=self.stream, ordered_consumer=True, config=config, idle_heartbeat=1.0
        )
        try:
            while True:
                msg = await sub.next_msg(timeout=10.0)
                seq = msg.metadata.sequence.stream
                aggregate = msg.subject[len(self.prefix) + 1 :]
                try:
                    yield StoredEvent(seq, aggregate, decode_event(msg.data))
                except UndecodableEvent as exc:
                    log.warning("skipping undecodable event at seq %d: %s", seq, exc)
                if seq >= until_seq or msg.metadata.num_pending == 0:
                    return
        finally:
            await sub.unsubscribe()

    async def last_seq(self) -> int:
        info = await self.js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def info(self) -> dict[str, Any]:
        info = await self.js.stream_info(self.stream)
        return {"messages": info.state.messages, "last_seq": info.state.last_seq}
