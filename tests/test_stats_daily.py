"""Daily statistics: replays past the dedup window count once; the query over NATS, HTTP and the
CLI; a corrupted outbox becomes an alarm, not a crash (issue 6 acceptance)."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from nats.aio.client import Client

from agent.runtime import Agent, AgentConfig, utc_day
from analytics.clips import ClipSpec, write_clip
from events.feedback import StreamStats
from events.subjects import FEEDBACK_STREAM
from ops.http.app import build_app
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from ops.stats.queries import CSV_COLUMNS
from tests.helpers import command, eventually, ok

WINDOW_S = 1.0
"""VIGIL_FEEDBACK's duplicate window in these tests (the default is 120 s)."""
SETTINGS = ManagerSettings(master_tick_s=0.1, heartbeat_interval_s=0.5, agent_downgrade_s=5,
                           feedback_interval_s=0.5, duplicate_window_s=WINDOW_S)  # fmt: skip
VIGIL = str(Path(sys.executable).parent / "vigil")
OPEN = {"state": "open", "corrections": 0}
"""Every line says whether its day is still open (today is)."""


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    async with Manager(ClientSettings(nats_url=nats_server.url), SETTINGS) as m:
        await eventually(lambda: m.master.is_master, what="master elected")
        yield m


def config(tmp_path: Path, name: str) -> AgentConfig:
    return AgentConfig(name=name, outbox=tmp_path / name / "outbox.db", poll_interval_s=0.5)


async def totals(nc: Client, day: str, **filters: str) -> dict[str, object]:
    result = await ok(nc, "stats.daily", {"date": day, **filters})
    assert result["complete"]
    total: dict[str, object] = result["total"]
    return total


def as_view(s: StreamStats) -> dict[str, object]:
    from projections.stats import totals_view

    return dict(totals_view(s))


async def folded_all(manager: Manager, nc: Client) -> bool:
    info = await nc.jetstream().stream_info(FEEDBACK_STREAM)
    return manager.stats_feed.last_seq >= info.state.last_seq


async def run_file_stream(nc: Client, clip: Path) -> str:
    sid: str = (await ok(nc, "stream.create", {"source": {"url": f"file://{clip}"},
                                               "kind": "file"}))["stream_id"]  # fmt: skip

    async def done() -> bool:
        return (await ok(nc, "stream.get", {"stream_id": sid}))["status"] == "done"

    await eventually(done, timeout=20, what=f"file stream {sid} done")
    return sid


async def test_replay_after_the_dedup_window_counts_once(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "clip.mp4", ClipSpec(width=192, height=108, duration_s=3))
    client = ClientSettings(nats_url=nats_server.url)
    async with Agent(client, config(tmp_path, "a")) as agent:
        await eventually(lambda: agent.registered.is_set())
        sid = await run_file_stream(nc, clip.path)
        await eventually(lambda: agent.outbox.depth() == 0 and not agent.workers)
        await eventually(lambda: folded_all(manager, nc), what="feedback folded")
        day = utc_day(time.time())
        expected = as_view(agent.tally[sid])
        assert expected["frames_decoded"] >= 75  # 75 frames; see the report on re-runs
        assert await totals(nc, day, stream_id=sid) == expected

        # Given every stored feedback message, re-published after the dedup window ...
        js = nc.jetstream()
        last = (await js.stream_info(FEEDBACK_STREAM)).state.last_seq
        stored = [await js.get_msg(FEEDBACK_STREAM, seq) for seq in range(1, last + 1)]
        stored = [m for m in stored if (m.subject or "").startswith("vigil.feedback.")]
        await asyncio.sleep(WINDOW_S + 0.2)  # the scenario: let the window pass
        acks = [await js.publish(m.subject, m.data or b"", headers=m.headers) for m in stored]
        assert not any(a.duplicate for a in acks), (
            "JetStream deduplicated: the window had not passed"
        )
        # ... and once more with msg ids JetStream has never seen (a confused third-party agent).
        for m in stored:
            await js.publish(m.subject, m.data or b"", headers={"Nats-Msg-Id": f"other-{m.seq}"})
        # Then the manager stored them all again but counted nothing twice.
        await eventually(lambda: folded_all(manager, nc), what="replays folded")
        assert manager.stats_feed.counts["duplicates"] >= 2 * len(stored)
        assert await totals(nc, day, stream_id=sid) == expected

        # Unknown agents and undecodable bodies are counted and skipped.
        await js.publish("vigil.feedback.a-ghost", orjson.dumps({
            "seq": 1, "agent_id": "a-ghost", "stream_id": sid, "version": 1, "status": "in_progress",
            "ts": 1.0, "day": day, "stats": {"frames_decoded": 1000}}))  # fmt: skip
        await js.publish(f"vigil.feedback.{agent.agent_id}", b"{not json")
        counts = manager.stats_feed.counts
        await eventually(lambda: counts["unknown_agent"] == 1 and counts["invalid"] == 1)
        assert await totals(nc, day, stream_id=sid) == expected

        await check_queries(manager, nc, tmp_path, day, sid, agent.agent_id, expected)

    # A manager started now rebuilds the same totals from the stream (replays included).
    async with Manager(
        ClientSettings(nats_url=nats_server.url), SETTINGS, run_master=False
    ) as late:
        await eventually(lambda: late.daily_stats.caught_up, what="late manager caught up")
        assert late.stats_feed.last_seq == manager.stats_feed.last_seq
        assert late.daily_stats.state == manager.daily_stats.state


async def check_queries(manager: Manager, nc: Client, tmp_path: Path, day: str, sid: str,
                        agent_id: str, expected: dict[str, object]) -> None:  # fmt: skip
    """The same totals through every door, and validation errors with their field path."""
    by_agent = await ok(nc, "stats.daily", {"date": day, "agent_id": agent_id, "by": "agent"})
    assert by_agent["items"] == [{"agent_id": agent_id, **expected, **OPEN}]
    by_group = await ok(nc, "stats.daily", {"date": day, "by": "group"})
    assert by_group["items"] == [{"group": None, **expected, **OPEN}]
    assert (await ok(nc, "stats.daily", {"date": "2000-01-01"}))["items"] == []
    for body, path in (({"date": "2026-02-30"}, "$.date"), ({"date": "today"}, "$.date"),
                       ({}, "$"), ({"date": day, "by": "hour"}, "$.by"),
                       ({"date": day, "stream_id": ""}, "$.stream_id")):  # fmt: skip
        reply = await command(nc, "stats.daily", body)
        assert reply["error"]["code"] == "invalid", reply
        assert reply["error"]["details"][0]["path"] == path, reply

    port = free_port()
    runner = web.AppRunner(build_app(manager, token="secret", open_reads=True))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}/api/v1/stats/daily"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base, params={"date": day, "stream_id": sid}) as r:
                assert r.status == 200
                body = await r.json()
            assert body["result"]["items"] == [
                {"stream_id": sid, "group": None, **expected, **OPEN}
            ]
            async with http.get(base, params={"date": "2026-13-01"}) as r:
                assert r.status == 400
                assert (await r.json())["error"]["details"][0]["path"] == "$.date"
            async with http.get(base, params={"date": day, "by": "row", "format": "csv"}) as r:
                assert r.status == 200 and r.content_type == "text/csv"
                rows = list(csv.DictReader(io.StringIO(await r.text())))
    finally:
        await runner.cleanup()
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows == [{"date": day, "stream_id": sid, "agent_id": agent_id, "group": "",
                     **{k: str(v) for k, v in (expected | OPEN).items()}}]  # fmt: skip

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {"VIGIL_NATS_URL": manager.client.nats_url, "VIGIL_DATA_DIR": str(tmp_path / "none")}
    out = tmp_path / "billing.csv"
    proc = await asyncio.create_subprocess_exec(
        VIGIL, "stats", "daily", "--date", day, "--by", "row", "--csv", str(out), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert list(csv.DictReader(io.StringIO(out.read_text()))) == rows
    proc = await asyncio.create_subprocess_exec(
        VIGIL, "stats", "daily", "--date", day, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    table, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert sid.encode() in table and f"{expected['frames_decoded']:,}".encode() in table
    proc = await asyncio.create_subprocess_exec(
        VIGIL, "stats", "daily", "--date", "2026-02-30", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and b"$.date" in err


def corrupt(path: Path, how: str) -> None:
    if how == "garbage":
        with open(path, "r+b") as f:
            f.write(b"this is not an sqlite database, it was overwritten" * 4)
    else:
        os.truncate(path, 0)


@pytest.mark.parametrize("how", ["garbage", "truncated"])
async def test_corrupted_outbox_is_moved_aside_and_raised_as_an_alarm(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path, how: str
) -> None:
    client = ClientSettings(nats_url=nats_server.url)
    cfg = config(tmp_path, "a")
    async with Agent(client, cfg) as first:
        await eventually(lambda: first.registered.is_set())
    corrupt(cfg.outbox, how)

    # When the agent starts on the damaged file, it does not crash ...
    async with Agent(client, cfg) as agent:
        assert agent.agent_id == first.agent_id
        moved = agent.outbox.recovered_from
        assert moved is not None and moved.exists() and cfg.outbox.exists()
        assert agent.alarms and agent.alarms[0].startswith("outbox_recovered:")
        assert str(moved) in agent.alarms[0]
        await eventually(lambda: agent.registered.is_set())

        # ... it reports the loss in its heartbeats, visible in agent.get ...
        async def alarm_visible() -> bool:
            view = await ok(nc, "agent.get", {"agent_id": agent.agent_id})
            hb = view["last_heartbeat"] or {}
            return any(a.startswith("outbox_recovered:") for a in hb.get("alarms", []))

        await eventually(alarm_visible, timeout=10, what="alarm in the agent's heartbeat")

        # ... and it works on a fresh outbox, counted exactly.
        clip = write_clip(tmp_path / "clip.mp4", ClipSpec(width=192, height=108, duration_s=1))
        sid = await run_file_stream(nc, clip.path)
        await eventually(lambda: agent.outbox.depth() == 0 and not agent.workers)
        await eventually(lambda: folded_all(manager, nc), what="feedback folded")
        day = utc_day(time.time())
        assert await totals(nc, day, stream_id=sid) == as_view(agent.tally[sid])
