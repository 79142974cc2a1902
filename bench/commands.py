"""``stream.create`` end to end over NATS against the raw ``js.publish_async`` limit, with 1k, 10k
and 100k streams already in the store, with one and with three managers.

For each size a fresh nats-server gets a log built by the bench (N streams placed and running on
1,000 registered agents, which have room for the new streams), then real ``vigil manager``
*processes* start on it (master included: every new stream is also placed on an agent). From
this process:

- the raw limit in the same run: ``js.publish_async`` of 20,000 encoded ``StreamCreated`` events
  (one subject each, as the creates write them) into a stream of the same server, nats-py's
  window in flight, best of 2, in rounds alternating with the ceiling below (the ratio is the
  median of three rounds' ratios);
- a steady 1,000 cmd/s for ``--seconds``: latency measured from each request's *scheduled* send
  time (so a stalled client or manager cannot hide its queueing), p50 / p99 / max;
- the ceiling: 64 concurrent clients sending as fast as replies come back, for one manager; at
  the first size also with a ``request_id`` on every create, and both again with three managers
  sharing the commands (one NATS queue group). The note gives each process's CPU: on a 2-core
  machine the client, the server and the managers share two cores.

Targets (issue 18): ceiling >= 0.30 of raw with one manager, >= 0.6 with three; with
``request_id`` >= 0.25. Issue 10: steady p99 <= 5 ms at every size.

Right after the steady phase, unless ``--no-roles``, the steady rate again on the same log with
the master in a manager of its own (one ``VIGIL_ROLE=master`` and one ``VIGIL_ROLE=commands``
process, docs/deploy.md); the ceilings come after it.

Usage: python bench/commands.py [--sizes 1000,10000,100000] [--seconds 10] [--quick] [--json]
       [--no-roles] [--profile FILE]   (py-spy the first manager during the steady phase)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
import uuid
from pathlib import Path

import nats
import orjson
import psutil
from common import (
    Report,
    agent_registered,
    append_all,
    arguments,
    nats_server,
    paired,
    raw_publish_async,
    say,
    start_manager,
    stop_manager,
    stream_created,
)
from nats.aio.client import Client

from events.codec import encode_event
from events.jetstream import JetStreamStore
from events.model import (
    AnalyticRef,
    Cause,
    Source,
    StreamAssigned,
    StreamCreated,
    StreamRunning,
)
from events.store import Append

AGENTS = 1000
CLIENTS = 64
BODY = orjson.dumps({"source": {"url": "rtsp://10.9.8.7/live"}, "analytics": [{"name": "motion"}]})
QUIET = {
    "VIGIL_AGENT_DOWNGRADE_S": "3600",
    "VIGIL_STREAM_STALENESS_S": "3600",
    "VIGIL_STREAM_START_DEADLINE_S": "3600",
}
"""The registered agents never heartbeat and never start what they are given: no downgrades,
no requeues while measuring (the agents are registered with a long ``downgrade_s`` too: the
master downgrades by the agent's own; with the default 10 s every agent went down 10 s into a
reign and all their streams were requeued in the middle of a measurement)."""
MASTER = Cause(kind="master", name="bench", epoch=1)


def running_on(i: int, agent_id: str, now: float) -> tuple[Append, Append]:
    """Stream ``i`` of the log placed and running, as in a fleet at work: the master starts with
    nothing to place (a backlog of 100,000 placements would overlap the measurement)."""
    sid = f"s{i:07}"
    return (Append(f"stream.{sid}", StreamAssigned(at=now, cause=MASTER, stream_id=sid,
                                                   agent_id=agent_id, base_version=1)),
            Append(f"stream.{sid}", StreamRunning(at=now, cause=MASTER, stream_id=sid,
                                                  agent_id=agent_id, assignment_version=2)))  # fmt: skip


def created_body(i: int) -> bytes:
    """An event as a create writes it (a command cause with a request id and a manager id)."""
    cause = Cause(kind="command", name="stream.create", request_id=uuid.uuid4().hex,
                  manager_id="m-0123abcd")  # fmt: skip
    return encode_event(StreamCreated(
        at=time.time(), cause=cause, stream_id=f"s-{uuid.uuid4().hex[:16]}", name=f"cam {i}",
        source=Source(url="rtsp://10.9.8.7/live"), kind="stream",
        analytics=(AnalyticRef(name="motion"),),
    ))  # fmt: skip


async def create(nc: Client, body: bytes = BODY) -> None:
    msg = await nc.request("vigil.cmd.stream.create", body, timeout=30)
    if not orjson.loads(msg.data)["ok"]:
        raise RuntimeError(f"stream.create refused: {msg.data!r}")


def with_request_id() -> bytes:
    return orjson.dumps({"source": {"url": "rtsp://10.9.8.7/live"},
                         "analytics": [{"name": "motion"}], "request_id": uuid.uuid4().hex})  # fmt: skip


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


class CpuShare:
    """CPU used by some processes while measuring (``with share:``), in % of one core each."""

    def __init__(self, procs: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in procs.items()}
        self.used = dict.fromkeys(self.procs, 0.0)
        self.wall = 0.0
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    def __enter__(self) -> None:
        self._start = {name: self._cpu(p) for name, p in self.procs.items()}
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._t0
        for name, p in self.procs.items():
            self.used[name] += self._cpu(p) - self._start[name]

    def note(self) -> str:
        return ", ".join(f"{name} {100 * used / max(self.wall, 1e-9):.0f}%"
                         for name, used in self.used.items())  # fmt: skip


async def ceiling(nc: Client, seconds: float, request_ids: bool) -> float:
    done = 0
    end = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < end:
            await create(nc, with_request_id() if request_ids else BODY)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return done / (time.perf_counter() - t0)


async def one_size(n: int, seconds: float, all_cases: bool, report: Report,
                   profile: str | None, quick: bool, roles: bool) -> None:  # fmt: skip
    rounds = 3
    top_s = 1.0 if quick else min(seconds, 5.0)
    raw_n = 6_000 if quick else 20_000
    async with nats_server() as server:
        nc = await nats.connect(server.url)
        store = JetStreamStore(nc)
        await store.ensure()
        creates = 1000 * seconds + (4 if all_cases else 1) * rounds * top_s * 20_000 + 1000
        capacity = int((n + creates) // AGENTS) + 2
        now = time.time()
        say(f"{n:,} streams: building the log")
        await append_all(store, itertools.chain(
            (agent_registered(i, capacity=capacity, now=now, downgrade_s=3600)
             for i in range(AGENTS)),
            *((stream_created(i, now=now), *running_on(i, f"a{i % AGENTS:05}", now))
              for i in range(n)),
        ))  # fmt: skip
        bodies = [created_body(i) for i in range(raw_n)]
        managers = [await start_manager(server.url, QUIET)]
        try:
            await asyncio.gather(*(create(nc) for _ in range(200)))  # warm up
            spy = None
            if profile:
                spy = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                    str(managers[0].pid), "--duration", str(int(seconds)), "--format", "raw",
                    "-o", f"{profile}.{n}.txt", "--rate", "250",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            say(f"{n:,} streams: steady 1,000 cmd/s")
            lat = await steady(nc, 1000.0, seconds)
            if spy is not None:
                await spy.wait()
            lat.sort()
            p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99)]
            report.add(f"{n:>7,} streams: steady 1,000 cmd/s p50", p50 * 1e3, "ms")
            report.add(f"{n:>7,} streams: steady 1,000 cmd/s p99", p99 * 1e3, "ms",
                       f"max {lat[-1] * 1e3:.1f} ms; target <= 5 ms", key=f"commands.p99.{n}")  # fmt: skip

            if roles:  # the master apart from the command path (docs/deploy.md, roles),
                # on the same log as the steady phase above (before the ceilings add ~100k)
                for m in managers:
                    await stop_manager(m)
                managers = [await start_manager(server.url, QUIET | {"VIGIL_ROLE": "master"}),
                            await start_manager(server.url, QUIET | {"VIGIL_ROLE": "commands"})]  # fmt: skip
                await asyncio.gather(*(create(nc) for _ in range(200)))  # warm up
                say(f"{n:,} streams: steady 1,000 cmd/s, roles master + commands")
                lat = sorted(await steady(nc, 1000.0, seconds))
                p50, p99 = statistics.median(lat), lat[int(len(lat) * 0.99)]
                report.add(f"{n:>7,} streams: steady, master apart, p50", p50 * 1e3, "ms",
                           "one --role commands and one --role master manager")  # fmt: skip
                report.add(f"{n:>7,} streams: steady, master apart, p99", p99 * 1e3, "ms",
                           f"max {lat[-1] * 1e3:.1f} ms; target <= 5 ms")  # fmt: skip
                for m in managers:
                    await stop_manager(m)
                managers = [await start_manager(server.url, QUIET)]
                await asyncio.gather(*(create(nc) for _ in range(200)))  # warm up

            async def top(label: str, key: str, request_ids: bool, guard: bool) -> None:
                say(f"{n:,} streams: ceiling, {label}")
                procs = {"client": psutil.Process().pid, "nats-server": server.pid or 0}
                procs |= {f"manager {i + 1}": m.pid for i, m in enumerate(managers)}
                cpu = CpuShare(procs)

                async def raw(_r: int) -> float:
                    return await raw_publish_async(nc, bodies)

                async def creates(_r: int) -> float:
                    with cpu:
                        return await ceiling(nc, top_s, request_ids)

                p = await paired(rounds, raw, creates)
                name = f"{n:>7,} streams: {CLIENTS} clients, {label}"
                note = f"CPU {cpu.note()}"
                if guard:
                    report.paired(name, p, unit="cmd/s", key=key, note=note)
                else:
                    report.add(name, p.measured, "cmd/s", f"{p.ratio:.3f}x raw (not guarded);"
                               f" {note}", key=f"{key}.{n}")  # fmt: skip

            await top("1 manager", "commands.create.1", False, all_cases)
            if all_cases:
                await top("1 manager, request_id", "commands.request_id.1", True, True)
                managers += await asyncio.gather(*(start_manager(server.url, QUIET)
                                                   for _ in range(2)))  # fmt: skip
                await asyncio.gather(*(create(nc) for _ in range(300)))  # warm up the new ones
                await top("3 managers", "commands.create.3", False, True)
                await top("3 managers, request_id", "commands.request_id.3", True, False)
        finally:
            for m in managers:
                await stop_manager(m)
            await nc.close()


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", default=None, help="py-spy the manager into FILE.<size>.txt")
    parser.add_argument("--roles", action=argparse.BooleanOptionalAction, default=True,
                        help="also the steady rate with the master in a manager of its own")  # fmt: skip
    args = parser.parse_args()
    sizes = [1000] if args.quick else [int(x) for x in args.sizes.split(",")]
    seconds = 2.0 if args.quick else args.seconds
    report = Report(f"stream.create end to end ({CLIENTS} clients for the ceilings)")
    for i, n in enumerate(sizes):
        await one_size(n, seconds, i == 0, report, args.profile, args.quick,
                       args.roles and not args.quick)  # fmt: skip
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
