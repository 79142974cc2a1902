"""Daily statistics: per UTC day, stream and agent, the sum of every stats delta agents reported.

Folded from JetStream ``VIGIL_FEEDBACK`` (not from ``VIGIL_EVENTS``: statistics are not events of
a stream's life, and every feedback message counts, also for a stream that has meanwhile been
taken from the agent — the work was really done, so it is billed). ``ops.stats`` feeds it.

::

    StatsState                                   (a msgspec Struct: snapshot-able as is)
    ├── days[day][stream_id][agent_id] → StreamStats   totals; ``peak_bitrate_bps`` by max
    ├── applied[agent_id] → AppliedSeqs                which feedback seqs were counted
    └── feedback_seq                                   last VIGIL_FEEDBACK sequence folded

Exactly once. JetStream's duplicate window drops a re-sent ``<agent_id>:<seq>`` only for its
window (2 min by default); a replay after it is stored again, and after a reconnect rows may be
*stored* out of seq order (see ``agent.sender``). So each agent's counted seqs are kept as a set:
a contiguous ``floor`` (every seq <= floor is settled) plus disjoint ranges above it. A seq in
the set is a duplicate and counts nothing; a seq below the highest seen but not in the set is
new data that arrived late and counts. `mark_applied` is the pure step. Gaps that never fill
(an agent whose corrupt outbox was replaced, a third-party agent that skips seqs) cost one range
each; past `MAX_RANGES` ranges the lowest gap is closed (the floor jumps over it) and
``gaps_closed`` is reported: a seq that later arrives inside a closed gap is dropped as a
duplicate, so alarm on ``gaps_closed``.

Days. Deltas land in the UTC ``day`` they carry (the agent measured them then), not the day they
arrived: a backlog sent after midnight fills yesterday. A day that is not ``YYYY-MM-DD`` is
invalid and skipped.

Groups are not stored: a stream's group is looked up at query time (``group_of``), from the
streams projection in the manager. A stream's group is fixed when it is created and deleted
streams are kept there, so this is deterministic and does not depend on which of the two
consumers (events, feedback) is ahead. If streams ever change group, carry the group in the
cell key at fold time instead.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

import msgspec

from events.feedback import Feedback, StreamStats

__all__ = [
    "MAX_RANGES",
    "AppliedSeqs",
    "DailyStats",
    "Grain",
    "Key",
    "Outcome",
    "StatsRow",
    "StatsState",
    "add_stats",
    "is_applied",
    "key_of",
    "mark_applied",
    "summarize",
    "totals_view",
]

MAX_RANGES = 1024
"""Ranges kept above an agent's floor before the lowest gap is closed."""

Outcome = Literal["applied", "duplicate", "invalid"]
Grain = Literal["stream", "agent", "group", "row"]

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ---- the applied-seq set (pure) ---------------------------------------------------------------


class AppliedSeqs(msgspec.Struct, frozen=True, kw_only=True):
    """Seqs of one agent already counted: all of ``1..floor`` plus the closed ``ranges`` above.

    ``ranges`` are sorted, disjoint, non-adjacent ``(lo, hi)`` pairs with ``lo > floor + 1``.
    """

    floor: int = 0
    ranges: tuple[tuple[int, int], ...] = ()


def is_applied(seqs: AppliedSeqs, seq: int) -> bool:
    """True if `seq` was counted already (or lies in a closed gap)."""
    if seq <= seqs.floor:
        return True
    i = bisect.bisect_right(seqs.ranges, seq, key=lambda r: r[0]) - 1
    return i >= 0 and seqs.ranges[i][1] >= seq


def mark_applied(
    seqs: AppliedSeqs, seq: int, *, max_ranges: int = MAX_RANGES
) -> tuple[AppliedSeqs, int]:
    """The set with `seq` added, and how many gaps had to be closed to stay within `max_ranges`.

    `seq` must not be applied yet (check `is_applied` first).
    """
    ranges = list(seqs.ranges)
    i = bisect.bisect_right(ranges, seq, key=lambda r: r[0])  # ranges[:i] start at or below seq
    left = i > 0 and ranges[i - 1][1] + 1 == seq
    right = i < len(ranges) and ranges[i][0] - 1 == seq
    if left and right:
        ranges[i - 1 : i + 1] = [(ranges[i - 1][0], ranges[i][1])]
    elif left:
        ranges[i - 1] = (ranges[i - 1][0], seq)
    elif right:
        ranges[i] = (seq, ranges[i][1])
    else:
        ranges.insert(i, (seq, seq))
    floor = seqs.floor
    closed = 0
    while ranges and (ranges[0][0] == floor + 1 or len(ranges) > max_ranges):
        if ranges[0][0] != floor + 1:
            closed += 1
        floor = ranges.pop(0)[1]
    return AppliedSeqs(floor=floor, ranges=tuple(ranges)), closed


def add_stats(total: StreamStats | None, delta: StreamStats) -> StreamStats:
    """Totals after one more delta: sums, and the max for ``peak_bitrate_bps``."""
    return delta if total is None else total.combine(delta)


# ---- the read model ---------------------------------------------------------------------------


class StatsState(msgspec.Struct, kw_only=True):
    """Everything the daily statistics know; plain data, so it can be snapshotted (issue 7)."""

    days: dict[str, dict[str, dict[str, StreamStats]]] = msgspec.field(default_factory=dict)
    applied: dict[str, AppliedSeqs] = msgspec.field(default_factory=dict)
    feedback_seq: int = 0
    """The last ``VIGIL_FEEDBACK`` stream sequence folded: resume the consumer after it."""


class StatsRow(msgspec.Struct, frozen=True, kw_only=True):
    """One cell: totals of one stream on one agent for one day."""

    day: str
    stream_id: str
    agent_id: str
    group: str | None
    stats: StreamStats


class DailyStats:
    """The daily statistics read model: fold feedback with `apply`, read with `rows`."""

    def __init__(self, state: StatsState | None = None, *, max_ranges: int = MAX_RANGES) -> None:
        self.state = state or StatsState()
        self.max_ranges = max_ranges
        self.gaps_closed = 0
        self.caught_up = False
        """Set by the feeder once it has folded what the stream held when it started."""

    def apply(self, stream_seq: int, fb: Feedback) -> Outcome:
        """Count `fb` (stored at `stream_seq`, resolved: ``events.feedback.resolve``) unless
        its ``<agent_id>:<seq>`` was counted."""
        state = self.state
        state.feedback_seq = max(state.feedback_seq, stream_seq)
        agent_id, day = fb.agent_id, fb.day
        if agent_id is None or day is None or not _DAY.match(day):
            return "invalid"
        seqs = state.applied.get(agent_id, AppliedSeqs())
        if is_applied(seqs, fb.seq):
            return "duplicate"
        state.applied[agent_id], closed = mark_applied(seqs, fb.seq, max_ranges=self.max_ranges)
        self.gaps_closed += closed
        if not fb.stats.is_zero():
            agents = state.days.setdefault(day, {}).setdefault(fb.stream_id, {})
            agents[agent_id] = add_stats(agents.get(agent_id), fb.stats)
        return "applied"

    def skip(self, stream_seq: int) -> None:
        """Note that `stream_seq` was read and skipped (undecodable, unknown agent)."""
        self.state.feedback_seq = max(self.state.feedback_seq, stream_seq)

    def rows(
        self,
        day: str,
        group_of: Callable[[str], str | None],
        *,
        stream_id: str | None = None,
        agent_id: str | None = None,
        group: str | None = None,
    ) -> Iterator[StatsRow]:
        """The cells of `day` matching every given filter, in (stream_id, agent_id) order."""
        streams = self.state.days.get(day, {})
        ids = [stream_id] if stream_id is not None else sorted(streams)
        for sid in ids:
            g = group_of(sid)
            if group is not None and g != group:
                continue
            for aid, stats in sorted(streams.get(sid, {}).items()):
                if agent_id is None or aid == agent_id:
                    yield StatsRow(day=day, stream_id=sid, agent_id=aid, group=g, stats=stats)


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
    return Key(stream_id=row.stream_id, agent_id=row.agent_id, group=row.group)


def summarize(
    rows: Iterable[StatsRow], by: Grain
) -> tuple[list[tuple[Key, StreamStats]], StreamStats]:
    """Totals per line of grain `by`, sorted by key, and the total of all rows.

    The peak of several streams is the highest peak of any one of them, not the peak of their sum
    (that would need time-aligned samples).
    """
    lines: dict[Key, StreamStats] = {}
    total = StreamStats()
    for r in rows:
        k = key_of(r, by)
        lines[k] = add_stats(lines.get(k), r.stats)
        total = total.combine(r.stats)
    return sorted(lines.items(), key=lambda kv: kv[0].sort_key()), total


def totals_view(s: StreamStats) -> dict[str, int | float]:
    """The user-facing figures of a total (HTTP, CLI, CSV columns, in this order)."""
    return {
        "frames_decoded": s.frames_decoded,
        "frames_analysed": s.frames_analysed,
        "frames_dropped": s.frames_dropped,
        "bytes_in": s.bytes_read,
        "peak_bitrate_bps": s.peak_bitrate_bps,
        "avg_bitrate_bps": s.bytes_read * 8 * 1000 // s.processing_ms if s.processing_ms else 0,
        "processing_ms": s.processing_ms,
        "uptime_s": round(s.processing_ms / 1000, 3),
        "reconnects": s.reconnects,
        "stalls": s.stalls,
        "events": s.events,
        "records": s.records_sent,
        "triggers": s.triggers,
    }
