"""Pipelined, acked JetStream publishes through a reply inbox of our own.

Used by the event store (appends) and the agent's feedback sender. One subscription takes every
ack; each is read with orjson into its publish's future, as an `Ack` (stream sequence and the
``duplicate`` flag of a message id seen before), or an exception: `PubRefused` for a JetStream
error, ``NoStreamResponseError`` when no stream took the subject (status 503).

Why not nats-py's ``publish_async``: it makes a random reply token and a future per message and
builds a ``PubAck`` dataclass from each ack through ``dataclasses.fields`` (a third of the
outbox drain's time), and it leaves the future of a message the server refused unresolved, so a
refusal would only show as a timeout.

    inbox = AckInbox(nc)
    await inbox.start()
    fut = await inbox.publish(subject, body, {"Nats-Msg-Id": "a:1"})
    ack = await asyncio.wait_for(fut, 5.0)       # Ack(seq=..., duplicate=...)

A future that is cancelled (a timeout) or abandoned is forgotten; its late ack is ignored. The
subscription outlives reconnects (nats-py subscribes again).
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import NoStreamResponseError

__all__ = ["Ack", "AckInbox", "PubRefused"]

# A future whose ack is taken is forgotten then; one cancelled before it (a caller's timeout) is
# forgotten by a sweep every this many publishes (a done-callback per future costs more).
_SWEEP_EVERY = 4096


class Ack(NamedTuple):
    seq: int
    duplicate: bool


class PubRefused(Exception):
    """JetStream refused a message: its ack carried an error (or could not be read)."""

    def __init__(self, err_code: int | None, description: str) -> None:
        super().__init__(f"{description} (err_code {err_code})")
        self.err_code = err_code
        self.description = description


class AckInbox:
    """Acked publishes, any number in flight, one reply subscription for all of them."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.prefix = nc.new_inbox()
        self._cut = len(self.prefix) + 1
        self.futures: dict[str, asyncio.Future[Ack]] = {}
        self._next = 0
        self._started = False

    async def start(self) -> None:
        """Subscribe to the inbox (once; later calls do nothing)."""
        if not self._started:
            await self.nc.subscribe(f"{self.prefix}.*", cb=self._on_reply)
            self._started = True

    async def publish(
        self, subject: str, body: bytes, headers: dict[str, str]
    ) -> asyncio.Future[Ack]:
        """Send ``body``; the future resolves when its ack comes. Raises what ``nc.publish``
        raises (a closed connection, a full reconnect buffer)."""
        self._next += 1
        token = str(self._next)
        fut: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self.futures[token] = fut
        if self._next % _SWEEP_EVERY == 0:
            self._sweep()
        try:
            await self.nc.publish(
                subject, body, reply=f"{self.prefix}.{token}", headers=headers or None
            )
        except BaseException:
            del self.futures[token]
            fut.cancel()
            raise
        return fut

    def abandon(self) -> None:
        """Cancel every future still waiting for its ack (their acks will be ignored)."""
        futures, self.futures = self.futures, {}
        for fut in futures.values():
            fut.cancel()

    def _sweep(self) -> None:
        """Forget the futures that ended without their ack (cancelled: a caller's timeout)."""
        self.futures = {t: f for t, f in self.futures.items() if not f.done()}

    async def _on_reply(self, msg: Msg) -> None:
        fut = self.futures.pop(msg.subject[self._cut :], None)
        if fut is None or fut.done():
            return  # a cancelled or abandoned publish's ack
        if msg.headers and msg.headers.get("Status") == "503":
            fut.set_exception(NoStreamResponseError())
            return
        try:
            resp = orjson.loads(msg.data)
            err = resp.get("error")
            if err:
                fut.set_exception(PubRefused(err.get("err_code"), str(err.get("description", err))))
            else:
                fut.set_result(Ack(int(resp["seq"]), bool(resp.get("duplicate"))))
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
            fut.set_exception(PubRefused(None, f"unreadable ack: {msg.data[:200]!r}"))
