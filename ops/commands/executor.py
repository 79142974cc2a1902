"""Load → decide → append → (on a lagging read) reload and decide again: one loop for every
aggregate's user commands.

An `AggregateType` says how to fold and decide one kind of aggregate (``core.stream``,
``core.agent``, ...) and where its cached state lives (the manager's projection). ``execute``
loads the cached state, decides, and appends with ``Nats-Expected-Last-Subject-Sequence`` =
the aggregate's last sequence. If the store refuses (the projection lagged, or a concurrent
writer won), it re-reads the aggregate from the store itself and decides again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from events.model import Event
from events.store import Conflict, EventStore
from projections.engine import Projector

__all__ = ["AggregateType", "Executor"]

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class AggregateType(Generic[S, C, E]):
    kind: str
    """The subject token: ``stream`` → ``vigil.evt.stream.<id>``."""
    event_type: type[E]
    decide: Callable[[S | None, C], Sequence[E]]
    evolve: Callable[[S | None, E], S | None]
    cached: Callable[[str], tuple[S | None, int]]
    """(state, sequence of its last event) from this manager's projection."""

    def aggregate(self, ident: str) -> str:
        return f"{self.kind}.{ident}"


class Executor:
    """Runs user commands against the event store with optimistic concurrency."""

    def __init__(self, store: EventStore, projector: Projector, *, attempts: int = 4) -> None:
        self.store = store
        self.projector = projector
        self.attempts = attempts

    async def load(self, agg: AggregateType[S, C, E], ident: str) -> tuple[S | None, int]:
        """The aggregate folded from the store itself (authoritative, one read)."""
        state: S | None = None
        seq = 0
        for stored in await self.store.read(agg.aggregate(ident)):
            if isinstance(stored.event, agg.event_type):
                state = agg.evolve(state, stored.event)
            seq = stored.seq
        return state, seq

    async def execute(
        self,
        agg: AggregateType[S, C, E],
        ident: str,
        make: Callable[[S | None], C],
        *,
        msg_id: str | None = None,
    ) -> tuple[S | None, int]:
        """Decide ``make(state)`` and append its events; the state after and the sequence of
        the last event (the aggregate's last one when nothing changed). Raises the core's
        ``DomainError`` or ``Conflict`` after the last attempt."""
        for attempt in range(self.attempts):
            if attempt == 0:
                state, seq = agg.cached(ident)
            else:
                loaded = await self.load(agg, ident)
                state, seq = loaded
            new = agg.decide(state, make(state))
            if not new:
                return state, seq
            try:
                seqs = await self.store.append(
                    agg.aggregate(ident), new, expected_seq=seq, msg_id=msg_id
                )
            except Conflict:
                if attempt == self.attempts - 1:
                    raise
                continue
            for event in new:
                state = agg.evolve(state, event)
            await self.projector.wait_for(seqs[-1])
            return state, seqs[-1]
        raise Conflict(f"{agg.kind} {ident} keeps changing concurrently; retry")
