"""Agents end to end: registration, distribution by analytics and capacity, feedback, stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from nats.aio.client import Client

from agent.runtime import Agent, AgentConfig
from analytics.clips import ClipSpec, Segment, write_clip
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import AGENT_SOURCES, LOOPBACK_OK, command, eventually, ok

SETTINGS = ManagerSettings(
    **LOOPBACK_OK, master_tick_s=0.1, heartbeat_interval_s=0.5, agent_downgrade_s=5
)


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    async with Manager(ClientSettings(nats_url=nats_server.url), SETTINGS) as m:
        await eventually(lambda: m.master.is_master, what="master elected")
        yield m


def agent_config(tmp_path: Path, name: str, **kw: object) -> AgentConfig:
    return AgentConfig(
        name=name,
        outbox=tmp_path / name / "outbox.db",
        poll_interval_s=1.0,
        sources=AGENT_SOURCES,
        **kw,
    )  # type: ignore[arg-type]


async def status_of(nc: Client, sid: str) -> dict:  # type: ignore[type-arg]
    return await ok(nc, "stream.get", {"stream_id": sid})


async def test_streams_reach_the_right_agents_and_finish(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "clip.ts", ClipSpec(duration_s=20, timeline=()))
    short = write_clip(tmp_path / "short.mp4", ClipSpec(duration_s=2, timeline=()))
    client = ClientSettings(nats_url=nats_server.url)
    async with AsyncExitStack() as stack:
        motion = await stack.enter_async_context(
            Agent(client, agent_config(tmp_path, "motion-only", capacity=4, analytics=("motion",)))
        )
        both = await stack.enter_async_context(
            Agent(client, agent_config(tmp_path, "both", capacity=8,
                                       analytics=("motion", "black_frame"))))  # fmt: skip
        await eventually(lambda: motion.registered.is_set() and both.registered.is_set())

        live = "file://" + str(clip.path)
        black = [(await ok(nc, "stream.create", {
            "source": {"url": live}, "kind": "stream", "analytics": [{"name": "black_frame"}]}))["stream_id"]
            for _ in range(4)]  # fmt: skip
        moving = [(await ok(nc, "stream.create", {
            "source": {"url": live}, "kind": "stream", "analytics": [{"name": "motion"}]}))["stream_id"]
            for _ in range(6)]  # fmt: skip

        async def all_running() -> bool:
            views = [await status_of(nc, s) for s in black + moving]
            return all(v["status"] == "in_progress" for v in views)

        await eventually(all_running, timeout=30, what="10 streams in_progress")
        for sid in black:
            assert (await status_of(nc, sid))["agent_id"] == both.agent_id
        placed = {(await status_of(nc, s))["agent_id"] for s in moving}
        assert placed <= {motion.agent_id, both.agent_id}
        assert len(motion.workers) <= 4 and len(both.workers) <= 8
        assert set(motion.workers) | set(both.workers) == set(black + moving)

        # A file stream finishes: done.
        done = (await ok(nc, "stream.create", {"source": {"url": "file://" + str(short.path)},
                                                "kind": "file"}))["stream_id"]  # fmt: skip
        # Slots are full (4 + 8 = 12, 10 used): it still fits.
        await eventually(lambda: _is(nc, done, "done"), timeout=30, what="file done")

        # A missing file: failure, fatal, never restarted.
        missing = (await ok(nc, "stream.create", {"source": {"url": "file:///nonexistent/x.mp4"},
                                                   "kind": "file"}))["stream_id"]  # fmt: skip
        await eventually(lambda: _is(nc, missing, "failure"), timeout=30, what="missing file fails")
        view = await status_of(nc, missing)
        assert view["last_error"]["fatal"] is True and view["restarts"] == 0

        # Stop: stopped, and the agent's worker is gone.
        victim = moving[0]
        holder = motion if victim in motion.workers else both
        stopped = await ok(nc, "stream.patch", {"stream_id": victim, "action": "stop"})
        assert stopped["status"] == "stopped"
        await eventually(lambda: victim not in holder.workers, timeout=10, what="worker gone")
        assert manager.feedback.counts["applied"] >= 12


async def _is(nc: Client, sid: str, status: str) -> bool:
    return (await status_of(nc, sid))["status"] == status


async def test_pending_until_an_agent_offers_the_analytic(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "clip.ts", ClipSpec(duration_s=20, timeline=()))
    client = ClientSettings(nats_url=nats_server.url)
    async with Agent(client, agent_config(tmp_path, "m", analytics=("motion",))) as first:
        await eventually(lambda: first.registered.is_set())
        refused = await command(nc, "stream.create", {
            "source": {"url": "file://" + str(clip.path)}, "analytics": [{"name": "brightness"}]})  # fmt: skip
        assert refused["error"]["code"] == "invalid"
        assert refused["error"]["details"][0]["path"] == "$.analytics[0].name"
        sid = (await ok(nc, "stream.create", {
            "source": {"url": "file://" + str(clip.path)}, "analytics": [{"name": "brightness"}],
            "allow_unregistered": True}))["stream_id"]  # fmt: skip
        for _ in range(5):
            await manager.master.tick()
        assert (await status_of(nc, sid))["status"] == "pending"
        async with Agent(client, agent_config(tmp_path, "b", analytics=("brightness",))) as second:
            await eventually(lambda: _is(nc, sid, "in_progress"), timeout=30)
            assert (await status_of(nc, sid))["agent_id"] == second.agent_id


async def test_invalid_params_and_bad_register_and_foreign_feedback(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    client = ClientSettings(nats_url=nats_server.url)
    async with Agent(client, agent_config(tmp_path, "m", analytics=("motion",))) as agent:
        await eventually(lambda: agent.registered.is_set())
        bad = await command(nc, "stream.create", {
            "source": {"url": "rtsp://cam/1"}, "analytics": [{"name": "motion", "params": {"sensitivity": "high"}}]})  # fmt: skip
        assert bad["error"]["code"] == "invalid"
        assert bad["error"]["details"][0]["path"].startswith("$.analytics[0].params.sensitivity")

        before = await nc.jetstream().stream_info("VIGIL_EVENTS")
        for body in (b"{", b'{"name": "x"}', b'{"name": "x", "capacity": 0}',
                     b'{"name": "x", "capacity": 1, "analytics": [{"name": "m", "params_schema": {"type": 5}}]}'):  # fmt: skip
            reply = await command(nc, "agent.register", body)
            msg = await nc.request("vigil.agent.register", body, timeout=5)
            assert reply["error"]["code"] == "invalid"
            assert b'"invalid"' in msg.data
        after = await nc.jetstream().stream_info("VIGIL_EVENTS")
        assert after.state.last_seq == before.state.last_seq

        js = nc.jetstream()
        await js.publish("vigil.feedback.a-ghost", b'{"seq": 1, "agent_id": "a-ghost", "stream_id": "s-1",'
                         b' "version": 2, "status": "done", "ts": 1, "day": "2026-01-01"}')  # fmt: skip
        await js.publish(f"vigil.feedback.{agent.agent_id}", b"garbage")
        await js.publish(f"vigil.feedback.{agent.agent_id}",
                         f'{{"seq": 99999999, "agent_id": "{agent.agent_id}", "stream_id": "s-none",'
                         f' "version": 2, "status": "done", "ts": 1, "day": "2026-01-01"}}'.encode())  # fmt: skip
        counts = manager.feedback.counts
        await eventually(lambda: counts["unknown_agent"] >= 1 and counts["invalid"] >= 1
                         and counts["not_assigned"] >= 1, what="rejections counted")  # fmt: skip
        assert (
            await nc.jetstream().stream_info("VIGIL_EVENTS")
        ).state.last_seq == after.state.last_seq


async def test_records_go_to_the_spool_the_stream_chose(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "scene.mp4", ClipSpec())  # motion, cut, black, frozen segments
    out = tmp_path / "records"
    client = ClientSettings(nats_url=nats_server.url)
    async with Agent(client, agent_config(tmp_path, "spooler")) as agent:
        await eventually(lambda: agent.registered.is_set())
        bad = await command(nc, "stream.create", {"source": {"url": f"file://{clip.path}"}, "kind": "file",
                                                  "spool": {"type": "directory", "path": "relative/dir"}})  # fmt: skip
        assert bad["error"]["details"][0]["path"] == "$.spool.path"
        sid = (await ok(nc, "stream.create", {
            "source": {"url": f"file://{clip.path}"}, "kind": "file",
            "analytics": [{"name": "motion"}, {"name": "black_frame"}],
            "spool": {"type": "directory", "path": str(out)},
        }))["stream_id"]  # fmt: skip
        await eventually(lambda: _is(nc, sid, "done"), timeout=60, what="file analysed")
        records = [orjson.loads(p.read_bytes()) for p in sorted(out.glob("*.json"))]
        assert sorted(r["event"]["name"] for r in records) == ["black_frame", "motion"]
        for r in records:
            assert r["stream_id"] == sid and r["agent_id"] == agent.agent_id
            assert r["window"] and all("jpeg_b64" in w or "path" in w for w in r["window"])
        motion = next(r for r in records if r["event"]["name"] == "motion")
        [truth] = clip.expected("motion")
        assert abs(motion["event"]["started_at"] - truth.started_at) <= 1.0
        assert sum(s.events for s in agent.tally.values()) == 2


async def test_a_keyframes_only_stream_decodes_keyframes_and_reports_at_their_pace(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    # A cut between the keyframes at 6 and 8 s, black over those at 10 and 12 s.
    timeline = (Segment("cut", 7.0, 7.0), Segment("black", 10.0, 14.0))
    clip = write_clip(tmp_path / "cheap.mp4", ClipSpec(duration_s=17, timeline=timeline))
    out = tmp_path / "records"
    client = ClientSettings(nats_url=nats_server.url)
    async with Agent(client, agent_config(tmp_path, "cheap")) as agent:
        await eventually(lambda: agent.registered.is_set())
        created = await ok(nc, "stream.create", {
            "source": {"url": f"file://{clip.path}"}, "kind": "file", "keyframes_only": True,
            "analytics": [{"name": "scene_change"}, {"name": "black_frame"}],
            "spool": {"type": "directory", "path": str(out)}})  # fmt: skip
        capped = await ok(nc, "stream.create", {
            "source": {"url": f"file://{clip.path}"}, "kind": "file", "analysis_fps": 5,
            "analytics": [{"name": "black_frame"}]})  # fmt: skip
        sid = created["stream_id"]
        assert (created["keyframes_only"], created["analysis_fps"]) == (True, None)
        assert (capped["keyframes_only"], capped["analysis_fps"]) == (False, 5.0)
        await eventually(lambda: _is(nc, sid, "done"), timeout=60, what="keyframes analysed")
        await eventually(lambda: _is(nc, capped["stream_id"], "done"), timeout=60, what="capped")

        day = datetime.now(UTC).strftime("%Y-%m-%d")

        async def stats_of(stream_id: str) -> dict:  # type: ignore[type-arg]
            return (await ok(nc, "stats.daily", {"date": day, "stream_id": stream_id}))["total"]  # type: ignore[no-any-return]

        async def counted() -> bool:  # the last feedback may come after "done"
            cheap, full = await stats_of(sid), await stats_of(capped["stream_id"])
            return bool(cheap["frames_analysed"] == 9 and full["frames_decoded"] == clip.frames)

        await eventually(counted, timeout=30, what="stats counted")
        cheap, full = await stats_of(sid), await stats_of(capped["stream_id"])
        assert cheap["frames_decoded"] == cheap["frames_analysed"] == 9  # keyframes 0, 2 .. 16 s
        assert full["frames_analysed"] == 85  # 17 s at 5 frames a second
        records = [orjson.loads(p.read_bytes()) for p in sorted(out.glob("*.json"))]
        events = sorted((r["event"]["name"], r["event"]["started_at"]) for r in records)
        assert events == [("black_frame", 10.0), ("scene_change", 8.0)]
