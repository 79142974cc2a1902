"""Supervised parts: a projector that fails inside a running manager is noticed at once (503,
``unavailable``), never serves reads from a half-applied state, and restarts by rebuilding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from nats.aio.client import Client

from events.aio import Restart, Supervisor
from events.model import Event
from ops.http.app import build_app
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, command, eventually, ok

FAST = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, master_lease_s=2)


@pytest.fixture
async def served(nats_server: EmbeddedNats) -> AsyncIterator[tuple[Manager, str]]:
    async with Manager(ClientSettings(nats_url=nats_server.url), FAST) as m:
        runner = web.AppRunner(build_app(m, token=None))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield m, f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()


async def test_a_failing_projector_turns_readyz_503_and_restarts_by_rebuilding(
    served: tuple[Manager, str], nc: Client
) -> None:
    manager, base = served
    first = await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/1"}})
    broken = True
    original = manager.streams.apply

    def apply(seq: int, aggregate: str, event: Event) -> None:  # a projection bug, on demand
        if broken and aggregate != f"stream.{first['stream_id']}":
            raise RuntimeError("projection bug")
        original(seq, aggregate, event)

    manager.streams.apply = apply  # type: ignore[method-assign]
    reply = await command(nc, "stream.create", {"source": {"url": "rtsp://cam/2"}})
    assert reply["error"]["code"] == "unavailable"  # appended, but not served from a dead part
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/readyz") as r:
            body = await r.json()
            assert r.status == 503 and body["error"]["code"] == "unavailable"
            assert "projector" in body["error"]["message"]
        listed = await command(nc, "stream.list", {})
        assert listed["error"]["code"] == "unavailable"  # no read from a half-applied state
        assert manager.supervisor.report()["projector"][1] >= 1  # restarting

        broken = False  # the bug is gone: the next restart rebuilds and serves again

        async def ready() -> bool:
            async with http.get(f"{base}/readyz") as r:
                return r.status == 200

        await eventually(ready, timeout=60, what="readyz 200 after the rebuild")
    listed = await ok(nc, "stream.list", {})
    assert len(listed["streams"]) == 2  # the event appended while it was down is there


async def test_a_part_without_restart_takes_the_process_down() -> None:
    async def dies() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    async def lives() -> None:
        await asyncio.Event().wait()

    with pytest.raises(ExceptionGroup) as raised:
        async with Supervisor("test") as sup:
            sup.spawn("lives", lives, restart=Restart())
            sup.spawn("dies", dies)
            await asyncio.Event().wait()  # cancelled by the TaskGroup when `dies` dies
    assert raised.group_contains(RuntimeError, match="boom")


async def test_a_part_with_restart_is_restarted_with_backoff() -> None:
    runs = 0
    healthy = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("transient")
        healthy.set()
        await asyncio.Event().wait()

    async with Supervisor("test") as sup:
        sup.spawn("flaky", flaky, restart=Restart(initial_s=0.01, max_s=0.05))
        await asyncio.wait_for(healthy.wait(), 10)
        assert sup.healthy("flaky") and sup.report()["flaky"][1] == 2
