"""The master: election, server-enforced fencing, restarts with backoff, staleness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from nats.aio.client import Client

from agent.runtime import Agent, AgentConfig
from core import stream as S
from events.jetstream import JetStreamStore
from events.model import AgentRegistered, AnalyticOffer, Cause, MasterElected, StreamEvent
from events.store import Append
from ops.master.loop import lull
from ops.master.placement import BUILD_SLICE
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import AGENT_SOURCES, LOOPBACK_OK, eventually, ok

FAST = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, master_lease_s=2, heartbeat_interval_s=0.3,
                       agent_downgrade_s=3, stream_staleness_s=30)  # fmt: skip


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    async with Manager(ClientSettings(nats_url=nats_server.url), FAST) as m:
        await eventually(lambda: m.master.is_master, what="master elected")
        yield m


async def stream_events(nc: Client, stream_id: str) -> list[StreamEvent]:
    store = JetStreamStore(nc)
    return [e.event for e in await store.read(f"stream.{stream_id}")]  # type: ignore[misc]


async def test_exactly_one_master_and_a_deposed_one_is_fenced_by_the_server(
    nats_server: EmbeddedNats, nc: Client
) -> None:
    client = ClientSettings(nats_url=nats_server.url)
    async with Manager(client, FAST) as m1, Manager(client, FAST) as m2:
        await eventually(lambda: m1.master.is_master or m2.master.is_master, what="a master")
        master, standby = (m1, m2) if m1.master.is_master else (m2, m1)
        assert not standby.master.is_master
        info = await ok(nc, "master.get", {})
        assert info["manager_id"] == master.manager_id and info["epoch"] == 1

        # Someone else is elected behind the old master's back (it still holds its old fence).
        store = JetStreamStore(nc)
        cause = Cause(kind="system", name="test")
        [new_seq] = await store.append("master", [MasterElected(at=time.time(), cause=cause,
                                                                epoch=99, manager_id="intruder")])  # fmt: skip
        old_fence = master.master.fence
        assert old_fence is not None and old_fence.seq < new_seq
        # The old master decides something (an assignment): the server refuses it, and it steps
        # down at once.
        await ok(nc, "agent.register", {"name": "x", "capacity": 1})
        view = await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/1"}})
        await eventually(lambda: master.master.rejected >= 1, what="fenced write refused")
        assert master.master.stepdowns == 1
        # It may win the lease again (the intruder holds none), but only with a new epoch.
        assert master.master.epoch in (1, 100)
        events = [e async for e in store.read_all(new_seq + 1)]
        assert not any(e.event.cause.kind == "master" and e.event.cause.epoch == 1 for e in events)
        assert view["status"] == "pending"


async def test_transient_failures_restart_with_growing_delays_then_give_up(
    manager: Manager, nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    client = ClientSettings(nats_url=nats_server.url)
    async with Agent(
        client,
        AgentConfig(name="a", outbox=tmp_path / "o.db", poll_interval_s=0.5, sources=AGENT_SOURCES),
    ) as agent:
        await eventually(lambda: agent.registered.is_set())
        dead = f"tcp://127.0.0.1:{free_port()}"  # nobody listens: connection refused, not fatal
        view = await ok(nc, "stream.create", {
            "source": {"url": dead}, "kind": "stream",
            "autorestart": {"max_attempts": 3, "delay_s": 0.3, "backoff": 2, "max_delay_s": 10},
        })  # fmt: skip
        sid = view["stream_id"]

        async def gave_up() -> bool:
            events = await stream_events(nc, sid)
            return sum(isinstance(e, S.StreamFailed) for e in events) == 4 and (
                (await ok(nc, "stream.get", {"stream_id": sid}))["status"] == "failure"
            )

        await eventually(gave_up, timeout=30, what="4 failures and no more restarts")
        events = await stream_events(nc, sid)
        scheduled = [e for e in events if type(e).__name__ == "StreamRestartScheduled"]
        requeued = [e for e in events if type(e).__name__ == "StreamRequeued"]
        assert [e.attempt for e in scheduled] == [1, 2, 3]  # type: ignore[attr-defined]
        delays = [e.delay_s for e in scheduled]  # type: ignore[attr-defined]
        assert delays[0] >= 0.3 and delays[1] >= 0.6 and delays[2] >= 1.2
        assert delays == sorted(delays)
        for s, r in zip(scheduled, requeued, strict=True):
            assert r.at - s.at >= s.delay_s - 0.01  # type: ignore[attr-defined]
        failures = [e for e in events if isinstance(e, S.StreamFailed)]
        assert all(not f.error.fatal for f in failures)
        assert failures[0].error.code in (
            "source_unreachable",
            "source_read_failed",
            "source_error",
        )

        missing = (await ok(nc, "stream.create", {"source": {"url": "file:///no/such.mp4"},
                                                   "kind": "file"}))["stream_id"]  # fmt: skip
        await eventually(lambda: _status(nc, missing, "failure"), timeout=20)
        for _ in range(5):
            await manager.master.tick()
        assert not any(type(e).__name__ == "StreamRestartScheduled"
                       for e in await stream_events(nc, missing))  # fmt: skip


async def _status(nc: Client, sid: str, status: str) -> bool:
    return bool((await ok(nc, "stream.get", {"stream_id": sid}))["status"] == status)


async def test_a_stream_without_feedback_is_requeued_after_its_staleness_period(
    manager: Manager, nc: Client
) -> None:
    """An agent (spoken by hand) that heartbeats but stops sending feedback loses its stream."""
    reg = await ok(nc, "agent.register", {"name": "quiet", "capacity": 2, "analytics": []})
    agent_id = reg["agent_id"]

    async def beat() -> None:
        await nc.publish(f"vigil.agent.{agent_id}.heartbeat", orjson.dumps({"ts": time.time()}))

    sid = (await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/2"}, "staleness_s": 1.0}))[
        "stream_id"
    ]

    async def assigned() -> dict:  # type: ignore[type-arg]
        await beat()
        msg = await nc.request(f"vigil.agent.{agent_id}.streams", b"{}", timeout=2)
        start: list[dict] = orjson.loads(msg.data)["result"]["start"]  # type: ignore[type-arg]
        return start[0] if start else {}

    a = await eventually(assigned, what="assignment")
    fb = {"seq": 1, "agent_id": agent_id, "stream_id": sid, "version": a["version"],
          "status": "in_progress", "ts": time.time(), "day": "2026-11-24"}  # fmt: skip
    await nc.jetstream().publish(f"vigil.feedback.{agent_id}", orjson.dumps(fb),
                                 headers={"Nats-Msg-Id": f"{agent_id}:1"})  # fmt: skip
    await eventually(lambda: _status(nc, sid, "in_progress"), what="in_progress")

    async def requeued() -> bool:
        await beat()
        return any(type(e).__name__ == "StreamRequeued" and "no feedback" in e.reason  # type: ignore[attr-defined]
                   for e in await stream_events(nc, sid))  # fmt: skip

    await eventually(requeued, timeout=10, what="requeue for stale feedback")
    agent = await ok(nc, "agent.get", {"agent_id": agent_id})
    assert agent["status"] == "ready"  # heartbeats kept it ready; only the stream moved


async def test_silent_agent_is_downgraded_recovers_on_heartbeat_and_is_removed_after_retention(
    nats_server: EmbeddedNats, nc: Client
) -> None:
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, heartbeat_interval_s=0.3, agent_downgrade_s=1,
                               agent_retention_s=2)  # fmt: skip
    async with Manager(ClientSettings(nats_url=nats_server.url), settings) as m:
        await eventually(lambda: m.master.is_master)
        agent_id = (await ok(nc, "agent.register", {"name": "flaky", "capacity": 1}))["agent_id"]

        async def status() -> str:
            reply = await nc.request(
                "vigil.cmd.agent.get", orjson.dumps({"agent_id": agent_id}), timeout=2
            )
            body = orjson.loads(reply.data)
            return str(body["result"]["status"]) if body["ok"] else body["error"]["code"]

        await eventually(lambda: _eq(status(), "not_ready"), timeout=10, what="downgrade")
        await nc.publish(f"vigil.agent.{agent_id}.heartbeat", orjson.dumps({"ts": time.time()}))
        await eventually(lambda: _eq(status(), "ready"), timeout=10, what="recovery on heartbeat")
        await eventually(lambda: _eq(status(), "not_ready"), timeout=10, what="downgrade again")
        await eventually(
            lambda: _eq(status(), "not_found"), timeout=10, what="removal after retention"
        )
        store = JetStreamStore(nc)
        kinds = [type(e.event).__name__ for e in await store.read(f"agent.{agent_id}")]
        assert kinds == [
            "AgentRegistered",
            "AgentDowngraded",
            "AgentRecovered",
            "AgentDowngraded",
            "AgentRemoved",
        ]


async def _eq(value: object, expected: str) -> bool:
    return await value == expected  # type: ignore[misc]


async def test_a_stream_assigned_but_never_started_is_requeued_after_its_deadline(
    nats_server: EmbeddedNats, nc: Client
) -> None:
    """An agent (spoken by hand) that heartbeats and polls but never reports the stream running
    (nor failed) loses it after the start deadline, with the reason in the log."""
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, stream_start_deadline_s=1.0)
    async with Manager(ClientSettings(nats_url=nats_server.url), settings):
        reg = await ok(nc, "agent.register", {"name": "mute", "capacity": 2})
        agent_id = reg["agent_id"]
        sid = (await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/3"}}))["stream_id"]

        async def requeued() -> bool:
            await nc.publish(f"vigil.agent.{agent_id}.heartbeat",
                             orjson.dumps({"ts": time.time()}))  # fmt: skip
            return any(type(e).__name__ == "StreamRequeued" and "not started" in e.reason  # type: ignore[attr-defined]
                       for e in await stream_events(nc, sid))  # fmt: skip

        await eventually(requeued, timeout=30, what="requeue for a stream never started")


async def test_placement_over_more_agents_than_one_pass_looks_at_picks_the_best(
    manager: Manager, nc: Client
) -> None:
    # given more agents than one placement pass looks at (the candidates are built over passes)
    n = BUILD_SLICE * 2 + 100
    cause = Cause(kind="system", name="test")
    agents = [Append(f"agent.a{i:05}", AgentRegistered(
        at=time.time(), cause=cause, agent_id=f"a{i:05}", name=f"a{i:05}", capacity=2,
        analytics=(AnalyticOffer(name="motion"),), downgrade_s=3600,
    )) for i in range(n)]  # fmt: skip
    big = "a00777"  # the one with the most free slots, neither first nor last
    agents[777] = Append(f"agent.{big}", AgentRegistered(
        at=time.time(), cause=cause, agent_id=big, name=big, capacity=10,
        analytics=(AnalyticOffer(name="motion"),), downgrade_s=3600,
    ))  # fmt: skip
    seqs = await manager.store.append_batch(agents)
    await manager.projector.wait_for(max(seqs), timeout=60)
    # when two streams are created
    first = await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/1"}})
    second = await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/2"}})

    # then the first goes to the agent with the most free slots (all have a free share of 1),
    # the second to the first of the others by id (a00777 is now at 9/10)
    def agent_of(view: dict[str, object]) -> object:
        state = manager.streams.streams.get(str(view["stream_id"]))
        return state.agent_id if state is not None else None

    await eventually(lambda: agent_of(first) is not None and agent_of(second) is not None,
                     timeout=60, what="both streams placed")  # fmt: skip
    assert (agent_of(first), agent_of(second)) == (big, "a00000")


async def test_lull_lets_ready_work_run_first_and_still_returns_under_a_flood() -> None:
    # given work that is ready now
    ran: list[str] = []
    loop = asyncio.get_running_loop()
    loop.call_soon(ran.append, "command")
    # when the master lulls, then that work ran before it goes on
    await lull()
    assert ran == ["command"]

    # given a flood: something is always ready
    spins = 0
    flooding = True

    def again() -> None:
        nonlocal spins
        spins += 1
        if flooding:
            loop.call_soon(again)

    loop.call_soon(again)
    try:
        # when the master lulls, then it still returns (bounded), after letting the flood run
        await asyncio.wait_for(lull(), timeout=10)
        assert spins > 1
    finally:
        flooding = False
