"""Statistics queries: one UTC day (``stats.daily``), a range of days (``stats.range``), a month
(``stats.monthly``), the corrections of late deltas (``stats.corrections``); and CSV.

Every line says whether its figures are final: ``open`` (a day of it is not closed yet: they may
still grow), ``closed`` (written once in ``VIGIL_STATS``), ``corrected`` (closed, plus late
deltas counted after the day closed; ``corrections`` says how many).
"""

from __future__ import annotations

import asyncio
import calendar
import csv
import io
from collections.abc import Iterator, Sequence
from datetime import date as Date
from datetime import timedelta
from typing import Literal

import msgspec
from msgspec import UNSET, UnsetType

from core.errors import Invalid
from events.feedback import StreamStats
from ops.api.requests import (
    DailyStatsReq,
    MonthlyStatsReq,
    RangeStatsReq,
    StatsCorrectionsReq,
)
from projections.engine import Projector
from projections.stats import (
    Correction,
    DailyStats,
    DayStatus,
    Grain,
    Key,
    Line,
    aggregate,
    totals_view,
)
from projections.streams import StreamsProjection

__all__ = [
    "CSV_COLUMNS",
    "MAX_RANGE_DAYS",
    "CorrectionsView",
    "DailyStatsView",
    "RangeItem",
    "RangeStatsView",
    "StatsItem",
    "StatsQueries",
    "Totals",
    "to_csv",
]

MAX_RANGE_DAYS = 366


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """The user-facing figures of a total (see ``docs/statistics.md`` for units)."""

    frames_decoded: int
    frames_analysed: int
    frames_dropped: int
    bytes_in: int
    peak_bitrate_bps: int
    avg_bitrate_bps: int
    processing_ms: int
    """Uptime in milliseconds: wall-clock time the stream was decoded (not CPU time)."""
    uptime_s: float
    media_s: float
    """Media time decoded (seconds of video): the denominator of ``avg_bitrate_bps``."""
    reconnects: int
    stalls: int
    events: int
    records: int
    triggers: int


class StatsItem(Totals, frozen=True, kw_only=True):
    """One line of a grain; only the grain's own key fields are present."""

    stream_id: str | UnsetType | None = UNSET
    agent_id: str | UnsetType | None = UNSET
    group: str | UnsetType | None = UNSET
    state: DayStatus = "open"
    """``open``: may still grow; ``closed``: final; ``corrected``: final plus late deltas."""
    corrections: int = 0
    """Late deltas counted in these figures after their day had closed."""


class RangeItem(StatsItem, frozen=True, kw_only=True):
    date: str
    """The day (``per: day``), or ``<from>/<to>`` (``per: range``)."""


class DailyStatsView(msgspec.Struct, frozen=True, kw_only=True):
    date: str
    by: Grain
    items: list[StatsItem]
    next_cursor: str | None
    total: Totals
    complete: bool
    feedback_seq: int
    state: DayStatus = "open"
    """The day: ``open`` until it closes, then ``closed`` or ``corrected``."""


class RangeStatsView(msgspec.Struct, frozen=True, kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str
    month: str | None = None
    per: Literal["day", "range"]
    by: Grain
    items: list[RangeItem]
    next_cursor: str | None
    total: Totals
    state: DayStatus
    """The whole range: ``open`` while any of its days is, else ``corrected`` or ``closed``."""
    corrections: int
    days: int
    closed_days: int
    closed_through: str | None
    """The latest closed day (every day up to it is closed)."""
    complete: bool
    feedback_seq: int


class CorrectionsView(msgspec.Struct, frozen=True, kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str
    items: list[Correction]
    truncated: bool


def _totals(s: StreamStats) -> Totals:
    return Totals(**totals_view(s))  # type: ignore[arg-type]


def parse_day(day: str, path: str) -> Date:
    try:
        parsed = Date.fromisoformat(day)
    except ValueError:
        raise Invalid(path, f"{day!r} is not a calendar day; use YYYY-MM-DD") from None
    if parsed.isoformat() != day:
        raise Invalid(path, f"{day!r} is not a calendar day; use YYYY-MM-DD")
    return parsed


def day_range(from_: str, to: str) -> list[str]:
    """The days ``from_``..``to`` (both included); `Invalid` with the field path when not a
    valid range of at most `MAX_RANGE_DAYS` days."""
    first, last = parse_day(from_, "$.from"), parse_day(to, "$.to")
    if last < first:
        raise Invalid("$.to", f"{to} is before from ({from_}); swap them")
    n = (last - first).days + 1
    if n > MAX_RANGE_DAYS:
        raise Invalid("$.to", f"the range has {n} days; at most {MAX_RANGE_DAYS}: split it"
                      " (e.g. by month)")  # fmt: skip
    return [(first + timedelta(days=i)).isoformat() for i in range(n)]


def month_range(month: str) -> tuple[str, str]:
    year, mon = int(month[:4]), int(month[5:7])
    if not 1 <= mon <= 12 or year < 1:
        raise Invalid("$.month", f"{month!r} is not a month; use YYYY-MM")
    last = calendar.monthrange(year, mon)[1]
    return f"{month}-01", f"{month}-{last:02d}"


class StatsQueries:
    """Handlers of the statistics queries, over one manager's `DailyStats`."""

    def __init__(self, stats: DailyStats, streams: StreamsProjection, projector: Projector) -> None:
        self.stats = stats
        self.streams = streams
        self.projector = projector

    def group_of(self, stream_id: str) -> str | None:
        state = self.streams.streams.get(stream_id)  # deleted streams too
        return None if state is None else state.group

    def _lines(self, day: str, by: Grain, stream_id: str | None, agent_id: str | None,
               group: str | None, into: dict[Key, Line] | None = None) -> dict[Key, Line]:  # fmt: skip
        rows = self.stats.rows(day, self.group_of, stream_id=stream_id, agent_id=agent_id,
                               group=group)  # fmt: skip
        return aggregate(rows, by, into)

    def _state(self, is_open: bool, corrections: int) -> DayStatus:
        return "open" if is_open else "corrected" if corrections else "closed"

    async def daily(self, req: DailyStatsReq) -> tuple[DailyStatsView, int]:
        """``{date, by, items[...], next_cursor, total, complete, feedback_seq, state}``.

        ``items`` are sorted by key and paged by ``limit``/``cursor``; ``total`` covers all items.
        ``complete`` is false while this manager is still replaying the feedback stream.
        """
        parse_day(req.date, "$.date")
        lines = sorted(self._lines(req.date, req.by, req.stream_id, req.agent_id,
                                   req.group).values(), key=lambda ln: ln.key.sort_key())  # fmt: skip
        is_open = not self.stats.is_closed(req.date)
        selected = [ln for ln in lines if req.cursor is None or _cursor(ln.key) > req.cursor]
        page = selected[: req.limit]
        total = StreamStats()
        for ln in lines:
            total = total.combine(ln.stats)
        result = DailyStatsView(
            date=req.date, by=req.by,
            items=[StatsItem(**_ident(ln.key, req.by), **totals_view(ln.stats),  # type: ignore[arg-type]
                             state=self._state(is_open, ln.corrections),
                             corrections=ln.corrections) for ln in page],
            next_cursor=_cursor(page[-1].key) if len(selected) > req.limit else None,
            total=_totals(total), complete=self.stats.caught_up,
            feedback_seq=self.stats.state.feedback_seq, state=self.stats.status(req.date),
        )  # fmt: skip
        return result, self.projector.last_seq

    async def monthly(self, req: MonthlyStatsReq) -> tuple[RangeStatsView, int]:
        first, last = month_range(req.month)
        ranged = RangeStatsReq(from_=first, to=last, per=req.per, stream_id=req.stream_id,
                               agent_id=req.agent_id, group=req.group, by=req.by,
                               limit=req.limit, cursor=req.cursor)  # fmt: skip
        view, seq = await self.range(ranged)
        return msgspec.structs.replace(view, month=req.month), seq

    async def range(self, req: RangeStatsReq) -> tuple[RangeStatsView, int]:
        """Totals of the days ``from``..``to``: per day and key, or per key over the range.

        ``total`` covers every line; the event loop is yielded to after each day (a year of a
        large fleet is many cells)."""
        days = day_range(req.from_, req.to)
        label = f"{req.from_}/{req.to}"
        total = StreamStats()
        corrections = 0
        page: list[RangeItem] = []
        more = False
        range_open = not self.stats.is_closed(req.to)

        def emit(date: str, line: Line, is_open: bool) -> None:
            nonlocal more
            position = f"{date} {_cursor(line.key)}" if req.per == "day" else _cursor(line.key)
            if req.cursor is not None and position <= req.cursor:
                return
            if len(page) == req.limit:
                more = True
                return
            page.append(RangeItem(
                **_ident(line.key, req.by), **totals_view(line.stats),  # type: ignore[arg-type]
                state=self._state(is_open, line.corrections), corrections=line.corrections,
                date=date,
            ))  # fmt: skip

        merged: dict[Key, Line] = {}
        for day in days:
            if req.per == "day":
                lines = self._lines(day, req.by, req.stream_id, req.agent_id, req.group)
                day_open = not self.stats.is_closed(day)
                for line in sorted(lines.values(), key=lambda ln: ln.key.sort_key()):
                    total = total.combine(line.stats)
                    corrections += line.corrections
                    emit(day, line, day_open)
            else:
                self._lines(day, req.by, req.stream_id, req.agent_id, req.group, merged)
            await asyncio.sleep(0)
        for line in sorted(merged.values(), key=lambda ln: ln.key.sort_key()):
            total = total.combine(line.stats)
            corrections += line.corrections
            emit(label, line, range_open)
        closed = self.stats.state.closed_through
        last = page[-1] if page else None
        next_cursor = None
        if more and last is not None:
            key = _key_of_item(last)
            next_cursor = f"{last.date} {_cursor(key)}" if req.per == "day" else _cursor(key)
        result = RangeStatsView(
            from_=req.from_, to=req.to, per=req.per, by=req.by, items=page,
            next_cursor=next_cursor, total=_totals(total),
            state=self._state(range_open, corrections), corrections=corrections,
            days=len(days), closed_days=sum(1 for d in days if d <= closed),
            closed_through=closed or None, complete=self.stats.caught_up,
            feedback_seq=self.stats.state.feedback_seq,
        )  # fmt: skip
        return result, self.projector.last_seq

    async def corrections(self, req: StatsCorrectionsReq) -> tuple[CorrectionsView, int]:
        """The late deltas counted for the days ``from``..``to``, oldest day first."""
        items: list[Correction] = []
        truncated = False
        for c in self._corrections(day_range(req.from_, req.to)):
            if (req.stream_id is not None and c.stream_id != req.stream_id) or (
                req.agent_id is not None and c.agent_id != req.agent_id
            ):
                continue
            if len(items) == req.limit:
                truncated = True
                break
            items.append(c)
        return CorrectionsView(from_=req.from_, to=req.to, items=items,
                               truncated=truncated), self.projector.last_seq  # fmt: skip

    def _corrections(self, days: Sequence[str]) -> Iterator[Correction]:
        for day in days:
            d = self.stats.state.days.get(day)
            if d is not None:
                yield from sorted(d.corrections.values(), key=lambda c: c.feedback_seq)


_IDENT: dict[str, tuple[str, ...]] = {
    "stream": ("stream_id", "group"),
    "agent": ("agent_id",),
    "group": ("group",),
    "row": ("stream_id", "agent_id", "group"),
    "total": (),
}


def _ident(key: Key, by: Grain) -> dict[str, str | None]:
    return {name: getattr(key, name) for name in _IDENT[by]}


def _key_of_item(item: StatsItem) -> Key:
    def field(name: str) -> str | None:
        value = getattr(item, name)
        return None if value is UNSET else value

    return Key(stream_id=field("stream_id"), agent_id=field("agent_id"), group=field("group"))


def _cursor(key: Key) -> str:
    """Opaque, sortable position of a line: its key fields joined by a space (ids have none and
    a space sorts before every id character, so string order is key order)."""
    return " ".join(key.sort_key())


CSV_COLUMNS: tuple[str, ...] = (
    "date",
    "stream_id",
    "agent_id",
    "group",
    *totals_view(StreamStats()),
    "state",
    "corrections",
)


def to_csv(items: Sequence[StatsItem], date: str | None = None) -> str:
    """Billing export: one line per item, the columns of `CSV_COLUMNS` (empty = not this grain).
    ``date`` is the item's own (range items) or `date` (a day's items)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        row = msgspec.structs.asdict(item)
        row.setdefault("date", date)
        writer.writerow(
            ["" if row.get(c) is None or row.get(c) is UNSET else row.get(c) for c in CSV_COLUMNS]
        )
    return out.getvalue()
