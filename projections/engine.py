"""The projection engine: fold VIGIL_EVENTS into in-memory read models, live.

Each ``Projection`` declares the aggregate kinds it folds (``"stream"``, ``"agent"``, ...) and an
``apply(seq, aggregate, event)``. The ``Projector`` feeds them from one ordered push consumer by
callback (the fastest way to read JetStream with nats-py), remembers the last applied sequence,
and lets callers ``wait_for(seq)`` so a command reply can promise read-your-writes.

Events this code cannot decode are counted, logged with their sequence, and skipped.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Iterable
from typing import Protocol

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from events.codec import UndecodableEvent, decode_event
from events.jetstream import EVENTS_STREAM
from events.model import Event

__all__ = ["Projection", "Projector"]

log = logging.getLogger(__name__)


class Projection(Protocol):
    kinds: tuple[str, ...]

    def apply(self, seq: int, aggregate: str, event: Event) -> None: ...


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
    ) -> None:
        self.nc = nc
        self.stream = stream
        self.prefix = subject_prefix
        self.last_seq = start_seq - 1
        self.undecodable = 0
        self.applied = 0
        self._routes: dict[str, list[Projection]] = {}
        for p in projections:
            for kind in p.kinds:
                self._routes.setdefault(kind, []).append(p)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tick = 0
        self._caught_up = asyncio.Event()
        self._target = 0
        self._sub: object | None = None

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

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
        meta = msg.metadata
        self.apply(meta.sequence.stream, msg.subject[len(self.prefix) + 1 :], msg.data)
        if meta.num_pending == 0 or self.last_seq >= self._target:
            self._caught_up.set()
        if self._waiters and self._waiters[0][0] <= self.last_seq:
            self._wake()

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.last_seq:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)

    async def start(self) -> None:
        js = self.nc.jetstream()
        info = await js.stream_info(self.stream)
        self._target = int(info.state.last_seq)
        if self._target <= self.last_seq:
            self._caught_up.set()
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

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()  # type: ignore[attr-defined]
            except Exception as exc:  # connection already closed: nothing to release
                log.debug("projector unsubscribe: %r", exc)

    async def wait_caught_up(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._caught_up.wait(), timeout)

    async def wait_for(self, seq: int, timeout: float = 5.0) -> bool:
        """Wait until the event at ``seq`` is applied; False on timeout."""
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
