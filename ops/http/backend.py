"""What the HTTP API needs from a manager (a live one, or a read-only replay of the past)."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from nats.aio.client import Client
from prometheus_client.registry import Collector

from ops.api.router import Router

__all__ = ["BACKEND", "Backend"]


class Backend(Protocol):
    manager_id: str
    nc: Client
    router: Router
    as_of_seq: int | None
    """Set on a replay: the event sequence whose state is served."""

    @property
    def last_seq(self) -> int: ...
    def readiness(self) -> str | None: ...
    def collector(self) -> Collector | None: ...


BACKEND: web.AppKey[Backend] = web.AppKey("backend", Backend)
