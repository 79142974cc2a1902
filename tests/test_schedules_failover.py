"""``kill -9`` the master while a schedule is launching agents (``vigil manager`` processes and
the ``local`` provider): the new master continues the launch in progress, and the log shows each
launch decided once — and exactly one agent process per launch exists."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from events.model import (
    AgentRegistered,
    ScaleLaunchDecided,
    ScaleLaunchFailed,
    ScaleLaunchRegistered,
    ScaleLaunchStarted,
    ScheduleStarted,
)
from ops.runtime.natsd import EmbeddedNats
from tests.helpers import command, eventually, ok
from tests.test_schedules import kill_launched, log, ready_agents

VIGIL = str(Path(sys.executable).parent / "vigil")
LEASE_S = 2.0


def _env(nats_url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_NATS_URL=nats_url, VIGIL_DATA_DIR=str(tmp / "nodata"),
        VIGIL_MASTER_LEASE_S=str(LEASE_S), VIGIL_MASTER_TICK_S="0.1",
        VIGIL_HEARTBEAT_INTERVAL_S="0.5", VIGIL_MEDIA_ROOTS=str(tmp),
        VIGIL_AUTOSCALE_DIR=str(tmp / "autoscale"), VIGIL_SCHEDULE_BUFFER_S="1",
    )  # fmt: skip
    return env


class Managers:
    def __init__(self) -> None:
        self.by_id: dict[str, asyncio.subprocess.Process] = {}
        self._drains: list[asyncio.Task[None]] = []

    async def start(self, env: dict[str, str], cwd: Path) -> str:
        proc = await asyncio.create_subprocess_exec(
            VIGIL, "manager", env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert proc.stdout is not None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "manager ended before it ran"
            if line.startswith(b"manager "):
                break
        self._drains.append(asyncio.create_task(_drain(proc)))
        manager_id = line.decode().split()[1]
        self.by_id[manager_id] = proc
        return manager_id

    async def stop_all(self) -> None:
        for p in self.by_id.values():
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in self.by_id.values():
            try:
                await asyncio.wait_for(p.wait(), 20)
            except TimeoutError:
                p.kill()
                await p.wait()
        for t in self._drains:
            t.cancel()


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.readline():
        pass


@pytest.fixture
async def managers(tmp_path: Path) -> AsyncIterator[Managers]:
    m = Managers()
    try:
        yield m
    finally:
        await m.stop_all()
        kill_launched(tmp_path / "autoscale")


async def _master(nc: Client) -> dict[str, Any]:
    try:
        reply = await command(nc, "master.get", {}, timeout=0.5)
    except (NatsTimeout, NoRespondersError):
        return {}
    return reply["result"] if reply["ok"] else {}  # type: ignore[no-any-return]


def _agent_processes(root: Path, prefix: str) -> Counter[str]:
    """Live ``vigil agent --name <prefix>…`` processes launched under ``root``, by name."""
    names: Counter[str] = Counter()
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "agent" in cmd and "--name" in cmd:
            name = cmd[cmd.index("--name") + 1]
            mine = any(arg.startswith(str(root)) for arg in cmd)  # not another test's
            if mine and name.startswith(prefix) and proc.status() != psutil.STATUS_ZOMBIE:
                names[name] += 1
    return names


async def test_kill_9_the_master_while_a_schedule_launches_and_the_new_master_continues(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path, managers: Managers
) -> None:
    env = _env(nats_server.url, tmp_path)
    for _ in range(2):
        await managers.start(env, tmp_path)
    first = await eventually(lambda: _master(nc), timeout=20, what="a master")
    await ok(nc, "launch.create", {"name": "slow", "provider": "local", "parallel": False,
                                   "capacity": 2, "startup_s": 10, "deadline_s": 60})  # fmt: skip
    await ok(nc, "policy.create", {"name": "lobby", "launch": "slow", "min_agents": 0,
                                   "max_agents": 0})  # fmt: skip
    date_ms = int((time.time() + 12) * 1000)
    view = await ok(nc, "schedule.create", {
        "eventName": "gala", "date": date_ms,
        "data": {"group": "lobby", "region": [{"name": "hall", "info": {"min_agents": 3}}]},
    })  # fmt: skip
    # 3 × 10 s + 1 s > 12 s: the lead time has already passed, and the view says so
    assert view["plan"]["lead_s"] == 31 and view["plan"]["late"]
    assert "starts at once" in view["plan"]["note"]

    async def first_launch() -> ScaleLaunchDecided | None:
        found = [e.event for e in await log(nc) if isinstance(e.event, ScaleLaunchDecided)]
        return found[0] if found else None

    decided = await eventually(first_launch, timeout=30, interval=0.02, what="a launch decided")
    victim = managers.by_id[first["manager_id"]]
    victim.send_signal(signal.SIGKILL)
    await victim.wait()
    killed_at = time.time()
    print(f"\nkilled master {first['manager_id']} {killed_at - decided.at:.3f}s after it decided"
          f" {decided.launch_id}")  # fmt: skip

    async def successor() -> dict[str, Any]:
        info = await _master(nc)
        return info if info.get("epoch", 0) > first["epoch"] else {}

    second = await eventually(successor, timeout=LEASE_S + 15, what="a new master")
    assert second["manager_id"] != first["manager_id"]
    await eventually(lambda: ready_agents(nc, "lobby", 3), timeout=120, interval=0.2,
                     what="3 agents of group lobby")  # fmt: skip

    events = await log(nc)
    launches = [e.event for e in events if isinstance(e.event, ScaleLaunchDecided)]
    per_launch = Counter(e.launch_id for e in launches)
    assert per_launch == Counter({"lobby-auto-1": 1, "lobby-auto-2": 1, "lobby-auto-3": 1})
    assert not [e for e in events if isinstance(e.event, ScaleLaunchFailed)]
    epochs = {e.launch_id: e.cause.epoch for e in launches}
    assert epochs["lobby-auto-1"] == first["epoch"] and second["epoch"] in epochs.values()
    started = Counter(e.event.launch_id for e in events
                      if isinstance(e.event, ScaleLaunchStarted))  # fmt: skip
    linked = Counter(e.event.launch_id for e in events
                     if isinstance(e.event, ScaleLaunchRegistered))  # fmt: skip
    assert all(n <= 1 for n in started.values()) and all(n == 1 for n in linked.values())
    ids_by_name: dict[str, set[str]] = {}
    for e in events:
        if isinstance(e.event, AgentRegistered) and e.event.name.startswith("lobby-auto-"):
            ids_by_name.setdefault(e.event.name, set()).add(e.event.agent_id)
    assert all(len(ids) == 1 for ids in ids_by_name.values()), ids_by_name
    assert _agent_processes(tmp_path / "autoscale", "lobby-auto-") == Counter(
        {"lobby-auto-1": 1, "lobby-auto-2": 1, "lobby-auto-3": 1}
    )
    [start] = [e.event for e in events if isinstance(e.event, ScheduleStarted)]
    assert start.late_s > 15  # planned at date − 31 s, 12 s before the date: late, and recorded
    shown = (await ok(nc, "schedule.get", {"eventName": "gala"}))["plan"]
    assert shown["fixed"] and shown["late"] and "after its planned start" in shown["note"]
    for e in events:
        if isinstance(e.event, ScaleLaunchDecided | ScaleLaunchStarted | ScaleLaunchRegistered):
            print(f"  seq {e.seq:>4} epoch {e.event.cause.epoch} {type(e.event).__name__:<22}"
                  f" {e.event.launch_id}")  # fmt: skip
