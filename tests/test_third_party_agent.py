"""The docs/examples third-party agent (nats-py only) processes a stream end to end."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, eventually, example_agent, ok, stream_done


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1)
    async with Manager(ClientSettings(nats_url=nats_server.url), settings) as m:
        yield m


async def test_example_agent_runs_a_stream_to_done(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    async with example_agent(nats_server.url, tmp_path / "state.json") as output:
        agents = await eventually(lambda: _agents(nc), timeout=20, what="example agent registered")
        assert agents[0]["name"] == "minimal-agent"
        view = await ok(nc, "stream.create", {
            "source": {"url": "rtsp://camera-1/live"}, "analytics": [{"name": "frame_counter"}]})  # fmt: skip
        await stream_done(nc, view["stream_id"], timeout=20)
        assert manager.feedback.counts["applied"] == 2
    assert b"registered as" in output[0] and b"starting" in output[0]
    left = await ok(nc, "agent.list", {})
    assert left["agents"] == []  # deregistered


async def _agents(nc: Client) -> list[dict]:  # type: ignore[type-arg]
    agents: list[dict] = (await ok(nc, "agent.list", {}))["agents"]  # type: ignore[type-arg]
    return agents


async def test_feedback_naming_another_agent_is_refused_and_the_agent_is_told(
    manager: Manager, nc: Client
) -> None:
    """The subject says who speaks: a body that names another agent changes nothing, and the
    sender hears why (a push on vigil.agent.<id>.refused, and the counts on poll and agent.get)."""
    me = (await ok(nc, "agent.register", {"name": "me", "capacity": 1}))["agent_id"]
    other = (await ok(nc, "agent.register", {"name": "other", "capacity": 1}))["agent_id"]
    view = await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/x"}})
    await eventually(lambda: manager.streams.streams[view["stream_id"]].agent_id is not None,
                     what="stream assigned")  # fmt: skip
    state = manager.streams.streams[view["stream_id"]]
    holder = state.agent_id
    assert holder in (me, other)
    speaker = other if holder == me else me  # speaks on its own subject, claims to be the holder
    notices = await nc.subscribe(f"vigil.agent.{speaker}.refused")
    body = {"seq": 1, "agent_id": holder, "stream_id": view["stream_id"],
            "version": state.assignment_version, "status": "in_progress", "ts": time.time(),
            "stats": {"frames_decoded": 5_000_000}}  # fmt: skip
    await nc.jetstream().publish(f"vigil.feedback.{speaker}", json.dumps(body).encode())
    notice = json.loads((await notices.next_msg(timeout=10)).data)
    assert notice["reason"] == "agent_mismatch" and notice["seq"] == 1
    assert holder in notice["message"]
    got = await ok(nc, "stream.get", {"stream_id": view["stream_id"]})
    assert got["status"] == "pending"  # the forged in_progress changed nothing

    async def counted() -> bool:
        agent = await ok(nc, "agent.get", {"agent_id": speaker})
        return bool(agent["feedback_refused"] == {"agent_mismatch": 1})

    await eventually(counted, what="refusal counted on agent.get")
    poll = json.loads((await nc.request(f"vigil.agent.{speaker}.streams", b"{}", timeout=5)).data)
    assert poll["result"]["refused"] == {"agent_mismatch": 1}
    stats = await ok(nc, "stats.daily", {"date": time.strftime("%Y-%m-%d", time.gmtime())})
    assert stats["total"]["frames_decoded"] == 0


async def test_a_poll_bigger_than_a_nats_message_comes_in_pages(
    manager: Manager, nc: Client
) -> None:
    me = (await ok(nc, "agent.register", {"name": "big", "capacity": 100}))["agent_id"]
    labels = {f"k{i:02}-{'x' * 58}": "v" * 256 for i in range(64)}  # ~21 KB per assignment
    ids = {(await ok(nc, "stream.create", {"source": {"url": f"rtsp://cam-{i}.example/x"},
                                            "labels": labels}))["stream_id"] for i in range(60)}  # fmt: skip
    await eventually(lambda: manager.streams.load_of(me) == 60, what="all assigned")
    got: list[str] = []
    after = None
    pages = 0
    while True:
        body = {"running": []} | ({"after": after} if after else {})
        msg = await nc.request(f"vigil.agent.{me}.streams", json.dumps(body).encode(), timeout=5)
        assert len(msg.data) < 512 * 1024
        page = json.loads(msg.data)["result"]
        got += [a["stream_id"] for a in page["start"]]
        pages += 1
        if page["next"] is None:
            break
        after = page["next"]
    assert pages >= 4 and sorted(got) == sorted(ids) and len(got) == len(set(got))
