"""``GET /api/v1/stats/daily``: the daily statistics over HTTP (a read; no token needed).

Query parameters are the body of ``stats.daily`` (``date``, ``stream_id``, ``agent_id``,
``group``, ``by``, ``limit``, ``cursor``) plus ``format=csv`` for the billing export of one page
(``text/csv``; follow ``X-Next-Cursor`` for the next one). Errors use the command envelope with
the HTTP status of its code, e.g. 400 with ``details[0].path == "$.date"``.
"""

from __future__ import annotations

from aiohttp import web

from core.errors import DomainError
from events.protocol import ErrorReply
from ops.api import requests as R
from ops.api.envelope import HTTP_STATUS, domain_error_body, encode
from ops.http.backend import BACKEND
from ops.stats.queries import DailyStatsView, to_csv

__all__ = ["daily_stats"]


async def daily_stats(request: web.Request) -> web.Response:
    values = {k: v for k, v in request.query.items() if k not in ("format", "accessToken")}
    try:
        req = R.convert_request(values, R.DailyStatsReq)
    except DomainError as exc:
        err = domain_error_body(exc)
        return web.Response(body=encode(ErrorReply(error=err)), status=400,
                            content_type="application/json")  # fmt: skip
    outcome = await request.app[BACKEND].router.call("stats.daily", req)
    if outcome.code is not None:
        return web.Response(body=outcome.body, status=HTTP_STATUS.get(outcome.code, 500),
                            content_type="application/json")  # fmt: skip
    result = outcome.result
    if request.query.get("format") == "csv" and isinstance(result, DailyStatsView):
        headers = {"X-Next-Cursor": result.next_cursor} if result.next_cursor else {}
        return web.Response(text=to_csv(result.date, result.items), content_type="text/csv",
                            headers=headers)  # fmt: skip
    return web.Response(body=outcome.body, content_type="application/json")
