"""The ``stats.daily`` query: totals of one UTC day by stream, agent, group or cell; and CSV."""

from __future__ import annotations

import csv
import io
from datetime import date as Date

import msgspec
from msgspec import UNSET, UnsetType

from core.errors import Invalid
from events.feedback import StreamStats
from ops.api.requests import DailyStatsReq
from projections.engine import Projector
from projections.stats import DailyStats, Grain, Key, summarize, totals_view
from projections.streams import StreamsProjection

__all__ = ["CSV_COLUMNS", "DailyStatsView", "StatsItem", "StatsQueries", "Totals", "to_csv"]


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """The user-facing figures of a total (see ``docs/statistics.md`` for units)."""

    frames_decoded: int
    frames_analysed: int
    frames_dropped: int
    bytes_in: int
    peak_bitrate_bps: int
    avg_bitrate_bps: int
    processing_ms: int
    uptime_s: float
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


class DailyStatsView(msgspec.Struct, frozen=True, kw_only=True):
    date: str
    by: Grain
    items: list[StatsItem]
    next_cursor: str | None
    total: Totals
    complete: bool
    feedback_seq: int


def _totals(s: StreamStats) -> Totals:
    return Totals(**totals_view(s))  # type: ignore[arg-type]


class StatsQueries:
    """Handler of ``stats.daily``: totals of one UTC day by stream, agent, group or cell."""

    def __init__(self, stats: DailyStats, streams: StreamsProjection, projector: Projector) -> None:
        self.stats = stats
        self.streams = streams
        self.projector = projector

    def group_of(self, stream_id: str) -> str | None:
        state = self.streams.streams.get(stream_id)  # deleted streams too
        return None if state is None else state.group

    async def daily(self, req: DailyStatsReq) -> tuple[DailyStatsView, int]:
        """``{date, by, items[...], next_cursor, total, complete, feedback_seq}``.

        ``items`` are sorted by key and paged by ``limit``/``cursor``; ``total`` covers all items.
        ``complete`` is false while this manager is still replaying the feedback stream.
        """
        try:
            Date.fromisoformat(req.date)
        except ValueError:
            raise Invalid("$.date", f"{req.date!r} is not a calendar day; use YYYY-MM-DD") from None
        rows = self.stats.rows(req.date, self.group_of, stream_id=req.stream_id,
                               agent_id=req.agent_id, group=req.group)  # fmt: skip
        lines, total = summarize(rows, req.by)
        selected = [
            (key, stats) for key, stats in lines if req.cursor is None or _cursor(key) > req.cursor
        ]
        page = selected[: req.limit]
        more = len(selected) > req.limit
        result = DailyStatsView(
            date=req.date, by=req.by,
            items=[StatsItem(**_ident(key, req.by), **totals_view(stats))  # type: ignore[arg-type]
                   for key, stats in page],
            next_cursor=_cursor(page[-1][0]) if more else None,
            total=_totals(total), complete=self.stats.caught_up,
            feedback_seq=self.stats.state.feedback_seq,
        )  # fmt: skip
        return result, self.projector.last_seq


_IDENT: dict[str, tuple[str, ...]] = {
    "stream": ("stream_id", "group"),
    "agent": ("agent_id",),
    "group": ("group",),
    "row": ("stream_id", "agent_id", "group"),
}


def _ident(key: Key, by: Grain) -> dict[str, str | None]:
    return {name: getattr(key, name) for name in _IDENT[by]}


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
)


def to_csv(date: str, items: list[StatsItem]) -> str:
    """Billing export: one line per item, the columns of `CSV_COLUMNS` (empty = not this grain)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in items:
        row = msgspec.structs.asdict(item)
        row["date"] = date
        writer.writerow(
            ["" if row.get(c) is None or row.get(c) is UNSET else row.get(c) for c in CSV_COLUMNS]
        )
    return out.getvalue()
