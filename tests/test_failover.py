"""Failover with real processes: kill -9 the master manager; kill -9 an agent with 20 streams."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from analytics.clips import ClipSpec, write_clip
from core import stream as S
from events.jetstream import JetStreamStore
from events.model import StreamEvent
from ops.runtime.natsd import EmbeddedNats
from tests.helpers import command, eventually, ok

VIGIL = str(Path(sys.executable).parent / "vigil")
LEASE_S = 2.0
DOWNGRADE_S = 3.0


def _env(nats_url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(
        VIGIL_NATS_URL=nats_url, VIGIL_DATA_DIR=str(tmp / "nodata"), VIGIL_MASTER_LEASE_S=str(LEASE_S),
        VIGIL_MASTER_TICK_S="0.1", VIGIL_AGENT_DOWNGRADE_S=str(DOWNGRADE_S),
        VIGIL_HEARTBEAT_INTERVAL_S="0.5", VIGIL_MEDIA_ROOTS=str(tmp),
    )  # fmt: skip
    return env


class Procs:
    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            VIGIL, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    async def first_line(self, proc: asyncio.subprocess.Process, prefix: bytes) -> str:
        assert proc.stdout is not None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, f"process ended before printing {prefix!r}"
            if line.startswith(prefix):
                return line.decode()

    async def stop_all(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                await asyncio.wait_for(p.wait(), 15)
            except TimeoutError:
                p.kill()
                await p.wait()


@pytest.fixture
async def procs() -> AsyncIterator[Procs]:
    p = Procs()
    try:
        yield p
    finally:
        await p.stop_all()


async def test_kill_9_the_master_and_another_takes_over_within_the_lease(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path, procs: Procs
) -> None:
    env = _env(nats_server.url, tmp_path)
    by_id: dict[str, asyncio.subprocess.Process] = {}
    for _ in range(3):
        proc = await procs.start("manager", env=env, cwd=tmp_path)
        line = await procs.first_line(proc, b"manager ")
        by_id[line.split()[1]] = proc

    async def master() -> dict:  # type: ignore[type-arg]
        info = await _master_info(nc)
        return info if info.get("manager_id") in by_id else {}

    first = await eventually(master, timeout=15, what="a master among the three")
    victim = by_id.pop(first["manager_id"])
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()

    async def successor() -> dict:  # type: ignore[type-arg]
        info = await _master_info(nc)
        return info if info.get("manager_id") in by_id and info["epoch"] > first["epoch"] else {}

    second = await eventually(successor, timeout=LEASE_S + 30, what="a new master")
    # from the log: when the successor's election was appended (not when this poll saw it)
    took = datetime.fromisoformat(second["since"]).timestamp() - killed_at
    assert second["epoch"] == first["epoch"] + 1
    assert took <= LEASE_S + 1.0, f"takeover took {took:.2f}s (lease {LEASE_S}s)"


async def _master_info(nc: Client) -> dict:  # type: ignore[type-arg]
    """The master as the log records it; {} while no manager answers in time (a request can be
    routed to the manager being killed)."""
    try:
        reply = await command(nc, "master.get", {}, timeout=0.5)
    except (NatsTimeout, NoRespondersError):
        return {}
    return reply["result"] if reply["ok"] else {}  # type: ignore[no-any-return]


async def _scan_assignments(nc: Client) -> None:
    """At every point of the log, each stream has at most one live assignment."""
    store = JetStreamStore(nc)
    states: dict[str, S.StreamState | None] = {}
    async for stored in store.read_all():
        event = stored.event
        if not isinstance(event, StreamEvent):
            continue
        before = states.get(event.stream_id)
        after = S.evolve(before, event)
        if isinstance(event, S.StreamAssigned) and after is not before:
            assert before is not None and before.agent_id is None, (
                f"{event.stream_id} assigned to {event.agent_id} while held by {before and before.agent_id}"
            )
        states[event.stream_id] = after


async def test_kill_9_an_agent_and_its_streams_run_elsewhere(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path, procs: Procs
) -> None:
    env = _env(nats_server.url, tmp_path)
    clip = write_clip(
        tmp_path / "live.ts", ClipSpec(width=160, height=92, fps=10, duration_s=20, timeline=())
    )
    await procs.first_line(await procs.start("manager", env=env, cwd=tmp_path), b"manager ")
    doomed = await procs.start("agent", "--name", "doomed", "--capacity", "20", "--outbox",
                               str(tmp_path / "doomed.db"), "--media-root", str(tmp_path),
                               env=env, cwd=tmp_path)  # fmt: skip
    doomed_id = (await procs.first_line(doomed, b"agent ")).split("(")[1].split(")")[0]
    await eventually(lambda: _agent_count(nc, 1), timeout=15)

    ids = [(await ok(nc, "stream.create", {"source": {"url": f"file://{clip.path}"}, "kind": "stream"}))["stream_id"]
           for _ in range(20)]  # fmt: skip

    async def running_on(agent_ids: set[str]) -> bool:
        views = [await ok(nc, "stream.get", {"stream_id": s}) for s in ids]
        return all(v["status"] == "in_progress" and v["agent_id"] in agent_ids for v in views)

    await eventually(
        lambda: running_on({doomed_id}), timeout=30, what="20 streams on the doomed agent"
    )
    others = set()
    for name in ("left", "right"):
        p = await procs.start("agent", "--name", name, "--capacity", "12", "--outbox",
                              str(tmp_path / f"{name}.db"), "--media-root", str(tmp_path),
                              env=env, cwd=tmp_path)  # fmt: skip
        others.add((await procs.first_line(p, b"agent ")).split("(")[1].split(")")[0])
    await eventually(lambda: _agent_count(nc, 3), timeout=15)

    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await eventually(lambda: running_on(others), timeout=DOWNGRADE_S + 20, interval=0.1,
                     what="all 20 in_progress on the other agents")  # fmt: skip
    took = time.monotonic() - killed_at
    assert took <= DOWNGRADE_S + 2.0, f"failover took {took:.2f}s (downgrade period {DOWNGRADE_S}s)"
    agent = await ok(nc, "agent.get", {"agent_id": doomed_id})
    assert agent["status"] == "not_ready"
    await _scan_assignments(nc)


async def _agent_count(nc: Client, n: int) -> bool:
    return len((await ok(nc, "agent.list", {"status": "ready"}))["agents"]) == n
