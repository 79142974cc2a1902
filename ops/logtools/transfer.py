"""Export the event log as JSON lines, and import such a file into a fresh store (forensics).

One line per event::

    {"seq": 12, "subject": "vigil.evt.stream.s-1", "stored": "2026-…Z", "ts": 1764…,
     "headers": {"Nats-Msg-Id": "…"}, "event": {…the event body as stored…}}

A body that is not JSON is exported as ``"data_b64"`` instead of ``"event"``. Import re-appends
every line in file order to a store that must be empty (``force`` overrides); sequences in the
new store are its own (they match the file's only if the original had no gaps). Conditional
headers (``Nats-Expected-*``) are dropped on import; ``Nats-Msg-Id`` is kept.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterable
from typing import IO, Any

import orjson
from nats.aio.client import Client

from events import subjects
from events.jetstream import EVENTS_STREAM, JetStreamStore
from ops.api.views import iso
from ops.logtools.replay import ALL, LogRecord, ReplayError, read_log

__all__ = ["NotEmpty", "export_lines", "import_lines", "record_line"]

_KEEP = ("Nats-Msg-Id",)


class NotEmpty(ReplayError):
    """The target store already holds events: import into a fresh one, or pass --force."""


def record_line(rec: LogRecord) -> bytes:
    line: dict[str, Any] = {"seq": rec.seq, "subject": rec.subject, "stored": iso(rec.ts),
                            "ts": rec.ts, "headers": rec.headers}  # fmt: skip
    try:
        line["event"] = orjson.loads(rec.data)
    except orjson.JSONDecodeError:
        line["data_b64"] = base64.b64encode(rec.data).decode()
    return orjson.dumps(line) + b"\n"


async def export_lines(nc: Client, *, from_seq: int = 1, until_seq: int | None = None,
                       subject: str = ALL) -> AsyncIterator[LogRecord]:  # fmt: skip
    async for rec in read_log(nc, subject=subject, from_seq=from_seq, until_seq=until_seq):
        yield rec


def _parse(lines: Iterable[bytes]) -> Iterable[tuple[str, bytes, dict[str, str]]]:
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
            subject = str(line["subject"])
            if "event" in line:
                body = orjson.dumps(line["event"])
            else:
                body = base64.b64decode(line["data_b64"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"line {n} is not an exported event ({exc!r}); nothing after it"
                              " was imported") from None  # fmt: skip
        if not subject.startswith(subjects.EVT_PREFIX + "."):
            raise ReplayError(f"line {n}: subject {subject!r} is not an event subject")
        headers = {k: str(v) for k, v in (line.get("headers") or {}).items() if k in _KEEP}
        yield subject, body, headers


async def import_lines(nc: Client, file: IO[bytes], *, force: bool = False, window: int = 1000,
                       progress: Callable[[int], None] | None = None) -> int:  # fmt: skip
    """Append every exported line to ``VIGIL_EVENTS``; returns how many were stored.

    Raises ``NotEmpty`` if the store has events and not ``force``; ``ReplayError`` on a bad line
    (the lines before it are stored)."""
    store = JetStreamStore(nc)
    await store.ensure()
    if not force and await store.last_seq() > 0:
        raise NotEmpty(f"{EVENTS_STREAM} already holds events; import into a fresh NATS store"
                       " or pass --force to append anyway")  # fmt: skip
    js = nc.jetstream()
    pending: list[asyncio.Future[Any]] = []
    count = 0
    for subject, body, headers in _parse(file):
        pending.append(await js.publish_async(subject, body, headers=headers or None))
        count += 1
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()
            if progress is not None:
                progress(count)
    await asyncio.gather(*pending)
    if progress is not None:
        progress(count)
    return count
