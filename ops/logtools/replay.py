"""Reading the event log for the replay tools: raw records, time → sequence, bounded rebuilds.

Shared by ``vigil events`` (``ops.cli.events``), the HTTP history route and the tests. Everything
here reads ``VIGIL_EVENTS`` directly and never writes. Times are the server's stored timestamps
(when the log learnt of an event), in unix seconds.

Errors: ``ReplayError`` (bad time, no such aggregate) carries a message that says what to type
instead; NATS errors propagate (the CLI maps them to exit code 3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.errors import NotFoundError

from events import subjects
from events.jetstream import EVENTS_STREAM
from projections.engine import Projector, Snapshottable, parse_reply
from projections.fleet import Fleet

__all__ = [
    "LogRecord",
    "Rebuilt",
    "ReplayError",
    "fresh_projections",
    "parse_time",
    "read_log",
    "rebuild",
    "seq_at_time",
]

log = logging.getLogger(__name__)

ALL = subjects.EVT_ALL
Progress = Callable[[int, int], None]  # (sequence reached, target sequence)


class ReplayError(Exception):
    """A replay request that cannot be answered; the message says how to fix it."""


class LogRecord(msgspec.Struct, frozen=True):
    """One stored message: its sequence, subject, stored time, headers and raw body."""

    seq: int
    subject: str
    ts: float
    headers: dict[str, str]
    data: bytes

    @property
    def aggregate(self) -> str:
        return self.subject.split(".", 2)[-1]


def parse_time(text: str) -> float:
    """Unix seconds from ``1764000000.5`` or ISO-8601 (``2026-11-24T10:00:00Z``; naive = UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReplayError(
            f"cannot read time {text!r}: use ISO-8601 (2026-11-24T10:00:00Z) or unix seconds"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _record(msg: Msg) -> LogRecord:
    seq, _, ts_ns = parse_reply(msg.reply)
    headers = dict(msg.headers) if msg.headers else {}
    return LogRecord(seq, msg.subject, ts_ns / 1e9, headers, msg.data)


async def read_log(
    nc: Client,
    *,
    subject: str = ALL,
    from_seq: int = 1,
    until_seq: int | None = None,
    follow: bool = False,
    new_only: bool = False,
    stream: str = EVENTS_STREAM,
) -> AsyncIterator[LogRecord]:
    """Stored messages on ``subject`` from ``from_seq`` (or only new ones), in order.

    Without ``follow`` it ends at ``until_seq`` or at the end of the log as it was when reached.
    """
    js = nc.jetstream()
    if until_seq is not None and until_seq < from_seq and not follow:
        return
    queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=10_000)

    async def on_msg(msg: Msg) -> None:
        await queue.put(msg)

    if new_only:
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.NEW)
    else:
        config = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                    opt_start_seq=max(from_seq, 1))  # fmt: skip
    sub = await js.subscribe(subject, stream=stream, cb=on_msg, ordered_consumer=True,
                             idle_heartbeat=1.0, config=config)  # fmt: skip
    try:
        if not follow:
            info = await sub.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered else 0
            if info.num_pending == 0 and not delivered:
                return
        while True:
            msg = await queue.get()
            rec = _record(msg)
            if until_seq is not None and rec.seq > until_seq:
                return
            yield rec
            if not follow:
                _, pending, _ = parse_reply(msg.reply)
                if pending == 0 or (until_seq is not None and rec.seq >= until_seq):
                    return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _first_at_or_after(nc: Client, stream: str, seq: int) -> api.RawStreamMsg | None:
    try:
        return await nc.jetstream().get_msg(stream, seq=seq, subject=ALL, next=True)
    except NotFoundError:
        return None


def _ts(msg: api.RawStreamMsg) -> float:
    return msg.time.timestamp() if msg.time else 0.0


async def seq_at_time(nc: Client, at: float, *, stream: str = EVENTS_STREAM) -> int:
    """The sequence of the last event stored at or before ``at`` (0 if none): a binary search
    with direct gets, ~log2(n) requests."""
    state = (await nc.jetstream().stream_info(stream)).state
    lo, hi = int(state.first_seq), int(state.last_seq)  # answer in [lo - 1, hi]
    if hi == 0 or state.messages == 0:
        return 0
    best = lo - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        msg = await _first_at_or_after(nc, stream, mid)
        if msg is None or msg.seq is None:
            hi = mid - 1
            continue
        if _ts(msg) <= at:
            best = int(msg.seq)
            lo = int(msg.seq) + 1
        else:
            hi = mid - 1
    return max(best, 0)


def fresh_projections() -> list[Snapshottable]:
    """Empty instances of every projection a manager runs (the same `Fleet`, by construction)."""
    return Fleet().all()


@dataclass
class Rebuilt:
    """Projections folded from the log up to ``seq``."""

    fleet: Fleet
    seq: int
    applied: int
    undecodable: int
    seconds: float

    @property
    def projections(self) -> list[Snapshottable]:
        return self.fleet.all()

    def by_name(self) -> dict[str, Snapshottable]:
        return {p.name: p for p in self.projections}


async def rebuild(
    nc: Client,
    until_seq: int | None = None,
    *,
    start: Rebuilt | None = None,
    progress: Progress | None = None,
    stream: str = EVENTS_STREAM,
) -> Rebuilt:
    """Fold every projection from zero (or continue ``start``) up to ``until_seq`` (default:
    the end of the log now). ``progress`` is called a few times a second."""
    fleet = start.fleet if start else Fleet()
    projections = fleet.all()
    first = start.seq + 1 if start else 1
    if until_seq is None:
        until_seq = int((await nc.jetstream().stream_info(stream)).state.last_seq)
    t0 = time.perf_counter()
    projector = Projector(nc, projections, start_seq=first, stop_seq=until_seq, stream=stream)
    await projector.start()
    try:
        while not projector.done.is_set():
            if progress is not None:
                progress(projector.last_seq, projector.stop_seq or 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(projector.done.wait(), 0.2)
    finally:
        await projector.stop()
    target = projector.stop_seq if projector.stop_seq is not None else projector.last_seq
    if progress is not None:
        progress(target, target)
    return Rebuilt(
        fleet=fleet,
        seq=max(projector.last_seq, target),
        applied=projector.applied + (start.applied if start else 0),
        undecodable=projector.undecodable + (start.undecodable if start else 0),
        seconds=time.perf_counter() - t0,
    )
