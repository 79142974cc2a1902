"""A 3-node JetStream cluster: every vigil stream replicated three times; losing a server keeps
commands, feedback and the HTTP API working. And the log's identity: a store deleted and
replaced under running managers is noticed, never mixed with what they folded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from nats.aio.client import Client

from agent.runtime import Agent, AgentConfig
from analytics.clips import ClipSpec, write_clip
from events.connection import connect
from ops.http.app import build_app
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedCluster, EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import AGENT_SOURCES, LOOPBACK_OK, command, eventually, ok

R3 = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, replicas=3, master_lease_s=3,
                     heartbeat_interval_s=0.5, agent_downgrade_s=6)  # fmt: skip


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[EmbeddedCluster]:
    async with EmbeddedCluster(tmp_path / "cluster", 3) as c:
        yield c


async def test_r3_streams_survive_the_loss_of_any_one_server(
    cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    client = ClientSettings(nats_url=cluster.url)
    clip = write_clip(tmp_path / "cam.ts", ClipSpec(duration_s=4)).path
    nc = await connect(client, name="test")
    async with Manager(client, R3) as manager:
        js = nc.jetstream()
        for name in ("VIGIL_EVENTS", "VIGIL_FEEDBACK", "VIGIL_RECORDS", "KV_VIGIL_MASTER",
                     "KV_VIGIL_REQUESTS"):  # fmt: skip
            assert (await js.stream_info(name)).config.num_replicas == 3, name
        runner = web.AppRunner(build_app(manager, open_reads=True))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        config = AgentConfig(name="edge", outbox=tmp_path / "edge" / "o.db", poll_interval_s=0.5,
                             sources=AGENT_SOURCES)  # fmt: skip
        try:
            async with Agent(client, config):
                live = await ok(nc, "stream.create",
                                {"source": {"url": f"file://{clip}"}, "kind": "stream"})  # fmt: skip
                await eventually(lambda: _status(nc, live["stream_id"], "in_progress"),
                                 timeout=60, what="running")  # fmt: skip
                # Kill the server leading the event log: the others elect a leader, and on it goes.
                leader = (await js.stream_info("VIGIL_EVENTS")).cluster.leader  # type: ignore[union-attr]
                victim = next(
                    s for s in cluster.servers if s.cluster and s.cluster.server_name == leader
                )
                victim.kill()
                created = await eventually(lambda: _create(nc), timeout=60,
                                           what="a command after losing a server")  # fmt: skip
                today = time.strftime("%Y-%m-%d", time.gmtime())

                async def counted_more(before: int) -> bool:
                    got = await command(nc, "stats.daily", {"date": today})
                    return bool(got.get("ok") and got["result"]["total"]["frames_decoded"] > before)

                first = (await ok(nc, "stats.daily", {"date": today}))["total"]["frames_decoded"]
                await eventually(lambda: counted_more(first), timeout=60,
                                 what="feedback still counted")  # fmt: skip
                async with aiohttp.ClientSession() as http:
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/streams") as r:
                        body = await r.json()
                        assert r.status == 200
                        assert created in {s["stream_id"] for s in body["result"]["streams"]}
        finally:
            await runner.cleanup()
    await nc.close()


async def _create(nc: Client) -> str | None:
    reply = await command(nc, "stream.create", {"source": {"url": "rtsp://cam.example/new"}})
    return reply["result"]["stream_id"] if reply.get("ok") else None


async def _status(nc: Client, sid: str, status: str) -> bool:
    reply = await command(nc, "stream.get", {"stream_id": sid})
    return bool(reply.get("ok") and reply["result"]["status"] == status)


async def test_a_store_replaced_under_running_managers_is_noticed_not_mixed(
    nats_server: EmbeddedNats, nc: Client
) -> None:
    client = ClientSettings(nats_url=nats_server.url)
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1)
    async with Manager(client, settings) as a, Manager(client, settings, run_master=False) as b:
        sid = (await ok(nc, "stream.create", {"source": {"url": "rtsp://cam.example/1"}}))[
            "stream_id"
        ]
        log_id = a.log_identity.log_id
        assert log_id and b.log_identity.log_id == log_id
        # Someone deletes the log and another one starts in its place.
        js = nc.jetstream()
        await js.delete_stream("VIGIL_EVENTS")
        async with Manager(client, settings, run_master=False) as fresh:  # recreates a new log
            assert fresh.log_identity.log_id != log_id

            async def noticed() -> bool:
                return a.readiness() is not None and b.readiness() is not None

            await eventually(noticed, timeout=30, what="both managers notice the new log")
            assert "replaced" in (a.readiness() or "") and "replaced" in (b.readiness() or "")
            for m in (a, b):  # they refuse to answer from the old state
                reply = await m.router.dispatch("stream.get", b'{"stream_id": "%s"}' % sid.encode())
                assert b'"unavailable"' in reply
            assert fresh.streams.get(sid) is None  # and the new log never got the old state

        # A manager pinned to the old log refuses to start on the new one.
        pinned = ManagerSettings(**LOOPBACK_OK, expected_log_id=log_id)
        with pytest.raises(SystemExit, match="deleted or replaced"):
            async with Manager(client, pinned, run_master=False):
                pass
