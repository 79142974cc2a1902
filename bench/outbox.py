"""Outbox drain after an outage vs the raw ``publish_async`` rate, on the same server.

Starts its own nats-server in a temp dir, connects, starts a `FeedbackSender`, stops the server
(the outage), buffers N deltas in the outbox (none coalesce: ``coalesce_window_s=0``, the worst
case), restarts the server on the same port and store, and times the drain until the outbox is
empty (from its first ack). Beside each of three such outages, on the same server, raw pipelined
``publish_async`` of N messages of the same size without headers (the raw limit; the ratio is the
median of the three); once, the same with a ``Nats-Msg-Id`` each (as the outbox must send them:
the server's deduplication costs).

Target (issue 18): drain >= 0.9 of raw.

Usage: python bench/outbox.py [--deltas 100000] [--streams 1000] [--quick] [--json]

Fails if the stream does not hold exactly one message per delta afterwards.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import nats
from common import Report, arguments, paired, raw_publish_async
from nats.js.api import StorageType, StreamConfig

from agent.outbox import FeedbackDraft, Outbox
from agent.sender import FEEDBACK_STREAM, Backoff, FeedbackSender
from events.feedback import Feedback, StreamStats, encode_feedback
from ops.runtime.natsd import EmbeddedNats

ROUNDS = 3


STATS = StreamStats(frames_decoded=250, frames_analysed=50, bytes_read=1_250_000)


async def buffer(outbox: Outbox, deltas: int, streams: int, first: int) -> None:
    """``deltas`` rows into the outbox, 1,000 at a time (none coalesce)."""
    for start in range(first, first + deltas, 1000):
        await outbox.put_many([
            FeedbackDraft(stream_id=f"cam-{i % streams:05d}", version=1, status="in_progress",
                          day="2025-06-01", ts=1_750_000_000.0 + i, stats=STATS)
            for i in range(start, min(start + 1000, first + deltas))
        ])  # fmt: skip


async def bench(deltas: int, streams: int, rounds: int, workdir: Path, report: Report) -> None:
    server = EmbeddedNats(workdir / "nats")
    await asyncio.to_thread(server.start)
    client_errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:  # reconnect attempts during the outage
        client_errors.append(exc)

    nc = await nats.connect(
        server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1, error_cb=on_error
    )
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=FEEDBACK_STREAM, subjects=["vigil.feedback.>"],
                                     storage=StorageType.FILE, duplicate_window=120.0))  # fmt: skip
    outbox = await Outbox.open(
        workdir / "outbox.db", "bench-agent", max_rows=2 * deltas, coalesce_window_s=0.0
    )
    sample = encode_feedback(  # a payload of the size of the drained rows
        Feedback(seq=10 * deltas * rounds, agent_id="bench-agent", stream_id="cam-00001",
                 version=1, status="in_progress", ts=1_750_000_000.0, day="2025-06-01",
                 stats=STATS)
    )  # fmt: skip
    buffered = 0
    first_acks: list[float] = []
    async with FeedbackSender(nc, outbox, backoff=Backoff(initial=0.05, cap=0.5)) as sender:

        async def raw(_r: int) -> float:
            return await raw_publish_async(nc, [sample] * deltas)

        async def drain(r: int) -> float:
            nonlocal buffered
            await asyncio.to_thread(server.stop)  # the outage starts
            t0 = time.perf_counter()
            await buffer(outbox, deltas, streams, r * deltas)
            put_s = time.perf_counter() - t0
            depth = outbox.depth()
            if r == 0:
                t1 = time.perf_counter()
                for i in range(200):
                    await outbox.put(f"cam-{i % streams:05d}", 1, "in_progress",
                                     day="2025-06-01", ts=2e9)  # fmt: skip
                single_ms = (time.perf_counter() - t1) / 200 * 1000
                depth = outbox.depth()
                report.add("buffered during an outage", depth, "rows", f"put_many"
                           f" {deltas / put_s:,.0f}/s, single put {single_ms:.2f} ms each")  # fmt: skip
            buffered += depth
            await asyncio.to_thread(server.start)  # the outage ends
            t_up = time.perf_counter()
            t_first: float | None = None
            while outbox.depth() > 0:
                if t_first is None and outbox.depth() < depth:
                    t_first = time.perf_counter()
                await asyncio.sleep(0.005)
            t_end = time.perf_counter()
            assert t_first is not None
            first_acks.append(t_first - t_up)
            return depth / (t_end - t_first)

        p = await paired(rounds, raw, drain)
        st = sender.stats()
    raw_ids = await raw_publish_async(nc, [sample] * deltas, stream="RAWIDS", msg_ids=True)
    report.add("first ack after the server was back", statistics.median(first_acks), "s",
               "median of the outages")  # fmt: skip
    report.add("sent by the sender", st.sent, "",
               f"duplicates {st.duplicates}, retries {st.retries}, client errors during the"
               f" outages {len(client_errors)}")  # fmt: skip
    report.paired("outbox drain after an outage", p, unit="deltas/s", key="outbox.drain",
                  note=f"{p.measured / raw_ids:.2f}x raw with msg ids ({raw_ids:,.0f}/s);"
                  " target >= 0.9")  # fmt: skip
    stored = (await js.stream_info(FEEDBACK_STREAM)).state.messages
    await outbox.close()
    await nc.close()
    await asyncio.to_thread(server.stop)
    if stored != buffered:
        raise SystemExit(f"FAIL: the stream holds {stored} messages, expected {buffered}")
    report.add("feedback messages stored", stored, "", "exactly one per delta")


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--deltas", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    deltas, streams = (10_000, 100) if args.quick else (args.deltas, args.streams)
    report = Report(f"outbox: {deltas:,} deltas of {streams:,} streams buffered during each of"
                    f" {ROUNDS} outages")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="vigil-bench-outbox-") as tmp:
        await bench(deltas, streams, ROUNDS, Path(tmp), report)
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
