"""Figures people bill from: a 20 s file encoded at 1 Mbit/s, decoded much faster than real
time by an agent, shows an average bitrate near 1 Mbit/s in ``vigil stats daily`` (bytes over
the *media* time decoded), its media time is 20 s, and its uptime is the (shorter) wall time."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import orjson
import pytest
from nats.aio.client import Client

from agent.runtime import Agent, AgentConfig, utc_day
from analytics.clips import ClipSpec, write_clip
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import AGENT_SOURCES, LOOPBACK_OK, eventually, ok

VIGIL = str(Path(sys.executable).parent / "vigil")


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, feedback_interval_s=0.5)
    async with Manager(ClientSettings(nats_url=nats_server.url), settings) as m:
        yield m


def packet_bytes(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(p.size for p in container.demux(container.streams.video[0]))


async def test_a_file_decoded_fast_shows_its_own_bitrate(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    spec = ClipSpec(width=320, height=180, fps=25, duration_s=20.0, timeline=(),
                    bits_per_pixel=1_000_000 / (320 * 180 * 25))  # fmt: skip
    clip = write_clip(tmp_path / "one-mbit.ts", spec)
    true_bps = packet_bytes(clip.path) * 8 / spec.duration_s
    assert 0.85e6 < true_bps < 1.15e6, true_bps  # the encoder kept its 1 Mbit/s

    config = AgentConfig(name="a", outbox=tmp_path / "a" / "outbox.db", poll_interval_s=1.0,
                         sources=AGENT_SOURCES, analytics=("motion",))  # fmt: skip
    async with Agent(ClientSettings(nats_url=nats_server.url), config) as agent:
        await eventually(agent.registered.is_set, what="registered")
        sid = (await ok(nc, "stream.create", {"source": {"url": f"file://{clip.path}"},
                                              "kind": "file", "analytics": [{"name": "motion"}]}))["stream_id"]  # fmt: skip

        async def done() -> bool:
            view = await ok(nc, "stream.get", {"stream_id": sid})
            return bool(view["status"] == "done")

        await eventually(done, timeout=90, what="the file decoded")
        day = utc_day(time.time())

        async def counted() -> dict[str, object] | None:
            result = await ok(nc, "stats.daily", {"date": day, "stream_id": sid})
            items = result["items"]
            return items[0] if items and items[0]["frames_decoded"] == clip.frames else None

        await eventually(counted, timeout=60, what="every frame counted")

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_NATS_URL=nats_server.url, VIGIL_DATA_DIR=str(tmp_path / "none"))
    proc = await asyncio.create_subprocess_exec(
        VIGIL, "stats", "daily", "--date", day, "--stream", sid, "--json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    item = orjson.loads(out)["items"][0]
    avg = item["avg_bitrate_bps"]
    print(
        f"\n20 s file at 1 Mbit/s: stats daily average {avg / 1e6:.3f} Mbit/s (packets"
        f" {true_bps / 1e6:.3f} Mbit/s), media {item['media_s']} s, uptime {item['uptime_s']} s"
    )
    assert abs(avg - true_bps) / true_bps < 0.02, (avg, true_bps)
    assert 0.9e6 < avg < 1.1e6, avg
    assert abs(item["media_s"] - spec.duration_s) < 0.1, item["media_s"]
    assert item["uptime_s"] < spec.duration_s / 2, item["uptime_s"]  # decoded faster than real time
