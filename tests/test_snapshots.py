"""Snapshots: start from snapshot + tail equals start from zero; a corrupt one is ignored."""

from __future__ import annotations

import logging
import time

import msgspec
import pytest
from nats.aio.client import Client

from events.jetstream import JetStreamStore
from events.model import Cause, Source, StreamCreated, StreamStopped
from ops.logtools.replay import rebuild
from ops.logtools.verify import digest_dump, dump_projections
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from projections.engine import Projector
from projections.snapshot import (
    FORMAT,
    bucket,
    decode_snapshot,
    encode_snapshot,
    latest_snapshot,
    take_snapshot,
    write_snapshot,
)
from projections.streams import StreamsProjection
from tests.helpers import LOOPBACK_OK, eventually, ok

FAST = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, master_lease_s=2)
CAUSE = Cause(kind="command", name="test")


def created(i: int) -> StreamCreated:
    return StreamCreated(at=time.time(), cause=CAUSE, stream_id=f"s-{i}", name=f"cam {i}",
                         source=Source(url=f"rtsp://cam/{i}"), kind="stream")  # fmt: skip


async def test_undecodable_events_are_counted_logged_and_skipped(
    nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    store = JetStreamStore(nc)
    await store.ensure()
    await store.append("stream.s-1", [created(1)])
    await nc.jetstream().publish("vigil.evt.stream.s-2", b'{"type": "StreamTeleported"}')
    await nc.jetstream().publish("vigil.evt.stream.s-3", b"\xff not json")
    await store.append("stream.s-1", [StreamStopped(at=time.time(), cause=CAUSE, stream_id="s-1")])
    streams = StreamsProjection()
    with caplog.at_level(logging.WARNING):
        async with Projector(nc, [streams], stop_seq=4) as p:
            await p.wait_done(10)
    assert p.undecodable == 2 and p.applied == 2 and p.last_seq == 4
    assert streams.streams["s-1"].status == "stopped"
    assert "event seq 2" in caplog.text and "event seq 3" in caplog.text


async def test_start_from_snapshot_plus_tail_equals_start_from_zero(
    nats_server: EmbeddedNats, nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    client = ClientSettings(nats_url=nats_server.url)
    async with Manager(client, FAST) as m:
        await eventually(lambda: m.master.is_master, what="master")
        await ok(nc, "agent.register", {"name": "a", "capacity": 4})
        ids = [(await ok(nc, "stream.create", {"source": {"url": f"rtsp://c/{i}"}}))["stream_id"]
               for i in range(6)]  # fmt: skip
        await eventually(lambda: sum(s.agent_id is not None for s in m.streams.live()) == 4,
                         what="4 assigned")  # fmt: skip
        seq = await m.snapshots.maybe_write(force=True)
        assert seq == m.projector.last_seq
        # The tail after the snapshot: stops, a delete, more creates.
        await ok(nc, "stream.patch", {"stream_id": ids[0], "action": "stop"})
        await ok(nc, "stream.delete", {"stream_id": ids[1]})
        await ok(nc, "stream.create", {"source": {"url": "rtsp://c/late"}})
        await eventually(lambda: sum(s.agent_id is not None for s in m.streams.live()) == 4)

    store = JetStreamStore(nc)
    last = await store.last_seq()
    async with Manager(client, FAST, run_master=False) as from_snap:
        assert from_snap.projector.start_seq == seq + 1  # it did start from the snapshot
        assert from_snap.projector.applied == last - seq
        snap_digests = digest_dump(dump_projections(from_snap.fleet.all()))
        snap_seq = from_snap.projector.last_seq
    zero = await rebuild(nc, snap_seq)
    assert zero.applied == snap_seq
    assert digest_dump(dump_projections(zero.projections)) == snap_digests

    # A corrupt newest snapshot is ignored with a warning: the previous valid one is used.
    obs = await bucket(nc)
    assert obs is not None
    good = await latest_snapshot(nc)
    assert good is not None and good.header.format == FORMAT
    data = bytearray(encode_snapshot(good))
    data[-3] ^= 0xFF
    await obs.put(f"projections.{last + 1000:016d}", bytes(data))  # newest name, bad checksum
    with caplog.at_level(logging.WARNING):
        async with Manager(client, FAST, run_master=False) as m2:
            assert m2.projector.start_seq == seq + 1
            assert digest_dump(dump_projections(m2.fleet.all())) == snap_digests
    assert "checksum mismatch" in caplog.text

    # Every snapshot unreadable (wrong format version, garbage): fall back to zero, same state.
    for info in await obs.list():
        await obs.delete(info.name)
    wrong = msgspec.structs.replace(good, header=msgspec.structs.replace(good.header, format=99))
    await obs.put(f"projections.{seq:016d}", encode_snapshot(wrong))
    await obs.put(f"projections.{seq - 1:016d}", b"garbage")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        async with Manager(client, FAST, run_master=False) as m3:
            assert m3.projector.start_seq == 1
            assert digest_dump(dump_projections(m3.fleet.all())) == snap_digests
    assert "format 99" in caplog.text and "bad magic" in caplog.text


async def test_snapshot_round_trip_and_a_projection_blob_of_another_version(nc: Client) -> None:
    store = JetStreamStore(nc)
    await store.ensure()
    await store.append("stream.s-1", [created(1)])
    streams = StreamsProjection()
    async with Projector(nc, [streams], stop_seq=1) as p:
        await p.wait_done(10)
    snap = take_snapshot(p, [streams], "m-test")
    back = decode_snapshot(encode_snapshot(snap))
    assert back.header.seq == 1 and back.blobs == snap.blobs
    await write_snapshot(nc, snap)
    restored = StreamsProjection()
    restored.restore(back.blobs["streams"])
    assert restored.streams == streams.streams
    from projections.engine import SnapshotError

    with pytest.raises(SnapshotError, match="format v7"):
        restored.restore(msgspec.msgpack.encode({"v": 7, "streams": {}, "last_seq": {}}))
    assert restored.streams == streams.streams  # unchanged after a refused restore


def test_a_restore_rebuilds_every_index_the_fold_built() -> None:
    """Given streams folded into every state an index tells apart: pending for two analytics,
    in a group, assigned, running on agents, stopped, deleted
    When the projection is snapshotted and restored into a fresh one
    Then the restored indexes equal the folded ones (creation order, pending per requirement,
    streams per agent and per group, counts by status)"""
    from events.model import AnalyticRef, StreamAssigned, StreamDeleted, StreamRunning

    folded = StreamsProjection()
    seq = 0

    def fold(event: StreamCreated | StreamAssigned | StreamRunning | StreamStopped | StreamDeleted,
             ) -> None:  # fmt: skip
        nonlocal seq
        seq += 1
        folded.apply(seq, f"stream.{event.stream_id}", event)

    for i in range(300):
        sid = f"s-{i:03d}"
        fold(StreamCreated(
            at=1_000.0 + (i * 7919) % 300, cause=CAUSE, stream_id=sid, name=f"cam {i}",
            source=Source(url=f"rtsp://cam/{i}"), kind="stream",
            analytics=(AnalyticRef(name="faces" if i % 3 else "motion"),),
            group=f"g{i % 4}" if i % 5 == 0 else None,
        ))  # fmt: skip
        if i % 2:
            fold(StreamAssigned(at=2e3, cause=CAUSE, stream_id=sid, agent_id=f"a{i % 7}",
                                base_version=1))  # fmt: skip
            if i % 4 == 1:
                fold(StreamRunning(at=3e3, cause=CAUSE, stream_id=sid, agent_id=f"a{i % 7}",
                                   assignment_version=2))  # fmt: skip
        if i % 11 == 0:
            fold(StreamStopped(at=4e3, cause=CAUSE, stream_id=sid))
        if i % 13 == 0:
            fold(StreamDeleted(at=5e3, cause=CAUSE, stream_id=sid))

    restored = StreamsProjection()
    restored.restore(folded.snapshot())

    assert restored.streams == folded.streams and restored.last_seq == folded.last_seq
    assert list(restored.order) == list(folded.order)
    assert {r: list(k) for r, k in restored.pending.items()} == {
        r: list(k) for r, k in folded.pending.items() if k
    }
    assert len(restored.pending) >= 2, "pending streams for two requirements"
    assert restored.by_agent == folded.by_agent and restored.by_agent
    assert restored.by_group == folded.by_group and restored.by_group
    assert +restored.counts == +folded.counts
    assert {"pending", "in_progress", "stopped", "deleted"} <= set(+folded.counts)
