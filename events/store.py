"""The event-store port: what the manager needs from the system of record.

Two adapters implement it: ``events.jetstream.JetStreamStore`` (the real one) and
``events.memory.MemoryStore`` (for unit tests). Both pass ``tests/test_store_contract.py``.

Errors::

    StoreError
    ├── Conflict      the aggregate changed since `expected_seq` (JetStream error 10071)
    ├── Fenced        a master decision carried a stale election sequence: step down
    └── Unavailable   the store did not answer in time; the append may or may not be stored —
                      retry with the same msg_id (the dedup window makes that safe)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import msgspec

from events.model import Event

__all__ = [
    "Append",
    "Conflict",
    "EventStore",
    "Fence",
    "Fenced",
    "StoreError",
    "StoredEvent",
    "Unavailable",
]


class StoreError(Exception):
    """Base of event-store errors."""


class Conflict(StoreError):
    """The aggregate has moved on since the expected sequence: reload and decide again."""


class Fenced(StoreError):
    """The master that wrote this is no longer the elected one: it must step down."""


class Unavailable(StoreError):
    """The store did not acknowledge in time; retry with the same msg_id."""


class StoredEvent(msgspec.Struct, frozen=True):
    """An event with its position in the log and its aggregate (e.g. ``stream.s-1``)."""

    seq: int
    aggregate: str
    event: Event


class Fence(msgspec.Struct, frozen=True):
    """Guards master decisions: the last event on ``aggregate`` must still be at ``seq``."""

    aggregate: str
    seq: int


class Append(msgspec.Struct, frozen=True):
    """One event of a batch append (master decisions touch many aggregates at once)."""

    aggregate: str
    event: Event
    msg_id: str | None = None


class EventStore(Protocol):
    async def append(
        self,
        aggregate: str,
        events: Sequence[Event],
        *,
        expected_seq: int | None = None,
        msg_id: str | None = None,
        fence: Fence | None = None,
    ) -> list[int]:
        """Append events to one aggregate, in order; return their sequences.

        ``expected_seq``: the aggregate's last sequence must be this (0 = it has no events yet),
        else ``Conflict``. ``msg_id`` makes the append idempotent (event i gets ``msg_id:i``).
        ``fence`` replaces the aggregate check by a check on another aggregate (master epoch).
        """
        ...

    async def append_batch(
        self, items: Sequence[Append], *, fence: Fence | None = None
    ) -> list[int]:
        """Append events to many aggregates, pipelined; all fenced by ``fence`` if given.

        Returns the sequences in order. On ``Fenced`` nothing after the fence failure is stored.
        """
        ...

    async def read(self, aggregate: str) -> list[StoredEvent]:
        """All events of one aggregate, in order."""
        ...

    def read_all(self, from_seq: int = 1) -> AsyncIterator[StoredEvent]:
        """Every event from ``from_seq`` up to the current end of the log."""
        ...

    async def last_seq(self) -> int:
        """The sequence of the newest event in the log (0 if empty)."""
        ...
