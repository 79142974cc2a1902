"""Daily statistics: per UTC day, stream and agent, the sum of every stats delta agents reported.

Folded from JetStream ``VIGIL_FEEDBACK`` (not from ``VIGIL_EVENTS``: statistics are not events of
a stream's life, and every feedback message counts, also for a stream that has meanwhile been
taken from the agent — the work was really done, so it is billed). ``ops.stats`` feeds it.

::

    StatsState                               (msgspec Structs: plain data)
    ├── days[day] → DayState
    │   ├── cells[stream_id][agent_id] → StreamStats   totals; ``peak_bitrate_bps`` by max
    │   ├── applied[agent_id] → AppliedSeqs            which feedback seqs are in ``cells``
    │   ├── closed_at                                  seq of the close marker, 0 while open
    │   └── corrections["<agent>:<seq>"] → Correction  late deltas of a closed day
    ├── closed_through                                 every day <= it is closed
    └── feedback_seq                                   last VIGIL_FEEDBACK sequence folded

Exactly once. JetStream's duplicate window drops a re-sent ``<agent_id>:<seq>`` only for its
window (2 min by default); a replay after it is stored again, and after a reconnect rows may be
*stored* out of seq order (see ``agent.sender``). So each agent's counted seqs are kept as a set:
a contiguous ``floor`` plus disjoint ranges above it (``projections.seqs``). A seq in the set is
a duplicate and counts nothing; a seq not in the set is new data that arrived late and counts. The sets are kept **per day**: a seq is never reused, so every copy of a delta names
the same day, and a closed day's set is small (an agent's seqs of one day are nearly one range)
and is stored with the day's rollup, so it outlives the feedback stream. Gaps that never fill
cost one range each; past `MAX_RANGES` ranges the lowest gap is closed (the floor jumps over
it) and ``gaps_closed`` is reported: a seq that later arrives inside a closed gap is dropped as a
duplicate, so alarm on ``gaps_closed``.

Days. Deltas land in the UTC ``day`` they carry (the agent measured them then), not the day they
arrived: a backlog sent after midnight fills yesterday. A day that is not a calendar day
(``YYYY-MM-DD``) is invalid and skipped.

Closing. A close marker in the feedback stream (``close_through``) closes every day up to its
``through``: from that position on, the day's cells and applied sets are its *base* and never
change; a delta that arrives later and was not counted becomes a `Correction` (its own record,
with its cause), counted once. Because the marker is a message in the same stream, every
manager closes the day at the same position and holds the same base and the same corrections:
whoever writes them to ``VIGIL_STATS`` writes the same bytes.

Groups are not stored: a stream's group is looked up at query time (``group_of``), from the
streams projection in the manager. A stream's group is fixed when it is created and deleted
streams are kept there, so this is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from datetime import date as Date
from typing import Literal

import msgspec

from events.feedback import Feedback, StreamStats
from projections.seqs import MAX_RANGES, AppliedSeqs, is_applied, mark_applied

__all__ = [
    "MAX_RANGES",
    "AppliedSeqs",
    "Correction",
    "DailyStats",
    "DayState",
    "DayStatus",
    "Grain",
    "Key",
    "Line",
    "Outcome",
    "StatsRow",
    "StatsState",
    "add_stats",
    "aggregate",
    "avg_bitrate_bps",
    "closable_through",
    "is_applied",
    "is_day",
    "key_of",
    "mark_applied",
    "summarize",
    "totals_view",
]

Outcome = Literal["applied", "duplicate", "corrected", "late_empty", "invalid"]
"""What one feedback did: counted into an open day, already counted, counted as a correction of
a closed day, a closed day's delta with nothing to count, or not countable."""
Grain = Literal["stream", "agent", "group", "row", "total"]
DayStatus = Literal["open", "closed", "corrected"]


def add_stats(total: StreamStats | None, delta: StreamStats) -> StreamStats:
    """Totals after one more delta: sums, and the max for ``peak_bitrate_bps``."""
    return delta if total is None else total.combine(delta)


_days_seen: dict[str, bool] = {}


def is_day(day: str) -> bool:
    """True for a calendar day written ``YYYY-MM-DD`` (``2026-02-30`` is not one)."""
    known = _days_seen.get(day)
    if known is None:
        try:
            known = len(day) == 10 and Date.fromisoformat(day).isoformat() == day
        except ValueError:
            known = False
        if len(_days_seen) < 100_000:
            _days_seen[day] = known
    return known


def closable_through(now: float, lateness_s: float) -> str:
    """The latest UTC day that ended at least `lateness_s` before `now` (may be closed)."""
    return datetime.fromtimestamp(now - lateness_s - 86400, UTC).strftime("%Y-%m-%d")


# ---- the read model ---------------------------------------------------------------------------


class Correction(msgspec.Struct, frozen=True, kw_only=True):
    """A delta counted after its day had closed: an agent's outbox delivered it late.

    Immutable and keyed by ``(day, agent_id, seq)``; every field is read from the feedback stream
    (never from a clock), so any manager derives the same record.
    """

    day: str
    stream_id: str
    agent_id: str
    seq: int
    stats: StreamStats
    cause: Literal["late"] = "late"
    """``late``: stored in ``VIGIL_FEEDBACK`` after the day had closed (an agent back from an
    outage longer than the lateness horizon, or a day closed early by an operator)."""
    feedback_seq: int = 0
    """Where the late delta is stored in ``VIGIL_FEEDBACK``."""
    stored_at: float = 0.0
    """When JetStream stored it (UTC epoch seconds)."""
    measured_at: float = 0.0
    """The agent's ``ts`` of the delta."""
    day_closed_at: int = 0
    """The ``VIGIL_FEEDBACK`` sequence of the close marker that had closed the day."""

    @property
    def key(self) -> str:
        return f"{self.agent_id}:{self.seq}"


class DayState(msgspec.Struct, kw_only=True):
    """One UTC day. Open: the fold adds to it. Closed: ``cells`` and ``applied`` are the base
    (as at ``closed_at``), and later deltas are ``corrections``."""

    cells: dict[str, dict[str, StreamStats]] = msgspec.field(default_factory=dict)
    """stream_id → agent_id → totals (of a closed day: the base, corrections apart)."""
    applied: dict[str, AppliedSeqs] = msgspec.field(default_factory=dict)
    """agent_id → the seqs counted into ``cells``."""
    closed_at: int = 0
    """``VIGIL_FEEDBACK`` sequence of the close marker that closed this day; 0 while open."""
    corrections: dict[str, Correction] = msgspec.field(default_factory=dict)
    """``<agent_id>:<seq>`` → a delta counted after the day closed."""


class StatsState(msgspec.Struct, kw_only=True):
    """Everything the daily statistics know; plain data."""

    days: dict[str, DayState] = msgspec.field(default_factory=dict)
    closed_through: str = ""
    """Every day up to and including this one is closed ("" while none is)."""
    close_seq: int = 0
    """The ``VIGIL_FEEDBACK`` sequence of the close marker that set ``closed_through``."""
    feedback_seq: int = 0
    """The last ``VIGIL_FEEDBACK`` stream sequence folded: resume the consumer after it."""


class StatsRow(msgspec.Struct, frozen=True, kw_only=True):
    """One cell: totals of one stream on one agent for one day (base and corrections)."""

    day: str
    stream_id: str
    agent_id: str
    group: str | None
    stats: StreamStats
    state: DayStatus = "open"
    corrections: int = 0
    """How many late deltas (corrections) are in ``stats``."""


_NONE = AppliedSeqs()


class DailyStats:
    """The daily statistics read model: fold feedback with `apply` and close markers with
    `close_through`; read with `rows`. Listeners hear of every day closed and every correction
    (the rollup writer persists them)."""

    def __init__(self, state: StatsState | None = None, *, max_ranges: int = MAX_RANGES) -> None:
        self.state = state or StatsState()
        self.max_ranges = max_ranges
        self.gaps_closed = 0
        self.caught_up = False
        """Set by the feeder once it has folded what the stream held when it started."""
        self.on_close: list[Callable[[str], None]] = []
        self.on_correction: list[Callable[[Correction], None]] = []

    def is_closed(self, day: str) -> bool:
        return day <= self.state.closed_through

    def apply(self, stream_seq: int, fb: Feedback, *, stored_at: float = 0.0) -> Outcome:
        """Count `fb` (stored at `stream_seq`, at `stored_at`; resolved:
        ``events.feedback.resolve``) unless its ``<agent_id>:<seq>`` was counted for its day."""
        state = self.state
        state.feedback_seq = max(state.feedback_seq, stream_seq)
        agent_id, day = fb.agent_id, fb.day
        if agent_id is None or day is None or not is_day(day):
            return "invalid"
        if self.is_closed(day):
            return self._late(stream_seq, fb, agent_id, day, stored_at)
        d = state.days.get(day)
        if d is None:
            d = state.days[day] = DayState()
        seqs = d.applied.get(agent_id, _NONE)
        if is_applied(seqs, fb.seq):
            return "duplicate"
        d.applied[agent_id], closed = mark_applied(seqs, fb.seq, max_ranges=self.max_ranges)
        self.gaps_closed += closed
        if not fb.stats.is_zero():
            agents = d.cells.setdefault(fb.stream_id, {})
            agents[agent_id] = add_stats(agents.get(agent_id), fb.stats)
        return "applied"

    def _late(self, stream_seq: int, fb: Feedback, agent_id: str, day: str,
              stored_at: float) -> Outcome:  # fmt: skip
        d = self.state.days.get(day)
        key = f"{agent_id}:{fb.seq}"
        if d is not None and (is_applied(d.applied.get(agent_id, _NONE), fb.seq)
                              or key in d.corrections):  # fmt: skip
            return "duplicate"
        if fb.stats.is_zero():
            return "late_empty"
        if d is None:
            d = self.state.days[day] = DayState(closed_at=self.state.close_seq)
        correction = Correction(
            day=day, stream_id=fb.stream_id, agent_id=agent_id, seq=fb.seq, stats=fb.stats,
            feedback_seq=stream_seq, stored_at=stored_at, measured_at=fb.ts,
            day_closed_at=d.closed_at,
        )  # fmt: skip
        d.corrections[key] = correction
        for listener in self.on_correction:
            listener(correction)
        return "corrected"

    def close_through(self, through: str, stream_seq: int) -> list[str]:
        """Fold a close marker (stored at `stream_seq`): every open day up to `through` closes.
        Returns the days closed now; the `through` day always has a state once closed, so that
        its rollup records how far the closing went."""
        state = self.state
        state.feedback_seq = max(state.feedback_seq, stream_seq)
        if not is_day(through) or through <= state.closed_through:
            return []
        state.closed_through, state.close_seq = through, stream_seq
        closed = sorted(d for d, s in state.days.items() if d <= through and s.closed_at == 0)
        for day in closed:
            state.days[day].closed_at = stream_seq
        if through not in state.days:
            state.days[through] = DayState(closed_at=stream_seq)
            closed.append(through)
        for day in closed:
            for listener in self.on_close:
                listener(day)
        return closed

    def restore_day(self, day: str, d: DayState) -> None:
        """Put a closed day read from its rollup (before the feed starts folding)."""
        self.state.days[day] = d
        if day > self.state.closed_through:
            self.state.closed_through = day
            self.state.close_seq = max(self.state.close_seq, d.closed_at)

    def skip(self, stream_seq: int) -> None:
        """Note that `stream_seq` was read and skipped (undecodable, unknown agent)."""
        self.state.feedback_seq = max(self.state.feedback_seq, stream_seq)

    def status(self, day: str) -> DayStatus:
        """``open`` until the day closed; then ``corrected`` if any late delta was counted."""
        if not self.is_closed(day):
            return "open"
        d = self.state.days.get(day)
        return "corrected" if d is not None and d.corrections else "closed"

    def rows(
        self,
        day: str,
        group_of: Callable[[str], str | None],
        *,
        stream_id: str | None = None,
        agent_id: str | None = None,
        group: str | None = None,
    ) -> Iterator[StatsRow]:
        """The cells of `day` matching every given filter, in (stream_id, agent_id) order, each
        with its corrections added and its status."""
        d = self.state.days.get(day)
        if d is None:
            return
        closed = self.is_closed(day)
        fixes: dict[tuple[str, str], tuple[StreamStats, int]] = {}
        for c in d.corrections.values():
            stats, n = fixes.get((c.stream_id, c.agent_id), (StreamStats(), 0))
            fixes[(c.stream_id, c.agent_id)] = (stats.combine(c.stats), n + 1)
        streams = set(d.cells) | {sid for sid, _ in fixes}
        ids = [stream_id] if stream_id is not None else sorted(streams)
        for sid in ids:
            g = group_of(sid)
            if group is not None and g != group:
                continue
            agents = d.cells.get(sid, {})
            for aid in sorted(set(agents) | {a for s, a in fixes if s == sid}):
                if agent_id is not None and aid != agent_id:
                    continue
                base = agents.get(aid)
                fixed = fixes.get((sid, aid))
                n = 0 if fixed is None else fixed[1]
                if fixed is None:
                    assert base is not None
                    stats = base
                else:
                    stats = fixed[0] if base is None else base.combine(fixed[0])
                state: DayStatus = "open" if not closed else "corrected" if n else "closed"
                yield StatsRow(day=day, stream_id=sid, agent_id=aid, group=g, stats=stats,
                               state=state, corrections=n)  # fmt: skip


class Key(msgspec.Struct, frozen=True, order=True):
    """What a summary line is about; fields outside its grain are None."""

    stream_id: str | None = None
    agent_id: str | None = None
    group: str | None = None

    def sort_key(self) -> tuple[str, str, str]:
        return (self.stream_id or "", self.agent_id or "", self.group or "")


def key_of(row: StatsRow, by: Grain) -> Key:
    if by == "stream":
        return Key(stream_id=row.stream_id, group=row.group)
    if by == "agent":
        return Key(agent_id=row.agent_id)
    if by == "group":
        return Key(group=row.group)
    if by == "total":
        return Key()
    return Key(stream_id=row.stream_id, agent_id=row.agent_id, group=row.group)


class Line(msgspec.Struct, kw_only=True):
    """One summary line: the totals of the rows of one key, and how many corrections they hold."""

    key: Key
    stats: StreamStats
    corrections: int = 0


def aggregate(rows: Iterable[StatsRow], by: Grain, into: dict[Key, Line] | None = None
              ) -> dict[Key, Line]:  # fmt: skip
    """Add `rows` into lines of grain `by` (into `into`, to sum several days)."""
    lines = {} if into is None else into
    for r in rows:
        k = key_of(r, by)
        line = lines.get(k)
        if line is None:
            lines[k] = Line(key=k, stats=r.stats, corrections=r.corrections)
        else:
            line.stats = line.stats.combine(r.stats)
            line.corrections += r.corrections
    return lines


def summarize(
    rows: Iterable[StatsRow], by: Grain
) -> tuple[list[tuple[Key, StreamStats]], StreamStats]:
    """Totals per line of grain `by`, sorted by key, and the total of all rows.

    The peak of several streams is the highest peak of any one of them, not the peak of their sum
    (that would need time-aligned samples).
    """
    lines = aggregate(rows, by)
    total = StreamStats()
    for line in lines.values():
        total = total.combine(line.stats)
    ordered = sorted(lines.values(), key=lambda line: line.key.sort_key())
    return [(line.key, line.stats) for line in ordered], total


def avg_bitrate_bps(s: StreamStats) -> int:
    """Bytes over the *media* time they cover (bits per second of video). Deltas of agents
    that do not report media time yet fall back to their uptime."""
    if s.media_ms:
        return s.bytes_read * 8 * 1000 // s.media_ms
    return s.bytes_read * 8 * 1000 // s.processing_ms if s.processing_ms else 0


def totals_view(s: StreamStats) -> dict[str, int | float]:
    """The user-facing figures of a total (HTTP, CLI, CSV columns, in this order)."""
    return {
        "frames_decoded": s.frames_decoded,
        "frames_analysed": s.frames_analysed,
        "frames_dropped": s.frames_dropped,
        "bytes_in": s.bytes_read,
        "peak_bitrate_bps": s.peak_bitrate_bps,
        "avg_bitrate_bps": avg_bitrate_bps(s),
        "processing_ms": s.processing_ms,
        "uptime_s": round(s.processing_ms / 1000, 3),
        "media_s": round(s.media_ms / 1000, 3),
        "reconnects": s.reconnects,
        "stalls": s.stalls,
        "events": s.events,
        "records": s.records_sent,
        "triggers": s.triggers,
    }
