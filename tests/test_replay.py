"""Audit and replay over a real scenario: two managers, a real agent, failures, a failover.

Given a scenario (create, assign, run, fail, restart, give up, stop, start, master failover,
delete), `vigil events audit` shows every step with its cause, `vigil events replay --at T`
equals the state observed live at T, `vigil events verify` passes, and fails with a readable diff
once a running manager's projection is tampered with.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from nats.aio.client import Client

from agent.runtime import Agent, AgentConfig
from analytics.clips import ClipSpec, write_clip
from events.jetstream import JetStreamStore
from ops.http.app import build_app
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import AGENT_SOURCES, LOOPBACK_OK, eventually, ok

VIGIL = str(Path(sys.executable).parent / "vigil")
FAST = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, master_lease_s=2, heartbeat_interval_s=0.3,
                       agent_downgrade_s=3, stream_staleness_s=30)  # fmt: skip


async def vigil(nats_url: str, cwd: Path, *args: str) -> tuple[int, str, str]:
    """Run the real console script without blocking the loop (the managers must answer)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_NATS_URL"] = nats_url
    proc = await asyncio.create_subprocess_exec(VIGIL, *args, env=env, cwd=cwd,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def status(nc: Client, sid: str) -> str:
    return str((await ok(nc, "stream.get", {"stream_id": sid}))["status"])


async def quiet_views(nc: Client, managers: list[Manager]) -> tuple[dict[str, Any], float]:
    """Live views at a moment when every manager has applied the whole log (before and after)."""
    store = JetStreamStore(nc)
    while True:
        last = await store.last_seq()
        await eventually(lambda n=last: all(m.projector.last_seq >= n for m in managers))
        streams = (await ok(nc, "stream.list", {}))["streams"]
        agents = (await ok(nc, "agent.list", {}))["agents"]
        at = time.time()  # anything stored after this is caught by the re-check below
        if await store.last_seq() == last:
            return {"seq": last, "streams": streams, "agents": agents}, at


async def test_audit_and_replay_of_a_scenario_with_a_master_failover(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    url = nats_server.url
    client = ClientSettings(nats_url=url)
    clip = write_clip(tmp_path / "clip.ts", ClipSpec(duration_s=20, timeline=()))
    m1, m2 = Manager(client, FAST), Manager(client, FAST)
    await m1.__aenter__()
    await m2.__aenter__()
    left: Manager | None = None
    agent = Agent(
        client,
        AgentConfig(name="a", outbox=tmp_path / "o.db", poll_interval_s=0.5, sources=AGENT_SOURCES),
    )
    try:
        await eventually(lambda: m1.master.is_master or m2.master.is_master, what="a master")
        first, second = (m1, m2) if m1.master.is_master else (m2, m1)
        await agent.__aenter__()
        await eventually(lambda: agent.registered.is_set(), what="agent registered")

        # A live stream runs; a dead source fails, is restarted once, and gives up.
        live = (await ok(nc, "stream.create", {"source": {"url": f"file://{clip.path}"},
                                               "request_id": "r-create"}))["stream_id"]  # fmt: skip
        dead = (await ok(nc, "stream.create", {
            "source": {"url": f"tcp://127.0.0.1:{free_port()}"},
            "autorestart": {"max_attempts": 1, "delay_s": 0.2}}))["stream_id"]  # fmt: skip

        async def settled() -> bool:
            return await status(nc, live) == "in_progress" and await status(nc, dead) == "failure" \
                and (await ok(nc, "stream.get", {"stream_id": dead}))["restarts"] == 1  # fmt: skip

        await eventually(settled, timeout=30, what="live running, dead given up")
        middle, t_middle = await quiet_views(nc, [m1, m2])

        # Stop and start by command; the master leaves; the new master assigns; delete.
        await ok(nc, "stream.patch", {"stream_id": live, "action": "stop", "request_id": "r-stop"})
        left = first
        await first.__aexit__(None, None, None)  # steps down: deletes its lease
        await eventually(lambda: second.master.is_master, timeout=10, what="failover")
        await ok(nc, "stream.patch", {"stream_id": live, "action": "start"})
        await eventually(lambda: status(nc, live), timeout=20)
        await eventually(lambda: _is(nc, live, "in_progress"), timeout=20, what="running again")
        await ok(nc, "stream.delete", {"stream_id": live, "request_id": "r-del"})

        # ---- audit: every step with its cause ----------------------------------------------
        code, out, err = await vigil(url, tmp_path, "events", "audit", live, "--json")
        assert code == 0, err
        trail = json.loads(out)
        assert trail["aggregate"] == f"stream.{live}"
        steps = [(e["event"], e["cause"], e["before"], e["after"]) for e in trail["entries"]
                 if e["applied"]]  # fmt: skip
        kinds = [s[0] for s in steps]
        assert kinds[:3] == ["StreamCreated", "StreamAssigned", "StreamRunning"], steps
        assert kinds[-1] == "StreamDeleted" and kinds.count("StreamAssigned") == 2, steps
        by_kind = {s[0]: s for s in steps}
        assert by_kind["StreamCreated"][1] == f"command stream.create (request r-create) via {first.manager_id}" \
            or "request r-create" in by_kind["StreamCreated"][1]  # fmt: skip
        assert by_kind["StreamCreated"][2:] == (None, "pending")
        stop = by_kind["StreamStopped"]
        assert "command stream.stop (request r-stop)" in stop[1]
        assert stop[2:] == ("in_progress", "stopped")
        assigns = [s for s in steps if s[0] == "StreamAssigned"]
        assert assigns[0][1].startswith(f"master epoch 1 ({first.manager_id})")
        assert assigns[1][1].startswith(f"master epoch 2 ({second.manager_id})")
        assert by_kind["StreamRunning"][1].startswith(f"agent {agent.agent_id} feedback #")
        assert by_kind["StreamDeleted"][2:] == ("in_progress", "deleted")

        code, out, err = await vigil(url, tmp_path, "events", "audit", dead)
        assert code == 0, err
        for word in (
            "StreamFailed",
            "StreamRestartScheduled",
            "StreamRequeued",
            "failure → restarting",
        ):
            assert word in out, out
        code, _, err = await vigil(url, tmp_path, "events", "audit", "s-nonexistent")
        assert code == 1 and "no events" in err

        # The same trail over HTTP.
        port = free_port()
        runner = web.AppRunner(build_app(second, open_reads=True))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/api/v1/streams/{live}/history") as r:
                    assert r.status == 200
                    body = await r.json()
                async with http.get(f"http://127.0.0.1:{port}/api/v1/streams/nope/history") as r:
                    assert r.status == 404
        finally:
            await runner.cleanup()
        assert body["result"]["entries"] == trail["entries"]

        # ---- replay --at the middle equals what was live then ----------------------------------
        code, out, err = await vigil(
            url, tmp_path, "events", "replay", "--at", repr(t_middle), "--json"
        )
        assert code == 0, err
        past = json.loads(out)
        assert past["seq"] == middle["seq"]
        assert past["streams"] == middle["streams"]
        strip = ("last_heartbeat", "load", "free")
        assert [{k: v for k, v in a.items() if k not in strip} for a in past["agents"]] == \
            [{k: v for k, v in a.items() if k not in strip} for a in middle["agents"]]  # fmt: skip

        # ---- verify: healthy, then tampered --------------------------------------------------
        await second.snapshots.maybe_write(force=True)
        code, out, err = await vigil(url, tmp_path, "events", "verify")
        assert code == 0, out + err
        assert "OK" in out and "snapshot: OK" in out
        state = second.streams.streams[dead]
        second.streams.streams[dead] = msgspec.structs.replace(state, status="stopped")
        code, out, err = await vigil(url, tmp_path, "events", "verify")
        assert code == 1, out + err
        diff = [line for line in out.splitlines() if line.startswith("  streams/")]
        assert diff == [
            f'  streams/{dead}  state.status: log "failure" ≠ live'
            f' {second.manager_id} (seq {second.projector.last_seq}) "stopped"'
        ], out
        assert "snapshot: OK" in out
    finally:
        await agent.__aexit__(None, None, None)
        for m in (m1, m2):
            if m is not left:
                await m.__aexit__(None, None, None)


async def _is(nc: Client, sid: str, want: str) -> bool:
    return await status(nc, sid) == want
