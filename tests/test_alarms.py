"""Why streams wait (stream view, CLI, /metrics), alarms (the subject, ack, retention), and the
host figures agents report (per agent process, checked against psutil)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import pytest
from nats.aio.client import Client

from analytics.clips import ClipSpec, write_clip
from ops.http.auth import HttpAuth
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.runtime.up import serve_http
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, eventually, ok
from tests.test_groups import Agents

VIGIL = str(Path(sys.executable).parent / "vigil")
OPEN_READS = HttpAuth.from_settings(admin_token=None, open_reads=True)


def fast(**kw: Any) -> ManagerSettings:
    return ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, heartbeat_interval_s=0.5, agent_downgrade_s=6,
                           alarm_unplaceable_s=1, **kw)  # fmt: skip


@pytest.fixture
async def agents(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Agents]:
    a = Agents(nats_server.url, tmp_path)
    try:
        yield a
    finally:
        await a.stop_all()


async def vigil(nats_url: str, tmp: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_NATS_URL=nats_url, VIGIL_DATA_DIR=str(tmp / "nodata"))
    proc = await asyncio.create_subprocess_exec(VIGIL, *args, env=env, cwd=tmp,
                                                stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_a_stream_in_a_group_no_agent_serves_says_why_everywhere(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    async with Manager(ClientSettings(nats_url=nats_server.url), fast()) as m:
        await eventually(lambda: m.master.is_master, what="master")
        await ok(nc, "agent.register", {"name": "elsewhere", "capacity": 2})
        sid = (await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/1"},
                                              "group": "lobby"}))["stream_id"]  # fmt: skip
        view = await ok(nc, "stream.get", {"stream_id": sid})
        assert view["waiting"] == {"code": "no_agent_in_group",
                                   "message": "no agent serves group lobby"}  # fmt: skip

        code, out = await vigil(nats_server.url, tmp_path, "stream", "get", sid)
        assert code == 0 and "no agent serves group lobby" in out, out

        hostport = f"127.0.0.1:{free_port()}"
        async with serve_http(m, hostport, OPEN_READS) as url, aiohttp.ClientSession() as http:
            async with http.get(f"{url}/metrics") as resp:
                text = await resp.text()
            line = next(x for x in text.splitlines() if x.startswith("vigil_streams_waiting{"))
            assert 'reason="no_agent_in_group"' in line and 'group="lobby"' in line, line
            assert line.endswith(" 1.0")
            async with http.get(f"{url}/api/v1/streams/{sid}") as resp:
                body = await resp.json()
            assert body["result"]["waiting"]["code"] == "no_agent_in_group"

        async def unplaceable() -> list[dict[str, Any]]:
            rows = await ok(nc, "alarm.list", {"active": True, "kind": "stream_unplaceable"})
            return rows["alarms"]  # type: ignore[no-any-return]

        [alarm] = await eventually(unplaceable, timeout=15, what="unplaceable alarm")
        assert alarm["source"] == "group.lobby" and "no agent serves group lobby" in alarm["reason"]

        # A group object named like the label, with a member that is not there: another reason.
        await ok(nc, "group.create", {"name": "lobby", "mode": "active_standby",
                                      "keepalive_s": 0.3, "failover_s": 1.0,
                                      "members": [{"agent": "cam-box", "priority": 1}]})  # fmt: skip
        view = await ok(nc, "stream.get", {"stream_id": sid})
        assert view["waiting"]["code"] == "no_active_member", view["waiting"]
        # A member is told the group's keep-alive, at registration and in every poll reply.
        reg = await ok(nc, "agent.register", {"name": "cam-box", "capacity": 1})
        assert reg["heartbeat_interval_s"] == 0.3
        poll = await nc.request(f"vigil.agent.{reg['agent_id']}.streams", b"{}", timeout=5)
        assert orjson.loads(poll.data)["result"]["heartbeat_interval_s"] == 0.3
        refused = await nc.request("vigil.cmd.group.delete", b'{"name": "lobby"}', timeout=5)
        error = orjson.loads(refused.data)["error"]
        assert error["code"] == "conflict" and "has 1 stream" in error["message"]


async def test_alarms_are_published_acked_and_forgotten_after_the_retention(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    seen: list[dict[str, Any]] = []

    async def on_alarm(msg: Any) -> None:
        seen.append(orjson.loads(msg.data))

    await nc.subscribe("vigil.alarm.>", cb=on_alarm)
    async with Manager(ClientSettings(nats_url=nats_server.url),
                       fast(alarm_retention_s=4)) as m:  # fmt: skip
        await eventually(lambda: m.master.is_master, what="master")
        agent_id = (await ok(nc, "agent.register", {"name": "sloppy", "capacity": 1}))["agent_id"]
        # Feedback that does not decode: refused, and an invalid_feedback alarm.
        await nc.jetstream().publish(f"vigil.feedback.{agent_id}", b'{"seq": "one"}')

        async def listed() -> list[dict[str, Any]]:
            return (await ok(nc, "alarm.list", {"kind": "invalid_feedback"}))["alarms"]  # type: ignore[no-any-return]

        [alarm] = await eventually(listed, what="invalid_feedback alarm")
        assert alarm["active"] and alarm["source"] == f"agent.{agent_id}" and not alarm["acked"]
        await eventually(lambda: any(e["type"] == "AlarmRaised" for e in seen),
                         what="the raise on vigil.alarm.>")  # fmt: skip
        code, out = await vigil(nats_server.url, tmp_path, "alarms", "ack", alarm["alarm_id"],
                                "--by", "ops@noc")  # fmt: skip
        assert code == 0, out
        [acked] = await listed()
        assert acked["acked_by"] == "ops@noc" and acked["acked_at"] and acked["active"]
        assert any(e["type"] == "AlarmAcked" and e["by"] == "ops@noc" for e in seen)
        code, out = await vigil(nats_server.url, tmp_path, "alarms", "--active")
        assert alarm["alarm_id"] in out and "acked by ops@noc" in out, out

        # Retention 4 s: JetStream drops the events (max age) and the projection forgets it.
        await eventually(_empty(listed), timeout=20, what="alarm forgotten after the retention")

        async def expired() -> bool:
            return (await nc.jetstream().stream_info("VIGIL_ALARMS")).state.messages == 0

        await eventually(expired, timeout=20, what="JetStream drops the alarm events (max age)")


def _empty(rows: Any) -> Any:
    async def check() -> bool:
        return not await rows()

    return check


async def test_heartbeat_figures_are_each_agents_own_process(
    nats_server: EmbeddedNats, nc: Client, agents: Agents, tmp_path: Path
) -> None:
    clip = write_clip(tmp_path / "live.ts", ClipSpec(width=320, height=180, fps=25,
                                                     duration_s=20, timeline=()))  # fmt: skip
    async with Manager(ClientSettings(nats_url=nats_server.url), fast()) as m:
        await eventually(lambda: m.master.is_master, what="master")
        busy = await agents.start("busy", capacity=2)
        idle = await agents.start("idle", capacity=2)
        await ok(nc, "group.create", {"name": "work", "members": [{"agent": "busy"}]})
        for _ in range(2):
            await ok(nc, "stream.create", {"source": {"url": f"file://{clip.path}"},
                                           "group": "work"})  # fmt: skip
        hostport = f"127.0.0.1:{free_port()}"
        async with serve_http(m, hostport, OPEN_READS) as url, aiohttp.ClientSession() as http:

            async def rows() -> dict[str, dict[str, Any]]:
                async with http.get(f"{url}/api/v1/agents") as resp:
                    body = await resp.json()
                out = {a["agent_id"]: a for a in body["result"]["agents"]
                       if (a.get("last_heartbeat") or {}).get("running") is not None}  # fmt: skip
                hb = out.get(busy, {}).get("last_heartbeat") or {}
                return out if len(hb.get("running", [])) == 2 and idle in out else {}

            seen = await eventually(rows, timeout=60, what="busy runs 2 streams, both report")
            vm = psutil.virtual_memory()
            for aid, name in ((busy, "busy"), (idle, "idle")):
                row = seen[aid]
                hb = row["last_heartbeat"]
                proc = psutil.Process(agents.procs[name].pid)
                assert row["host"]["pid"] == proc.pid
                rss = proc.memory_info().rss
                assert abs(hb["mem_used"] - rss) <= 0.25 * rss, (name, hb["mem_used"], rss)
                assert hb["mem_used"] < vm.used  # its own process, not the machine
                assert hb["mem_total"] == vm.total
                disk = shutil.disk_usage(tmp_path / name)
                assert hb["disk_total"] == disk.total
                assert abs(hb["disk_used"] - disk.used) <= 0.05 * disk.total
                assert 0.0 <= hb["cpu_percent"] <= 100.0 * (os.cpu_count() or 1)
                assert hb["capacity"] == 2
            assert seen[busy]["active_groups"] == ["work"] and seen[idle]["active_groups"] == []

            # CPU: the busy agent decodes two streams, the idle one nothing; psutil agrees.
            async def cpu_matches() -> bool:
                busy_ps = psutil.Process(agents.procs["busy"].pid)
                measured = await asyncio.to_thread(busy_ps.cpu_percent, 2.0)
                reported = (await rows()).get(busy, {}).get("last_heartbeat", {})
                idle_hb = (await rows()).get(idle, {}).get("last_heartbeat", {})
                if not reported or not idle_hb:
                    return False
                cpu = reported["cpu_percent"]
                print(f"\nbusy agent: heartbeat {cpu:.1f}% vs psutil {measured:.1f}%;"
                      f" idle agent {idle_hb['cpu_percent']:.1f}%")  # fmt: skip
                return bool(abs(cpu - measured) <= max(10.0, 0.5 * measured)
                            and idle_hb["cpu_percent"] < cpu)  # fmt: skip

            await eventually(cpu_matches, timeout=40, interval=0.5, what="CPU figures agree")
        code, out = await vigil(nats_server.url, tmp_path, "agent", "list")
        assert code == 0 and "busy" in out and "work" in out, out
        assert time.time() > 0


async def test_groups_over_http_and_the_cli(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    async with Manager(ClientSettings(nats_url=nats_server.url), fast()) as m:
        await eventually(lambda: m.master.is_master, what="master")
        code, out = await vigil(nats_server.url, tmp_path, "group", "create", "hq", "--mode",
                                "active_standby", "--member", "prim:1", "--member", "sec:2",
                                "--failover", "4")  # fmt: skip
        assert code == 0 and "active_standby" in out, out
        hostport = f"127.0.0.1:{free_port()}"
        auth = {"Authorization": "Bearer t0ken"}
        async with (
            serve_http(
                m, hostport, HttpAuth.from_settings(admin_token="t0ken", open_reads=True)
            ) as url,
            aiohttp.ClientSession() as http,
        ):
            async with http.post(f"{url}/api/v1/groups", json={"name": "lobby"}) as resp:
                assert resp.status == 401
            async with http.post(f"{url}/api/v1/groups", json={"name": "lobby"},
                                 headers=auth) as resp:  # fmt: skip
                assert resp.status == 201, await resp.text()
            async with http.put(f"{url}/api/v1/groups/hq", json={"failback": False},
                                headers=auth) as resp:  # fmt: skip
                body = await resp.json()
                assert body["result"]["failback"] is False and body["result"]["failover_s"] == 4
            async with http.put(f"{url}/api/v1/groups/hq", json={"failover_s": 1.0},
                                headers=auth) as resp:  # fmt: skip
                body = await resp.json()
                assert resp.status == 400 and body["error"]["details"][0]["path"] == "$.failover_s"
            async with http.get(f"{url}/api/v1/groups") as resp:
                names = [g["name"] for g in (await resp.json())["result"]["groups"]]
                assert names == ["hq", "lobby"]
            async with http.delete(f"{url}/api/v1/groups/lobby", headers=auth) as resp:
                assert resp.status == 200
            async with http.get(f"{url}/api/v1/groups/lobby") as resp:
                assert resp.status == 404
            async with http.get(f"{url}/api/v1/alarms?active=true") as resp:
                assert (await resp.json())["result"] == {"alarms": [], "active": 0}
            async with http.get(f"{url}/openapi.json") as resp:
                paths = (await resp.json())["paths"]
                assert {"/api/v1/groups/{name}", "/api/v1/alarms/{id}/ack"} <= set(paths)
        code, out = await vigil(nats_server.url, tmp_path, "group", "get", "hq")
        assert code == 0 and "failback off" in out and "prim" in out, out


async def test_a_stream_that_failed_for_good_and_a_full_outbox_raise_and_clear_alarms(
    nats_server: EmbeddedNats, nc: Client
) -> None:
    async with Manager(ClientSettings(nats_url=nats_server.url), fast()) as m:
        await eventually(lambda: m.master.is_master, what="master")
        agent_id = (await ok(nc, "agent.register", {"name": "hand", "capacity": 2}))["agent_id"]

        async def beat(alarms: list[str]) -> None:
            body = {"ts": time.time(), "alarms": alarms}
            await nc.publish(f"vigil.agent.{agent_id}.heartbeat", orjson.dumps(body))

        async def active(kind: str) -> list[dict[str, Any]]:
            await beat(alarms_now)
            return (await ok(nc, "alarm.list", {"active": True, "kind": kind}))["alarms"]  # type: ignore[no-any-return]

        alarms_now = ["outbox_full: 100000 rows unsent"]
        [full] = await eventually(lambda: active("outbox_full"), what="outbox_full alarm")
        assert full["source"] == f"agent.{agent_id}" and "100000 rows" in full["reason"]
        alarms_now = []
        await eventually(_empty(lambda: active("outbox_full")), what="outbox_full cleared")

        sid = (await ok(nc, "stream.create", {"source": {"url": "rtsp://cam/9"}}))["stream_id"]

        async def assigned() -> int:
            await beat([])
            msg = await nc.request(f"vigil.agent.{agent_id}.streams", b"{}", timeout=2)
            start = orjson.loads(msg.data)["result"]["start"]
            return int(start[0]["version"]) if start else 0

        version = await eventually(assigned, what="assignment")
        fb = {"seq": 1, "stream_id": sid, "version": version, "status": "failure", "ts": time.time(),
              "error": {"code": "invalid_params", "message": "no such codec", "fatal": True}}  # fmt: skip
        await nc.jetstream().publish(f"vigil.feedback.{agent_id}", orjson.dumps(fb),
                                     headers={"Nats-Msg-Id": f"{agent_id}:1"})  # fmt: skip
        [failed] = await eventually(lambda: active("stream_failed"), what="stream_failed alarm")
        assert failed["source"] == f"stream.{sid}" and "fatal: invalid_params" in failed["reason"]
        await ok(nc, "stream.delete", {"stream_id": sid})
        await eventually(_empty(lambda: active("stream_failed")), what="cleared on delete")
