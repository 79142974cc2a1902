"""``GET /api/v1/streams/{id}/history``: a stream's audit trail (``ops.logtools.audit``)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from ops.api.envelope import error_reply, ok_reply
from ops.http.backend import BACKEND
from ops.logtools.audit import AuditEntry, audit
from ops.logtools.replay import ReplayError

__all__ = ["History", "history"]


class History(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    aggregate: str
    entries: list[AuditEntry]


async def history(request: web.Request) -> web.Response:
    backend = request.app[BACKEND]
    sid = request.match_info["id"]
    try:
        aggregate, entries = await audit(backend.nc, f"stream.{sid}", until_seq=backend.as_of_seq)
    except ReplayError as exc:
        return web.Response(body=error_reply("not_found", str(exc)), status=404,
                            content_type="application/json")  # fmt: skip
    if not entries:
        return web.Response(body=error_reply("not_found", f"no events for stream {sid}"),
                            status=404, content_type="application/json")  # fmt: skip
    body = ok_reply(History(stream_id=sid, aggregate=aggregate, entries=entries), entries[-1].seq)
    return web.Response(body=body, content_type="application/json")
