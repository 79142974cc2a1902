"""Stream commands and queries: create, get, list, patch (start/stop), delete.

Each handler takes a validated request Struct and returns a view Struct with the event sequence
it reflects, or raises a ``DomainError`` / ``StoreError`` that the router turns into the reply
envelope. Writes go through the shared `Executor` (load → decide → append → retry).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import msgspec

from core import stream as S
from core.distribution import Waiting
from core.errors import IllegalTransition, Invalid, NotFound
from core.sources import (
    SourcePolicy,
    check_host,
    check_source,
    check_spool_path,
    literal_address,
    local_path,
    split_credentials,
)
from core.stream import StreamState
from events.model import AnalyticRef, Autorestart, Cause, Source, SpoolTarget, StreamEvent
from ops.api import requests as R
from ops.api.views import Deleted, StreamList, StreamView, stream_view
from ops.commands.executor import AggregateType, Executor
from ops.commands.secrets import SecretStore
from projections.engine import Projector
from projections.streams import StreamsProjection

__all__ = ["ParamsValidator", "StreamCommands", "stream_aggregate"]

log = logging.getLogger(__name__)

_NS = uuid.UUID("6f1c2a8e-8b1e-4c53-9a55-0b6f6c1b7a11")

ParamsValidator = Callable[[list[R.AnalyticIn], bool], None]
"""Checks a stream's analytics against what agents registered (raises ``Invalid``)."""


def _no_registry(analytics: list[R.AnalyticIn], allow_unregistered: bool) -> None:
    return None


def _no_reason(_state: StreamState) -> Waiting | None:
    return None


def stream_aggregate(
    streams: StreamsProjection,
) -> AggregateType[StreamState, S.StreamCommand, StreamEvent]:
    return AggregateType(
        kind="stream", event_type=StreamEvent, decide=S.decide, evolve=S.evolve,
        cached=lambda sid: (streams.streams.get(sid), streams.seq_of(sid)),
    )  # fmt: skip


class StreamCommands:
    def __init__(
        self,
        executor: Executor,
        projector: Projector,
        streams: StreamsProjection,
        *,
        manager_id: str,
        validate_analytics: ParamsValidator = _no_registry,
        policy: SourcePolicy | None = None,
        secrets: SecretStore | None = None,
        waiting: Callable[[StreamState], Waiting | None] = _no_reason,
        clock: Callable[[], float] = time.time,
        resolve_timeout_s: float = 1.0,
    ) -> None:
        self.policy = policy or SourcePolicy()
        self.resolve_timeout_s = resolve_timeout_s
        self.secrets = secrets or SecretStore(None)
        self.waiting = waiting
        self.executor = executor
        self.projector = projector
        self.streams = streams
        self.agg = stream_aggregate(streams)
        self.manager_id = manager_id
        self.validate_analytics = validate_analytics
        self.clock = clock

    def _cause(self, name: str, request_id: str | None) -> Cause:
        return Cause(kind="command", name=name, request_id=request_id, manager_id=self.manager_id)

    async def execute(
        self,
        stream_id: str,
        make: Callable[[StreamState | None], S.StreamCommand],
        *,
        msg_id: str | None = None,
    ) -> tuple[StreamState | None, int]:
        return await self.executor.execute(self.agg, stream_id, make, msg_id=msg_id)

    # ---- handlers ----------------------------------------------------------------------------

    async def _check_url(self, url: str, path: str) -> None:
        """``Invalid`` at ``path`` unless the policy allows ``url`` (resolving its host here;
        a name this manager cannot resolve is left to the agent's own check)."""
        host = urlsplit(url).hostname if local_path(url) is None else None
        addresses = await resolve(host, self.resolve_timeout_s) if host else []
        why = check_source(url, self.policy, addresses)
        if why is not None:
            raise Invalid(path, why)

    async def create(self, req: R.CreateStreamReq) -> tuple[StreamView, int]:
        R.validate_source(req.source, req.kind)
        await self._check_url(req.source.url, "$.source.url")
        self.validate_analytics(req.analytics, req.allow_unregistered)
        if req.spool is not None:
            R.validate_spool(req.spool)
            if req.spool.type == "directory" and req.spool.path:
                why = check_spool_path(req.spool.path, self.policy)
                if why is not None:
                    raise Invalid("$.spool.path", why)
            if req.spool.type == "webhook" and req.spool.url:
                host = urlsplit(req.spool.url).hostname or ""
                why = check_host(host, await resolve(host, self.resolve_timeout_s), self.policy)
                if why is not None:
                    raise Invalid("$.spool.url", why)
        if req.request_id is not None:
            stream_id = "s-" + uuid.uuid5(_NS, f"stream.create:{req.request_id}").hex[:16]
        else:
            stream_id = "s-" + secrets.token_hex(8)
        url, userinfo = split_credentials(req.source.url)
        if userinfo is not None:
            await self.secrets.put(stream_id, userinfo)
        ar = req.autorestart
        autorestart = Autorestart(**msgspec.structs.asdict(ar)) if ar else Autorestart()
        now = self.clock()
        cmd = S.CreateStream(
            stream_id=stream_id, at=now, cause=self._cause("stream.create", req.request_id),
            name=req.name or _default_name(url),
            source=Source(url=url, secret=stream_id if userinfo is not None else None),
            kind=req.kind,
            analytics=tuple(AnalyticRef(name=a.name, params=a.params) for a in req.analytics),
            group=req.group, autorestart=autorestart, labels=dict(req.labels),
            staleness_s=req.staleness_s, allow_unregistered=req.allow_unregistered,
            spool=SpoolTarget(type=req.spool.type, url=req.spool.url, path=req.spool.path)
            if req.spool else None,
            keyframes_only=req.keyframes_only, analysis_fps=req.analysis_fps,
        )  # fmt: skip
        msg_id = f"stream.create:{req.request_id}" if req.request_id else None
        try:
            state, seq = await self.execute(stream_id, lambda _s: cmd, msg_id=msg_id)
        except IllegalTransition:
            # Same request_id seen before: the stream exists; reply with it.
            loaded = await self.executor.load(self.agg, stream_id)
            state, seq = loaded
        assert state is not None
        return stream_view(state, self.waiting(state)), seq

    async def get(self, req: R.GetStreamReq) -> tuple[StreamView, int]:
        state = self.streams.get(req.stream_id)
        if state is None:
            raise NotFound(f"stream {req.stream_id} not found")
        return stream_view(state, self.waiting(state)), self.streams.seq_of(req.stream_id)

    async def list_streams(self, req: R.ListStreamsReq) -> tuple[StreamList, int]:
        after = _decode_cursor(req.cursor)
        page: list[StreamState] = []
        more = False
        needle = req.q.casefold() if req.q else None
        for s in self._in_order(after, newest_first=req.order == "newest"):
            if (
                (req.status is None or s.status == req.status)
                and (req.agent_id is None or s.agent_id == req.agent_id)
                and (req.group is None or s.group == req.group)
                and (needle is None or _matches(s, needle))
            ):
                if len(page) == req.limit:
                    more = True
                    break
                page.append(s)
        next_cursor = _encode_cursor(page[-1].created_at, page[-1].stream_id) if more else None
        result = StreamList(streams=[stream_view(s, self.waiting(s)) for s in page],
                            next_cursor=next_cursor)  # fmt: skip
        return result, self.projector.last_seq

    def _in_order(
        self, cursor: tuple[float, str] | None, *, newest_first: bool
    ) -> Iterator[StreamState]:
        """Live streams in creation order (or newest first), strictly past ``cursor``."""
        if not newest_first:
            yield from self.streams.ordered(cursor)
            return
        order, streams = self.streams.order, self.streams.streams
        end = len(order) if cursor is None else order.bisect_left(cursor)
        for i in range(end - 1, -1, -1):
            yield streams[order[i][1]]

    async def patch(self, req: R.PatchStreamReq) -> tuple[StreamView, int]:
        now = self.clock()
        cause = self._cause(f"stream.{req.action}", req.request_id)

        def make(_state: StreamState | None) -> S.StreamCommand:
            if req.action == "start":
                return S.StartStream(stream_id=req.stream_id, at=now, cause=cause,
                                     expected_version=req.expected_version)  # fmt: skip
            return S.StopStream(stream_id=req.stream_id, at=now, cause=cause,
                                expected_version=req.expected_version)  # fmt: skip

        msg_id = f"stream.patch:{req.request_id}" if req.request_id else None
        state, seq = await self.execute(req.stream_id, make, msg_id=msg_id)
        assert state is not None
        return stream_view(state, self.waiting(state)), seq

    async def delete(self, req: R.DeleteStreamReq) -> tuple[Deleted, int]:
        now = self.clock()
        cause = self._cause("stream.delete", req.request_id)

        def make(_state: StreamState | None) -> S.StreamCommand:
            return S.DeleteStream(stream_id=req.stream_id, at=now, cause=cause,
                                  expected_version=req.expected_version)  # fmt: skip

        msg_id = f"stream.delete:{req.request_id}" if req.request_id else None
        before = self.streams.get(req.stream_id)
        _, seq = await self.execute(req.stream_id, make, msg_id=msg_id)
        if before is not None and before.source.secret:
            await self.secrets.delete(before.source.secret)
        return Deleted(stream_id=req.stream_id), seq


async def resolve(host: str, timeout: float = 2.0) -> list[str]:
    """The addresses ``host`` resolves to here (none when it does not resolve in time); an
    address literal (most cameras) is itself, without a trip through the resolver's thread."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout
        )
    except (OSError, TimeoutError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _default_name(url: str) -> str:
    tail = url.rstrip("/").rsplit("/", 1)[-1]
    return tail[:256] or url[:256]


def _matches(s: StreamState, needle: str) -> bool:
    """``needle`` (case-folded) in the stream's id, name, source, agent or a label value."""
    return any(needle in text.casefold() for text in (s.stream_id, s.name, s.source.url,
                                                        s.agent_id or "", *s.labels.values()))  # fmt: skip


def _encode_cursor(created_at: float, stream_id: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([created_at, stream_id])).decode()


def _decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    if cursor is None:
        return None
    try:
        created_at, stream_id = msgspec.json.decode(base64.urlsafe_b64decode(cursor.encode()))
        return float(created_at), str(stream_id)
    except (ValueError, TypeError, msgspec.DecodeError):
        raise Invalid("$.cursor", "not a cursor returned by stream.list") from None
