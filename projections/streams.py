"""Current state of every stream, folded with ``core.stream.evolve``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from core import stream as core_stream
from core.stream import StreamState
from events.model import Event, StreamEvent
from projections.blob import decode_blob, encode_blob, entity_dump

__all__ = ["StreamsProjection"]

_SNAPSHOT_V = 1


class _Snapshot(msgspec.Struct, frozen=True):
    v: int
    streams: dict[str, StreamState]
    last_seq: dict[str, int]


class StreamsProjection:
    """stream_id → (state, sequence of the stream's last event). Deleted streams are kept as
    ``deleted`` so ids are never reused."""

    name = "streams"
    kinds = ("stream",)

    def __init__(self) -> None:
        self.streams: dict[str, StreamState] = {}
        self.last_seq: dict[str, int] = {}
        self.ignored = 0

    def apply(self, seq: int, aggregate: str, event: Event) -> None:
        if not isinstance(event, StreamEvent):
            self.ignored += 1
            return
        sid = event.stream_id
        before = self.streams.get(sid)
        after = core_stream.evolve(before, event)
        self.last_seq[sid] = seq
        if after is None:
            self.ignored += 1
            return
        self.streams[sid] = after

    def get(self, stream_id: str) -> StreamState | None:
        state = self.streams.get(stream_id)
        return None if state is None or state.status == "deleted" else state

    def seq_of(self, stream_id: str) -> int:
        return self.last_seq.get(stream_id, 0)

    def live(self) -> Iterator[StreamState]:
        return (s for s in self.streams.values() if s.status != "deleted")

    def assigned_to(self, agent_id: str) -> list[StreamState]:
        return [s for s in self.streams.values() if s.agent_id == agent_id and s.is_live]

    # ---- snapshots (projections.snapshot) and verify (ops.verify) ------------------------------

    def snapshot(self) -> bytes:
        return encode_blob(_Snapshot(_SNAPSHOT_V, self.streams, self.last_seq))

    def restore(self, data: bytes) -> None:
        """Replace the state by a snapshot blob; ``SnapshotError`` leaves it unchanged."""
        snap = decode_blob(data, _Snapshot, _SNAPSHOT_V)
        self.streams, self.last_seq = dict(snap.streams), dict(snap.last_seq)

    def reset(self) -> None:
        self.streams, self.last_seq, self.ignored = {}, {}, 0

    def dump(self) -> dict[str, Any]:
        return entity_dump(self.streams, self.last_seq)
