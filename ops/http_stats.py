"""``GET /api/v1/stats/daily``: the daily statistics over HTTP (a read; no token needed).

Query parameters are the body of ``stats.daily`` (``date``, ``stream_id``, ``agent_id``,
``group``, ``by``, ``limit``, ``cursor``) plus ``format=csv`` for the billing export of one page
(``text/csv``; follow ``X-Next-Cursor`` for the next one). Errors use the command envelope with
the HTTP status of its code, e.g. 400 with ``details[0].path == "$.date"``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ops.rpc import HTTP_STATUS, Router
from ops.stats import to_csv

__all__ = ["daily_stats"]


async def daily_stats(request: web.Request) -> web.Response:
    from ops.http import MANAGER

    query: dict[str, Any] = {k: v for k, v in request.query.items() if k != "format"}
    if "limit" in query:
        try:
            query["limit"] = int(query["limit"])
        except ValueError:
            pass  # the router answers 'invalid' with the path $.limit
    router: Router = request.app[MANAGER].router
    reply = await router.dispatch("stats.daily", orjson.dumps(query))
    body = orjson.loads(reply)
    if not body.get("ok"):
        status = HTTP_STATUS.get(body["error"]["code"], 500)
        return web.Response(body=reply, status=status, content_type="application/json")
    if request.query.get("format") == "csv":
        result = body["result"]
        headers = {"X-Next-Cursor": result["next_cursor"]} if result["next_cursor"] else {}
        return web.Response(text=to_csv(result["date"], result["items"]), content_type="text/csv",
                            headers=headers)  # fmt: skip
    return web.Response(body=reply, content_type="application/json")
