"""This agent's share of its host, for its heartbeats: CPU and memory of its own process tree
(the agent process and any children), not the whole machine — two agents on one host each
report their own. Storage is the volume that holds the outbox (and its records).

``cpu_percent`` is measured between two samples (psutil's per-process counters), so the first
heartbeat says 0.0; 100 means one core busy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import msgspec
import psutil

__all__ = ["HostFigures", "ProcessTree"]


class HostFigures(msgspec.Struct, frozen=True):
    cpu_percent: float
    mem_used: int
    mem_total: int
    disk_used: int
    disk_total: int


class ProcessTree:
    """Samples the process tree rooted at ``pid`` (default: this process)."""

    def __init__(self, volume: Path, pid: int | None = None) -> None:
        self.volume = volume
        self.root = psutil.Process(pid or os.getpid())
        self._procs: dict[int, psutil.Process] = {self.root.pid: self.root}
        self.root.cpu_percent(interval=None)

    def _tree(self) -> list[psutil.Process]:
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            children = []
        seen: dict[int, psutil.Process] = {self.root.pid: self.root}
        for child in children:
            known = self._procs.get(child.pid)
            if known is None:
                known = child
                try:
                    known.cpu_percent(interval=None)  # the first call starts its counter
                except psutil.Error:
                    continue
            seen[child.pid] = known
        self._procs = seen
        return list(seen.values())

    def sample(self) -> HostFigures:
        cpu = 0.0
        rss = 0
        for proc in self._tree():
            try:
                with proc.oneshot():
                    cpu += proc.cpu_percent(interval=None)
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
        try:
            disk = shutil.disk_usage(self.volume)
            disk_used, disk_total = disk.used, disk.total
        except OSError:
            disk_used = disk_total = 0
        return HostFigures(cpu_percent=round(cpu, 1), mem_used=rss,
                           mem_total=psutil.virtual_memory().total, disk_used=disk_used,
                           disk_total=disk_total)  # fmt: skip
