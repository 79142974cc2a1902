"""Distribution: plan + append for 10,000 pending streams over 1,000 simulated agents.

Starts its own nats-server. Creates the agents and streams as events, lets a Projector fold them,
then times exactly what the master does in one tick: ``plan()`` over the projections, ``decide``
for each assignment, and one fenced pipelined ``append_batch``. Prints seconds and events/s, and
the raw ``publish_async`` rate for the same number of events measured in the same run.

Usage: python bench/distribute.py [--streams 10000] [--agents 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import nats

from core import stream as S
from core.distribution import plan
from events.codec import encode_event
from events.jetstream import JetStreamStore
from events.model import (
    AgentRegistered,
    AnalyticOffer,
    AnalyticRef,
    Cause,
    MasterElected,
    Source,
    StreamCreated,
)
from events.store import Append, Fence
from ops.runtime.natsd import EmbeddedNats
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.streams import StreamsProjection

CAUSE = Cause(kind="command", name="bench")
MASTER = Cause(kind="master", name="stream.assign", epoch=1)


async def main(n_streams: int, n_agents: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedNats(tmp) as server:
            nc = await nats.connect(server.url)
            store = JetStreamStore(nc)
            await store.ensure()
            now = time.time()
            setup = [
                Append(f"agent.a{i:04}", AgentRegistered(
                    at=now, cause=CAUSE, agent_id=f"a{i:04}", name=f"a{i}", capacity=12,
                    analytics=(AnalyticOffer(name="motion"), AnalyticOffer(name="faces")),
                ), msg_id=f"ar{i}")
                for i in range(n_agents)
            ] + [
                Append(f"stream.s{i:05}", StreamCreated(
                    at=now + i * 1e-6, cause=CAUSE, stream_id=f"s{i:05}", name=f"cam {i}",
                    source=Source(url=f"rtsp://10.0.{i // 250}.{i % 250}/live"), kind="stream",
                    analytics=(AnalyticRef(name="motion" if i % 3 else "faces"),),
                ), msg_id=f"sc{i}")
                for i in range(n_streams)
            ]  # fmt: skip
            await store.append_batch(setup)
            [fence_seq] = await store.append(
                "master", [MasterElected(at=now, cause=MASTER, epoch=1, manager_id="bench")]
            )
            streams, agents = StreamsProjection(), AgentsProjection()
            projector = Projector(nc, [streams, agents])
            await projector.start()
            await projector.wait_caught_up(60)

            t0 = time.perf_counter()
            assignments = plan(streams.live(), agents.agents)
            t_plan = time.perf_counter() - t0
            items = []
            for a in assignments:
                state = streams.streams[a.stream_id]
                [event] = S.decide(state, S.AssignStream(stream_id=a.stream_id, at=now,
                                                        cause=MASTER, agent_id=a.agent_id))  # fmt: skip
                items.append(Append(f"stream.{a.stream_id}", event, msg_id=f"as{a.stream_id}"))
            t_decide = time.perf_counter() - t0 - t_plan
            seqs = await store.append_batch(items, fence=Fence("master", fence_seq))
            total = time.perf_counter() - t0
            await projector.wait_for(max(seqs), timeout=60)
            applied = time.perf_counter() - t0
            await projector.stop()

            bodies = [encode_event(i.event) for i in items]
            await nc.jetstream().add_stream(name="RAW", subjects=["raw.>"])
            t0 = time.perf_counter()
            futures = [
                await nc.jetstream().publish_async(f"raw.{i}", b) for i, b in enumerate(bodies)
            ]
            await asyncio.gather(*futures)
            raw = len(bodies) / (time.perf_counter() - t0)
            await nc.close()

    print(f"streams {n_streams}, agents {n_agents}, assignments {len(assignments)}")
    print(f"plan:                 {t_plan:7.3f} s")
    print(f"decide:               {t_decide:7.3f} s")
    print(
        f"plan + decide + append: {total:5.3f} s  ({len(items) / total:,.0f} events/s; target <= 1 s)"
    )
    print(f"... + folded back:    {applied:7.3f} s")
    print(
        f"raw publish_async:    {raw:,.0f} msg/s  (append share of raw: {len(items) / (total - t_plan - t_decide) / raw:.2f})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=1_000)
    args = parser.parse_args()
    asyncio.run(main(args.streams, args.agents))
