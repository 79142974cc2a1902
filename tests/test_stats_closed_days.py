"""Closed days outlive the feedback stream; late deltas count once, as corrections; a day closes
by itself past the lateness horizon (acceptance of the billing-grade statistics).

The agent here is reduced to what statistics need: its identity, its real durable outbox
(``agent.outbox``) and its real sender (``agent.sender``). Replays are what an agent restored from
a backup of its outbox would send: the same rows, the same ``<agent>:<seq>`` msg ids, after
JetStream's duplicate window.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from nats.aio.client import Client

from agent.outbox import FeedbackDraft, Outbox
from agent.sender import FeedbackSender
from events import subjects
from events.feedback import Feedback, StreamStats
from ops.api.requests import DailyStatsReq
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, eventually, ok

WINDOW_S = 1.0
RETENTION_S = 5.0
"""VIGIL_FEEDBACK keeps messages this long in the retention test (40 days by default)."""
SETTINGS = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, duplicate_window_s=WINDOW_S,
                           feedback_retention_s=RETENTION_S, stats_writer_interval_s=0.2)  # fmt: skip


def utc_days(n: int) -> list[str]:
    """The UTC days from `n` days ago to today, oldest first."""
    today = datetime.now(UTC).date()
    return [(today - timedelta(days=i)).isoformat() for i in range(n, -1, -1)]


class OutboxAgent:
    """A registered agent identity with a real outbox and sender; `backup`/`restore` of the
    outbox file make the sender replay rows it had sent."""

    def __init__(self, nc: Client, path: Path, agent_id: str, outbox: Outbox) -> None:
        self.nc, self.path, self.agent_id, self.outbox = nc, path, agent_id, outbox

    @classmethod
    async def start(cls, nc: Client, path: Path) -> OutboxAgent:
        reply = orjson.loads((await nc.request(subjects.AGENT_REGISTER, orjson.dumps(
            {"name": path.name, "capacity": 1}), timeout=5)).data)  # fmt: skip
        assert reply["ok"], reply
        agent_id = reply["result"]["agent_id"]
        await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
        return cls(nc, path, agent_id, await Outbox.open(path / "outbox.db", agent_id))

    async def put(self, *rows: tuple[str, str, StreamStats]) -> list[Feedback]:
        """Measured (day, stream, stats) rows, on disk; not sent yet."""
        drafts = [FeedbackDraft(stream_id=sid, version=1, status="in_progress", day=day,
                                ts=time.time(), stats=stats) for day, sid, stats in rows]  # fmt: skip
        return await self.outbox.put_many(drafts)

    async def flush(self) -> int:
        """Send every row of the outbox (acked); returns how many JetStream called duplicates."""
        async with FeedbackSender(self.nc, self.outbox) as sender:
            await asyncio.wait_for(sender.wait_empty(), 20)
            return sender.stats().duplicates

    async def backup(self, name: str) -> None:
        await self.outbox.close()
        await asyncio.to_thread(copy_outbox, self.path, self.path / name)
        self.outbox = await Outbox.open(self.path / "outbox.db", self.agent_id)

    async def restore(self, name: str) -> None:
        await self.outbox.close()
        await asyncio.to_thread(copy_outbox, self.path / name, self.path)
        self.outbox = await Outbox.open(self.path / "outbox.db", self.agent_id)


def copy_outbox(src: Path, dest: Path) -> None:
    """Copy the outbox files (db, WAL, seq side file) of `src` over those of `dest`."""
    dest.mkdir(exist_ok=True)
    for f in dest.glob("outbox.db*"):
        f.unlink()
    for f in src.glob("outbox.db*"):
        shutil.copy2(f, dest / f.name)


def measured(n: int) -> StreamStats:
    return StreamStats(frames_decoded=25 * n, frames_analysed=25 * n, bytes_read=100_000 * n,
                       processing_ms=1000 * n, peak_bitrate_bps=8000 * n, events=n,
                       records_sent=n, reconnects=n % 2)  # fmt: skip


async def folded_all(manager: Manager, nc: Client) -> bool:
    info = await nc.jetstream().stream_info(subjects.FEEDBACK_STREAM)
    return manager.stats_feed.last_seq >= info.state.last_seq


async def day_rows(nc: Client, day: str) -> list[dict[str, Any]]:
    result = await ok(nc, "stats.daily", {"date": day, "by": "row"})
    assert result["complete"]
    items: list[dict[str, Any]] = result["items"]
    return items


async def test_closed_days_outlive_the_feedback_and_late_deltas_count_once(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    client = ClientSettings(nats_url=nats_server.url)
    days = utc_days(3)  # three past days and today
    past = days[:3]
    async with Manager(client, SETTINGS) as first:
        await eventually(lambda: first.master.is_master, what="master elected")
        agent = await OutboxAgent.start(nc, tmp_path / "edge")

        # Given deltas for three past days and today, counted
        await agent.put(*((day, sid, measured(i + 1)) for i, day in enumerate(past)
                          for sid in ("s-a", "s-b")))  # fmt: skip
        await agent.backup("before-sending")
        await agent.put(*((days[3], sid, measured(9)) for sid in ("s-a", "s-b")))
        await agent.flush()
        await eventually(lambda: folded_all(first, nc), what="feedback folded")
        before = {day: await day_rows(nc, day) for day in days}
        for i, day in enumerate(days):
            assert [(r["stream_id"], r["frames_decoded"], r["state"]) for r in before[day]] == [
                (sid, 25 * (i + 1 if i < 3 else 9), "open") for sid in ("s-a", "s-b")]  # fmt: skip

        # When the past days close (an operator closes them before the horizon) ...
        closed = await ok(nc, "stats.close", {"through": past[-1]})
        assert closed["closed_through"] == past[-1] and not closed["already"]
        await eventually(lambda: set(past) <= first.rollups.sealed
                         and first.rollups.pending() == (0, 0), what="closed days sealed")  # fmt: skip
        # ... they are final, with the same figures
        for day in past:
            assert await day_rows(nc, day) == [r | {"state": "closed"} for r in before[day]]

        # And a delta for a closed day, sent late by the agent's outbox, counts once: a correction
        (late,) = await agent.put((past[1], "s-a", measured(100)))
        await agent.backup("late-row")
        await agent.flush()
        await eventually(lambda: first.stats_feed.counts["corrected"] == 1, what="correction")
        await eventually(lambda: first.rollups.pending() == (0, 0), what="correction written")
        corrected = await day_rows(nc, past[1])
        s_a = before[past[1]][0]
        assert corrected[0]["state"] == "corrected" and corrected[0]["corrections"] == 1
        assert corrected[0]["frames_decoded"] == s_a["frames_decoded"] + 2500
        assert corrected[0]["bytes_in"] == s_a["bytes_in"] + 10_000_000
        assert corrected[1] == before[past[1]][1] | {"state": "closed"}
        fixes = (await ok(nc, "stats.corrections", {"from": past[0], "to": days[3]}))["items"]
        assert [(f["day"], f["stream_id"], f["seq"], f["cause"]) for f in fixes] == [
            (past[1], "s-a", late.seq, "late")]  # fmt: skip

        # ... and replayed again after the duplicate window (a restored outbox): not twice
        await asyncio.sleep(WINDOW_S + 0.2)  # the scenario: JetStream no longer deduplicates
        await agent.restore("late-row")
        duplicates = first.stats_feed.counts["duplicates"]
        assert await agent.flush() == 0  # stored again by JetStream
        await eventually(lambda: first.stats_feed.counts["duplicates"] == duplicates + 1)
        assert await day_rows(nc, past[1]) == corrected
        final = {day: await day_rows(nc, day) for day in past}
        assert first.rollups.counts["seal_mismatch"] == 0 and not first.rollups.damaged

    # When the feedback has expired ...
    async def expired() -> bool:
        info = await nc.jetstream().stream_info(subjects.FEEDBACK_STREAM)
        return info.state.messages == 0

    await eventually(expired, timeout=RETENTION_S + 30, what="feedback expired")

    # Then a new manager reports the closed days exactly as before (the open day is gone with
    # its feedback: open days live in VIGIL_FEEDBACK only) ...
    async with Manager(client, SETTINGS) as second:
        await eventually(lambda: second.master.is_master and second.daily_stats.caught_up)
        for day in past:
            assert await day_rows(nc, day) == final[day]
        assert await day_rows(nc, days[3]) == []
        fixes_now = (await ok(nc, "stats.corrections", {"from": past[0], "to": days[3]}))["items"]
        assert fixes_now == fixes

        # ... and counts nothing twice when the agent replays everything it ever sent for them
        duplicates = second.stats_feed.counts["duplicates"]
        for backup in ("before-sending", "late-row"):
            await agent.restore(backup)
            await agent.flush()
        await eventually(lambda: second.stats_feed.counts["duplicates"] == duplicates + 7,
                         what="replays folded")  # fmt: skip
        assert second.stats_feed.counts["applied"] == second.stats_feed.counts["corrected"] == 0
        for day in past:
            assert await day_rows(nc, day) == final[day]
        assert not second.rollups.damaged and second.rollups.sealed >= set(past)
        local = await second.stats.daily(DailyStatsReq(date=past[1], by="row"))
        assert [i.state for i in local[0].items] == ["corrected", "closed"]
    await agent.outbox.close()


async def test_a_day_closes_by_itself_past_the_horizon(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, stats_lateness_s=0,
                               stats_writer_interval_s=0.2)  # fmt: skip
    earlier, yesterday, today = utc_days(2)
    async with Manager(ClientSettings(nats_url=nats_server.url), settings) as m:
        # Given a horizon of 0 s: yesterday is past it as soon as the writer looks
        await eventually(lambda: m.daily_stats.state.closed_through == yesterday,
                         what="yesterday closed by the writer")  # fmt: skip
        marker = await nc.jetstream().get_last_msg(subjects.FEEDBACK_STREAM,
                                                   subjects.STATS_CLOSE)  # fmt: skip
        assert orjson.loads(marker.data or b"")["reason"] == "horizon"
        await eventually(lambda: yesterday in m.rollups.sealed, what="yesterday sealed")

        # When an agent reports yesterday and today (and a day closed without any data)
        agent = await OutboxAgent.start(nc, tmp_path / "edge")
        await agent.put((yesterday, "s-1", measured(1)), (today, "s-1", measured(2)),
                        (earlier, "s-1", measured(3)))  # fmt: skip
        await agent.flush()
        await eventually(lambda: folded_all(m, nc), what="feedback folded")

        # Then the past days' deltas are corrections, today's is open, and verify agrees
        assert (await day_rows(nc, yesterday))[0]["state"] == "corrected"
        assert (await day_rows(nc, earlier))[0]["state"] == "corrected"
        assert (await day_rows(nc, today))[0]["state"] == "open"
        await eventually(lambda: m.rollups.pending() == (0, 0), what="correction written")
        report = await ok(nc, "stats.verify", {})
        assert report["ok"], report
        assert report["checked"] == [earlier, yesterday] and report["open"] == [today]
        assert m.rollups.sealed == {yesterday}  # a day with late deltas only has no seal
        await agent.outbox.close()


async def test_two_writers_write_every_record_once(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    """A deposed master that has not noticed yet keeps writing: its records are the same bytes,
    and the server keeps the first copy of each."""
    client = ClientSettings(nats_url=nats_server.url)
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, stats_writer_interval_s=0.2)
    days = utc_days(2)
    async with Manager(client, settings) as m1, Manager(client, settings, run_master=False) as m2:
        await eventually(lambda: m1.master.is_master, what="master elected")
        m2.rollups.is_writer = lambda: True  # given: a second manager that believes it writes
        agent = await OutboxAgent.start(nc, tmp_path / "edge")
        await agent.put(*((day, sid, measured(i + 1)) for i, day in enumerate(days)
                          for sid in ("s-a", "s-b")))  # fmt: skip
        await agent.flush()

        # When a day closes and then gets a late delta
        await ok(nc, "stats.close", {"through": days[1]})
        await agent.put((days[0], "s-a", measured(5)))
        await agent.flush()
        for m in (m1, m2):
            await eventually(lambda m=m: m.stats_feed.counts["corrected"] == 1
                             and m.rollups.pending() == (0, 0), what="written")  # fmt: skip

        # Then each record is stored once, both writers agree, and verify finds nothing
        info = await nc.jetstream().stream_info(subjects.STATS_STREAM, subjects_filter=">")
        assert set((info.state.subjects or {}).values()) == {1}
        written = sum(m.rollups.counts["sealed"] + m.rollups.counts["corrections_written"]
                      for m in (m1, m2))  # fmt: skip
        records = [s for s in info.state.subjects or {} if ".seal." in s or ".fix." in s]
        assert written == len(records)  # each seal and correction written by one of them
        assert len([s for s in records if ".fix." in s]) == 1
        assert m1.daily_stats.state == m2.daily_stats.state
        assert m1.rollups.counts["seal_mismatch"] == m2.rollups.counts["seal_mismatch"] == 0
        report = await ok(nc, "stats.verify", {})
        assert report["ok"] and set(report["checked"]) == set(days[:2]), report
        await agent.outbox.close()
