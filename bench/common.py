"""Shared by every bench: one output format (a table, or ``--json``), a nats-server in a temporary
directory, the raw ``js.publish_async`` baseline, logs built for a bench, ``vigil manager``
processes, and a loop-stall monitor.

Every bench runs as ``python bench/<name>.py [--quick] [--json]``. Its rows are ``Row``s; a row
with ``key`` set is one the runner (``bench/run.py``) reads by that key, and a row with
``guard=True`` is a *ratio against a raw limit measured in the same run* (higher is better) that
the CI guard compares with ``bench/baseline.json``. Absolute times are never guarded.

Imported as ``common`` (the bench's own directory is ``sys.path[0]``); it puts the repository
root right after it, so a bench run from a git worktree measures that worktree's code, and the
``vigil manager`` processes it starts do too (``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from nats.aio.client import Client  # noqa: E402
from nats.js import JetStreamContext  # noqa: E402
from nats.js.api import PubAck  # noqa: E402

from events.codec import encode_event, subject_of  # noqa: E402
from events.jetstream import JetStreamStore  # noqa: E402
from events.model import (  # noqa: E402
    AgentRegistered,
    AnalyticOffer,
    AnalyticRef,
    Cause,
    Event,
    Source,
    StreamCreated,
)
from events.store import Append  # noqa: E402
from ops.runtime.natsd import EmbeddedNats  # noqa: E402

__all__ = [
    "ROOT",
    "Paired",
    "Report",
    "Row",
    "StallMonitor",
    "agent_registered",
    "append_all",
    "arguments",
    "child_env",
    "nats_server",
    "paired",
    "publish_all",
    "raw_publish_async",
    "start_manager",
    "stop_manager",
    "stream_created",
    "until",
]

VIGIL = str(Path(sys.executable).parent / "vigil")
BENCH_CAUSE = Cause(kind="command", name="bench")


# ---- output -----------------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    value: float | str
    unit: str = ""
    note: str = ""
    key: str = ""
    """Stable id the runner reads this row by (``bench/run.py``); empty: shown only."""
    guard: bool = False
    """A ratio against a raw limit of the same run, higher is better: the CI guard checks it."""


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)

    def add(self, name: str, value: float | str, unit: str = "", note: str = "", *,
            key: str = "", guard: bool = False) -> None:  # fmt: skip
        self.rows.append(Row(name, value, unit, note, key, guard))

    def ratio(self, name: str, measured: float, raw: float, *, key: str, unit: str,
              note: str = "", value: float | None = None, guard: bool = True) -> float:  # fmt: skip
        """Add ``measured / raw`` as a ratio row (both rates in ``unit``), guarded unless told;
        returns it. ``value``: the ratio when it is not simply that quotient (a median of rounds'
        ratios)."""
        if value is None:
            value = measured / raw if raw > 0 else 0.0
        said = f"{measured:,.0f} vs raw {raw:,.0f} {unit}"
        self.add(name, value, "x raw", f"{said}; {note}" if note else said, key=key, guard=guard)
        return value

    def paired(self, name: str, p: Paired, *, key: str, unit: str, note: str = "") -> float:
        """Add the ratio of rounds measured side by side (``paired``), guarded; returns it."""
        said = f"median of {p.rounds} rounds, each against its own raw run"
        return self.ratio(name, p.measured, p.raw, key=key, unit=unit, value=p.ratio,
                          note=f"{said}; {note}" if note else said)  # fmt: skip

    def emit(self, as_json: bool) -> None:
        if as_json:
            json.dump(asdict(self), sys.stdout, indent=2)
            sys.stdout.write("\n")
            sys.stdout.flush()
            return
        print(format_table(self.title, self.rows), flush=True)


@dataclass(frozen=True)
class Paired:
    """Rates of vigil's path and of its raw limit, measured in alternating rounds."""

    measured: float
    """Median rate of vigil's path."""
    raw: float
    """Median raw rate."""
    ratio: float
    """Median of the rounds' ratios: each from the same few seconds of a shared machine."""
    rounds: int


async def paired(rounds: int, raw: Callable[[int], Awaitable[float]],
                 measured: Callable[[int], Awaitable[float]]) -> Paired:  # fmt: skip
    """``rounds`` times: the raw limit, then vigil's path (each called with the round's number,
    returning a rate). On a shared machine the load changes from second to second: a ratio of
    two runs side by side varies much less than either rate."""
    raws, rates = [], []
    for r in range(rounds):
        raws.append(await raw(r))
        rates.append(await measured(r))
    ratios = [m / x if x > 0 else 0.0 for m, x in zip(rates, raws, strict=True)]
    return Paired(statistics.median(rates), statistics.median(raws), statistics.median(ratios),
                  rounds)  # fmt: skip


def format_value(value: float | str) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_table(title: str, rows: Iterable[Row]) -> str:
    rows = list(rows)
    width = max((len(r.name) for r in rows), default=10)
    lines = [f"== {title}"]
    for r in rows:
        note = f"  ({r.note})" if r.note else ""
        lines.append(f"  {r.name:<{width}}  {format_value(r.value):>14} {r.unit}{note}")
    return "\n".join(lines)


def arguments(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    return parser


def say(what: str) -> None:
    """Progress on stderr (stdout carries the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


async def until(condition: Callable[[], bool], *, timeout: float, what: Callable[[], str],
                period: float = 0.02) -> None:  # fmt: skip
    """Poll ``condition`` (state of this process) until true; after ``timeout`` raise
    ``TimeoutError`` saying ``what()`` (a bench never hangs)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"after {timeout:.0f} s: {what()}")
        await asyncio.sleep(period)


# ---- servers, processes -----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def nats_server(*, sync_interval: str | None = None) -> AsyncIterator[EmbeddedNats]:
    """An open nats-server with JetStream (file storage) on a free loopback port."""
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        async with EmbeddedNats(tmp, sync_interval=sync_interval) as server:
            yield server


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: this checkout first on ``PYTHONPATH``, no ``VIGIL_*``
    from the caller except ``BENCH_VIGIL_X`` passed as ``VIGIL_X``, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env |= {k[6:]: v for k, v in os.environ.items() if k.startswith("BENCH_VIGIL_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env |= dict(extra or {})
    return env


async def start_manager(url: str, settings: Mapping[str, str] | None = None, *,
                        timeout: float = 600) -> asyncio.subprocess.Process:  # fmt: skip
    """A ``vigil manager`` process on ``url``, returned once it said it runs (its projections
    caught up). ``settings``: ``VIGIL_*`` variables."""
    env = child_env({"VIGIL_NATS_URL": url, "VIGIL_DATA_DIR": "/nonexistent", **(settings or {})})
    proc = await asyncio.create_subprocess_exec(
        VIGIL, "manager", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if b"running" not in line:
        await stop_manager(proc)
        raise RuntimeError(f"vigil manager did not start (said {line!r}, code {proc.returncode})")
    return proc


async def stop_manager(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# ---- raw publishing and logs built for a bench ------------------------------------------------


async def publish_all(js: JetStreamContext, messages: Iterable[tuple[str, bytes]], *,
                      msg_ids: str | None = None) -> int:  # fmt: skip
    """``js.publish_async`` of every (subject, body), nats-py's own window (4,000) in flight,
    every ack awaited; returns how many. ``msg_ids``: a ``Nats-Msg-Id`` of this prefix and the
    message's number on each (deduplicated by the server)."""
    window: list[asyncio.Future[PubAck]] = []
    count = 0
    for subject, body in messages:
        headers = {"Nats-Msg-Id": f"{msg_ids}{count}"} if msg_ids is not None else None
        window.append(await js.publish_async(subject, body, headers=headers))
        count += 1
        if len(window) >= 16_000:  # the oldest are acknowledged long ago: collect them
            await asyncio.gather(*window[:8000])
            del window[:8000]
    await asyncio.gather(*window)
    return count


async def raw_publish_async(nc: Client, bodies: Sequence[bytes], *, stream: str = "RAW",
                            subjects: int = 0, msg_ids: bool = False, runs: int = 2) -> float:  # fmt: skip
    """The raw limit: msgs/s of ``publish_async`` of ``bodies`` into a fresh file stream of the
    same server (one JetStream context, no headers), after an untimed warm-up of 500 of them; the
    best of ``runs`` runs (never a handicapped baseline: noise only ever lowers a rate).
    ``subjects``: cycle through that many subjects (0: one subject per message, as events of
    distinct aggregates). ``msg_ids``: each with a ``Nats-Msg-Id`` (not the raw limit: the
    server's deduplication costs)."""
    js = nc.jetstream()
    prefix = stream.lower()
    best = 0.0
    for run in range(runs):
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"])
        await publish_all(js, ((f"{prefix}.warm.{i}", b) for i, b in enumerate(bodies[:500])),
                          msg_ids=f"warm{run}:" if msg_ids else None)  # fmt: skip

        def messages() -> Iterator[tuple[str, bytes]]:
            for i, body in enumerate(bodies):
                yield f"{prefix}.{i % subjects if subjects else i}", body

        t0 = time.perf_counter()
        n = await publish_all(js, messages(), msg_ids=f"raw{run}:" if msg_ids else None)
        best = max(best, n / (time.perf_counter() - t0))
        await js.delete_stream(stream)
    return best


def agent_registered(i: int, *, capacity: int, now: float,
                     analytics: tuple[str, ...] = ("motion",),
                     downgrade_s: float = 10.0) -> Append:  # fmt: skip
    """Agent ``i`` registered. Its ``downgrade_s`` (told at registration) is what the master
    downgrades it by: a bench whose agents never heartbeat gives them a long one."""
    aid = f"a{i:05}"
    return Append(f"agent.{aid}", AgentRegistered(
        at=now, cause=BENCH_CAUSE, agent_id=aid, name=f"agent {i}", capacity=capacity,
        analytics=tuple(AnalyticOffer(name=a) for a in analytics), downgrade_s=downgrade_s,
    ), msg_id=f"ar{i}")  # fmt: skip


def stream_created(i: int, *, now: float, analytic: str = "motion") -> Append:
    sid = f"s{i:07}"
    return Append(f"stream.{sid}", StreamCreated(
        at=now + i * 1e-6, cause=BENCH_CAUSE, stream_id=sid, name=f"cam {i}",
        source=Source(url=f"rtsp://10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/live"),
        kind="stream", analytics=(AnalyticRef(name=analytic),),
    ), msg_id=f"sc{i}")  # fmt: skip


async def append_all(store: JetStreamStore, items: Iterable[Append], chunk: int = 5000) -> None:
    """Through the store's own pipelined ``append_batch``, ``chunk`` at a time."""
    batch: list[Append] = []
    for item in items:
        batch.append(item)
        if len(batch) >= chunk:
            await store.append_batch(batch)
            batch = []
    if batch:
        await store.append_batch(batch)


def encoded(items: Iterable[Append] | Iterable[tuple[str, Event]]) -> Iterator[tuple[str, bytes]]:
    """(subject, body) of events, for ``publish_all`` (a log written at the raw rate)."""
    for item in items:
        aggregate, event = (item.aggregate, item.event) if isinstance(item, Append) else item
        yield subject_of(aggregate), encode_event(event)


# ---- the event loop ---------------------------------------------------------------------------


class StallMonitor:
    """Measures how late the event loop runs a 1 ms sleeper: the longest stall while active, and
    the longest cyclic-GC pause in the same time (a stall that long may be the collector's)."""

    def __init__(self, period_s: float = 0.001) -> None:
        self.period_s = period_s
        self.max_stall_s = 0.0
        self.over_5ms = 0
        self.samples: list[float] = []
        self.gc_max_s = 0.0
        self._gc_began = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.period_s)
            late = time.perf_counter() - t0 - self.period_s
            self.max_stall_s = max(self.max_stall_s, late)
            self.samples.append(late)
            if late > 0.005:
                self.over_5ms += 1

    def _gc(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        else:
            self.gc_max_s = max(self.gc_max_s, time.perf_counter() - self._gc_began)

    def p99_s(self) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def reset(self) -> None:
        self.max_stall_s = 0.0
        self.over_5ms = 0
        self.samples = []
        self.gc_max_s = 0.0

    async def __aenter__(self) -> StallMonitor:
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
