"""The projection engine: fold VIGIL_EVENTS into in-memory read models, live.

Each ``Projection`` declares a ``name``, the aggregate kinds it folds (``"stream"``,
``"agent"``, ...) and an ``apply(seq, aggregate, event)``. A projection that can be snapshotted
(``Snapshottable``) also offers ``snapshot() -> bytes`` / ``restore(bytes)`` (msgspec, with its
own format version; ``restore`` raises ``SnapshotError`` and leaves the projection unchanged on a
bad blob), ``reset()`` and ``dump()`` (a canonical JSON-able view per entity, for ``verify``).

The ``Projector`` feeds them from one ordered push consumer by callback (the fastest way to read
JetStream with nats-py), remembers the last applied sequence, and lets callers ``wait_for(seq)``
so a command reply can promise read-your-writes. ``start_seq`` resumes after a snapshot;
``stop_seq`` makes a bounded replay (``done`` is set once it is reached).

Events this code cannot decode are counted, logged with their sequence, and skipped. A
projection that raises while applying an event is a bug: the projector stops at once (it never
serves state that skipped an event), fails its waiters with `ProjectorFailed`, and ``run`` —
the supervised part — raises, so the supervisor rebuilds the projections and starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from events.codec import UndecodableEvent, decode_event
from events.jetstream import EVENTS_STREAM
from events.model import Event
from events.store import Unavailable

__all__ = [
    "Projection",
    "Projector",
    "ProjectorFailed",
    "SnapshotError",
    "Snapshottable",
    "freeze_heap",
    "freeze_survivors",
    "gc_paused",
    "parse_reply",
]

log = logging.getLogger(__name__)


_gc_pauses = 0


def _pause_gc() -> None:
    """Catch-up allocates millions of long-lived objects: the cyclic GC would rescan the
    growing state again and again (measured: decode 3.3 µs → 0.7 µs per event without it).
    Reference counting still frees everything; GC resumes when the last catch-up ends."""
    global _gc_pauses
    _gc_pauses += 1
    gc.disable()


def _resume_gc() -> None:
    """Freeze what the catch-up built (the first young collection after it would otherwise
    scan all of it: a 60-70 ms stall measured at 1,000 agents), then turn the GC back on."""
    global _gc_pauses
    _gc_pauses -= 1
    if _gc_pauses == 0:
        gc.freeze()
        gc.enable()


_freezing_survivors = False


def freeze_survivors() -> None:
    """From now on, freeze what survives each full collection (a ``gc.callbacks`` hook,
    installed once per process).

    After a ``gc.freeze`` the oldest generation is nearly empty, so CPython's rule "collect
    it when it grew by a quarter" fires about every 70,000 net allocations; each such full
    collection then scanned everything built since the last freeze: 10-30 ms, 62 times in a
    100 s ``bench/commands.py`` run, each a stall every command in flight waited out. Freezing the survivors of each
    one keeps every full collection to what is new since the previous (under 1 ms, most).
    The cost: an object frozen while alive that later dies in a reference cycle is not
    reclaimed. The manager's state is acyclic (frozen msgspec Structs, dicts of them); after
    12,000 creates and 24,000 gets (found and not found) through a manager with this hook,
    ``gc.unfreeze(); gc.collect()`` found 0 unreachable objects."""
    global _freezing_survivors
    if not _freezing_survivors:
        gc.callbacks.append(_after_collection)
        _freezing_survivors = True


def _after_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def freeze_heap() -> None:
    """Move every object alive now out of the cyclic GC's reach (``gc.freeze``).

    A manager holds hundreds of thousands of long-lived objects (states, their label and
    params dicts, indexes); a full collection over them took ~30 ms at 100k streams — a stall
    every command would feel. Frozen objects are still freed by reference counting; call this
    after a bulk load and periodically (``ops.runtime.manager``: ``gc_freeze_interval_s``).
    """
    gc.freeze()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC off for a bulk load (nests with the Projector's own catch-up pause)."""
    _pause_gc()
    try:
        yield
    finally:
        _resume_gc()


class ProjectorFailed(Unavailable):
    """A projection failed to apply an event: this manager's read models are not trustworthy
    until they are rebuilt."""


class SnapshotError(ValueError):
    """A snapshot blob cannot be restored (corrupt, wrong version): start from zero instead."""


class Projection(Protocol):
    kinds: tuple[str, ...]

    def apply(self, seq: int, aggregate: str, event: Event) -> None: ...


@runtime_checkable
class Snapshottable(Protocol):
    name: str
    kinds: tuple[str, ...]

    def apply(self, seq: int, aggregate: str, event: Event) -> None: ...
    def snapshot(self) -> bytes: ...
    def restore(self, data: bytes) -> None: ...
    def reset(self) -> None: ...
    def dump(self) -> dict[str, Any]: ...


def parse_reply(reply: str) -> tuple[int, int, int]:
    """(stream seq, num pending, stored time in ns) from a JetStream ack subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`` (v1) or the v2 form
    with domain and account hash. Much cheaper than ``msg.metadata`` (no datetime, no
    dataclasses). Raises ``ValueError`` on anything else (not a JetStream message).
    """
    t = reply.split(".")
    if len(t) == 9:
        return int(t[5]), int(t[8]), int(t[7])
    if len(t) >= 11:
        return int(t[7]), int(t[10]), int(t[9])
    raise ValueError(f"not a JetStream reply subject: {reply!r}")


CATCH_UP_MIN = 5_000  # a backlog at least this long is read by the faster catch-up consumer


class Projector:
    """Feeds projections from the event log; an async context manager."""

    def __init__(
        self,
        nc: Client,
        projections: Iterable[Projection],
        *,
        stream: str = EVENTS_STREAM,
        subject_prefix: str = "vigil.evt",
        start_seq: int = 1,
        stop_seq: int | None = None,
    ) -> None:
        self.nc = nc
        self.stream = stream
        self.prefix = subject_prefix
        self._cut = len(subject_prefix) + 1
        self.last_seq = start_seq - 1
        self.start_seq = start_seq
        self.stop_seq = stop_seq
        self.undecodable = 0
        self.applied = 0
        self.pending = 0
        """Events the server still had to deliver after the last one applied (the lag)."""
        self._stored_ns = ""
        self._routes: dict[str, list[Projection]] = {}
        for p in projections:
            for kind in p.kinds:
                self._routes.setdefault(kind, []).append(p)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tick = 0
        self._caught_up = asyncio.Event()
        self.done = asyncio.Event()
        self._target = 0
        self._sub: object | None = None
        self._catch_up_task: asyncio.Task[None] | None = None
        self._gc_paused = False
        self.failure: BaseException | None = None
        self.halted: str | None = None
        self._failed = asyncio.Event()

    def lag_s(self, now: float) -> float:
        """How far behind the log this projector is, in seconds: 0 when nothing is pending,
        else the age of the last event it applied."""
        if self.pending == 0 or not self._stored_ns.isdigit():
            return 0.0
        return max(now - int(self._stored_ns) / 1e9, 0.0)

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set() and self.failure is None

    def reset(self, start_seq: int) -> None:
        """Forget the position (after the projections were reset or restored): the next
        ``start``/``run`` folds from ``start_seq``."""
        self.last_seq = start_seq - 1
        self.start_seq = start_seq
        self.failure = None
        self._failed = asyncio.Event()
        self._caught_up = asyncio.Event()
        self.done = asyncio.Event()

    def _fail(self, exc: BaseException, seq: int) -> None:
        if self.failure is not None:
            return
        self.failure = exc
        log.error("projection failed at event seq %d: %r; projector stopped", seq, exc,
                  exc_info=exc)  # fmt: skip
        self._failed.set()
        err = ProjectorFailed(f"projections failed at event seq {seq}: {exc!r}")
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(err)
        self._waiters.clear()

    async def run(self) -> None:
        """The supervised part: fold until cancelled; raises `ProjectorFailed` on a failure."""
        await self.start()
        try:
            await self._failed.wait()
            raise ProjectorFailed(f"projector failed: {self.failure!r}")
        finally:
            await self.stop()

    def apply(self, seq: int, aggregate: str, data: bytes) -> None:
        """Decode and route one stored event (also used by replay tools)."""
        if seq <= self.last_seq:
            return
        try:
            event = decode_event(data)
        except UndecodableEvent as exc:
            self.undecodable += 1
            log.warning("event seq %d on %s skipped: %s", seq, aggregate, exc)
        else:
            kind = aggregate.split(".", 1)[0]
            for p in self._routes.get(kind, ()):
                p.apply(seq, aggregate, event)
            self.applied += 1
        self.last_seq = seq

    async def _on_msg(self, msg: Msg) -> None:
        """The hot path (see bench/replay.py): parse the reply subject ourselves, decode once,
        route by the subject's kind token; ``apply`` is the same, spelled out."""
        t = msg.reply.split(".")
        n = len(t)
        if n == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
            seq, pending = int(t[5]), int(t[8])
            self._stored_ns = t[7]
        elif (
            n >= 11
        ):  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<dlv>.<sseq>.<cseq>.<ts>.<pending>
            seq, pending = int(t[7]), int(t[10])
            self._stored_ns = t[9]
        else:
            meta = msg.metadata
            seq, pending = meta.sequence.stream, meta.num_pending
            self._stored_ns = str(int(meta.timestamp.timestamp() * 1e9)) if meta.timestamp else ""
        self.pending = pending
        self._handle(msg, seq, pending)

    def stop_applying(self, why: str) -> None:
        """Apply nothing more (the log under us is not the one we folded): state stays as it
        was, for no one to read — the manager refuses to serve it."""
        if self.halted is None:
            log.error("projector halted: %s", why)
        self.halted = why

    def _handle(self, msg: Msg, seq: int, pending: int) -> None:
        if self.failure is not None or self.halted is not None:
            return
        stop = self.stop_seq
        if stop is not None and seq > stop:
            self._finish()
            return
        if seq > self.last_seq:
            subject = msg.subject
            cut = self._cut
            try:
                event = decode_event(msg.data)
            except UndecodableEvent as exc:
                self.undecodable += 1
                log.warning("event seq %d on %s skipped: %s", seq, subject[cut:], exc)
            else:
                dot = subject.find(".", cut)
                kind = subject[cut:dot] if dot > 0 else subject[cut:]
                routes = self._routes.get(kind)
                if routes:
                    aggregate = subject[cut:]
                    try:
                        for p in routes:
                            p.apply(seq, aggregate, event)
                    except Exception as exc:  # a bug in a projection: stop, never skip
                        self._fail(exc, seq)
                        return
                self.applied += 1
            self.last_seq = seq
        if pending == 0 or seq >= self._target:
            self._set_caught_up()
            if stop is not None and (pending == 0 or seq >= stop):
                self._finish()
        if self._waiters and self._waiters[0][0] <= seq:
            self._wake()

    def _finish(self) -> None:
        self._set_caught_up()
        self.done.set()

    def _set_caught_up(self) -> None:
        if not self._caught_up.is_set():
            freeze_heap()
        self._caught_up.set()
        if self._gc_paused:
            self._gc_paused = False
            _resume_gc()

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.last_seq:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    async def start(self) -> None:
        js = self.nc.jetstream()
        info = await js.stream_info(self.stream)
        self._target = int(info.state.last_seq)
        if self.stop_seq is not None:
            self.stop_seq = min(self.stop_seq, self._target)
            self._target = self.stop_seq
            if self.last_seq >= self.stop_seq:
                self._finish()
                return
        if self._target <= self.last_seq:
            self._caught_up.set()
        elif self._target - self.last_seq > 10_000:
            self._gc_paused = True
            _pause_gc()
        if self._target - self.last_seq >= CATCH_UP_MIN:
            self._catch_up_task = asyncio.create_task(self._catch_up_then_follow(), name="catch-up")
            return
        await self._follow()

    async def _follow(self) -> None:
        """Tail the log with an ordered consumer (gap detection and automatic reset)."""
        js = self.nc.jetstream()
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq + 1,
        )
        self._sub = await js.subscribe(
            f"{self.prefix}.>",
            stream=self.stream,
            cb=self._on_msg,
            ordered_consumer=True,
            idle_heartbeat=1.0,
            config=config,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )

    async def _catch_up_then_follow(self) -> None:
        """Read a long backlog with a plain push consumer (flow control, no acks), which nats-py
        delivers ~20 % cheaper than an ordered one; then tail with the ordered consumer.

        The catch-up only applies contiguous sequences (VIGIL_EVENTS never deletes, so the log
        has no holes): on a gap, a stall or an error it stops, and the ordered consumer resumes
        from the last applied sequence, so nothing is skipped or applied twice.
        """
        js = self.nc.jetstream()
        done = asyncio.Event()
        target = self._target

        finished = False  # a plain flag: this runs once per event of the backlog
        handle = self._handle

        async def on_msg(msg: Msg) -> None:
            nonlocal finished
            if finished:
                return
            t = msg.reply.split(".")
            n = len(t)
            if n == 9:
                seq = int(t[5])
            elif n >= 11:
                seq = int(t[7])
            else:  # not a JetStream delivery we understand: let the ordered consumer do it
                finished = True
                done.set()
                return
            last = self.last_seq
            if seq <= last:
                return
            if seq != last + 1:
                log.info("catch-up stopped at seq %d (got %d); following", last, seq)
                finished = True
                done.set()
                return
            handle(msg, seq, -1)  # -1: pending unknown here; reaching `target` ends the catch-up
            if seq >= target:
                finished = True
                done.set()

        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq + 1,
            ack_policy=api.AckPolicy.NONE,
            mem_storage=True,
            num_replicas=1,
            inactive_threshold=30.0,
        )
        sub = None
        try:
            sub = await js.subscribe(
                f"{self.prefix}.>", stream=self.stream, cb=on_msg, config=config,
                flow_control=True, idle_heartbeat=1.0,
                pending_msgs_limit=-1, pending_bytes_limit=-1,
            )  # fmt: skip
            seen = self.last_seq
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 2.0)
                if not done.is_set() and self.last_seq == seen:
                    log.info("catch-up made no progress for 2 s at seq %d; following", seen)
                    break
                seen = self.last_seq
        except Exception as exc:  # a reconnect mid-way: the ordered consumer takes over
            log.info("catch-up interrupted at seq %d: %r", self.last_seq, exc)
        finally:
            done.set()
            if sub is not None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
        if not self.done.is_set():
            await self._follow()

    async def stop(self) -> None:
        task, self._catch_up_task = self._catch_up_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._gc_paused:
            self._gc_paused = False
            _resume_gc()
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()  # type: ignore[attr-defined]
            except Exception as exc:  # connection already closed: nothing to release
                log.debug("projector unsubscribe: %r", exc)

    async def wait_caught_up(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._caught_up.wait(), timeout)

    async def wait_done(self, timeout: float | None = None) -> None:
        """Wait until ``stop_seq`` is reached (bounded replays only)."""
        await asyncio.wait_for(self.done.wait(), timeout)

    async def wait_for(self, seq: int, timeout: float = 5.0) -> bool:
        """Wait until the event at ``seq`` is applied; False on timeout. Raises
        `ProjectorFailed` if the projector failed."""
        if self.failure is not None:
            raise ProjectorFailed(f"projector failed: {self.failure!r}")
        if self.last_seq >= seq:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tick += 1
        heapq.heappush(self._waiters, (seq, self._tick, fut))
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        return True

    async def __aenter__(self) -> Projector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
