"""The master's tick at 1k, 10k and 100k streams, and the longest event-loop stall it causes.

For each size, a fresh nats-server holds a log built by the bench: agents (capacity enough for
half of the streams), streams of which a quarter already run, the rest pending. A manager folds
it; the bench elects it and drives its master by hand (``tick()``), while a 1 ms sleeper measures
how late the loop runs (the stall every command on that manager would feel). Rows:

- ``election``: index rebuild after election (a chunked walk over every stream);
- ``placement tick``: the first tick (and those right after it while work is left: a tick
  returns after a 1 s slice), placing pending streams on the free capacity (decisions appended
  in fenced chunks);
- ``idle tick``: a tick when nothing changed — the steady state, O(what changed) = O(1);
- ``1% changed tick``: 1 % of the running streams failed (restart decisions).

Target (issue 10): at 100k streams, no single stall over 5 ms.

Usage: python bench/master.py [--sizes 1000,10000,100000] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import time

import nats
from common import Report, StallMonitor, arguments, nats_server

from events.jetstream import JetStreamStore
from events.model import (
    AgentRegistered,
    AnalyticOffer,
    AnalyticRef,
    Cause,
    ErrorInfo,
    Source,
    StreamAssigned,
    StreamCreated,
    StreamFailed,
    StreamRunning,
)
from events.store import Append
from ops.master.loop import Master
from ops.runtime.manager import Manager
from ops.settings import ClientSettings, ManagerSettings

CAUSE = Cause(kind="command", name="bench")
SETTINGS = ManagerSettings(master_tick_s=3600, agent_downgrade_s=3600, stream_staleness_s=3600,
                           snapshot_interval_s=3600, master_lease_s=30)  # fmt: skip


async def build_log(store: JetStreamStore, n_streams: int) -> None:
    n_agents = max(n_streams // 100, 10)
    capacity = max(n_streams // (2 * n_agents), 1)
    now = time.time()
    items = [
        Append(f"agent.a{i:05}", AgentRegistered(
            at=now, cause=CAUSE, agent_id=f"a{i:05}", name=f"a{i}", capacity=capacity,
            analytics=(AnalyticOffer(name="motion"),),
        ), msg_id=f"ar{i}")
        for i in range(n_agents)
    ]  # fmt: skip
    running = n_streams // 4
    for i in range(n_streams):
        sid = f"s{i:06}"
        items.append(Append(f"stream.{sid}", StreamCreated(
            at=now + i * 1e-6, cause=CAUSE, stream_id=sid, name=f"cam {i}",
            source=Source(url=f"rtsp://cam-{i}/live"), kind="stream",
            analytics=(AnalyticRef(name="motion"),),
        ), msg_id=f"sc{i}"))  # fmt: skip
        if i < running:
            aid = f"a{i % n_agents:05}"
            items.append(Append(f"stream.{sid}", StreamAssigned(
                at=now, cause=CAUSE, stream_id=sid, agent_id=aid, base_version=1)))  # fmt: skip
            items.append(Append(f"stream.{sid}", StreamRunning(
                at=now, cause=CAUSE, stream_id=sid, agent_id=aid, assignment_version=2)))  # fmt: skip
    for i in range(0, len(items), 5000):
        await store.append_batch(items[i : i + 5000])


async def settle(master: Master) -> None:
    """Tick until the master has nothing left (a tick returns after its 1 s slice with work
    left, and the loop would start the next at once)."""
    await master.tick()
    while master.behind:
        await master.tick()


def gc_note(monitor: StallMonitor) -> str:
    """The longest cyclic-GC pause in the same time, when it could explain a stall."""
    if monitor.gc_max_s < 0.001:
        return ""
    return f"; longest GC pause {monitor.gc_max_s * 1e3:.2f} ms"


async def timed(monitor: StallMonitor, coro: object) -> tuple[float, float]:
    monitor.reset()
    t0 = time.perf_counter()
    await coro  # type: ignore[misc]
    return time.perf_counter() - t0, monitor.max_stall_s


async def one_size(n: int, report: Report) -> None:
    async with nats_server() as server:
        client = ClientSettings(nats_url=server.url)
        nc = await nats.connect(server.url)
        store = JetStreamStore(nc)
        await store.ensure()
        await build_log(store, n)
        await nc.close()
        t0 = time.perf_counter()
        async with Manager(client, SETTINGS, run_master=False) as m:
            report.add(f"{n:>7,} streams: manager start (fold from zero)",
                       (time.perf_counter() - t0) * 1e3, "ms")  # fmt: skip
            master = m.master
            assert await master.election.try_acquire()
            assert await master.election.elect() is not None
            async with StallMonitor() as monitor:
                dt, stall = await timed(monitor, master._take_office())
                report.add(f"{n:>7,} streams: election (index rebuild)", dt * 1e3, "ms",
                           f"longest stall {stall * 1e3:.2f} ms{gc_note(monitor)}")  # fmt: skip
                before = master.decisions
                dt, stall = await timed(monitor, settle(master))
                placed = master.decisions - before
                report.add(f"{n:>7,} streams: placement tick", dt * 1e3, "ms",
                           f"{placed:,} placed; longest stall {stall * 1e3:.2f} ms, p99"
                           f" {monitor.p99_s() * 1e3:.2f} ms, {monitor.over_5ms} over 5 ms"
                           f" of {len(monitor.samples)}{gc_note(monitor)}")  # fmt: skip
                worst = stall
                dt, stall = await timed(monitor, settle(master))
                report.add(f"{n:>7,} streams: idle tick", dt * 1e3, "ms",
                           f"longest stall {stall * 1e3:.2f} ms")  # fmt: skip
                worst = max(worst, stall)
                # 1 % of the running streams fail (feedback, as an agent would report it).
                running = [s for s in m.streams.streams.values() if s.status == "in_progress"]
                fails = [
                    Append(f"stream.{s.stream_id}", StreamFailed(
                        at=time.time(), cause=CAUSE, stream_id=s.stream_id, agent_id=s.agent_id or "",
                        assignment_version=s.assignment_version or 0,
                        error=ErrorInfo(code="source_unreachable"),
                    ))
                    for s in running[: max(len(running) // 100, 1)]
                ]  # fmt: skip
                seqs = await m.store.append_batch(fails)
                await m.projector.wait_for(max(seqs), timeout=60)
                before = master.decisions
                dt, stall = await timed(monitor, settle(master))
                report.add(f"{n:>7,} streams: 1% changed tick", dt * 1e3, "ms",
                           f"{master.decisions - before:,} decisions; longest stall"
                           f" {stall * 1e3:.2f} ms")  # fmt: skip
                worst = max(worst, stall)
            report.add(f"{n:>7,} streams: longest stall in ticks", worst * 1e3, "ms",
                       "target <= 5 ms at 100k")  # fmt: skip


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    args = parser.parse_args()
    sizes = [1000, 5000] if args.quick else [int(x) for x in args.sizes.split(",")]
    report = Report("master tick (incremental) and event-loop stalls")
    for n in sizes:
        await one_size(n, report)
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
