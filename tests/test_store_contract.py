"""One contract, two adapters: the in-memory store and the JetStream store behave alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest

from events.jetstream import JetStreamStore
from events.memory import MemoryStore
from events.model import Cause, MasterElected, Source, StreamCreated, StreamStopped
from events.store import Append, Conflict, EventStore, Fence, Fenced
from ops.runtime.natsd import EmbeddedNats

CAUSE = Cause(kind="command", name="test")


def created(stream_id: str) -> StreamCreated:
    return StreamCreated(
        at=1.0, cause=CAUSE, stream_id=stream_id, name=stream_id,
        source=Source(url="file:///x.mp4"), kind="file",
    )  # fmt: skip


def stopped(stream_id: str) -> StreamStopped:
    return StreamStopped(at=2.0, cause=CAUSE, stream_id=stream_id)


@pytest.fixture(params=["memory", "jetstream"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: EmbeddedNats = request.getfixturevalue("nats_server")
    nc = await nats.connect(server.url)
    js_store = JetStreamStore(nc)
    await js_store.ensure()
    yield js_store
    await nc.close()


async def test_append_then_read_returns_events_in_order(store: EventStore) -> None:
    seqs = await store.append("stream.a", [created("a"), stopped("a")], expected_seq=0)
    await store.append("stream.b", [created("b")], expected_seq=0)
    events = await store.read("stream.a")
    assert [e.seq for e in events] == seqs
    assert [type(e.event).__name__ for e in events] == ["StreamCreated", "StreamStopped"]
    assert events[0].event == created("a")
    assert await store.last_seq() == 3


async def test_expected_seq_conflict(store: EventStore) -> None:
    [seq] = await store.append("stream.a", [created("a")], expected_seq=0)
    with pytest.raises(Conflict):
        await store.append("stream.a", [created("a")], expected_seq=0)
    await store.append("stream.a", [stopped("a")], expected_seq=seq)
    with pytest.raises(Conflict):
        await store.append("stream.a", [stopped("a")], expected_seq=seq)
    assert len(await store.read("stream.a")) == 2


async def test_same_msg_id_stores_once(store: EventStore) -> None:
    first = await store.append("stream.a", [created("a")], msg_id="req-1")
    again = await store.append("stream.a", [created("a")], msg_id="req-1")
    assert first == again
    assert len(await store.read("stream.a")) == 1


async def test_read_of_unknown_aggregate_is_empty(store: EventStore) -> None:
    assert await store.read("stream.none") == []
    assert await store.last_seq() == 0


async def test_read_all_from_a_sequence(store: EventStore) -> None:
    await store.append("stream.a", [created("a")])
    await store.append("stream.b", [created("b")])
    await store.append("stream.a", [stopped("a")])
    got = [(e.seq, e.aggregate) async for e in store.read_all(2)]
    assert got == [(2, "stream.b"), (3, "stream.a")]


async def test_fence_rejects_a_deposed_master(store: EventStore) -> None:
    cause = Cause(kind="system", name="election")
    [old] = await store.append(
        "master", [MasterElected(at=1, cause=cause, epoch=1, manager_id="m1")]
    )
    await store.append_batch([Append("stream.a", created("a"))], fence=Fence("master", old))
    [new] = await store.append(
        "master", [MasterElected(at=2, cause=cause, epoch=2, manager_id="m2")]
    )
    with pytest.raises(Fenced):
        await store.append_batch([Append("stream.b", created("b"))], fence=Fence("master", old))
    with pytest.raises(Fenced):
        await store.append("stream.a", [stopped("a")], fence=Fence("master", old))
    await store.append_batch([Append("stream.b", created("b"))], fence=Fence("master", new))
    assert [e.aggregate async for e in store.read_all()] == [
        "master",
        "stream.a",
        "master",
        "stream.b",
    ]


async def test_batch_append_keeps_order_and_dedups(store: EventStore) -> None:
    items = [Append(f"stream.s{i}", created(f"s{i}"), msg_id=f"m{i}") for i in range(50)]
    seqs = await store.append_batch(items)
    assert seqs == list(range(1, 51))
    assert await store.append_batch(items[:3]) == [1, 2, 3]
    assert await store.last_seq() == 50
