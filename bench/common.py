"""Shared by every bench: a loop-stall monitor, a nats-server in a temporary directory, and one
output format (a table, or ``--json``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field

from ops.runtime.natsd import EmbeddedNats

__all__ = ["Report", "StallMonitor", "arguments", "nats_server"]


@dataclass
class Row:
    name: str
    value: float | str
    unit: str = ""
    note: str = ""


@dataclass
class Report:
    title: str
    rows: list[Row] = field(default_factory=list)

    def add(self, name: str, value: float | str, unit: str = "", note: str = "") -> None:
        self.rows.append(Row(name, value, unit, note))

    def emit(self, as_json: bool) -> None:
        if as_json:
            json.dump(asdict(self), sys.stdout, indent=2)
            sys.stdout.write("\n")
            return
        width = max((len(r.name) for r in self.rows), default=10)
        print(f"== {self.title}")
        for r in self.rows:
            value = f"{r.value:,.3f}" if isinstance(r.value, float) else str(r.value)
            note = f"  ({r.note})" if r.note else ""
            print(f"  {r.name:<{width}}  {value:>14} {r.unit}{note}")


def arguments(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    return parser


class StallMonitor:
    """Measures how late the event loop runs a 1 ms sleeper: the longest stall while active."""

    def __init__(self, period_s: float = 0.001) -> None:
        self.period_s = period_s
        self.max_stall_s = 0.0
        self.over_5ms = 0
        self.samples: list[float] = []
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

    def p99_s(self) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def reset(self) -> None:
        self.max_stall_s = 0.0
        self.over_5ms = 0
        self.samples = []

    async def __aenter__(self) -> StallMonitor:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def nats_server() -> AsyncIterator[EmbeddedNats]:
    with tempfile.TemporaryDirectory() as tmp:
        async with EmbeddedNats(tmp) as server:
            yield server
