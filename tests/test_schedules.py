"""Schedules and autoscaling with a real nats-server, a manager and real ``vigil agent``
processes launched by the providers: a schedule 20 s ahead with the ``local`` provider; the lead
time from a learned startup with the ``command`` provider (sequential); scale-in after ``until``
drains (streams move before their agent is removed); the Red5-shaped HTTP API and its errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
from aiohttp import web
from nats.aio.client import Client

from analytics.clips import ClipSpec, write_clip
from core import scaleconfig as SC
from core import scaling as SG
from core import stream as S
from events.jetstream import JetStreamStore
from events.model import (
    AgentDraining,
    AgentRegistered,
    Cause,
    ScaleAgentRemoved,
    ScaleLaunchDecided,
    ScaleLaunchRegistered,
    ScaleLaunchStarted,
    ScheduleStarted,
    StreamEvent,
    StreamRequeued,
)
from events.store import StoredEvent
from ops.http.app import build_app
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, command, eventually, ok

VIGIL = str(Path(sys.executable).parent / "vigil")
TOKEN = "sched-admin"


def settings(tmp: Path, **kw: Any) -> ManagerSettings:
    values: dict[str, Any] = {**LOOPBACK_OK, "master_tick_s": 0.1, "heartbeat_interval_s": 0.5,
                              "autoscale_dir": str(tmp / "autoscale"), "schedule_buffer_s": 2.0}  # fmt: skip
    values.update(kw)
    return ManagerSettings(**values)


def kill_launched(root: Path) -> None:
    """Stop every agent a provider left behind under ``root`` (its pid files, and any process
    whose command line names a path there), whoever launched it."""
    for pid_file in [*root.glob("*/agent.pid"), *root.glob("*.pid")]:
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(arg).startswith(str(root)) for arg in proc.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                proc.kill()


@pytest.fixture
async def manager(nats_server: EmbeddedNats, tmp_path: Path) -> AsyncIterator[Manager]:
    try:
        async with Manager(ClientSettings(nats_url=nats_server.url), settings(tmp_path),
                           stop_launched=True) as m:  # fmt: skip
            await eventually(lambda: m.master.is_master, what="master elected")
            yield m
    finally:
        kill_launched(tmp_path / "autoscale")


@pytest.fixture
def clip(tmp_path: Path) -> str:
    spec = ClipSpec(width=160, height=92, fps=10, duration_s=20, timeline=())
    return f"file://{write_clip(tmp_path / 'live.ts', spec).path}"


async def log(nc: Client) -> list[StoredEvent]:
    return [e async for e in JetStreamStore(nc).read_all()]


async def scaling(nc: Client, group: str) -> dict[str, Any]:
    return await ok(nc, "scaling.get", {"name": group})


async def ready_agents(nc: Client, group: str, n: int) -> bool:
    return (await scaling(nc, group))["ready"] >= n


async def streams_in(nc: Client, group: str, url: str, n: int) -> list[str]:
    return [(await ok(nc, "stream.create", {"source": {"url": url}, "kind": "stream",
                                            "group": group}))["stream_id"] for _ in range(n)]  # fmt: skip


async def views(nc: Client, ids: list[str]) -> list[dict[str, Any]]:
    return [await ok(nc, "stream.get", {"stream_id": s}) for s in ids]


def registrations(events: list[StoredEvent], prefix: str) -> dict[str, float]:
    """Agent name → when it first registered, for names starting with ``prefix``."""
    out: dict[str, float] = {}
    for e in events:
        if isinstance(e.event, AgentRegistered) and e.event.name.startswith(prefix):
            out.setdefault(e.event.name, e.event.at)
    return out


# ---- acceptance: a schedule 20 s ahead with the local provider ---------------------------------


async def test_a_schedule_20s_ahead_brings_the_group_to_2_agents_before_its_date_local(
    manager: Manager, nc: Client, clip: str
) -> None:
    await ok(nc, "launch.create", {"name": "edge", "provider": "local", "capacity": 2,
                                   "startup_s": 6, "deadline_s": 60})  # fmt: skip
    # between events the group has no agent at all (max 0): only the schedule brings them
    await ok(nc, "policy.create", {"name": "lobby", "launch": "edge", "min_agents": 0,
                                   "max_agents": 0})  # fmt: skip
    ids = await streams_in(nc, "lobby", clip, 4)
    date_ms = int((time.time() + 20) * 1000)
    created = await ok(nc, "schedule.create", {
        "eventName": "auction", "date": str(date_ms), "buffer_s": 4,
        "data": {"group": "lobby", "region": [{"name": "local",
                                                "info": {"min_agents": "2", "max_agents": "2"}}]},
    })  # fmt: skip
    assert created["state"] == "pending" and created["date"] == str(date_ms)
    plan = created["plan"]
    assert plan["mode"] == "parallel" and plan["agents_to_add"] == 2 and plan["lead_s"] == 10
    assert plan["startup_from"].startswith("default") and not plan["fixed"]

    await eventually(lambda: ready_agents(nc, "lobby", 2), timeout=120, interval=0.2,
                     what="2 agents in group lobby")  # fmt: skip
    events = await log(nc)
    date = date_ms / 1000
    [started] = [e.event for e in events if isinstance(e.event, ScheduleStarted)]
    assert abs(started.at - (date - 10)) < 1.0, (started.at - date, started.plan)
    regs = registrations(events, "lobby-auto-")
    assert len(regs) == 2
    early = {name: round(date - at, 2) for name, at in regs.items()}
    print(f"\nregistered before the date by (s): {early}; started {date - started.at:.2f}s early")
    assert all(at < date for at in regs.values()), early

    async def spread() -> bool:
        rows = await views(nc, ids)
        on = [v["agent_id"] for v in rows if v["status"] == "in_progress"]
        return len(on) == 4 and len(set(on)) == 2

    await eventually(spread, timeout=60, what="the 4 streams in progress on both agents")

    async def launched_run_them() -> bool:
        # the master links each launch to the agent that registered for it on its next tick
        by_agent = {v["agent_id"] for v in await views(nc, ids)}
        return by_agent == {a["agent_id"] for a in (await scaling(nc, "lobby"))["live"]}

    await eventually(launched_run_them, timeout=30, what="the streams on the launched agents")

    async def done() -> dict[str, Any]:
        s = await ok(nc, "schedule.get", {"eventName": "auction"})
        return s if s["state"] == "done" else {}

    finished = await eventually(done, timeout=30, what="the schedule done at its date")
    assert finished["plan"]["fixed"] and "policy" in finished["reason"]
    policy = await ok(nc, "policy.get", {"name": "lobby"})
    assert (policy["min_agents"], policy["max_agents"], policy["set_by"]) == (2, 2, "master")


# ---- acceptance: the lead time from a learned startup (command provider, sequential) ----------


def commands_file(tmp: Path) -> Path:
    """A command provider that starts an agent 1 s late, in the background (as a cloud would)."""
    script = tmp / "launch.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"echo $$ > {tmp}/cmd/$VIGIL_SCALE_AGENT_NAME.pid\n"
        "sleep 1\n"
        f'exec {VIGIL} agent --name "$VIGIL_SCALE_AGENT_NAME" --group "$VIGIL_SCALE_GROUP"'
        f' --capacity "$VIGIL_SCALE_CAPACITY" --outbox "{tmp}/cmd/$VIGIL_SCALE_AGENT_NAME.db"'
        f" --media-root {tmp}\n"
    )  # fmt: skip
    (tmp / "cmd").mkdir()
    path = tmp / "commands.toml"
    path.write_text(
        "[commands.sleepy]\n"
        f'add = "setsid sh {script} > {tmp}/cmd/{{launch_id}}.log 2>&1 &"\n'
        f'remove = "kill $(cat {tmp}/cmd/{{agent_name}}.pid)"\n'
        "timeout_s = 10\n"
    )  # fmt: skip
    return path


async def test_a_3_agent_schedule_starts_at_the_lead_time_learned_from_measured_startups(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    s = settings(tmp_path, scale_commands_file=str(commands_file(tmp_path)))
    try:
        async with Manager(ClientSettings(nats_url=nats_server.url), s) as m:
            await eventually(lambda: m.master.is_master, what="master elected")
            await _learned_lead_time(nc)
    finally:
        kill_launched(tmp_path / "cmd")


async def _learned_lead_time(nc: Client) -> None:
    await ok(nc, "launch.create", {"name": "sleepy", "provider": "command", "command": "sleepy",
                                   "capacity": 2, "startup_s": 30, "deadline_s": 60})  # fmt: skip
    assert not (await ok(nc, "launch.get", {"name": "sleepy"}))["parallel"]
    # learn: a warm-up group of 2 agents with the same launch config (one after another)
    await ok(nc, "policy.create", {"name": "warm", "launch": "sleepy", "min_agents": 2,
                                   "max_agents": 2})  # fmt: skip
    await eventually(lambda: ready_agents(nc, "warm", 2), timeout=90, interval=0.2,
                     what="2 warm-up agents")  # fmt: skip
    learned = await eventually(lambda: _learned(nc, 2), timeout=10, what="2 measured startups")
    took = [e.event.took_s for e in await log(nc) if isinstance(e.event, ScaleLaunchRegistered)]
    assert learned["startup_learned_s"] == pytest.approx(statistics.median(took), abs=1e-3)
    startup = learned["startup_learned_s"]
    print(f"\nmeasured startups {took} s; learned {startup} s")
    assert 1.0 <= startup < 20

    await ok(nc, "policy.create", {"name": "big", "launch": "sleepy", "min_agents": 0,
                                   "max_agents": 0})  # fmt: skip
    lead = 3 * startup + 2.0
    date_ms = int((time.time() + lead + 6) * 1000)
    view = await ok(nc, "schedule.create", {
        "eventName": "concert", "date": date_ms, "buffer_s": 2,
        "data": {"group": "big", "region": [{"name": "hall", "info": {"min_agents": 3}}]},
    })  # fmt: skip
    shown = view["plan"]
    assert shown["mode"] == "sequential" and shown["agents_to_add"] == 3
    assert shown["startup_s"] == startup and shown["lead_s"] == pytest.approx(lead, abs=0.01)
    assert shown["formula"].startswith(f"date − (3 × {startup:g} s + 2 s)")
    assert "median of 2" in shown["startup_from"]
    assert int(shown["start"]) == pytest.approx(date_ms - lead * 1000, abs=20)

    async def started() -> ScheduleStarted | None:
        found = [e.event for e in await log(nc) if isinstance(e.event, ScheduleStarted)
                 and e.event.schedule == "concert"]  # fmt: skip
        return found[0] if found else None

    event = await eventually(started, timeout=lead + 20, interval=0.1, what="the start")
    date = date_ms / 1000
    print(f"planned start date − {lead:.3f}s; started at date − {date - event.at:.3f}s")
    assert abs(event.at - (date - lead)) < 0.6
    p = event.plan
    assert (p.mode, p.agents_to_add, p.startup_s, p.buffer_s, p.startup_samples) == (
        "sequential",
        3,
        startup,
        2.0,
        2,
    )
    after = await ok(nc, "schedule.get", {"eventName": "concert"})
    assert after["plan"]["fixed"] and after["plan"]["startup_s"] == startup
    assert after["plan"]["lead_s"] == pytest.approx(lead, abs=0.01)

    await eventually(lambda: ready_agents(nc, "big", 3), timeout=90, interval=0.2,
                     what="3 agents in group big")  # fmt: skip
    events = await log(nc)
    decided = [e.event for e in events if isinstance(e.event, ScaleLaunchDecided)
               and e.event.group == "big"]  # fmt: skip
    regs = registrations(events, "big-auto-")
    assert len(decided) == 3 and len(regs) == 3
    for before, nxt in zip(sorted(regs.values()), [d.at for d in decided[1:]], strict=False):
        assert nxt >= before  # one after another: each decided once the previous registered
    print("registered relative to the date (s):",
          {n: round(at - date, 2) for n, at in sorted(regs.items())})  # fmt: skip


async def _learned(nc: Client, n: int) -> dict[str, Any]:
    view = await ok(nc, "launch.get", {"name": "sleepy"})
    return view if len(view["startup_samples"]) >= n else {}


# ---- acceptance: scale-in drains ---------------------------------------------------------------


async def test_after_until_the_group_returns_to_its_base_and_scale_in_drains_first(
    manager: Manager, nc: Client, clip: str
) -> None:
    await ok(nc, "launch.create", {"name": "edge", "capacity": 4, "startup_s": 3})
    await ok(nc, "policy.create", {"name": "lobby", "launch": "edge", "min_agents": 1,
                                   "max_agents": 1})  # fmt: skip
    await eventually(lambda: ready_agents(nc, "lobby", 1), timeout=60, what="the base agent")
    date_ms = int((time.time() + 8) * 1000)
    until_ms = date_ms + 14_000
    await ok(nc, "schedule.create", {
        "eventName": "rush", "date": date_ms, "until": until_ms, "buffer_s": 1,
        "data": {"group": "lobby", "region": [{"name": "r", "info": {"min_agents": 3}}]},
    })  # fmt: skip
    await eventually(lambda: ready_agents(nc, "lobby", 3), timeout=60, what="3 agents")
    ids = await streams_in(nc, "lobby", clip, 4)

    async def spread() -> set[str]:
        rows = await views(nc, ids)
        on = {v["agent_id"] for v in rows if v["status"] == "in_progress"}
        return on if len([v for v in rows if v["status"] == "in_progress"]) == 4 else set()

    holders = await eventually(spread, timeout=60, what="4 streams in progress")
    assert len(holders) >= 2, holders  # they spread over the event's agents

    async def back_to_one() -> bool:
        g = await scaling(nc, "lobby")
        removed = [e for e in g["history"] if e["status"] == "removed"]
        return g["ready"] == 1 and len(removed) == 2 and g["bounds_from"] == "policy lobby"

    await eventually(back_to_one, timeout=60, interval=0.2, what="back to the base: 1 agent")
    rows = await eventually(lambda: _all_running(nc, ids), timeout=60,
                            what="every stream running on the agent left")  # fmt: skip
    assert len({v["agent_id"] for v in rows}) == 1
    schedule = await ok(nc, "schedule.get", {"eventName": "rush"})
    assert schedule["state"] == "done" and "base policy" in schedule["reason"]

    # the log: each removed agent was drained first, its streams moved (requeued with the drain's
    # reason) before its removal was decided, and no stream was lost
    events = await log(nc)
    drained = {e.event.agent_id: e.seq for e in events if isinstance(e.event, AgentDraining)}
    removed = {e.event.agent_id: e.seq for e in events if isinstance(e.event, ScaleAgentRemoved)}
    assert set(removed) == set(drained) and len(removed) == 2
    states: dict[str, S.StreamState | None] = {}
    for e in events:
        if isinstance(e.event, StreamEvent):
            states[e.event.stream_id] = S.evolve(states.get(e.event.stream_id), e.event)
        if isinstance(e.event, ScaleAgentRemoved):
            held = [sid for sid, st in states.items()
                    if st is not None and st.is_live and st.agent_id == e.event.agent_id]  # fmt: skip
            assert not held, f"{e.event.agent_id} removed while it held {held}"
    moved = [e.event for e in events if isinstance(e.event, StreamRequeued)
             and "draining" in e.event.reason]  # fmt: skip
    assert moved and all(drained[a] < removed[a] for a in removed)
    assert {v["status"] for v in await views(nc, ids)} == {"in_progress"}


async def _all_running(nc: Client, ids: list[str]) -> list[dict[str, Any]]:
    rows = await views(nc, ids)
    for v in rows:  # none lost; a pending one always says why
        assert v["status"] in ("pending", "in_progress"), v
        if v["status"] == "pending" and v["agent_id"] is None:
            assert v["waiting"] and v["waiting"]["message"], v
    return rows if all(v["status"] == "in_progress" for v in rows) else []


# ---- acceptance: the Red5-shaped API -----------------------------------------------------------


@pytest.fixture
async def http(manager: Manager) -> AsyncIterator[str]:
    runner = web.AppRunner(build_app(manager, token=TOKEN))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_red5_api_create_get_list_update_delete_and_errors_naming_the_field(
    manager: Manager, nc: Client, http: str
) -> None:
    await ok(nc, "launch.create", {"name": "default", "startup_s": 120})
    await ok(nc, "policy.create", {"name": "lobby", "launch": "default", "min_agents": 0,
                                   "max_agents": 0})  # fmt: skip
    date = str(int((time.time() + 3600) * 1000))
    body = {"eventName": "auction", "date": date, "data": {"nodeGroup": "lobby", "region": [
        {"name": "us-east-1", "info": {"min_agents": "11", "max_agents": "20"}}]}}  # fmt: skip
    token = {"accessToken": TOKEN}
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{http}/api/v1/schedules", json=body, params=token) as r:
            assert r.status == 201, await r.text()
            made = await r.json()
        assert {"id", "eventName", "date", "data", "state"} <= set(made)
        assert (made["eventName"], made["date"], made["state"]) == ("auction", date, "pending")
        assert made["data"]["group"] == "lobby" and isinstance(made["id"], int)
        assert made["data"]["region"] == [{"name": "us-east-1",
                                           "info": {"min_agents": 11, "max_agents": 20}}]  # fmt: skip
        # the arithmetic Red5 leaves to the operator, done: local launches are parallel
        assert made["plan"]["lead_s"] == 120 + 2 and made["plan"]["agents_to_add"] == 11

        async with s.post(f"{http}/api/v1/schedules", json=body, params=token) as r:
            dup = await r.json()
            assert r.status == 409 and dup["error"]["code"] == "conflict", dup
            assert dup["errorMessage"] and isinstance(dup["timestamp"], int) and not dup["ok"]
            assert dup["error"]["details"][0]["path"] == "$.eventName"

        for bad, status, path in (
            ({**body, "eventName": "b1", "date": "tomorrow"}, 400, "$.date"),
            ({**body, "eventName": "b2", "date": "1537525200000"}, 400, "$.date"),
            ({**body, "eventName": "b3", "data": {"group": "nope", "region": body["data"]["region"]}},
             404, "$.data.group"),
            ({**body, "eventName": "b4", "data": {"launchConfig": "nope", "scalePolicy": "new",
                                                   "region": body["data"]["region"]}},
             404, "$.data.launch"),
            ({**body, "eventName": "b5", "data": {"launch": "default", "policy": "lobby",
                                                   "group": "other", "region": body["data"]["region"]}},
             409, "$.data.policy"),
            ({**body, "eventName": "b6", "data": {"group": "lobby", "region": [
                {"name": "x", "info": {"min_agents": "many"}}]}}, 400,
             "$.data.region[0].info.min_agents"),
        ):  # fmt: skip
            async with s.post(f"{http}/api/v1/schedules", json=bad, params=token) as r:
                reply = await r.json()
                assert r.status == status, (bad, reply)
                assert reply["error"]["details"][0]["path"] == path, reply
                assert reply["errorMessage"] == reply["error"]["message"] and reply["timestamp"]

        async with s.get(f"{http}/api/v1/schedules/auction", params=token) as r:
            one = await r.json()
            assert r.status == 200 and one["id"] == made["id"] and one["plan"]["formula"]
        async with s.get(f"{http}/api/v1/schedules", params=token) as r:
            rows = await r.json()
            assert r.status == 200 and [x["eventName"] for x in rows] == ["auction"]

        later = str(int(date) + 60_000)
        update = {"eventName": "auction", "date": later, "data": {"nodeGroup": "lobby", "region": [
            {"name": "us-east-1", "info": {"min_agents": "15", "max_agents": "20"}}]}}  # fmt: skip
        async with s.put(f"{http}/api/v1/schedules/auction", json=update, params=token) as r:
            changed = await r.json()
            assert r.status == 200, changed
            assert changed["date"] == later and changed["version"] == 2
            assert changed["data"]["region"][0]["info"]["min_agents"] == 15

        async with s.post(f"{http}/api/v1/schedules", json=body) as r:  # no token
            refused = await r.json()
            assert r.status == 401 and refused["errorMessage"] and refused["timestamp"]
        async with s.get(f"{http}/api/v1/schedules/none", params=token) as r:
            assert r.status == 404 and (await r.json())["errorMessage"]

        async with s.delete(f"{http}/api/v1/schedules/auction", params=token) as r:
            gone = await r.json()
            assert r.status == 200 and gone["state"] == "cancelled"
        async with s.put(f"{http}/api/v1/schedules/auction", json=update, params=token) as r:
            assert r.status == 409  # it no longer runs: an update is refused
        async with s.post(f"{http}/api/v1/schedules", json=body, params=token) as r:
            again = await r.json()  # the name is free again: a new schedule, a new id
            assert r.status == 201 and again["id"] > made["id"]

    async with aiohttp.ClientSession() as s, s.get(f"{http}/openapi.json") as r:
        doc = await r.json()
        assert {"get", "post"} <= set(doc["paths"]["/api/v1/schedules"])
        assert "eventName" in doc["components"]["schemas"]["CreateScheduleReq"]["required"]
    cli = os.environ.copy()
    cli.update(VIGIL_NATS_URL=manager.client.nats_url, VIGIL_DATA_DIR="/nonexistent")
    proc = await asyncio.create_subprocess_exec(VIGIL, "schedule", "get", "auction", env=cli,
                                                stdout=asyncio.subprocess.PIPE)  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and b"lead" in out and b"auction" in out, out
    print("\n" + out.decode())
    reply = await command(nc, "schedule.list", {"state": "pending"})
    assert [x["eventName"] for x in reply["result"]["schedules"]] == ["auction"]


# ---- a new master continues what an old one decided ------------------------------------------


async def test_a_launch_decided_by_a_master_that_died_before_its_provider_ran_is_run_once(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    """The log holds a launch an earlier master decided (and nothing else about it): the next
    master runs the provider for it, links the agent, and decides nothing more."""
    store = JetStreamStore(nc)
    await store.ensure()
    old = Cause(kind="master", name="scaling.launch", manager_id="m-dead", epoch=1)
    user = Cause(kind="command", name="test")
    [launch] = SC.decide_launch(None, SC.SetLaunchConfig(name="edge", at=time.time(), cause=user,
                                                          config=SC.LaunchConfig(), create=True))  # fmt: skip
    [policy] = SC.decide_policy(None, SC.SetPolicy(
        name="lobby", at=time.time(), cause=user, create=True,
        config=SC.PolicyConfig(group="lobby", launch="edge", min_agents=1, max_agents=1)))  # fmt: skip
    [decided] = SG.decide(None, SG.DecideLaunch(group="lobby", at=time.time(), cause=old,
                                                launch="edge", provider="local", deadline_s=60,
                                                target=1, reason="min 1 of policy lobby"))  # fmt: skip
    await store.append("launch.edge", [launch])
    await store.append("policy.lobby", [policy])
    await store.append("scaling.lobby", [decided])
    try:
        async with Manager(ClientSettings(nats_url=nats_server.url), settings(tmp_path),
                           stop_launched=True) as m:  # fmt: skip
            await eventually(lambda: ready_agents(nc, "lobby", 1), timeout=60, what="the agent")
            await eventually(lambda: m.provisioner.launches == 1, what="the provider ran once")
            events = await log(nc)
            assert [
                e.event.launch_id for e in events if isinstance(e.event, ScaleLaunchDecided)
            ] == ["lobby-auto-1"]
            started = [e.event for e in events if isinstance(e.event, ScaleLaunchStarted)]
            assert len(started) == 1 and started[0].cause.epoch == m.master.epoch
            assert len(registrations(events, "lobby-auto-")) == 1
            # a launch the provider already runs is not started again
            provider = m.provisioner.providers.local
            spec = m.provisioner._spec(
                "lobby", m.fleet.scaling.scaling["lobby"].live["lobby-auto-1"]
            )
            assert spec is not None
            assert (await provider.launch(spec)).startswith("already running")
    finally:
        kill_launched(tmp_path / "autoscale")


# ---- launch failures: retried, then the schedule fails with an alarm ---------------------------


async def test_launches_that_never_register_are_retried_then_the_schedule_fails_with_an_alarm(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    commands = tmp_path / "commands.toml"
    commands.write_text('[commands.void]\nadd = "true"\n')  # "launches" an agent that never comes
    s = settings(tmp_path, scale_commands_file=str(commands))
    async with Manager(ClientSettings(nats_url=nats_server.url), s) as m:
        await eventually(lambda: m.master.is_master, what="master elected")
        await ok(nc, "launch.create", {"name": "void", "provider": "command", "command": "void",
                                       "deadline_s": 1, "attempts": 2, "startup_s": 1})  # fmt: skip
        await ok(nc, "policy.create", {"name": "lobby", "launch": "void", "min_agents": 0,
                                       "max_agents": 0})  # fmt: skip
        await ok(nc, "schedule.create", {
            "eventName": "doomed", "date": int((time.time() + 5) * 1000),
            "data": {"group": "lobby", "region": [{"name": "r", "info": {"min_agents": 1}}]},
        })  # fmt: skip

        async def failed() -> dict[str, Any]:
            view = await ok(nc, "schedule.get", {"eventName": "doomed"})
            return view if view["state"] == "failed" else {}

        view = await eventually(failed, timeout=30, what="the schedule failed")
        assert "2 launches in a row failed" in view["reason"]
        assert "no agent registered within 1s" in view["reason"]
        events = await log(nc)
        attempts = [e.event.attempt for e in events if isinstance(e.event, ScaleLaunchDecided)]
        assert attempts[:2] == [1, 2]

        async def alarm() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = (await ok(nc, "alarm.list", {
                "active": True, "kind": "schedule_failed"}))["alarms"]  # fmt: skip
            return rows

        [raised] = await eventually(alarm, timeout=15, what="a schedule_failed alarm")
        assert raised["source"] == "schedule.doomed" and raised["severity"] == "major"
        assert "failed" in raised["reason"]
        await ok(nc, "schedule.delete", {"eventName": "doomed"})
        await eventually(lambda: _no(alarm()), timeout=15, what="the alarm cleared")


async def _no(rows: Any) -> bool:
    return not await rows


# ---- between schedules: the policy's min..max, on load ---------------------------------------


async def test_between_schedules_a_group_scales_out_on_load_and_back_in_when_idle(
    manager: Manager, nc: Client, clip: str
) -> None:
    await ok(nc, "launch.create", {"name": "edge", "capacity": 2, "startup_s": 3})
    await ok(nc, "policy.create", {"name": "lobby", "launch": "edge", "min_agents": 1,
                                   "max_agents": 3, "cooldown_s": 2})  # fmt: skip
    await eventually(lambda: ready_agents(nc, "lobby", 1), timeout=60, what="the min agent")
    ids = await streams_in(nc, "lobby", clip, 5)  # 5 streams on 2 slots: load 2.5 > 0.8
    await eventually(lambda: ready_agents(nc, "lobby", 3), timeout=60, what="scaled out to max 3")
    g = await scaling(nc, "lobby")
    assert g["desired"] == 3 and g["launching"] == 0
    assert len(g["live"]) == 3 and all(e["reason"].startswith(("min 1", "max 3", "load"))
                                       for e in g["live"])  # fmt: skip
    await eventually(lambda: _running_count(nc, ids, 5), timeout=60, what="5 streams running")
    for sid in ids:
        await ok(nc, "stream.delete", {"stream_id": sid})

    async def back_to_min() -> bool:
        g = await scaling(nc, "lobby")
        return g["ready"] == 1 and len([e for e in g["history"] if e["status"] == "removed"]) == 2

    await eventually(back_to_min, timeout=60, interval=0.2, what="idle: drained back to min 1")


async def _running_count(nc: Client, ids: list[str], n: int) -> bool:
    return sum(v["status"] == "in_progress" for v in await views(nc, ids)) >= n
