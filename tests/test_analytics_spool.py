"""Spoolers against real receivers: an aiohttp webhook that fails at first, a nats-server, a
directory; and run_stream spooling through each."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from nats.aio.client import Client

from analytics.clips import ClipSpec, Segment, write_clip
from analytics.counters import StreamCounters
from analytics.records import AnalysisRecord, EventInfo, decode_record, record_id
from analytics.spool import (
    DirectoryConfig,
    DirectorySpooler,
    JetStreamConfig,
    SpoolConfig,
    WebhookConfig,
    WebhookSpooler,
    open_spooler,
)
from analytics.spoolrunner import SpoolRunner
from analytics.worker import AnalyticSpec, StreamJob, run_stream
from ops.runtime.natsd import EmbeddedNats
from tests.livesource import ReportLog, free_port, wait_for


def make_record(n: int, stream_id: str = "cam-1") -> AnalysisRecord:
    return AnalysisRecord(
        record_id=record_id(stream_id, "motion", float(n)),
        stream_id=stream_id,
        agent_id="agent-1",
        event=EventInfo(name="motion", started_at=float(n), ended_at=n + 1.0, score=0.5),
        actions=[],
        triggers=[],
        window=[],
    )


class Receiver:
    """A webhook that answers 503 to its first ``failures`` requests, then 200."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests = 0
        self.accepted: Counter[str] = Counter()

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        if self.requests <= self.failures:
            return web.Response(status=503)
        record = decode_record(body)
        assert request.headers["Idempotency-Key"] == record.record_id
        self.accepted[record.record_id] += 1
        return web.Response(status=204)


@asynccontextmanager
async def serve(receiver: Receiver, port: int) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


async def wait_until(condition: object, timeout_s: float, what: str) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_webhook_failing_at_first_gets_every_record_exactly_once(tmp_path: Path) -> None:
    receiver = Receiver(failures=3)
    port = free_port()
    sent: list[str] = []
    records = [make_record(n) for n in range(5)]
    async with serve(receiver, port) as url:
        config = WebhookConfig(url=url, queue_dir=str(tmp_path / "q"), backoff_base_s=0.05)
        async with WebhookSpooler(config, sent.append) as spooler:
            for record in records:
                spooler.put(record)
            spooler.put(records[0])  # a repeat while queued is not sent twice
            assert await spooler.drain(10.0)

    assert receiver.accepted == Counter({r.record_id: 1 for r in records})
    assert receiver.requests == 3 + len(records)
    assert sent == [r.record_id for r in records]
    assert list((tmp_path / "q").iterdir()) == []


async def test_queued_records_survive_a_spooler_restart(tmp_path: Path) -> None:
    port = free_port()
    config = WebhookConfig(
        url=f"http://127.0.0.1:{port}/hook", queue_dir=str(tmp_path / "q"), backoff_base_s=0.05
    )
    records = [make_record(n) for n in range(4)]
    async with WebhookSpooler(config) as down:  # nobody listens yet
        for record in records:
            down.put(record)
        await wait_until(lambda: down.attempts >= 2, 5, "failed delivery attempts")
        assert down.pending == len(records)

    receiver = Receiver(failures=0)
    async with serve(receiver, port), WebhookSpooler(config) as restarted:
        assert restarted.pending == len(records)
        assert await restarted.drain(10.0)

    assert receiver.accepted == Counter({r.record_id: 1 for r in records})
    assert list((tmp_path / "q").iterdir()) == []


async def test_directory_spooler_writes_one_json_file_per_record(tmp_path: Path) -> None:
    async with DirectorySpooler(DirectoryConfig(path=str(tmp_path / "out"))) as spooler:
        for n in range(3):
            spooler.put(make_record(n))
        spooler.put(make_record(0))
    files = sorted((tmp_path / "out").iterdir())
    assert [f.suffix for f in files] == [".json"] * 3
    assert {decode_record(f.read_bytes()).record_id for f in files} == {
        make_record(n).record_id for n in range(3)
    }


async def test_jetstream_spooler_publishes_acked_and_deduplicated(
    nats_server: EmbeddedNats, nc: Client
) -> None:
    sent: list[str] = []
    config = JetStreamConfig(servers=(nats_server.url,))
    async with open_spooler(config, sent.append) as spooler:
        for n in range(3):
            spooler.put(make_record(n))
        spooler.put(make_record(1))  # a retry of the same record
        assert await spooler.drain(10.0)

    info = await nc.jetstream().stream_info("VIGIL_RECORDS")
    assert info.state.messages == 3
    assert len(sent) == 4
    message = await nc.jetstream().get_msg("VIGIL_RECORDS", seq=1)
    assert message.subject == "vigil.records.cam-1"
    assert decode_record(message.data or b"") == make_record(0)


@pytest.fixture(scope="module")
def motion_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ClipSpec(
        duration_s=8.0, timeline=(Segment("motion", 1.0, 2.0), Segment("cut", 5.0, 5.0))
    )
    return write_clip(tmp_path_factory.mktemp("spool") / "m.ts", spec).path


def analyse_with(clip: Path, spool: SpoolConfig) -> StreamCounters:
    job = StreamJob(
        stream_id="cam-1",
        agent_id="agent-1",
        url=str(clip),
        kind="file",
        analytics=(AnalyticSpec("motion"), AnalyticSpec("scene_change")),
        spool=spool,
    )
    counters = StreamCounters()
    outcome = run_stream(job, threading.Event(), counters, ReportLog())
    assert outcome.status == "done"
    return counters


def test_run_stream_spools_to_a_directory(motion_clip: Path, tmp_path: Path) -> None:
    counters = analyse_with(motion_clip, DirectoryConfig(path=str(tmp_path / "records")))

    names = sorted(
        decode_record(f.read_bytes()).event.name for f in (tmp_path / "records").iterdir()
    )
    assert names == ["motion", "scene_change"]
    assert counters.totals().records_sent == 2


async def test_run_stream_spools_to_jetstream(
    motion_clip: Path, nats_server: EmbeddedNats, nc: Client
) -> None:
    config = JetStreamConfig(servers=(nats_server.url,))
    counters = await asyncio.to_thread(analyse_with, motion_clip, config)

    assert counters.totals().records_sent == 2
    info = await nc.jetstream().stream_info("VIGIL_RECORDS")
    assert info.state.messages == 2


async def test_run_stream_spools_to_a_webhook(motion_clip: Path, tmp_path: Path) -> None:
    receiver = Receiver(failures=1)
    async with serve(receiver, free_port()) as url:
        config = WebhookConfig(url=url, queue_dir=str(tmp_path / "q"), backoff_base_s=0.05)
        counters = await asyncio.to_thread(analyse_with, motion_clip, config)

    assert counters.totals().records_sent == 2
    assert sorted(receiver.accepted.values()) == [1, 1]


def test_records_wait_for_nats_to_come_up(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")  # not started yet
    config = JetStreamConfig(servers=(server.url,), backoff_base_s=0.05, backoff_max_s=0.2)
    counters = StreamCounters()
    runner = SpoolRunner.start(config, counters)
    try:
        for n in range(3):
            runner.submit(make_record(n))
        with server:
            wait_for(lambda: counters.totals().records_sent == 3, 15, "records delivered")
    finally:
        runner.close(drain_s=0.5)
    assert runner.error is None


def test_a_runner_that_never_connects_still_closes_promptly(tmp_path: Path) -> None:
    config = JetStreamConfig(servers=(f"nats://127.0.0.1:{free_port()}",), backoff_base_s=0.05)
    runner = SpoolRunner.start(config)
    runner.submit(make_record(1))
    runner.close(drain_s=0.5)
    # close() gives up waiting after drain_s + 5 s: the thread must really have ended
    assert not runner._thread.is_alive(), "the spooler thread still runs after close()"
    assert runner.error is None
