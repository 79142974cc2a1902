"""``stream.create`` end to end over NATS, with 1k, 10k and 100k streams already in the store.

For each size a fresh nats-server gets a log built by the bench (N streams, 1,000 registered
agents with room for the new streams), then a real ``vigil manager`` *process* starts on it
(master included: every new stream is also placed on an agent). From this process:

- a steady 1,000 cmd/s for ``--seconds``: latency measured from each request's *scheduled* send
  time (so a stalled client or manager cannot hide its queueing), p50 / p99 / max;
- the ceiling: 64 concurrent clients sending as fast as replies come back;
- the raw limit in the same run: ``js.publish_async`` of the same number of messages of the same
  size into a stream of the same server (64 in flight), msgs/s.

Target (issue 10): p99 <= 5 ms at every size.

Usage: python bench/commands.py [--sizes 1000,10000,100000] [--seconds 10] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import nats
import orjson
from common import Report, arguments, nats_server
from nats.aio.client import Client
from nats.js import api

from events.jetstream import JetStreamStore
from events.model import AgentRegistered, AnalyticOffer, AnalyticRef, Cause, Source, StreamCreated
from events.store import Append

CAUSE = Cause(kind="command", name="bench")
VIGIL = str(Path(sys.executable).parent / "vigil")
AGENTS = 1000
BODY = {"source": {"url": "rtsp://camera.example/live"}, "analytics": [{"name": "motion"}]}


async def build_log(store: JetStreamStore, n_streams: int, headroom: int) -> None:
    now = time.time()
    capacity = n_streams // AGENTS + headroom // AGENTS + 2
    items = [
        Append(f"agent.a{i:05}", AgentRegistered(
            at=now, cause=CAUSE, agent_id=f"a{i:05}", name=f"a{i}", capacity=capacity,
            analytics=(AnalyticOffer(name="motion"),),
        ), msg_id=f"ar{i}")
        for i in range(AGENTS)
    ]  # fmt: skip
    items += [
        Append(f"stream.s{i:06}", StreamCreated(
            at=now + i * 1e-6, cause=CAUSE, stream_id=f"s{i:06}", name=f"cam {i}",
            source=Source(url=f"rtsp://cam-{i}/live"), kind="stream",
            analytics=(AnalyticRef(name="motion"),),
        ), msg_id=f"sc{i}")
        for i in range(n_streams)
    ]  # fmt: skip
    for i in range(0, len(items), 5000):
        await store.append_batch(items[i : i + 5000])


async def start_manager(url: str) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {k[6:]: v for k, v in os.environ.items() if k.startswith("BENCH_VIGIL_")}
    env |= {"VIGIL_NATS_URL": url, "VIGIL_AGENT_DOWNGRADE_S": "3600",
            "VIGIL_STREAM_STALENESS_S": "3600", "VIGIL_DATA_DIR": "/nonexistent"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        VIGIL, "manager", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 600)
    assert b"running" in line, line
    return proc


async def create(nc: Client) -> None:
    msg = await nc.request("vigil.cmd.stream.create", orjson.dumps(BODY), timeout=30)
    assert orjson.loads(msg.data)["ok"], msg.data


async def steady(nc: Client, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []
    tasks: list[asyncio.Task[None]] = []
    t0 = time.perf_counter() + 0.05

    async def one(at: float) -> None:
        await create(nc)
        latencies.append(time.perf_counter() - at)

    for i in range(int(rate * seconds)):
        at = t0 + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at)))
    await asyncio.gather(*tasks)
    return latencies


async def ceiling(nc: Client, clients: int, seconds: float) -> float:
    done = 0
    end = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await create(nc)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - t0)


async def raw_publish(nc: Client, n: int) -> float:
    """``js.publish_async`` with up to 4,000 in flight (nats-py's own window), all acks awaited."""
    js = nc.jetstream()
    await js.add_stream(api.StreamConfig(name="RAW", subjects=["raw.>"]))
    body = orjson.dumps(BODY) * 2  # about the size of a StreamCreated event
    t0 = time.perf_counter()
    futures = [await js.publish_async(f"raw.{i % 100}", body) for i in range(n)]
    await asyncio.gather(*futures)
    return n / (time.perf_counter() - t0)


async def one_size(n: int, seconds: float, report: Report, profile: str | None) -> None:
    async with nats_server() as server:
        nc = await nats.connect(server.url)
        store = JetStreamStore(nc)
        await store.ensure()
        await build_log(store, n, headroom=int(1000 * seconds * 4))
        manager = await start_manager(server.url)
        try:
            await asyncio.gather(*(create(nc) for _ in range(200)))  # warm up
            spy = None
            if profile:
                spy = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                    str(manager.pid), "--duration", str(int(seconds)), "--format", "raw",
                    "-o", f"{profile}.{n}.txt", "--rate", "250",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            lat = await steady(nc, 1000.0, seconds)
            if spy is not None:
                await spy.wait()
            lat.sort()
            p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99)]
            report.add(f"{n:>7,} streams: steady 1,000 cmd/s p50", p50 * 1e3, "ms")
            report.add(f"{n:>7,} streams: steady 1,000 cmd/s p99", p99 * 1e3, "ms",
                       f"max {lat[-1] * 1e3:.1f} ms; target <= 5 ms")  # fmt: skip
            top = await ceiling(nc, 64, min(seconds, 5.0))
            raw = await raw_publish(nc, 20_000)
            report.add(f"{n:>7,} streams: ceiling, 64 clients", top, "cmd/s",
                       f"raw publish_async {raw:,.0f} msg/s; ratio {top / raw:.2f}")  # fmt: skip
        finally:
            manager.terminate()
            await manager.wait()
            await nc.close()


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", default=None, help="py-spy the manager into FILE.<size>.txt")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(x) for x in args.sizes.split(",")]
    seconds = 3.0 if args.quick else args.seconds
    report = Report("stream.create end to end (one manager process)")
    for n in sizes:
        await one_size(n, seconds, report, args.profile)
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
