"""Distribution: place 100,000 pending streams on 10,000 simulated agents in one master tick.

Starts its own nats-server. Writes the agents and streams as events, lets a Projector fold them,
then times what the master does to place them all: ``plan()`` over the projections (the
master's ``Candidates`` heaps, every pending stream in one pass),
``decide`` for each assignment, and one fenced pipelined ``append_batch``. Beside it, the raw
``publish_async`` rate of the same encoded events on the same server (one JetStream context; the
old version of this bench made a context per message, which cut the raw rate by half), and the
append's share of it.

Target (issue 18): plan + decide + fenced append of 100k streams on 10k agents <= 2 s.

Usage: python bench/distribute.py [--streams 100000] [--agents 10000] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import itertools
import time

import nats
from common import (
    Report,
    agent_registered,
    append_all,
    arguments,
    nats_server,
    raw_publish_async,
    say,
    stream_created,
)

from core import stream as S
from core.distribution import plan
from events.codec import encode_event
from events.jetstream import JetStreamStore
from events.model import Cause, MasterElected
from events.store import Append, Fence
from projections.agents import AgentsProjection
from projections.engine import Projector
from projections.streams import StreamsProjection

MASTER = Cause(kind="master", name="stream.assign", epoch=1)


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=10_000)
    args = parser.parse_args()
    n_streams, n_agents = (5_000, 500) if args.quick else (args.streams, args.agents)
    capacity = n_streams // n_agents + 2
    report = Report(f"distribution: {n_streams:,} pending streams on {n_agents:,} agents"
                    f" (capacity {capacity} each)")  # fmt: skip
    async with nats_server() as server:
        nc = await nats.connect(server.url, pending_size=64 * 1024 * 1024)
        store = JetStreamStore(nc)
        await store.ensure()
        now = time.time()
        say(f"writing {n_agents:,} agents and {n_streams:,} streams")
        await append_all(store, itertools.chain(
            (agent_registered(i, capacity=capacity, now=now, analytics=("motion", "faces"))
             for i in range(n_agents)),
            (stream_created(i, now=now, analytic="faces" if i % 3 == 0 else "motion")
             for i in range(n_streams)),
        ))  # fmt: skip
        [fence_seq] = await store.append(
            "master", [MasterElected(at=now, cause=MASTER, epoch=1, manager_id="bench")]
        )
        streams, agents = StreamsProjection(), AgentsProjection()
        projector = Projector(nc, [streams, agents])
        await projector.start()
        await projector.wait_caught_up(600)

        say("placing")
        t0 = time.perf_counter()
        assignments = plan(streams.live(), agents.agents)
        t_plan = time.perf_counter() - t0
        items = []
        for a in assignments:
            state = streams.streams[a.stream_id]
            [event] = S.decide(state, S.AssignStream(stream_id=a.stream_id, at=now, cause=MASTER,
                                                    agent_id=a.agent_id))  # fmt: skip
            items.append(Append(f"stream.{a.stream_id}", event, msg_id=f"as{a.stream_id}"))
        t_decide = time.perf_counter() - t0 - t_plan
        seqs = await store.append_batch(items, fence=Fence("master", fence_seq))
        total = time.perf_counter() - t0
        t_append = total - t_plan - t_decide
        await projector.wait_for(max(seqs), timeout=600)
        applied = time.perf_counter() - t0
        await projector.stop()
        assert len(assignments) == n_streams, f"placed {len(assignments)} of {n_streams}"

        raw = await raw_publish_async(nc, [encode_event(i.event) for i in items])
        await nc.close()

    report.add("plan", t_plan, "s", key="distribute.plan")
    report.add("decide", t_decide, "s", key="distribute.decide")
    report.add("fenced append_batch", t_append, "s", f"{len(items) / t_append:,.0f} events/s")
    report.add("plan + decide + fenced append", total, "s",
               f"{len(items):,} assignments; target <= 2 s at 100k on 10k",
               key="distribute.total")  # fmt: skip
    report.add("... and folded back by a projector", applied, "s")
    report.ratio("fenced append_batch vs raw publish_async", len(items) / t_append, raw,
                 unit="events/s", key="distribute.append")  # fmt: skip
    report.add("the same events at the raw rate", len(items) / raw, "s",
               "the floor of any append of them on this server")  # fmt: skip
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
