"""Credentials of stream sources, kept apart from the event log (KV ``VIGIL_SECRETS``).

A source URL with credentials (``rtsp://user:pass@cam/x``) is stored in ``StreamCreated`` as
``rtsp://cam/x`` with ``secret = <stream_id>``; ``user:pass`` goes to this bucket under that
key, which only managers may read (``ops.security.roles``). The stream's agent receives the full
URL with its assignment, on its own inbox. Exports, audits, replays and views never see it; the
secret is deleted with the stream.
"""

from __future__ import annotations

import logging

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

__all__ = ["SecretStore"]

log = logging.getLogger(__name__)


class SecretStore:
    def __init__(self, kv: KeyValue | None) -> None:
        self.kv = kv
        self._cache: dict[str, str] = {}

    async def put(self, key: str, value: str) -> None:
        if self.kv is None:
            raise RuntimeError("no secrets bucket: credentials in source URLs are not accepted")
        await self.kv.put(key, value.encode())
        self._cache[key] = value

    async def get(self, key: str) -> str | None:
        if key in self._cache:
            return self._cache[key]
        if self.kv is None:
            return None
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        value = (entry.value or b"").decode()
        self._cache[key] = value
        return value

    async def delete(self, key: str) -> None:
        self._cache.pop(key, None)
        if self.kv is None:
            return
        try:
            await self.kv.purge(key)
        except KeyNotFoundError:
            pass
