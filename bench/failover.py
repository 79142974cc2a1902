"""Failover: 1,000 streams on simulated agents; kill one agent holding 100 of them.

Starts its own nats-server and one manager in-process. Simulated agents speak the agent protocol
(register, heartbeat, poll on notify, acked feedback with msg ids) but decode nothing. When all
1,000 streams are ``in_progress``, one agent stops dead (no heartbeat, no feedback, no goodbye).
Prints how long until all 1,000 are ``in_progress`` again, against the configured downgrade
period (the floor: the master must wait that long before it may call the agent dead).

Usage: python bench/failover.py [--streams 1000] [--agents 10] [--downgrade 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time

import nats
import orjson
from nats.aio.client import Client

from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings


class SimAgent:
    def __init__(self, nc: Client, name: str, capacity: int) -> None:
        self.nc, self.name, self.capacity = nc, name, capacity
        self.running: dict[str, int] = {}
        self.seq = 0
        self.alive = True
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


async def main(n_streams: int, n_agents: int, downgrade: float) -> None:
    settings = ManagerSettings(master_tick_s=0.1, agent_downgrade_s=downgrade, heartbeat_interval_s=1.0,
                               stream_staleness_s=600)  # fmt: skip
    per_agent = n_streams // n_agents
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            EmbeddedNats(tmp) as server,
            Manager(ClientSettings(nats_url=server.url), settings) as m,
        ):
            nc = await nats.connect(server.url)
            agents = [SimAgent(nc, f"sim-{i}", int(per_agent * 1.2) + 1) for i in range(n_agents)]
            for a in agents:
                await a.start()
            for i in range(n_streams):
                body = {"source": {"url": f"rtsp://10.1.{i // 250}.{i % 250}/live"}}
                reply = orjson.loads(
                    (
                        await nc.request("vigil.cmd.stream.create", orjson.dumps(body), timeout=10)
                    ).data
                )
                assert reply["ok"], reply

            def running(exclude: str | None = None) -> int:
                return sum(1 for s in m.streams.live()
                           if s.status == "in_progress" and s.agent_id != exclude)  # fmt: skip

            t0 = time.monotonic()
            while running() < n_streams:  # noqa: ASYNC110 (a bench polls its own process)
                await asyncio.sleep(0.05)
            first = time.monotonic() - t0
            victim = max(agents, key=lambda a: len(a.running))
            held = len(victim.running)
            victim.kill()
            killed = time.monotonic()
            while running(exclude=victim.agent_id) < n_streams:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            took = time.monotonic() - killed
            for a in agents:
                a.kill()
            await nc.close()
    print(
        f"streams {n_streams} on {n_agents} simulated agents; initial distribution to in_progress: {first:.2f} s"
    )
    print(f"killed one agent holding {held} streams")
    print(f"all {n_streams} in_progress again after {took:.2f} s")
    print(f"configured downgrade period {downgrade:.2f} s  → overhead {took - downgrade:.2f} s "
          f"(ratio {took / downgrade:.2f})")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--downgrade", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(main(args.streams, args.agents, args.downgrade))
