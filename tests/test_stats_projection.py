"""The daily statistics fold: the applied-seq set, day assignment, summaries (pure, no NATS)."""

from __future__ import annotations

import random

from events.feedback import Feedback, StreamStats
from projections.stats import (
    AppliedSeqs,
    DailyStats,
    is_applied,
    mark_applied,
    summarize,
    totals_view,
)


def fb(seq: int, *, agent: str = "a-1", stream: str = "s-1", day: str = "2026-03-01",
       **stats: int) -> Feedback:  # fmt: skip
    return Feedback(seq=seq, agent_id=agent, stream_id=stream, version=1, status="in_progress",
                    ts=0.0, day=day, stats=StreamStats(**stats))  # fmt: skip


def test_applied_seqs_out_of_order_arrivals_settle_into_the_floor() -> None:
    seqs = AppliedSeqs()
    order = list(range(1, 201))
    random.Random(5).shuffle(order)
    for s in order:
        assert not is_applied(seqs, s)
        seqs, closed = mark_applied(seqs, s)
        assert closed == 0 and is_applied(seqs, s)
    assert seqs == AppliedSeqs(floor=200, ranges=())


def test_applied_seqs_keep_gaps_open_for_late_rows() -> None:
    base = 1_700_000_000_000_000  # a fresh outbox starts at a time-derived seq
    seqs = AppliedSeqs()
    for s in (base + 1, base + 2, base + 5, base + 6, base + 4):
        seqs, _ = mark_applied(seqs, s)
    assert seqs.ranges == ((base + 1, base + 2), (base + 4, base + 6))
    assert not is_applied(seqs, base + 3) and not is_applied(seqs, base + 7)
    seqs, _ = mark_applied(seqs, base + 3)
    assert seqs.ranges == ((base + 1, base + 6),)


def test_applied_seqs_close_the_lowest_gap_past_the_bound() -> None:
    seqs = AppliedSeqs()
    for s in (10, 20, 30, 40):
        seqs, closed = mark_applied(seqs, s, max_ranges=3)
    assert closed == 1 and seqs.floor == 10 and len(seqs.ranges) == 3
    assert is_applied(seqs, 5)  # inside the closed gap: dropped from now on


def test_replays_count_once_and_days_come_from_the_feedback() -> None:
    stats = DailyStats()
    batch = [fb(1, frames_decoded=10, bytes_read=1000, peak_bitrate_bps=800, processing_ms=500),
             fb(2, frames_decoded=5, bytes_read=500, peak_bitrate_bps=900, processing_ms=500),
             fb(3, day="2026-03-02", frames_decoded=7)]  # fmt: skip
    assert [stats.apply(i + 1, f) for i, f in enumerate(batch)] == ["applied"] * 3
    assert [stats.apply(10 + i, f) for i, f in enumerate(batch)] == ["duplicate"] * 3
    rows = list(stats.rows("2026-03-01", lambda _: "g"))
    assert len(rows) == 1
    view = totals_view(rows[0].stats)
    assert view["frames_decoded"] == 15 and view["bytes_in"] == 1500
    assert view["peak_bitrate_bps"] == 900 and view["avg_bitrate_bps"] == 1500 * 8
    (row,) = stats.rows("2026-03-02", lambda _: None)
    assert row.stats.frames_decoded == 7
    assert stats.state.feedback_seq == 12
    assert stats.apply(13, fb(4, day="March 3rd")) == "invalid"


def test_summaries_by_grain_and_filters() -> None:
    stats = DailyStats()
    cells = [("a-1", "s-1", 1), ("a-2", "s-1", 2), ("a-1", "s-2", 4), ("a-2", "s-3", 8)]
    for n, (agent, stream, frames) in enumerate(cells, start=1):
        stats.apply(
            n, fb(n, agent=agent, stream=stream, frames_decoded=frames, peak_bitrate_bps=frames)
        )
    groups = {"s-1": "g1", "s-2": "g1", "s-3": None}
    lines, total = summarize(stats.rows("2026-03-01", groups.get), "group")
    assert [(k.group, v.frames_decoded) for k, v in lines] == [(None, 8), ("g1", 7)]
    assert total.frames_decoded == 15 and total.peak_bitrate_bps == 8
    lines, _ = summarize(stats.rows("2026-03-01", groups.get, agent_id="a-1"), "stream")
    assert [(k.stream_id, k.group, v.frames_decoded) for k, v in lines] == [
        ("s-1", "g1", 1),
        ("s-2", "g1", 4),
    ]
    lines, _ = summarize(stats.rows("2026-03-01", groups.get, group="g1"), "agent")
    assert [(k.agent_id, v.frames_decoded) for k, v in lines] == [("a-1", 5), ("a-2", 2)]
