"""Snapshots of projection state: a versioned file in the object store ``VIGIL_SNAPSHOTS``.

Format (``FORMAT = 1``)::

    b"VIGILSNAP\\n"                           magic
    <header: one line of JSON>\\n              SnapshotHeader: format, seq, created_at,
                                              manager_id, projections, size, sha256
    <body: msgpack {projection name: blob}>   each blob is that projection's own versioned
                                              msgpack (``Snapshottable.snapshot()``)

The object is named ``projections.<seq, 16 digits>``; the newest ``keep`` are kept. A manager
starts from the newest snapshot that is valid (magic, format, checksum, every projection it runs
present and restorable, ``seq`` not beyond the log) and replays the tail; anything else is
ignored with a warning and it folds from zero — a snapshot is only ever an optimisation.

Who writes: the master only (one writer, always caught up, no races between managers). The
``Snapshotter`` runs in every manager and writes when ``is_writer()`` holds, at most every
``interval_s`` and only after ``min_events`` new events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.js import api
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from projections.engine import Projector, SnapshotError, Snapshottable, gc_paused

__all__ = [
    "BUCKET",
    "FORMAT",
    "Snapshot",
    "SnapshotHeader",
    "Snapshotter",
    "decode_snapshot",
    "encode_snapshot",
    "latest_snapshot",
    "restore_latest",
    "take_snapshot",
    "write_snapshot",
]

log = logging.getLogger(__name__)

BUCKET = "VIGIL_SNAPSHOTS"
FORMAT = 1
MAGIC = b"VIGILSNAP\n"
PREFIX = "projections."


class SnapshotHeader(msgspec.Struct, frozen=True, kw_only=True):
    format: int
    seq: int
    created_at: float
    manager_id: str = ""
    projections: list[str] = []
    compression: str = "zlib"
    size: int = 0
    sha256: str = ""


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    header: SnapshotHeader
    blobs: dict[str, bytes]


_body_encoder = msgspec.msgpack.Encoder()
_decode_body = msgspec.msgpack.Decoder(dict[str, bytes]).decode
_decode_header = msgspec.json.Decoder(SnapshotHeader).decode


def snapshottable(projections: Sequence[Any]) -> list[Snapshottable] | None:
    """The projections as ``Snapshottable``, or None if any of them cannot be snapshotted."""
    out = [p for p in projections if isinstance(p, Snapshottable)]
    return out if len(out) == len(projections) else None


def take_snapshot(projector: Projector, projections: Sequence[Snapshottable],
                  manager_id: str = "") -> Snapshot:  # fmt: skip
    """Capture every projection at the projector's current sequence (synchronous: consistent)."""
    blobs = {p.name: p.snapshot() for p in projections}
    header = SnapshotHeader(format=FORMAT, seq=projector.last_seq, created_at=time.time(),
                            manager_id=manager_id, projections=sorted(blobs))  # fmt: skip
    return Snapshot(header=header, blobs=blobs)


def encode_snapshot(snap: Snapshot) -> bytes:
    body = zlib.compress(_body_encoder.encode(snap.blobs), 1)
    header = msgspec.structs.replace(
        snap.header, size=len(body), sha256=hashlib.sha256(body).hexdigest()
    )
    return MAGIC + msgspec.json.encode(header) + b"\n" + body


def decode_snapshot(data: bytes) -> Snapshot:
    """Parse and check a snapshot file; ``SnapshotError`` says what is wrong with it."""
    if not data.startswith(MAGIC):
        raise SnapshotError("not a vigil snapshot (bad magic)")
    line, sep, body = data[len(MAGIC) :].partition(b"\n")
    if not sep:
        raise SnapshotError("truncated snapshot header")
    try:
        header = _decode_header(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"unreadable snapshot header: {exc}") from None
    if header.format != FORMAT:
        raise SnapshotError(f"snapshot format {header.format}; this code reads {FORMAT}")
    if len(body) != header.size or hashlib.sha256(body).hexdigest() != header.sha256:
        raise SnapshotError(f"snapshot at seq {header.seq}: checksum mismatch (corrupt)")
    if header.compression != "zlib":
        raise SnapshotError(f"snapshot compression {header.compression!r} is not supported")
    try:
        blobs = _decode_body(zlib.decompress(body))
    except (msgspec.DecodeError, msgspec.ValidationError, zlib.error) as exc:
        raise SnapshotError(f"unreadable snapshot body: {exc}") from None
    return Snapshot(header=header, blobs=blobs)


def restore_into(snap: Snapshot, projections: Sequence[Snapshottable]) -> None:
    """Restore every projection, or none: on ``SnapshotError`` all are reset to empty."""
    try:
        for p in projections:
            blob = snap.blobs.get(p.name)
            if blob is None:
                raise SnapshotError(f"snapshot has no projection {p.name!r}")
            p.restore(blob)
    except SnapshotError:
        for p in projections:
            p.reset()
        raise


# ---- the object store ------------------------------------------------------------------------


async def bucket(nc: Client, *, create: bool = False, replicas: int = 1) -> ObjectStore | None:
    js = nc.jetstream()
    try:
        return await js.object_store(BUCKET)
    except (BucketNotFoundError, NotFoundError):
        if not create:
            return None
    config = api.ObjectStoreConfig(bucket=BUCKET, storage=api.StorageType.FILE, replicas=replicas)
    return await js.create_object_store(BUCKET, config=config)


async def _names(obs: ObjectStore) -> list[str]:
    try:
        infos = await obs.list()
    except NotFoundError:
        return []
    names = [i.name for i in infos if i.name and i.name.startswith(PREFIX) and not i.deleted]
    return sorted(names, reverse=True)


async def write_snapshot(nc: Client, snap: Snapshot, *, keep: int = 3) -> str:
    """Store ``snap`` and prune all but the newest ``keep``; returns the object name."""
    obs = await bucket(nc, create=True)
    assert obs is not None
    name = f"{PREFIX}{snap.header.seq:016d}"
    data = await asyncio.to_thread(encode_snapshot, snap)  # zlib releases the GIL
    await obs.put(name, data)
    for old in (await _names(obs))[keep:]:
        with contextlib.suppress(Exception):
            await obs.delete(old)
    return name


async def latest_snapshot(nc: Client, *, max_seq: int | None = None) -> Snapshot | None:
    """The newest valid snapshot (at or below ``max_seq``); invalid ones are logged and skipped."""
    obs = await bucket(nc)
    if obs is None:
        return None
    for name in await _names(obs):
        try:
            result = await obs.get(name)
            snap = decode_snapshot(result.data or b"")
        except SnapshotError as exc:
            log.warning("snapshot %s ignored: %s", name, exc)
            continue
        except Exception as exc:
            log.warning("snapshot %s unreadable, ignored: %r", name, exc)
            continue
        if max_seq is not None and snap.header.seq > max_seq:
            log.warning("snapshot %s ignored: seq %d is beyond the log's last sequence %d",
                        name, snap.header.seq, max_seq)  # fmt: skip
            continue
        return snap
    return None


async def restore_latest(nc: Client, projections: Sequence[Any], stream: str) -> int:
    """Restore the newest valid snapshot into ``projections``; return the sequence to fold from
    (1 when there is no usable snapshot: start from zero)."""
    usable = snapshottable(projections)
    if usable is None:
        log.info("some projection cannot be snapshotted: folding from zero")
        return 1
    info = await nc.jetstream().stream_info(stream)
    snap = await latest_snapshot(nc, max_seq=int(info.state.last_seq))
    if snap is None:
        return 1
    try:
        with gc_paused():  # decoding a large state with the cyclic GC on is several times slower
            restore_into(snap, usable)
    except SnapshotError as exc:
        log.warning("snapshot at seq %d ignored, folding from zero: %s", snap.header.seq, exc)
        return 1
    log.info("projections restored from snapshot at seq %d", snap.header.seq)
    return snap.header.seq + 1


class Snapshotter:
    """Writes snapshots while ``is_writer()`` (the master); an async context manager."""

    def __init__(self, nc: Client, projector: Projector, projections: Sequence[Any], *,
                 is_writer: Callable[[], bool], manager_id: str = "", interval_s: float = 60.0,
                 min_events: int = 1000) -> None:  # fmt: skip
        self.nc = nc
        self.projector = projector
        self.projections = snapshottable(projections)
        self.is_writer = is_writer
        self.manager_id = manager_id
        self.interval_s = interval_s
        self.min_events = min_events
        self.last_written = projector.last_seq
        self.last_written_at: float | None = None
        """When this manager last wrote a snapshot (None: never; metrics)."""
        self.written = 0
        self._task: asyncio.Task[None] | None = None

    async def maybe_write(self, *, force: bool = False) -> int | None:
        """Write a snapshot now if due (or ``force``); returns its seq or None."""
        if self.projections is None or not (force or self.is_writer()):
            return None
        if not force and self.projector.last_seq - self.last_written < self.min_events:
            return None
        snap = take_snapshot(self.projector, self.projections, self.manager_id)
        await write_snapshot(self.nc, snap)
        self.last_written = snap.header.seq
        self.last_written_at = snap.header.created_at
        self.written += 1
        log.info("snapshot written at seq %d", snap.header.seq)
        return snap.header.seq

    async def run(self) -> None:
        """The supervised part: write when due, every ``interval_s``. A failure ends the part
        (its supervisor logs it and restarts it with backoff)."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.maybe_write()

    async def __aenter__(self) -> Snapshotter:
        self._task = asyncio.create_task(self.run(), name="snapshotter")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
