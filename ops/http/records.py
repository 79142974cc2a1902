"""A stream's newest analysis records, read from JetStream ``VIGIL_RECORDS``.

::

    GET /api/v1/streams/{id}/records?limit=10                     newest first, no pixels
    GET /api/v1/streams/{id}/records/{seq}/frames/{index}         one JPEG of a record's window

Records live on ``vigil.records.<agent_id>.<stream_id>`` (whichever agent analysed the stream).
The newest are found with a headers-only consumer filtered on the stream, started a minute ago,
then an hour, a day, and finally at the beginning, whichever first holds ``limit`` records:
a busy stream costs a minute of its records, a quiet one its few. Then each is read by its
sequence. A frame is served from the record's inline base64 JPEG (records never change, so the
answer may be cached for good).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import deque
from datetime import UTC, datetime

import msgspec
from aiohttp import web
from nats.aio.client import Client
from nats.js import api
from nats.js.errors import NotFoundError

from analytics.records import AnalysisRecord, decode_record
from events import subjects
from events.protocol import ErrorDetail
from ops.api.envelope import error_reply, ok_reply
from ops.api.views import FrameRef, RecordList, RecordView, iso
from ops.http.backend import BACKEND
from ops.http.respond import json_response

__all__ = ["RecordList", "frame", "latest_records", "records"]

log = logging.getLogger(__name__)

LOOKBACKS_S = (60.0, 3600.0, 86400.0, None)
MAX_LIMIT = 100


class _Stored(msgspec.Struct, frozen=True):
    seq: int
    stored_at: float | None
    record: AnalysisRecord


def _stream_id_ok(sid: str) -> bool:
    return 0 < len(sid) <= 128 and all(c.isalnum() or c in "_.:@-" for c in sid) and sid.isascii()


async def latest_records(nc: Client, stream_id: str, limit: int) -> tuple[list[_Stored], int]:
    """The newest ``limit`` records of ``stream_id`` (newest first) and how many are kept."""
    js = nc.jetstream()
    filt = subjects.records_of_stream(stream_id)
    try:
        info = await js.stream_info(subjects.RECORDS_STREAM, subjects_filter=filt)
    except NotFoundError:
        return [], 0
    total = sum((info.state.subjects or {}).values())
    if total == 0:
        return [], 0
    seqs = await _newest_seqs(nc, filt, min(limit, total), total)
    found: list[_Stored] = []
    for seq in reversed(seqs):
        try:
            raw = await js.get_msg(subjects.RECORDS_STREAM, seq)
        except NotFoundError:  # expired meanwhile
            continue
        stored = _decode(raw)
        if stored is not None:
            found.append(stored)
    return found, total


async def _newest_seqs(nc: Client, filt: str, want: int, total: int) -> list[int]:
    js = nc.jetstream()
    now = datetime.now(UTC).timestamp()
    for lookback in LOOKBACKS_S:
        config = api.ConsumerConfig(
            filter_subject=filt, headers_only=True, ack_policy=api.AckPolicy.NONE,
            mem_storage=True, inactive_threshold=30.0, max_ack_pending=-1,
            deliver_policy=api.DeliverPolicy.ALL if lookback is None
            else api.DeliverPolicy.BY_START_TIME,
            opt_start_time=None if lookback is None else datetime.fromtimestamp(now - lookback, UTC),
        )  # fmt: skip
        psub = await js.pull_subscribe(filt, stream=subjects.RECORDS_STREAM, config=config)
        try:
            pending = (await psub.consumer_info()).num_pending or 0
            if lookback is not None and pending < want and pending < total:
                continue
            newest: deque[int] = deque(maxlen=want)
            while pending > 0:
                msgs = await psub.fetch(batch=min(pending, 1000), timeout=5)
                for msg in msgs:
                    newest.append(msg.metadata.sequence.stream)
                    pending = msg.metadata.num_pending
                if not msgs:
                    break
            return list(newest)
        finally:
            try:
                await psub.unsubscribe()
            except Exception as exc:  # the ephemeral consumer expires by itself anyway
                log.debug("records consumer: %r", exc)
    return []


def _decode(raw: api.RawStreamMsg) -> _Stored | None:
    try:
        record = decode_record(raw.data or b"")
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.debug("record seq %s undecodable: %s", raw.seq, exc)
        return None
    stored_at = raw.time.timestamp() if raw.time is not None else None
    return _Stored(seq=int(raw.seq or 0), stored_at=stored_at, record=record)


def _view(s: _Stored) -> RecordView:
    r = s.record
    frames = [FrameRef(ts=w.ts, path=w.path,
                       url=f"/api/v1/streams/{r.stream_id}/records/{s.seq}/frames/{i}"
                       if w.jpeg_b64 else None)
              for i, w in enumerate(r.window)]  # fmt: skip
    return RecordView(
        seq=s.seq, stored_at=iso(s.stored_at), record_id=r.record_id, stream_id=r.stream_id,
        agent_id=r.agent_id, event=r.event.name, started_at=r.event.started_at,
        ended_at=r.event.ended_at, score=r.event.score, actions=[a.name for a in r.actions],
        triggers=len(r.triggers), frames=frames, analytics_version=r.analytics_version,
    )  # fmt: skip


def _not_found(message: str) -> web.Response:
    return json_response(error_reply("not_found", message), 404)


def _invalid(path: str, message: str) -> web.Response:
    body = error_reply("invalid", f"{message} (at {path})", [ErrorDetail(path, message)])
    return json_response(body, 400)


async def records(request: web.Request) -> web.StreamResponse:
    sid = request.match_info["id"]
    if not _stream_id_ok(sid):
        return _invalid("$.stream_id", "not a stream id")
    raw_limit = request.query.get("limit", "10")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        return _invalid("$.limit", f"an integer from 1 to {MAX_LIMIT}")
    backend = request.app[BACKEND]
    found, total = await latest_records(backend.nc, sid, int(raw_limit))
    body = RecordList(stream_id=sid, records=[_view(s) for s in found], total=total)
    return json_response(ok_reply(body, backend.last_seq))


async def frame(request: web.Request) -> web.StreamResponse:
    sid, seq, index = (request.match_info[k] for k in ("id", "seq", "index"))
    if not _stream_id_ok(sid):
        return _invalid("$.stream_id", "not a stream id")
    if not seq.isdigit() or not 0 < int(seq) < 2**63 or not index.isdigit() or len(index) > 4:
        return _not_found(f"no frame {index} of record {seq}")
    try:
        raw = await request.app[BACKEND].nc.jetstream().get_msg(subjects.RECORDS_STREAM, int(seq))
    except NotFoundError:
        return _not_found(f"no record {seq} (expired, or never stored)")
    _agent, _, of_stream = (
        (raw.subject or "").removeprefix(subjects.RECORDS_PREFIX + ".").partition(".")
    )
    stored = _decode(raw)
    if of_stream != sid or stored is None:
        return _not_found(f"record {seq} is not a record of stream {sid}")
    window = stored.record.window
    jpeg_b64 = window[int(index)].jpeg_b64 if int(index) < len(window) else None
    if not jpeg_b64:
        return _not_found(f"record {seq} has no inline frame {index}")
    try:
        jpeg = base64.b64decode(jpeg_b64, validate=True)
    except (binascii.Error, ValueError):
        return _not_found(f"frame {index} of record {seq} is not base64")
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=31536000, immutable"})  # fmt: skip
