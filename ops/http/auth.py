"""Who may do what over HTTP: bearer tokens (``Authorization: Bearer`` or ``?accessToken=``)."""

from __future__ import annotations

import hmac

from aiohttp import web

__all__ = ["TOKEN", "is_authorized", "presented_token"]

TOKEN: web.AppKey[str | None] = web.AppKey("token", str | None)  # type: ignore[arg-type]


def presented_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.query.get("accessToken", "")


def is_authorized(request: web.Request) -> bool:
    """A write is allowed when the manager has no token, or the request presents it
    (constant-time compare)."""
    token = request.app[TOKEN]
    if not token:
        return True
    return hmac.compare_digest(presented_token(request).encode(), token.encode())
