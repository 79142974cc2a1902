"""A bounded, disk-backed FIFO of records: one JSON file per pending record in a directory.

Files are named ``<seq>-<record_id>.json`` and written atomically (temporary file, fsync, rename),
so a queue reopened after a crash or restart holds exactly the records not yet removed. Adding a
record whose id is already queued does nothing; when full, the oldest record is dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiskQueue", "QueuedItem"]

_SUFFIX = ".json"


@dataclass(frozen=True)
class QueuedItem:
    record_id: str
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()


class DiskQueue:
    """FIFO of payloads keyed by record id, persisted in ``directory`` (single owner process)."""

    def __init__(self, directory: Path | str, max_items: int = 10_000) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_items = max_items
        self.dropped = 0
        for stale in self.directory.glob("*.tmp"):
            stale.unlink(missing_ok=True)
        self._items: dict[str, QueuedItem] = {}
        self._seq = 0
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            seq, _, record_id = path.stem.partition("-")
            if seq.isdigit() and record_id:
                self._items[record_id] = QueuedItem(record_id, path)
                self._seq = max(self._seq, int(seq))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._items

    def add(self, record_id: str, payload: bytes) -> bool:
        """Queue ``payload`` durably; False if ``record_id`` is already queued."""
        if record_id in self._items:
            return False
        while len(self._items) >= self.max_items:
            oldest = next(iter(self._items.values()))
            self.remove(oldest.record_id)
            self.dropped += 1
        self._seq += 1
        path = self.directory / f"{self._seq:016d}-{record_id}{_SUFFIX}"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        self._items[record_id] = QueuedItem(record_id, path)
        return True

    def peek(self) -> QueuedItem | None:
        """The oldest queued item, or None."""
        return next(iter(self._items.values()), None)

    def remove(self, record_id: str) -> None:
        item = self._items.pop(record_id, None)
        if item is not None:
            item.path.unlink(missing_ok=True)
