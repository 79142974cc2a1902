"""Failover: streams on simulated agents; one agent holding a tenth of them stops dead.

Starts its own nats-server and one manager in-process. Simulated agents speak the agent protocol
(register, heartbeat, poll on notify, acked feedback with msg ids) but decode nothing. When every
stream is ``in_progress``, the agent holding the most stops dead (no heartbeat, no feedback, no
goodbye, its connection stays open: no disconnect advisory helps). Rows: how long until every
stream is ``in_progress`` again, timed from the victim's *last heartbeat* (the master's downgrade
clock starts there, not at the kill), against the configured downgrade period (the floor: the
master must wait that long before it may call the agent dead). The guarded ratio is floor /
recovery time (1.0 would be a recovery with no overhead at all).

Usage: python bench/failover.py [--streams 1000] [--agents 10] [--downgrade 3] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

import nats
import orjson
from common import Report, arguments, nats_server, until
from nats.aio.client import Client

from ops.runtime.manager import Manager
from ops.settings import ClientSettings, ManagerSettings


class SimAgent:
    def __init__(self, nc: Client, name: str, capacity: int) -> None:
        self.nc, self.name, self.capacity = nc, name, capacity
        self.running: dict[str, int] = {}
        self.seq = 0
        self.alive = True
        self.last_beat = 0.0  # time.monotonic() of the last heartbeat sent
        self.poll_now = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        body = {"name": self.name, "capacity": self.capacity, "analytics": []}
        reply = orjson.loads(
            (await self.nc.request("vigil.agent.register", orjson.dumps(body), timeout=5)).data
        )
        result = reply["result"]
        self.agent_id: str = result["agent_id"]
        self.hb_s = float(result["heartbeat_interval_s"])

        async def on_notify(_msg: object) -> None:
            self.poll_now.set()

        await self.nc.subscribe(f"vigil.agent.{self.agent_id}.notify", cb=on_notify)
        self.tasks = [asyncio.create_task(self._beat()), asyncio.create_task(self._poll())]
        self.poll_now.set()

    async def _beat(self) -> None:
        while self.alive:
            hb = {"ts": time.time(), "running": sorted(self.running)}
            await self.nc.publish(f"vigil.agent.{self.agent_id}.heartbeat", orjson.dumps(hb))
            self.last_beat = time.monotonic()
            await asyncio.sleep(self.hb_s)

    async def _poll(self) -> None:
        js = self.nc.jetstream()
        while self.alive:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.poll_now.wait(), 2)
            self.poll_now.clear()
            if not self.alive:
                return
            body = orjson.dumps({"running": sorted(self.running)})
            reply = orjson.loads(
                (
                    await self.nc.request(f"vigil.agent.{self.agent_id}.streams", body, timeout=5)
                ).data
            )
            for sid in reply["result"]["stop"]:
                self.running.pop(sid, None)
            acks = []
            for a in reply["result"]["start"]:
                if self.running.get(a["stream_id"]) == a["version"]:
                    continue
                self.running[a["stream_id"]] = a["version"]
                self.seq += 1
                fb = {"seq": self.seq, "agent_id": self.agent_id, "stream_id": a["stream_id"],
                      "version": a["version"], "status": "in_progress", "ts": time.time(),
                      "day": time.strftime("%Y-%m-%d", time.gmtime())}  # fmt: skip
                acks.append(await js.publish_async(
                    f"vigil.feedback.{self.agent_id}", orjson.dumps(fb),
                    headers={"Nats-Msg-Id": f"{self.agent_id}:{self.seq}"}))  # fmt: skip
            if acks:
                await asyncio.gather(*acks)

    def kill(self) -> None:
        self.alive = False
        for t in self.tasks:
            t.cancel()


async def run(n_streams: int, n_agents: int, downgrade: float, report: Report) -> None:
    settings = ManagerSettings(master_tick_s=0.1, agent_downgrade_s=downgrade, heartbeat_interval_s=1.0,
                               stream_staleness_s=600)  # fmt: skip
    capacity = -(-n_streams // (n_agents - 1)) + 1  # the others can take the victim's streams
    async with (
        nats_server() as server,
        Manager(ClientSettings(nats_url=server.url), settings) as m,
    ):
        nc = await nats.connect(server.url)
        agents = [SimAgent(nc, f"sim-{i}", capacity) for i in range(n_agents)]
        for a in agents:
            await a.start()
        t0 = time.monotonic()
        sem = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            body = {"source": {"url": f"rtsp://10.1.{i // 250}.{i % 250}/live"}}
            async with sem:
                msg = await nc.request("vigil.cmd.stream.create", orjson.dumps(body), timeout=30)
            reply = orjson.loads(msg.data)
            assert reply["ok"], reply

        await asyncio.gather(*(create(i) for i in range(n_streams)))

        def running(exclude: str | None = None) -> int:
            return sum(1 for s in m.streams.live()
                       if s.status == "in_progress" and s.agent_id != exclude)  # fmt: skip

        def status() -> str:
            counts = Counter(s.status for s in m.streams.live())
            return f"{running()} of {n_streams} in_progress; {dict(counts)}"

        await until(lambda: running() >= n_streams, timeout=300, what=status)
        first = time.monotonic() - t0
        await asyncio.sleep(2 * settings.heartbeat_interval_s)  # a steady state
        victim = max(agents, key=lambda a: len(a.running))
        held = len(victim.running)
        victim.kill()
        killed = time.monotonic()
        last_beat = victim.last_beat
        await until(lambda: running(exclude=victim.agent_id) >= n_streams, timeout=300,
                    what=status)  # fmt: skip
        done = time.monotonic()
        for a in agents:
            a.kill()
        await nc.close()
    took = done - last_beat
    report.add("create and start every stream", first, "s", f"{n_streams:,} streams")
    report.add("streams on the agent stopped", held, "")
    report.add("downgrade period (the floor)", downgrade, "s", "no agent may be called dead sooner")
    report.add("all in_progress again, from its last heartbeat", took, "s",
               f"{done - killed:.2f} s from the kill, {killed - last_beat:.2f} s after the last"
               " heartbeat", key="failover.recovery")  # fmt: skip
    report.add("overhead over the floor", took - downgrade, "s",
               "detection (tick) + requeue + placement + notify + poll + feedback",
               key="failover.overhead")  # fmt: skip
    report.add("floor / recovery", downgrade / took, "x", "1.0: no overhead at all",
               key="failover.floor_share", guard=True)  # fmt: skip


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--downgrade", type=float, default=3.0)
    args = parser.parse_args()
    streams, agents = (200, 4) if args.quick else (args.streams, args.agents)
    report = Report(f"failover: {streams:,} streams on {agents} simulated agents, one stops dead")
    await run(streams, agents, args.downgrade, report)
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
