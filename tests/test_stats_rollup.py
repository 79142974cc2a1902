"""Closing days, corrections and rollup records (pure, no NATS): a day closes at a marker, late
deltas count once as corrections, the records round-trip, and a fold restored from records
counts nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from events.feedback import Feedback, StreamStats
from projections.rollup import (
    CloseMarker,
    RollupDamaged,
    assemble,
    decode_chunk,
    decode_close,
    decode_correction,
    encode,
    seal_day,
)
from projections.stats import DailyStats, DayState, closable_through, is_day


def fb(seq: int, day: str, *, agent: str = "a-1", stream: str = "s-1", **stats: int) -> Feedback:
    return Feedback(seq=seq, agent_id=agent, stream_id=stream, version=1, status="in_progress",
                    ts=1.0, day=day, stats=StreamStats(**stats))  # fmt: skip


def totals(stats: DailyStats, day: str) -> dict[tuple[str, str], tuple[int, str, int]]:
    return {(r.stream_id, r.agent_id): (r.stats.frames_decoded, r.state, r.corrections)
            for r in stats.rows(day, lambda _: None)}  # fmt: skip


def test_a_marker_closes_days_and_late_deltas_become_corrections_counted_once() -> None:
    # Given two days with deltas
    stats = DailyStats()
    closed: list[str] = []
    fixes: list[str] = []
    stats.on_close.append(closed.append)
    stats.on_correction.append(lambda c: fixes.append(c.key))
    assert stats.apply(1, fb(1, "2026-03-01", frames_decoded=10)) == "applied"
    assert stats.apply(2, fb(2, "2026-03-02", frames_decoded=20)) == "applied"
    assert stats.status("2026-03-01") == "open"

    # When a marker closes them through the 3rd (a day without data)
    assert stats.close_through("2026-03-03", 3) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert closed == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert stats.state.days["2026-03-03"] == DayState(closed_at=3)
    assert stats.close_through("2026-03-02", 4) == []  # an older marker changes nothing

    # Then a replay of a counted delta counts nothing, a new late one is a correction, once
    assert stats.apply(5, fb(1, "2026-03-01", frames_decoded=10)) == "duplicate"
    assert stats.apply(6, fb(7, "2026-03-01", frames_decoded=5), stored_at=99.5) == "corrected"
    assert stats.apply(7, fb(7, "2026-03-01", frames_decoded=5)) == "duplicate"
    assert stats.apply(8, fb(8, "2026-03-01")) == "late_empty"
    assert stats.apply(9, fb(9, "2026-02-01", frames_decoded=1)) == "corrected"  # no day state yet
    assert fixes == ["a-1:7", "a-1:9"]
    assert totals(stats, "2026-03-01") == {("s-1", "a-1"): (15, "corrected", 1)}
    assert totals(stats, "2026-03-02") == {("s-1", "a-1"): (20, "closed", 0)}
    assert stats.status("2026-03-01") == "corrected" and stats.status("2026-03-03") == "closed"
    fix = stats.state.days["2026-03-01"].corrections["a-1:7"]
    assert (fix.cause, fix.feedback_seq, fix.stored_at, fix.day_closed_at) == ("late", 6, 99.5, 3)
    assert stats.state.days["2026-02-01"].closed_at == 3
    # ... and open days keep counting normally
    assert stats.apply(10, fb(10, "2026-03-04", frames_decoded=1)) == "applied"
    assert stats.status("2026-03-04") == "open"


def test_records_round_trip_in_chunks_and_are_the_same_bytes_every_time() -> None:
    stats = DailyStats()
    for n in range(1, 41):
        stats.apply(n, fb(n, "2026-03-01", agent=f"a-{n % 3}", stream=f"s-{n % 7}",
                          frames_decoded=n, peak_bitrate_bps=n * 10))  # fmt: skip
    stats.close_through("2026-03-01", 41)
    day = stats.state.days["2026-03-01"]
    chunks, seal = seal_day("2026-03-01", day, chunk_bytes=600)
    assert len(chunks) > 3 and seal.chunks == len(chunks)
    assert seal_day("2026-03-01", day, chunk_bytes=600) == (chunks, seal)
    assert [decode_chunk(c).index for c in chunks] == list(range(len(chunks)))
    stats.apply(42, fb(100, "2026-03-01", agent="a-1", stream="s-1", frames_decoded=1000))
    fixes = [decode_correction(encode(c)) for c in day.corrections.values()]

    restored = assemble(seal, dict(enumerate(chunks)), fixes)
    assert restored == day

    tampered = decode_chunk(chunks[1])
    row = tampered.rows[0]
    forged = row.__class__(stream_id=row.stream_id, agent_id=row.agent_id,
                           stats=StreamStats(frames_decoded=row.stats.frames_decoded + 1))  # fmt: skip
    damaged = dict(enumerate(chunks)) | {1: encode(tampered.__class__(
        day=tampered.day, index=1, rows=[forged, *tampered.rows[1:]], applied=tampered.applied))}  # fmt: skip
    with pytest.raises(RollupDamaged, match="sha256") as err:
        assemble(seal, damaged, fixes)
    assert err.value.state.cells[row.stream_id][row.agent_id] == forged.stats
    with pytest.raises(RollupDamaged, match="chunk 2 of"):
        assemble(seal, {i: c for i, c in enumerate(chunks) if i != 2}, fixes)


def test_a_fold_restored_from_records_counts_replays_once_and_agrees() -> None:
    # Given a running fold: two closed days, a correction, an open day
    live = DailyStats()
    feedback = [fb(1, "2026-03-01", frames_decoded=1), fb(2, "2026-03-02", frames_decoded=2),
                fb(3, "2026-03-02", stream="s-2", frames_decoded=3),
                fb(4, "2026-03-03", frames_decoded=4)]  # fmt: skip
    for i, f in enumerate(feedback, start=1):
        live.apply(i, f)
    live.close_through("2026-03-02", 5)
    late = fb(5, "2026-03-01", frames_decoded=50)
    assert live.apply(6, late, stored_at=7.0) == "corrected"

    # When a new fold starts from the records of the closed days only (the feedback expired) ...
    fresh = DailyStats()
    for day in ("2026-03-01", "2026-03-02"):
        chunks, seal = seal_day(day, live.state.days[day])
        fresh.restore_day(day, assemble(seal, dict(enumerate(chunks)),
                                        live.state.days[day].corrections.values()))  # fmt: skip
    assert fresh.state.closed_through == "2026-03-02" and fresh.state.close_seq == 5
    # ... and is then given every delta again (an outbox replaying, a stream re-read)
    outcomes = [fresh.apply(10 + i, f) for i, f in enumerate([*feedback, late])]

    # Then the closed days count nothing twice and the open day is rebuilt
    assert outcomes == ["duplicate", "duplicate", "duplicate", "applied", "duplicate"]
    for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
        assert totals(fresh, day) == totals(live, day)
    assert totals(fresh, "2026-03-01") == {("s-1", "a-1"): (51, "corrected", 1)}


def test_days_markers_and_horizon() -> None:
    assert is_day("2026-02-28") and not is_day("2026-02-30") and not is_day("2026-2-28")
    now = datetime(2026, 3, 11, 1, tzinfo=UTC).timestamp()
    assert closable_through(now, 0) == "2026-03-10"
    assert closable_through(now, 7 * 86400) == "2026-03-03"
    assert closable_through(now, 3599) == "2026-03-10"
    assert closable_through(now, 3601) == "2026-03-09"
    marker = CloseMarker(through="2026-03-10", reason="operator", by="m-1", at=1.0)
    assert decode_close(encode(marker)) == marker
