"""One contract, two adapters: the in-memory store and the JetStream store behave alike — on one
nats-server and on a 3-node cluster (whose leader answers some checks differently: 10164)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest

from events.jetstream import JetStreamStore
from events.memory import MemoryStore
from events.model import Cause, MasterElected, Source, StreamCreated, StreamStopped
from events.store import Append, Conflict, EventStore, Fence, Fenced
from ops.runtime.natsd import EmbeddedCluster, EmbeddedNats
from ops.runtime.storage import until_jetstream_ready

CAUSE = Cause(kind="command", name="test")


def created(stream_id: str) -> StreamCreated:
    return StreamCreated(
        at=1.0, cause=CAUSE, stream_id=stream_id, name=stream_id,
        source=Source(url="file:///x.mp4"), kind="file",
    )  # fmt: skip


def stopped(stream_id: str) -> StreamStopped:
    return StreamStopped(at=2.0, cause=CAUSE, stream_id=stream_id)


@pytest.fixture(scope="module")
def r3_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    """One 3-node cluster for the module; each test gets a fresh R3 stream on it."""
    cluster = EmbeddedCluster(Path(tmp_path_factory.mktemp("r3")), 3)
    for server in cluster.servers:
        server._spawn()
    try:
        for server in cluster.servers:
            server._wait_ready()
        yield cluster
    finally:
        for server in cluster.servers:
            server.stop()


@pytest.fixture(params=["memory", "jetstream", "jetstream-r3"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "jetstream-r3":
        cluster: EmbeddedCluster = request.getfixturevalue("r3_cluster")
        nc = await nats.connect(cluster.url.split(","))
        await until_jetstream_ready(nc)
        name = uuid.uuid4().hex[:8]
        r3 = JetStreamStore(nc, stream=f"T_{name}", subject_prefix=f"t{name}.evt", replicas=3)
        await r3.ensure()
        assert r3.clustered  # fenced batches go atomically here
        yield r3
        await nc.jetstream().delete_stream(f"T_{name}")
        await nc.close()
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


async def test_a_pipelined_fenced_batch_is_stored_whole(store: EventStore) -> None:
    """Hundreds of decisions in flight under one fence (a clustered leader admits one fenced
    write at a time and answers the others 10164: they are retried, not taken for a fence)."""
    cause = Cause(kind="system", name="election")
    [elected] = await store.append(
        "master", [MasterElected(at=1, cause=cause, epoch=1, manager_id="m1")]
    )
    items = [Append(f"stream.s{i}", created(f"s{i}"), msg_id=f"d{i}") for i in range(300)]
    items += [Append(f"stream.s{i}", stopped(f"s{i}"), msg_id=f"e{i}") for i in range(0, 300, 7)]
    seqs = await store.append_batch(items, fence=Fence("master", elected))
    assert sorted(seqs) == list(range(2, 2 + len(items)))
    got = [(e.aggregate, type(e.event).__name__) async for e in store.read_all(2)]
    assert sorted(got) == sorted((i.aggregate, type(i.event).__name__) for i in items)
    stops = [a for a, kind in got if kind == "StreamStopped"]
    for aggregate in stops:  # each aggregate's events in the order given
        kinds = [kind for a, kind in got if a == aggregate]
        assert kinds == ["StreamCreated", "StreamStopped"], (aggregate, kinds)


async def test_a_fenced_batch_sent_again_is_stored_once(store: EventStore) -> None:
    """A master that lost the ack of its decisions sends them again: same sequences back."""
    cause = Cause(kind="system", name="election")
    [elected] = await store.append(
        "master", [MasterElected(at=1, cause=cause, epoch=1, manager_id="m1")]
    )
    items = [Append(f"stream.s{i}", created(f"s{i}"), msg_id=f"d{i}") for i in range(40)]
    first = await store.append_batch(items, fence=Fence("master", elected))
    again = await store.append_batch(items, fence=Fence("master", elected))
    assert first == again == list(range(2, 42))
    assert await store.last_seq() == 41


async def test_batch_append_keeps_order_and_dedups(store: EventStore) -> None:
    items = [Append(f"stream.s{i}", created(f"s{i}"), msg_id=f"m{i}") for i in range(50)]
    seqs = await store.append_batch(items)
    assert seqs == list(range(1, 51))
    assert await store.append_batch(items[:3]) == [1, 2, 3]
    assert await store.last_seq() == 50
