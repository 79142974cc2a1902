"""One ``vigil up`` per data directory: an exclusive lock on ``<data-dir>/vigil.lock``.

A second ``vigil up`` on a live directory would start a second nats-server over the same store
and rewrite ``vigil.env``; instead it is refused at once, naming the owner. The lock is an
``flock`` held by the open file: it is released when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

__all__ = ["DataDirBusy", "DataDirLock"]

LOCK_FILE = "vigil.lock"


class DataDirBusy(SystemExit):
    """Another process owns the data directory (exits with this message, code 1)."""


class DataDirLock:
    """A context manager holding the data directory for this process."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirBusy(
                f"error: {self.path.parent} is in use by another `vigil up` (pid {owner}). Stop it"
                " first, or give this one its own --data-dir."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, et: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
