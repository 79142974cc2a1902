"""Closed days at fleet scale: writing rollups, loading them at start, range and month queries.

Builds a year (``--days``) of closed days for ``--streams`` streams (8 per agent, one delta per
cell and an applied range per agent and day), then measures on a real nats-server:

- seal:   the rollup records of one day (chunks + seal), bytes and time;
- write:  every closed day written to ``VIGIL_STATS`` by the writer (write-once publishes);
- load:   what a manager does at start (read every record, assemble the days), and the memory
          the closed days take in the process;
- query:  a month per stream, a month per day and cell (first page), a 366-day range per
          stream, with the longest event-loop stall while each runs.

Usage: python bench/stats.py [--streams 1000] [--days 365] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

import nats
import psutil
from common import Report, StallMonitor, arguments, nats_server

from events.feedback import Feedback, StreamStats
from ops.api.requests import MonthlyStatsReq, RangeStatsReq
from ops.runtime.storage import ensure_feedback_stream, ensure_stats_stream
from ops.stats.queries import StatsQueries
from ops.stats.rollups import RollupStore
from projections.rollup import seal_day
from projections.stats import DailyStats
from projections.streams import StreamsProjection


def build(streams: int, days: int) -> tuple[DailyStats, list[str], int]:
    """Open days with one delta per cell; returns the fold, the days and the last seq."""
    stats = DailyStats()
    first = date(2025, 1, 1)
    names = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    seq = 0
    for day in names:
        for s in range(streams):
            seq += 1
            stats.apply(seq, Feedback(
                seq=seq, agent_id=f"a-{s // 8}", stream_id=f"s-{s:06d}", version=1,
                status="in_progress", ts=0.0, day=day,
                stats=StreamStats(frames_decoded=2_160_000, frames_analysed=2_160_000,
                                  bytes_read=10_800_000_000, processing_ms=86_400_000,
                                  peak_bitrate_bps=1_400_000, reconnects=s % 3, events=s % 7),
            ))  # fmt: skip
    stats.caught_up = True
    return stats, names, seq


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    streams, days = (100, 30) if args.quick else (args.streams, args.days)
    report = Report(f"statistics: {days} closed days × {streams} streams ({streams // 8} agents)")

    stats, names, last_seq = build(streams, days)
    t0 = time.perf_counter()
    chunks, seal = seal_day(names[0], stats.state.days[names[0]])
    report.add("seal one day", (time.perf_counter() - t0) * 1000, "ms",
               f"{seal.rows} rows, {seal.chunks} chunks, {sum(map(len, chunks)):,} bytes")  # fmt: skip

    async with nats_server() as server:
        nc = await nats.connect(server.url)
        await ensure_feedback_stream(nc)
        await ensure_stats_stream(nc)
        writer = RollupStore(nc, stats, is_writer=lambda: True, feed_caught_up=lambda: False,
                             lateness_s=7 * 86400)  # fmt: skip
        stats.close_through(names[-1], last_seq + 1)  # the writer hears of every closed day
        t0 = time.perf_counter()
        await writer.write_due()
        report.add("write every day", time.perf_counter() - t0, "s",
                   f"{writer.counts['sealed']} seals")  # fmt: skip
        assert writer.pending() == (0, 0)
        del stats, writer
        before = rss()
        fresh = DailyStats()
        t0 = time.perf_counter()
        await RollupStore(nc, fresh, is_writer=lambda: False, feed_caught_up=lambda: True,
                          lateness_s=0).load()  # fmt: skip
        report.add("load at start", time.perf_counter() - t0, "s",
                   f"{len(fresh.state.days)} days")  # fmt: skip
        report.add("memory of the closed days", (rss() - before) / 2**20, "MiB",
                   f"{(rss() - before) / (days * streams):.0f} bytes per cell")  # fmt: skip
        fresh.caught_up = True
        fake: Any = SimpleNamespace(last_seq=0)
        queries = StatsQueries(fresh, StreamsProjection(), fake)
        month = names[-1][:7]
        cases = [
            ("month per stream", queries.monthly(MonthlyStatsReq(month=month))),
            ("month per day × cell, first page",
             queries.monthly(MonthlyStatsReq(month=month, per="day", by="row"))),
            ("366 days per stream", queries.range(RangeStatsReq(
                from_=names[max(0, len(names) - 366)], to=names[-1], per="range"))),
        ]  # fmt: skip
        for name, query in cases:
            async with StallMonitor() as monitor:
                t0 = time.perf_counter()
                view, _ = await query
                took = time.perf_counter() - t0
            report.add(name, took * 1000, "ms",
                       f"{len(view.items)} lines; longest loop stall "
                       f"{monitor.max_stall_s * 1000:.1f} ms")  # fmt: skip
        await nc.close()
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
