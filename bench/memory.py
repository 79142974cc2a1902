"""Manager memory per projected stream, and a manager process's cold start on that log.

Starts its own nats-server and real ``vigil manager`` processes (master included):

1. a manager on an empty log: its resident memory (RSS) once it serves and settled, the
   baseline;
2. N streams written to the log (``StreamCreated``, no agent: they all wait), then a fresh
   manager folds them from zero: time until it serves; it writes a snapshot
   (``VIGIL_SNAPSHOT_INTERVAL_S=1``), then its RSS settles (samples over 3 s within 1 %); the
   difference over N is the memory per projected stream (projections, the master's index,
   everything a stream costs). The highest RSS sampled on the way (the fold's and the
   snapshot's transients) is shown beside it;
3. a third manager starts from that snapshot: time from process start until it serves
   (interpreter and imports included: compare with the empty log's start in 1.).

Target (issue 18): <= 1 KB per projected stream at 1M streams.

Usage: python bench/memory.py [--streams 1000000] [--quick] [--json]
"""

from __future__ import annotations

import asyncio
import time

import nats
import psutil
from common import (
    Report,
    arguments,
    encoded,
    nats_server,
    publish_all,
    say,
    start_manager,
    stop_manager,
    stream_created,
)
from nats.aio.client import Client

from events.jetstream import JetStreamStore
from projections.snapshot import bucket

SETTLE_S = 2.0
STEADY = 0.01  # RSS is settled when its samples over STEADY_S move by less than this share
STEADY_S = 3.0
QUIET = {  # nothing but folding and serving: no alarms, no staleness, no stats writer
    "VIGIL_ALARM_UNPLACEABLE_S": "86400",
    "VIGIL_STREAM_STALENESS_S": "86400",
    "VIGIL_AGENT_DOWNGRADE_S": "86400",
    "VIGIL_SNAPSHOT_INTERVAL_S": "3600",
}


async def timed_manager(url: str, settings: dict[str, str]) -> tuple[asyncio.subprocess.Process,
                                                                    float, int]:  # fmt: skip
    """A manager process, seconds from spawn until it serves, its RSS after settling."""
    t0 = time.perf_counter()
    proc = await start_manager(url, settings)
    took = time.perf_counter() - t0
    await asyncio.sleep(SETTLE_S)
    return proc, took, int(psutil.Process(proc.pid).memory_info().rss)


async def settled_rss(pid: int, most_s: float = 90.0) -> tuple[int, int]:
    """(settled RSS, the highest sampled on the way): sampled every 0.25 s until the samples
    of the last ``STEADY_S`` moved by less than ``STEADY`` of their value (at most ``most_s``)."""
    process = psutil.Process(pid)
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + most_s
    while True:
        now, rss = time.monotonic(), int(process.memory_info().rss)
        samples.append((now, rss))
        recent = [r for t, r in samples if t >= now - STEADY_S]
        span = samples[-1][0] - samples[0][0]
        if span >= STEADY_S and max(recent) - min(recent) < STEADY * max(recent):
            return rss, max(r for _, r in samples)
        if now > deadline:
            return rss, max(r for _, r in samples)
        await asyncio.sleep(0.25)


async def has_snapshot(nc: Client) -> bool:
    obs = await bucket(nc)
    if obs is None:
        return False
    try:
        return any(not i.deleted for i in await obs.list())
    except Exception:  # no object yet
        return False


async def measure(n: int, report: Report) -> None:
    async with nats_server() as server:
        nc = await nats.connect(server.url, pending_size=64 * 1024 * 1024)
        await JetStreamStore(nc).ensure()
        proc, empty_s, _ = await timed_manager(server.url, QUIET)
        assert proc.pid is not None
        rss0, _ = await settled_rss(proc.pid)
        await stop_manager(proc)
        report.add("manager on an empty log: start", empty_s, "s",
                   f"process start until it serves; RSS {rss0 / 2**20:.0f} MiB")  # fmt: skip

        say(f"writing {n:,} streams")
        now = time.time()
        await publish_all(nc.jetstream(), encoded(stream_created(i, now=now) for i in range(n)))

        say("folding them in a fresh manager")
        proc, fold_s, serving = await timed_manager(
            server.url, QUIET | {"VIGIL_SNAPSHOT_INTERVAL_S": "1"}
        )
        assert proc.pid is not None
        report.add(f"manager start, {n:,} streams folded from zero", fold_s, "s",
                   f"RSS {serving / 2**20:.0f} MiB {SETTLE_S:g} s after it serves")  # fmt: skip
        # Its first snapshot (1 s after it serves) encodes every stream: a transient. The
        # memory a stream costs is what stays once that is written and RSS settled.
        deadline = time.monotonic() + 120
        while not await has_snapshot(nc):
            if time.monotonic() > deadline:
                raise TimeoutError("the manager wrote no snapshot within 120 s")
            await asyncio.sleep(0.5)
        rss, peak = await settled_rss(proc.pid)
        per = (rss - rss0) / n
        report.add("RSS per projected stream", per / 1024, "KiB",
                   f"(settled RSS with {n:,} streams, {rss / 2**20:.0f} MiB, - settled RSS"
                   f" empty) / {n:,}; target <= 1 KB at 1M",
                   key="memory.per_stream")  # fmt: skip
        peak = max(peak, serving)
        report.add("RSS at its highest, from serving to settled", peak / 2**20, "MiB",
                   f"{(peak - rss) / 2**20:.0f} MiB over the settled RSS: what the fold and the"
                   " first snapshot's encoding left or took for a while")  # fmt: skip
        await stop_manager(proc)

        proc, snap_s, rss = await timed_manager(server.url, QUIET)
        await stop_manager(proc)
        report.add(f"manager start from a snapshot, {n:,} streams", snap_s, "s",
                   f"process start until it serves; the empty log's start {empty_s:.2f} s;"
                   f" RSS {rss / 2**20:.0f} MiB", key="memory.snapshot_start")  # fmt: skip
        await nc.close()


async def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--streams", type=int, default=1_000_000)
    args = parser.parse_args()
    n = 20_000 if args.quick else args.streams
    report = Report(f"manager memory: {n:,} projected streams")
    await measure(n, report)
    report.emit(args.json)


if __name__ == "__main__":
    asyncio.run(main())
