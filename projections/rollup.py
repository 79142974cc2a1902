"""Rollups: the closed days of the daily statistics as immutable records (``VIGIL_STATS``).

A closed day is written once and kept for years, so the bill of a day outlives the feedback
stream it was folded from. Records, each on its own subject (``events.subjects``)::

    DayChunk    day, index, rows[stream × agent → totals], applied[agent → seqs]
    DaySeal     day, closed_at, chunks, rows, agents, sha256    written after its chunks
    Correction  one late delta of a closed day, with its cause (``projections.stats``)

A day's base is split into chunks of at most `CHUNK_BYTES` (a large fleet's day does not fit
one message); the seal is written last and names how many chunks there are and the SHA-256 of
their bytes, so a reader knows a day is complete and intact. Everything is a pure function of
the closed `DayState`: every manager derives the same bytes, and a second writer's copy of a
record is refused by the server (write-once) without harm.

This module is pure: no I/O. ``ops.stats.rollups`` reads and writes the records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from sys import intern
from typing import Annotated, Literal

import msgspec

from events.bounded import decode
from events.feedback import StreamStats
from projections.stats import AppliedSeqs, Correction, DayState

__all__ = [
    "CHUNK_BYTES",
    "FORMAT",
    "AgentSeqs",
    "CloseMarker",
    "DayChunk",
    "DaySeal",
    "RollupDamaged",
    "RollupRow",
    "assemble",
    "decode_chunk",
    "decode_close",
    "decode_correction",
    "decode_seal",
    "encode",
    "seal_day",
]

FORMAT = 1
CHUNK_BYTES = 256 * 1024
"""Upper bound of one chunk's rows and applied sets, in encoded bytes (the server's message limit
is 1 MB by default)."""


class RollupRow(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    agent_id: str
    stats: StreamStats


class AgentSeqs(msgspec.Struct, frozen=True, kw_only=True):
    agent_id: str
    seqs: AppliedSeqs


class DayChunk(msgspec.Struct, frozen=True, kw_only=True):
    """Part `index` of a closed day's base: cells and the applied seqs of agents."""

    day: str
    index: int
    rows: list[RollupRow] = []
    applied: list[AgentSeqs] = []


class DaySeal(msgspec.Struct, frozen=True, kw_only=True):
    """A closed day is complete: its `chunks` chunks, whose bytes hash to `sha256`."""

    day: str
    closed_at: int
    """``VIGIL_FEEDBACK`` sequence of the close marker."""
    chunks: int
    rows: int
    agents: int
    sha256: str
    format: int = FORMAT


class CloseMarker(msgspec.Struct, frozen=True, kw_only=True):
    """``vigil.stats.close`` in ``VIGIL_FEEDBACK``: every day up to `through` is closed from this
    position of the stream on. Only `through` is folded; the rest says who and why."""

    through: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    reason: Literal["horizon", "operator"] = "horizon"
    by: Annotated[str, msgspec.Meta(max_length=128)] = ""
    at: float = 0.0


class RollupDamaged(ValueError):
    """A closed day's records are incomplete or do not match their seal; ``state`` is the day as
    far as its records could be read."""

    def __init__(self, message: str, state: DayState) -> None:
        super().__init__(message)
        self.state = state


encode = msgspec.json.Encoder().encode
_dec_chunk = msgspec.json.Decoder(DayChunk)
_dec_seal = msgspec.json.Decoder(DaySeal)
_dec_fix = msgspec.json.Decoder(Correction)
_dec_close = msgspec.json.Decoder(CloseMarker)


def decode_close(data: bytes) -> CloseMarker:
    return decode(data, CloseMarker, decoder=_dec_close)


def decode_chunk(data: bytes) -> DayChunk:
    return _dec_chunk.decode(data)


def decode_seal(data: bytes) -> DaySeal:
    return _dec_seal.decode(data)


def decode_correction(data: bytes) -> Correction:
    return _dec_fix.decode(data)


def seal_day(day: str, d: DayState, *, chunk_bytes: int = CHUNK_BYTES
             ) -> tuple[list[bytes], DaySeal]:  # fmt: skip
    """The encoded chunks of closed day `d` and its seal (deterministic: same state, same bytes).

    Rows are in (stream, agent) order, then the applied sets in agent order.
    """
    rows = [RollupRow(stream_id=sid, agent_id=aid, stats=stats)
            for sid in sorted(d.cells) for aid, stats in sorted(d.cells[sid].items())]  # fmt: skip
    applied = [AgentSeqs(agent_id=aid, seqs=seqs) for aid, seqs in sorted(d.applied.items())]
    chunks: list[bytes] = []
    part_rows: list[RollupRow] = []
    part_applied: list[AgentSeqs] = []
    size = 0

    def cut() -> None:
        nonlocal part_rows, part_applied, size
        chunk = DayChunk(day=day, index=len(chunks), rows=part_rows, applied=part_applied)
        chunks.append(encode(chunk))
        part_rows, part_applied, size = [], [], 0

    for row in rows:
        n = len(encode(row))
        if size and size + n > chunk_bytes:
            cut()
        part_rows.append(row)
        size += n
    for seqs in applied:
        n = len(encode(seqs))
        if size and size + n > chunk_bytes:
            cut()
        part_applied.append(seqs)
        size += n
    if size or not chunks:
        cut()
    seal = DaySeal(day=day, closed_at=d.closed_at, chunks=len(chunks), rows=len(rows),
                   agents=len(applied), sha256=_digest(chunks))  # fmt: skip
    return chunks, seal


def _digest(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(len(c).to_bytes(8, "big"))
        h.update(c)
    return h.hexdigest()


def assemble(seal: DaySeal | None, chunks: Mapping[int, bytes],
             corrections: Iterable[Correction], *, closed_at: int = 0) -> DayState:  # fmt: skip
    """The closed day from its records. Raises `RollupDamaged` when a chunk is missing or the
    chunks do not hash to the seal (with the day as far as it could be read). Without a seal (a day that only has corrections)
    `closed_at` is used."""
    d = DayState(closed_at=seal.closed_at if seal is not None else closed_at)
    for c in corrections:
        d.corrections[c.key] = c
        if seal is None and c.day_closed_at:
            d.closed_at = d.closed_at or c.day_closed_at
    if seal is None:
        return d
    problems: list[str] = []
    ordered: list[bytes] = []
    for i in range(seal.chunks):
        data = chunks.get(i)
        if data is None:
            problems.append(f"chunk {i} of {seal.chunks} missing")
            continue
        ordered.append(data)
        chunk = decode_chunk(data)
        for row in chunk.rows:  # ids interned: a year of days shares one copy of each
            d.cells.setdefault(intern(row.stream_id), {})[intern(row.agent_id)] = row.stats
        for a in chunk.applied:
            d.applied[intern(a.agent_id)] = a.seqs
    if not problems and _digest(ordered) != seal.sha256:
        problems.append("chunks do not match the seal's sha256")
    if problems:
        raise RollupDamaged(f"rollup of {seal.day}: " + "; ".join(problems), d)
    return d
