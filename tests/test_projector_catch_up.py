"""A long backlog is read by the catch-up consumer, then the ordered consumer follows."""

from __future__ import annotations

import time

import nats

from core import stream as S
from events.jetstream import JetStreamStore
from events.model import Cause, Source, StreamCreated, StreamEvent, StreamStopped
from events.store import Append
from ops.runtime.natsd import EmbeddedNats
from projections.engine import CATCH_UP_MIN, Projector
from projections.streams import StreamsProjection

CAUSE = Cause(kind="command", name="test")


def created(i: int) -> StreamCreated:
    return StreamCreated(at=time.time(), cause=CAUSE, stream_id=f"s{i}", name=f"s{i}",
                         source=Source(url="rtsp://cam/x"), kind="stream")  # fmt: skip


async def test_backlog_then_live_events_fold_exactly_like_the_log(
    nats_server: EmbeddedNats,
) -> None:
    nc = await nats.connect(nats_server.url)
    store = JetStreamStore(nc)
    await store.ensure()
    n = CATCH_UP_MIN * 2
    await store.append_batch([Append(f"stream.s{i}", created(i), msg_id=f"c{i}") for i in range(n)])
    streams = StreamsProjection()
    projector = Projector(nc, [streams])
    await projector.start()
    # Events appended while the backlog is being read must arrive too, once each.
    live = [Append(f"stream.s{i}", StreamStopped(at=time.time(), cause=CAUSE, stream_id=f"s{i}"),
                   msg_id=f"x{i}") for i in range(0, n, 7)]  # fmt: skip
    seqs = await store.append_batch(live)
    await projector.wait_caught_up(60)
    assert await projector.wait_for(max(seqs), timeout=30)
    assert projector._catch_up_task is not None  # the fast path was taken

    expected: dict[str, S.StreamState | None] = {}
    async for stored in store.read_all():
        if isinstance(stored.event, StreamEvent):
            expected[stored.event.stream_id] = S.evolve(
                expected.get(stored.event.stream_id), stored.event
            )
    assert streams.streams == expected
    assert projector.applied == n + len(live)

    more = await store.append(
        "stream.s1", [StreamStopped(at=time.time(), cause=CAUSE, stream_id="s1")]
    )
    assert await projector.wait_for(more[-1], timeout=10)  # now followed by the ordered consumer
    await projector.stop()
    await nc.close()
