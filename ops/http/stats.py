"""The statistics over HTTP (reads; no token needed):

    GET /api/v1/stats/daily?date=…          one UTC day          (body of ``stats.daily``)
    GET /api/v1/stats/range?from=…&to=…     days, per day/range  (body of ``stats.range``)
    GET /api/v1/stats/monthly?month=…       one UTC month        (body of ``stats.monthly``)
    GET /api/v1/stats/corrections?from=…&to=…  late deltas counted after their day closed

Query parameters are the command's body (``stream_id``, ``agent_id``, ``group``, ``by``, ``per``,
``limit``, ``cursor``) plus ``format=csv`` for the billing export of one page (``text/csv``;
follow ``X-Next-Cursor`` for the next one). Errors use the command envelope with the HTTP status
of its code, e.g. 400 with ``details[0].path == "$.date"``.
"""

from __future__ import annotations

from aiohttp import web

from core.errors import DomainError
from events.protocol import ErrorReply
from ops.api import requests as R
from ops.api.envelope import HTTP_STATUS, domain_error_body, encode
from ops.http.backend import BACKEND
from ops.stats.queries import DailyStatsView, RangeStatsView, to_csv

__all__ = ["corrections", "daily_stats", "monthly_stats", "range_stats"]

_NOT_BODY = ("format", "accessToken")


async def _query(request: web.Request, name: str, req_type: type[object]) -> web.Response:
    values = {k: v for k, v in request.query.items() if k not in _NOT_BODY}
    try:
        req = R.convert_request(values, req_type)
    except DomainError as exc:
        err = domain_error_body(exc)
        return web.Response(body=encode(ErrorReply(error=err)), status=400,
                            content_type="application/json")  # fmt: skip
    outcome = await request.app[BACKEND].router.call(name, req)
    if outcome.code is not None:
        return web.Response(body=outcome.body, status=HTTP_STATUS.get(outcome.code, 500),
                            content_type="application/json")  # fmt: skip
    result = outcome.result
    if request.query.get("format") == "csv":
        if isinstance(result, DailyStatsView):
            text, cursor = to_csv(result.items, result.date), result.next_cursor
        elif isinstance(result, RangeStatsView):
            text, cursor = to_csv(result.items), result.next_cursor
        else:
            text, cursor = "", None
        if text:
            headers = {"X-Next-Cursor": cursor} if cursor else {}
            return web.Response(text=text, content_type="text/csv", headers=headers)
    return web.Response(body=outcome.body, content_type="application/json")


async def daily_stats(request: web.Request) -> web.Response:
    return await _query(request, "stats.daily", R.DailyStatsReq)


async def range_stats(request: web.Request) -> web.Response:
    return await _query(request, "stats.range", R.RangeStatsReq)


async def monthly_stats(request: web.Request) -> web.Response:
    return await _query(request, "stats.monthly", R.MonthlyStatsReq)


async def corrections(request: web.Request) -> web.Response:
    return await _query(request, "stats.corrections", R.StatsCorrectionsReq)
