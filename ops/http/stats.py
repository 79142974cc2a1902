"""The statistics over HTTP (reads):

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

from core.errors import Invalid
from ops.api import requests as R
from ops.http.backend import BACKEND
from ops.http.respond import HttpRoute, invalid, respond
from ops.stats.queries import CorrectionsView, DailyStatsView, RangeStatsView, to_csv

__all__ = ["STATS_ROUTES", "corrections", "daily_stats", "monthly_stats", "range_stats"]

_NOT_BODY = ("format", "accessToken")


async def _query(request: web.Request, name: str, req_type: type[object]) -> web.Response:
    values = {k: v for k, v in request.query.items() if k not in _NOT_BODY}
    fmt = request.query.get("format", "json")
    try:
        if fmt not in ("json", "csv"):
            raise Invalid("$.format", "json (the default) or csv")
        req = R.convert_request(values, req_type)
    except Invalid as exc:
        return invalid(exc)
    outcome = await request.app[BACKEND].router.call(name, req)
    result = outcome.result
    if outcome.code is None and fmt == "csv":
        if isinstance(result, DailyStatsView):
            text, cursor = to_csv(result.items, result.date), result.next_cursor
        elif isinstance(result, RangeStatsView):
            text, cursor = to_csv(result.items), result.next_cursor
        else:
            text, cursor = "", None
        if text:
            headers = {"X-Next-Cursor": cursor} if cursor else {}
            return web.Response(text=text, content_type="text/csv", headers=headers)
    return respond(outcome)


async def daily_stats(request: web.Request) -> web.Response:
    return await _query(request, "stats.daily", R.DailyStatsReq)


async def range_stats(request: web.Request) -> web.Response:
    return await _query(request, "stats.range", R.RangeStatsReq)


async def monthly_stats(request: web.Request) -> web.Response:
    return await _query(request, "stats.monthly", R.MonthlyStatsReq)


async def corrections(request: web.Request) -> web.Response:
    return await _query(request, "stats.corrections", R.StatsCorrectionsReq)


_FORMAT = {"name": "format", "in": "query", "required": False,
           "schema": {"enum": ["json", "csv"], "default": "json"},
           "description": "csv: one page as the billing export (the next page's cursor in the"
                          " X-Next-Cursor header)"}  # fmt: skip
_CSV = {"text/csv": {"schema": {"type": "string"}}}
_ERRORS = (400, 401, 503)

STATS_ROUTES = [
    HttpRoute("GET", "/api/v1/stats/daily", daily_stats, "statistics of one UTC day per stream,"
              " agent, group, stream × agent or in total (JSON, or CSV with format=csv)",
              query=R.DailyStatsReq, result=DailyStatsView, parameters=(_FORMAT,), content=_CSV,
              headers={"X-Next-Cursor": "CSV only: the cursor of the next page"},
              errors=_ERRORS, tag="statistics"),
    HttpRoute("GET", "/api/v1/stats/range", range_stats, "statistics of the days from..to, per"
              " day or per range (JSON, or CSV with format=csv)", query=R.RangeStatsReq,
              result=RangeStatsView, parameters=(_FORMAT,), content=_CSV,
              headers={"X-Next-Cursor": "CSV only: the cursor of the next page"},
              errors=_ERRORS, tag="statistics"),
    HttpRoute("GET", "/api/v1/stats/monthly", monthly_stats, "statistics of one UTC month (JSON,"
              " or CSV with format=csv)", query=R.MonthlyStatsReq, result=RangeStatsView,
              parameters=(_FORMAT,), content=_CSV,
              headers={"X-Next-Cursor": "CSV only: the cursor of the next page"},
              errors=_ERRORS, tag="statistics"),
    HttpRoute("GET", "/api/v1/stats/corrections", corrections, "late deltas counted after"
              " their day closed, with their cause", query=R.StatsCorrectionsReq,
              result=CorrectionsView, errors=_ERRORS, tag="statistics"),
]  # fmt: skip
