"""An in-memory event store with the same semantics as the JetStream adapter (for unit tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from events.codec import decode_event, encode_event
from events.model import Event
from events.store import Append, Conflict, Fence, Fenced, StoredEvent

__all__ = ["MemoryStore"]


class MemoryStore:
    """Events kept in a list; bodies round-trip through the codec like the real store."""

    def __init__(self) -> None:
        self._log: list[tuple[str, bytes]] = []
        self._last: dict[str, int] = {}
        self._ids: dict[str, int] = {}

    def _check(self, aggregate: str, expected_seq: int | None, fence: Fence | None) -> None:
        if fence is not None:
            if self._last.get(fence.aggregate, 0) != fence.seq:
                raise Fenced(f"{fence.aggregate} is past sequence {fence.seq}")
        elif expected_seq is not None and self._last.get(aggregate, 0) != expected_seq:
            raise Conflict(
                f"{aggregate} is at sequence {self._last.get(aggregate, 0)}, not {expected_seq}"
            )

    def _store(self, aggregate: str, event: Event, msg_id: str | None) -> int:
        if msg_id is not None and msg_id in self._ids:
            return self._ids[msg_id]
        self._log.append((aggregate, encode_event(event)))
        seq = len(self._log)
        self._last[aggregate] = seq
        if msg_id is not None:
            self._ids[msg_id] = seq
        return seq

    async def append(
        self,
        aggregate: str,
        events: Sequence[Event],
        *,
        expected_seq: int | None = None,
        msg_id: str | None = None,
        fence: Fence | None = None,
    ) -> list[int]:
        seqs: list[int] = []
        for i, event in enumerate(events):
            mid = None if msg_id is None else f"{msg_id}:{i}"
            if mid is not None and mid in self._ids:
                seqs.append(self._ids[mid])
                expected_seq = self._ids[mid]
                continue
            self._check(aggregate, expected_seq, fence)
            seq = self._store(aggregate, event, mid)
            seqs.append(seq)
            expected_seq = seq
        return seqs

    async def append_batch(
        self, items: Sequence[Append], *, fence: Fence | None = None
    ) -> list[int]:
        seqs: list[int] = []
        for item in items:
            if not (item.msg_id is not None and item.msg_id in self._ids):
                self._check(item.aggregate, None, fence)
            seqs.append(self._store(item.aggregate, item.event, item.msg_id))
        return seqs

    async def read(self, aggregate: str) -> list[StoredEvent]:
        return [
            StoredEvent(i + 1, agg, decode_event(body))
            for i, (agg, body) in enumerate(self._log)
            if agg == aggregate
        ]

    async def read_all(self, from_seq: int = 1) -> AsyncIterator[StoredEvent]:
        end = len(self._log)
        for i in range(max(from_seq, 1) - 1, end):
            agg, body = self._log[i]
            yield StoredEvent(i + 1, agg, decode_event(body))

    async def last_seq(self) -> int:
        return len(self._log)
