"""Ranges and months agree with the sum of the daily queries over NATS, HTTP (JSON and CSV) and
the CLI; bad ranges are refused with their field path; ``vigil stats verify`` exits 0 on a
healthy system and 1 with the key after a rollup is tampered."""

from __future__ import annotations

import asyncio
import calendar
import csv
import io
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from functools import reduce
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest
from aiohttp import web
from nats.aio.client import Client

from events import subjects
from events.feedback import StreamStats
from ops.http.app import build_app
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from ops.stats.queries import CSV_COLUMNS, RangeItem, to_csv
from projections.rollup import decode_chunk, encode
from projections.stats import totals_view
from tests.helpers import LOOPBACK_OK, command, eventually, ok
from tests.test_stats_closed_days import OutboxAgent, folded_all, measured, utc_days

SETTINGS = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, duplicate_window_s=1.0,
                           stats_writer_interval_s=0.2)  # fmt: skip
VIGIL = str(Path(sys.executable).parent / "vigil")
IDENTS = {"stream": ("stream_id", "group"), "agent": ("agent_id",), "group": ("group",),
          "row": ("stream_id", "agent_id", "group"), "total": ()}  # fmt: skip


class Fleet(msgspec.Struct):
    manager: Manager
    http: str
    env: dict[str, str]
    days: list[str]
    """Days with data: the day before the month, then five days ago .. today."""
    month: str
    closed_through: str


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, nc: Client, tmp_path: Path) -> AsyncIterator[Fleet]:
    """Two agents, two streams (one in group "lobby"), deltas on six days and on the day before
    the month of yesterday; closed through three days ago; one late delta (a correction)."""
    async with Manager(ClientSettings(nats_url=nats_server.url), SETTINGS) as m:
        await eventually(lambda: m.master.is_master, what="master elected")
        s1 = (await ok(nc, "stream.create", {"source": {"url": "rtsp://cam-1/live"},
                                             "group": "lobby"}))["stream_id"]  # fmt: skip
        s2 = (await ok(nc, "stream.create", {"source": {"url": "rtsp://cam-2/live"}}))["stream_id"]
        recent = utc_days(5)
        month = recent[-2][:7]  # yesterday's month: it always has open days
        before_month = (datetime.fromisoformat(f"{month}-01") - timedelta(days=1)).date()
        days = [before_month.isoformat(), *recent]
        a = await OutboxAgent.start(nc, tmp_path / "a")
        b = await OutboxAgent.start(nc, tmp_path / "b")
        await a.put(*((d, sid, measured(i + n)) for i, d in enumerate(days, start=1)
                      for n, sid in enumerate((s1, s2))))  # fmt: skip
        await b.put(*((d, s1, measured(2 * i)) for i, d in enumerate(days, start=1)))
        await a.flush()
        await b.flush()
        closed_through = recent[2]
        await ok(nc, "stats.close", {"through": closed_through})
        await b.put((recent[1], s2, measured(50)))  # late: a correction of a closed day
        await b.flush()
        await eventually(lambda: folded_all(m, nc), what="feedback folded")
        await eventually(lambda: m.rollups.pending() == (0, 0) and m.stats_feed.counts[
            "corrected"] == 1, what="rollups written")  # fmt: skip
        runner = web.AppRunner(build_app(m, token="secret", open_reads=True))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env |= {"VIGIL_NATS_URL": nats_server.url, "VIGIL_DATA_DIR": str(tmp_path / "none")}
        try:
            yield Fleet(manager=m, http=f"http://127.0.0.1:{port}/api/v1/stats", env=env,
                        days=days, month=month, closed_through=closed_through)  # fmt: skip
        finally:
            await runner.cleanup()
            await a.outbox.close()
            await b.outbox.close()


def month_days(month: str) -> list[str]:
    year, mon = int(month[:4]), int(month[5:])
    return [f"{month}-{d:02d}" for d in range(1, calendar.monthrange(year, mon)[1] + 1)]


def stats_of(item: dict[str, Any]) -> StreamStats:
    return StreamStats(
        frames_decoded=item["frames_decoded"], frames_analysed=item["frames_analysed"],
        frames_dropped=item["frames_dropped"], bytes_read=item["bytes_in"],
        reconnects=item["reconnects"], stalls=item["stalls"], triggers=item["triggers"],
        events=item["events"], records_sent=item["records"],
        processing_ms=item["processing_ms"], peak_bitrate_bps=item["peak_bitrate_bps"],
        media_ms=round(item["media_s"] * 1000),
    )  # fmt: skip


async def sum_of_days(nc: Client, days: list[str], by: str) -> dict[tuple[Any, ...], Any]:
    """Per key: the figures of the daily queries combined, their corrections, and whether any
    of the days is open."""
    lines: dict[tuple[Any, ...], Any] = {}
    for day in days:
        result = await ok(nc, "stats.daily", {"date": day, "by": by})
        for item in result["items"]:
            key = tuple(item[k] for k in IDENTS[by])
            stats, fixes = lines.get(key, (StreamStats(), 0))
            lines[key] = (stats.combine(stats_of(item)), fixes + item["corrections"])
    return lines


async def cli(fleet: Fleet, *args: str) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        VIGIL, "stats", *args, env=fleet.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def get(url: str, **params: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, params=params) as r:
        return r.status, await r.text()


async def test_ranges_and_months_agree_with_the_daily_queries_through_every_door(
    fleet: Fleet, nc: Client
) -> None:
    days = month_days(fleet.month)
    first, last = days[0], days[-1]
    for by in ("stream", "agent", "group", "row", "total"):
        # Given the sum of the daily queries of the month
        expected = await sum_of_days(nc, days, by)
        # When the month is asked for at once
        result = await ok(nc, "stats.monthly", {"month": fleet.month, "by": by})
        # Then every line is that sum, with its corrections; the month is still open
        got = {tuple(i[k] for k in IDENTS[by]): i for i in result["items"]}
        assert set(got) == set(expected) and len(expected) >= 1
        for key, (stats, fixes) in expected.items():
            item = got[key]
            assert {k: item[k] for k in totals_view(stats)} == totals_view(stats), key
            assert (item["corrections"], item["state"]) == (fixes, "open")
            assert item["date"] == f"{first}/{last}"
        assert (result["from"], result["to"], result["month"]) == (first, last, fleet.month)
        assert result["state"] == "open" and result["days"] == len(days)
        total = reduce(StreamStats.combine, (s for s, _ in expected.values()), StreamStats())
        assert result["total"] == totals_view(total)

    # The same days one line per day and key: the daily items, dated
    per_day = await ok(nc, "stats.range", {"from": first, "to": last, "by": "row"})
    dailies = [item | {"date": d} for d in days
               for item in (await ok(nc, "stats.daily", {"date": d, "by": "row"}))["items"]]  # fmt: skip
    assert per_day["items"] == dailies and per_day["per"] == "day"
    states = {(i["date"], i["state"]) for i in dailies}
    assert {s for d, s in states if d <= fleet.closed_through} == {"closed", "corrected"}
    assert {s for d, s in states if d > fleet.closed_through} == {"open"}
    # ... also page by page
    paged: list[dict[str, Any]] = []
    body: dict[str, Any] = {"from": first, "to": last, "by": "row", "limit": 2}
    while True:
        page = await ok(nc, "stats.range", body)
        paged += page["items"]
        assert page["total"] == per_day["total"]
        if page["next_cursor"] is None:
            break
        body["cursor"] = page["next_cursor"]
    assert paged == per_day["items"]
    # ... and the day before the month is in a range that includes it, not in the month
    wider = await ok(nc, "stats.range", {"from": fleet.days[0], "to": last, "per": "range"})
    month = await ok(nc, "stats.monthly", {"month": fleet.month})
    assert wider["total"]["frames_decoded"] > month["total"]["frames_decoded"]

    # HTTP JSON and CSV say the same
    status, text = await get(f"{fleet.http}/monthly", month=fleet.month, by="row")
    assert status == 200
    monthly_row = await ok(nc, "stats.monthly", {"month": fleet.month, "by": "row"})
    assert orjson.loads(text)["result"] == monthly_row
    status, text = await get(f"{fleet.http}/range", **{"from": first, "to": last, "by": "row",
                                                       "format": "csv"})  # fmt: skip
    assert status == 200
    assert text == to_csv(msgspec.convert(per_day["items"], list[RangeItem]))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["date"], r["stream_id"], r["frames_decoded"], r["state"]) for r in rows] == [
        (i["date"], i["stream_id"], str(i["frames_decoded"]), i["state"]) for i in dailies]  # fmt: skip
    status, text = await get(f"{fleet.http}/monthly", month=fleet.month, format="csv")
    assert [r["frames_decoded"] for r in csv.DictReader(io.StringIO(text))] == [
        str(i["frames_decoded"]) for i in month["items"]]  # fmt: skip

    # The CLI says the same
    code, out, err = await cli(fleet, "monthly", "--month", fleet.month, "--by", "row", "--json")
    assert code == 0, err
    assert orjson.loads(out) == monthly_row
    code, out, err = await cli(fleet, "daily", "--from", first, "--to", last, "--by", "row",
                               "--csv", "-")  # fmt: skip
    assert code == 0, err
    assert out.decode() == text_of_range_csv(per_day)
    code, out, err = await cli(fleet, "monthly", "--month", fleet.month)
    assert code == 0, err
    assert b"open" in out and f"{month['total']['frames_decoded']:,}".encode() in out
    code, out, err = await cli(fleet, "daily", "--from", first, "--to", last, "--by", "total")
    assert code == 0, err
    assert f"{per_day['total']['frames_decoded']:,}".encode() in out


def text_of_range_csv(result: dict[str, Any]) -> str:
    return to_csv(msgspec.convert(result["items"], list[RangeItem]))


@pytest.mark.parametrize(("name", "body", "path"), [
    ("stats.range", {"from": "2026-11-10", "to": "2026-11-01"}, "$.to"),
    ("stats.range", {"from": "2024-01-01", "to": "2026-11-01"}, "$.to"),
    ("stats.range", {"from": "2026-02-30", "to": "2026-03-01"}, "$.from"),
    ("stats.range", {"from": "2026-11-01"}, "$"),
    ("stats.range", {"from": "2026-11-01", "to": "2026-11-02", "per": "week"}, "$.per"),
    ("stats.monthly", {"month": "2026-13"}, "$.month"),
    ("stats.monthly", {"month": "2026-1"}, "$.month"),
    ("stats.corrections", {"from": "2026-11-01", "to": "2025-11-02"}, "$.to"),
    ("stats.verify", {"day": "2026-02-30"}, "$.day"),
    ("stats.close", {"through": "2999-01-01"}, "$.through"),
])  # fmt: skip
async def test_bad_ranges_are_refused_with_their_field_path(
    nats_server: EmbeddedNats, nc: Client, name: str, body: dict[str, Any], path: str
) -> None:
    async with Manager(ClientSettings(nats_url=nats_server.url), SETTINGS, run_master=False):
        reply = await command(nc, name, body)
    assert reply["error"]["code"] == "invalid", reply
    assert reply["error"]["details"][0]["path"] == path, reply


async def test_verify_finds_a_tampered_rollup(fleet: Fleet, nc: Client) -> None:
    # Given a healthy system: verify checks every closed day and exits 0
    code, _, err = await cli(fleet, "verify")
    assert code == 0, err
    closed = [d for d in fleet.days if d <= fleet.closed_through]
    assert f"checked {len(closed)} closed days".encode() in err
    corrected_day = utc_days(5)[1]
    code, _, err = await cli(fleet, "verify", "--day", corrected_day)
    assert code == 0, err
    code, _, err = await cli(fleet, "verify", "--day", fleet.days[-1])
    assert code == 2 and b"not closed yet" in err

    # When someone rewrites a figure of a closed day's rollup
    day = fleet.days[0]
    js = nc.jetstream()
    raw = await js.get_last_msg(subjects.STATS_STREAM, subjects.rollup_chunk(day, 0))
    chunk = decode_chunk(raw.data or b"")
    row = chunk.rows[0]
    forged = msgspec.structs.replace(row, stats=msgspec.structs.replace(
        row.stats, frames_decoded=row.stats.frames_decoded + 1000))  # fmt: skip
    await js.publish(subjects.rollup_chunk(day, 0),
                     encode(msgspec.structs.replace(chunk, rows=[forged, *chunk.rows[1:]])))  # fmt: skip

    # Then verify exits 1 and names the key (and the broken seal, and the overwrite)
    code, out, err = await cli(fleet, "verify")
    assert code == 1, err
    key = f"{day}/{row.stream_id}/{row.agent_id}"
    assert f"{key}  frames_decoded: rollup {row.stats.frames_decoded + 1000}".encode() in out
    assert f"{day}  integrity".encode() in out and f"{day}  overwritten".encode() in out
    assert corrected_day.encode() not in out
    report = await ok(nc, "stats.verify", {"day": corrected_day})
    assert report["ok"] and report["checked"] == [corrected_day]
