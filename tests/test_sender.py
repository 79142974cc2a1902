"""FeedbackSender against a real nats-server: order, msg ids, missing stream, outage, dedup."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import ServerError

from agent.outbox import Outbox
from agent.sender import (
    FEEDBACK_STREAM,
    Backoff,
    FeedbackSender,
    SenderStopped,
    feedback_subject,
    msg_id,
)
from events.feedback import Feedback, StreamStats, decode_feedback, encode_feedback
from ops.runtime.natsd import EmbeddedNats

DAY = "2025-06-01"
AGENT = "agent-7"


async def add_feedback_stream(js: JetStreamContext, duplicate_window: float = 120.0) -> None:
    await js.add_stream(
        StreamConfig(
            name=FEEDBACK_STREAM,
            subjects=["vigil.feedback.>"],
            storage=StorageType.FILE,
            duplicate_window=duplicate_window,
        )
    )


async def read_feedback(js: JetStreamContext) -> list[tuple[str, Feedback]]:
    """Every message in the feedback stream as (Nats-Msg-Id, Feedback), in stream order."""
    total = (await js.stream_info(FEEDBACK_STREAM)).state.messages
    out: list[tuple[str, Feedback]] = []
    for seq in range(1, total + 1):
        raw = await js.get_msg(FEEDBACK_STREAM, seq)
        assert raw.data is not None and raw.headers is not None
        out.append((raw.headers["Nats-Msg-Id"], decode_feedback(raw.data)))
    return out


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for `condition` to hold, checking every 10 ms, failing after `timeout`."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - polls a condition under a deadline
            await asyncio.sleep(0.01)


def fast_sender(nc: Client, outbox: Outbox) -> FeedbackSender:
    return FeedbackSender(
        nc, outbox, ack_timeout=1.0, poll_interval=0.2, backoff=Backoff(initial=0.05, cap=0.3)
    )


@pytest.fixture
async def client(nats_server: EmbeddedNats) -> AsyncIterator[Client]:
    """A client that reconnects forever, quiet about the reconnect errors it expects."""

    async def on_error(exc: Exception) -> None:
        pass

    nc = await nats.connect(
        nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, error_cb=on_error
    )
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    ob = await Outbox.open(tmp_path / "outbox.db", AGENT)
    try:
        yield ob
    finally:
        await ob.close()


async def test_rows_are_published_in_order_with_msg_ids(client: Client, outbox: Outbox) -> None:
    js = client.jetstream()
    await add_feedback_stream(js)
    put = [
        await outbox.put(f"s{i % 4}", 1, "done", day=DAY, ts=float(i), stats=StreamStats(events=i))
        for i in range(300)
    ]
    async with fast_sender(client, outbox) as sender:
        async with asyncio.timeout(20):
            await sender.wait_empty()
        stats = sender.stats()
    assert stats.sent == 300 and stats.duplicates == 0 and stats.depth == 0
    got = await read_feedback(js)
    assert [fb for _, fb in got] == put
    assert [mid for mid, _ in got] == [f"{AGENT}:{fb.seq}" for fb in put]
    raw = await js.get_msg(FEEDBACK_STREAM, 1)
    assert raw.subject == feedback_subject(AGENT)


async def test_missing_stream_is_retried_until_a_manager_creates_it(
    client: Client, outbox: Outbox
) -> None:
    js = client.jetstream()
    await outbox.put("s1", 1, "in_progress", day=DAY, ts=1.0, stats=StreamStats(events=1))
    async with fast_sender(client, outbox) as sender:
        await until(lambda: sender.stats().retries >= 2)
        stats = sender.stats()
        assert not stats.available and stats.last_error is not None
        assert "no JetStream stream" in stats.last_error
        assert outbox.depth() == 1  # still kept

        await add_feedback_stream(js)
        async with asyncio.timeout(20):
            await sender.wait_empty()
        assert sender.stats().available
    assert len(await read_feedback(js)) == 1


async def test_a_row_stored_before_its_ack_was_lost_is_not_stored_twice(
    client: Client, outbox: Outbox
) -> None:
    js = client.jetstream()
    await add_feedback_stream(js)
    row = await outbox.put("s1", 1, "in_progress", day=DAY, ts=1.0, stats=StreamStats(events=5))
    # A previous attempt reached the stream but its ack never came back.
    await js.publish(
        feedback_subject(AGENT), encode_feedback(row), headers={"Nats-Msg-Id": msg_id(row)}
    )
    async with fast_sender(client, outbox) as sender:
        async with asyncio.timeout(20):
            await sender.wait_empty()
        assert (sender.stats().sent, sender.stats().duplicates) == (0, 1)
    assert [fb for _, fb in await read_feedback(js)] == [row]


async def test_outage_then_restart_delivers_every_delta_exactly_once(
    nats_server: EmbeddedNats, client: Client, outbox: Outbox
) -> None:
    js = client.jetstream()
    await add_feedback_stream(js)
    measured: Counter[tuple[str, int, str]] = Counter()  # the agent's own tally of frames
    tick = [0.0]

    async def put_deltas(n: int) -> None:
        for i in range(n):
            tick[0] += 0.5
            stream = f"s{i % 5}"
            await outbox.put(
                stream, 1, "in_progress", day=DAY, ts=tick[0], stats=StreamStats(frames_decoded=i)
            )
            measured[(stream, 1, DAY)] += i

    async with fast_sender(client, outbox) as sender:
        await put_deltas(200)
        await asyncio.to_thread(nats_server.kill)  # outage: SIGKILL
        await put_deltas(300)
        await outbox.put("s0", 1, "done", day=DAY, ts=tick[0])
        await until(lambda: sender.stats().retries >= 1)  # the sender noticed
        assert outbox.depth() > 0
        await asyncio.to_thread(nats_server.start)  # same port, same store
        await put_deltas(100)
        async with asyncio.timeout(30):
            await sender.wait_empty()
        stats = sender.stats()

    got = await read_feedback(js)
    ids = [mid for mid, _ in got]
    assert len(ids) == len(set(ids)), "a msg id was stored twice"
    # Stream order may differ from seq order after a reconnect (nats-py replays its reconnect
    # buffer before the sender's retries), so check the set: every seq, once, no gap.
    seqs = sorted(fb.seq for _, fb in got)
    assert seqs == list(range(seqs[0], outbox.last_seq + 1)), "seqs not contiguous"
    assert all(mid == f"{AGENT}:{fb.seq}" for mid, fb in got)
    delivered: Counter[tuple[str, int, str]] = Counter()
    for _, fb in got:
        delivered[(fb.stream_id, fb.version, fb.day)] += fb.stats.frames_decoded
    assert delivered == measured  # exact, not approximate
    s0 = [fb.status for _, fb in got if fb.stream_id == "s0"]
    assert s0.count("done") == 1 and s0[-1] == "in_progress"  # later deltas: a new row
    assert outbox.depth() == 0
    # Rows whose first copy was stored although its ack was lost come back as duplicates.
    assert stats.sent + stats.duplicates == len(got) and stats.available


async def test_exit_during_an_outage_keeps_rows_for_the_next_run(
    nats_server: EmbeddedNats, client: Client, tmp_path: Path
) -> None:
    js = client.jetstream()
    await add_feedback_stream(js)
    path = tmp_path / "o.db"
    async with await Outbox.open(path, AGENT) as outbox:
        async with fast_sender(client, outbox) as sender:
            await asyncio.to_thread(nats_server.stop)
            await outbox.put("s1", 1, "done", day=DAY, ts=1.0)
            await until(lambda: sender.stats().retries >= 1)
        assert outbox.depth() == 1  # the task was cancelled and awaited, nothing lost
    await asyncio.to_thread(nats_server.start)
    async with await Outbox.open(path, AGENT) as outbox, fast_sender(client, outbox) as sender:
        async with asyncio.timeout(20):
            await sender.wait_empty()
    assert len(await read_feedback(js)) == 1


async def test_a_closed_connection_stops_the_sender(nc: Client, outbox: Outbox) -> None:
    js = nc.jetstream()
    await add_feedback_stream(js)
    with pytest.raises(SenderStopped, match="connection closed"):
        async with fast_sender(nc, outbox) as sender:
            await nc.close()
            await outbox.put("s1", 1, "done", day=DAY, ts=1.0)
            async with asyncio.timeout(20):
                await sender.wait_empty()
    assert outbox.depth() == 1


async def test_a_refused_message_is_reported_at_once_and_retried_until_accepted(
    client: Client, outbox: Outbox
) -> None:
    """Given the feedback subject captured by a stream of another name
    When the sender publishes (expecting VIGIL_FEEDBACK)
    Then the refusal is its last error, well before the ack timeout, and nothing is lost: once
    the right stream takes the subject, the row is stored exactly once"""
    js = client.jetstream()
    await js.add_stream(StreamConfig(name="SQUATTER", subjects=["vigil.feedback.>"]))
    row = await outbox.put("s1", 1, "done", day=DAY, ts=1.0, stats=StreamStats(events=3))
    sender = FeedbackSender(
        client, outbox, ack_timeout=60.0, poll_interval=0.2, backoff=Backoff(0.05, 0.3)
    )
    async with sender:
        await until(lambda: sender.stats().retries >= 2)  # 60 s ack timeout: not timeouts
        error = sender.stats().last_error
        assert error is not None and "refused" in error, error
        assert outbox.depth() == 1
        await js.delete_stream("SQUATTER")
        async with asyncio.timeout(20):  # the server may still be removing the squatter's store
            while True:
                try:
                    await add_feedback_stream(js)
                    break
                except ServerError:  # 10049: error creating store for stream
                    await asyncio.sleep(0.05)
        async with asyncio.timeout(20):
            await sender.wait_empty()
    assert [fb for _, fb in await read_feedback(js)] == [row]
