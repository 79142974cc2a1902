"""The docs/examples third-party agent (nats-py only) processes a stream end to end."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import eventually, ok

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "minimal_agent.py"


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    settings = ManagerSettings(master_tick_s=0.1)
    async with Manager(ClientSettings(nats_url=nats_server.url), settings) as m:
        yield m


async def test_example_agent_runs_a_stream_to_done(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), nats_server.url, "--seconds", "0.5",
        "--state", str(tmp_path / "state.json"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        agents = await eventually(lambda: _agents(nc), timeout=20, what="example agent registered")
        assert agents[0]["name"] == "minimal-agent"
        view = await ok(nc, "stream.create", {
            "source": {"url": "rtsp://camera-1/live"}, "analytics": [{"name": "frame_counter"}]})  # fmt: skip

        async def done() -> bool:
            got = await ok(nc, "stream.get", {"stream_id": view["stream_id"]})
            return bool(got["status"] == "done")

        await eventually(done, timeout=20, what="stream done by the example agent")
        assert manager.feedback.counts["applied"] == 2
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, out.decode()
    assert b"registered as" in out and b"starting" in out
    left = await ok(nc, "agent.list", {})
    assert left["agents"] == []  # deregistered


async def _agents(nc: Client) -> list[dict]:  # type: ignore[type-arg]
    agents: list[dict] = (await ok(nc, "agent.list", {}))["agents"]  # type: ignore[type-arg]
    return agents
