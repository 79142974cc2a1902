"""Hostile input never halts, never corrupts (a bounded fuzz; ``make fuzz`` runs the long one).

Random JSON — and the classics: 10,000-deep nesting, integers past 2^64, NaN, huge strings,
unicode, raw bytes — sent to every command subject, the agent protocol's subjects, JetStream
feedback and every HTTP route of one real manager. Every request must get a reply in the
envelope, a refused one must append nothing, and afterwards every read must still work and no
supervised part may have died.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from ops.http.app import build_app
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import count_messages, eventually, ok

EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
CODES = {"invalid", "unauthorized", "forbidden", "not_found", "conflict", "too_large",
         "unavailable", "internal"}  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)  # fmt: skip

FIELDS = ["source", "url", "kind", "analytics", "name", "params", "group", "labels", "stream_id",
          "agent_id", "action", "expected_version", "request_id", "capacity", "date", "by",
          "limit", "cursor", "status", "spool", "seq", "version", "ts", "stats", "running",
          "host", "from", "to", "month", "eventName", "data", "region", "until", "launch"]  # fmt: skip

objects = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), json_values, max_size=8)

CLASSICS = [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
    b'{"source": {"url": "rtsp://cam/x"}, "labels": {"a": "b"}, "analytics": [{"name": "m",'
    b' "params": {"x": 123456789012345678901234567890}}]}',
    b'{"capacity": 18446744073709551617, "name": "x"}',
    b'{"stream_id": "s-1", "action": "stop", "expected_version": 99999999999999999999}',
    b'{"date": NaN}',
    b'{"ts": Infinity}',
    b'{"name": "' + b"\xf0\x9f\x8e\xa5" * 5_000 + b'"}',
    b'{"source": {"url": "' + b"a" * 300_000 + b'"}}',
    b"\xff\xfe\x00garbage",
    b"",
    b"null",
    b"[]",
]  # fmt: skip

bodies = (
    st.sampled_from(CLASSICS)
    | objects.map(lambda d: json.dumps(d).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
)


class Target:
    """A running manager with its HTTP API, and a count of the events in the log."""

    def __init__(self, manager: Manager, nc: Client, base: str) -> None:
        self.manager, self.nc, self.base = manager, nc, base
        self.admin = {"Authorization": "Bearer fuzz-admin"}

    async def events(self) -> int:
        info = await self.nc.jetstream().stream_info("VIGIL_EVENTS")
        return int(info.state.last_seq)


@pytest.fixture
async def target(nats_server: EmbeddedNats, nc: Client) -> AsyncIterator[Target]:
    settings_ = ManagerSettings(master_tick_s=0.1)
    async with Manager(ClientSettings(nats_url=nats_server.url), settings_) as manager:
        runner = web.AppRunner(build_app(manager, token="fuzz-admin"))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await ok(nc, "agent.register", {"name": "known", "capacity": 2, "agent_id": "a-known"})
        try:
            yield Target(manager, nc, f"http://127.0.0.1:{port}")
            await _still_healthy(manager, nc, f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()


def _envelope(data: bytes) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(data)
    assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), reply
    if not reply["ok"]:
        assert reply["error"]["code"] in CODES and reply["error"]["message"], reply
        assert reply["error"]["code"] != "internal", reply
    return reply


async def _still_healthy(manager: Manager, nc: Client, base: str) -> None:
    for name in ("stream.list", "agent.list", "master.get"):
        await ok(nc, name, {})
    await ok(nc, "stats.daily", {"date": "2026-01-01"})
    async with aiohttp.ClientSession() as http:
        for path in ("/api/v1/streams", "/api/v1/agents", "/api/v1/master", "/readyz",
                     "/metrics", "/api/v1/stats/daily?date=2026-01-01"):  # fmt: skip
            async with http.get(base + path, headers={"Authorization": "Bearer fuzz-admin"}) as r:
                assert r.status == 200, (path, r.status, await r.text())
    report = manager.supervisor.report()
    assert all(state == "running" and restarts == 0 for state, restarts, _ in report.values()), (
        report
    )
    assert manager.readiness() is None


@FUZZ
@given(body=bodies, route=st.sampled_from(
    ["stream.create", "stream.get", "stream.list", "stream.patch", "stream.delete", "agent.get",
     "agent.list", "agent.register", "master.get", "stats.daily", "stats.range", "stats.monthly",
     "projections.dump", "schedule.create", "schedule.update", "schedule.get",
     "schedule.delete", "launch.create", "launch.update", "policy.create", "policy.update",
     "scaling.get", "no.such"]))  # fmt: skip
async def test_commands_always_answer_and_refusals_append_nothing(
    target: Target, body: bytes, route: str
) -> None:
    before = await target.events()
    msg = await target.nc.request(f"vigil.cmd.{route}", body, timeout=10)
    reply = _envelope(msg.data)
    if not reply["ok"]:
        assert await target.events() == before


@FUZZ
@given(body=bodies, verb=st.sampled_from(["register", "streams", "deregister", "heartbeat"]),
       agent=st.sampled_from(["a-known", "a-unknown", "a_x:y@z", "%"]))  # fmt: skip
async def test_the_agent_protocol_always_answers(
    target: Target, body: bytes, verb: str, agent: str
) -> None:
    subject = f"vigil.agent.{agent}.{verb}"
    if verb == "heartbeat":
        await target.nc.publish(subject, body)
        return
    before = await target.events()
    msg = await target.nc.request(subject, body, timeout=10)
    reply = _envelope(msg.data)
    if not reply["ok"]:
        assert await target.events() == before


@FUZZ
@given(body=bodies, agent=st.sampled_from(["a-known", "a-unknown"]))
async def test_feedback_never_stops_status_processing(
    target: Target, body: bytes, agent: str
) -> None:
    before = await count_messages(target.nc)
    counts = target.manager.feedback.counts
    seen = sum(counts.values())
    await target.nc.jetstream().publish(f"vigil.feedback.{agent}", body)
    await eventually(lambda: sum(counts.values()) > seen, timeout=60, what="feedback handled")
    assert counts["error"] == 0
    assert await count_messages(target.nc) == before  # no stream of a-known: nothing to change


ROUTES = [("GET", "/api/v1/streams"), ("POST", "/api/v1/streams"), ("GET", "/api/v1/streams/s-x"),
          ("PATCH", "/api/v1/streams/s-x"), ("DELETE", "/api/v1/streams/s-x"),
          ("GET", "/api/v1/streams/s-x/history"), ("GET", "/api/v1/agents"),
          ("GET", "/api/v1/agents/a-known"), ("GET", "/api/v1/master"),
          ("GET", "/api/v1/stats/daily"), ("GET", "/api/v1/stats/range"), ("PUT", "/api/v1/streams"),
          ("GET", "/api/v1/nope"), ("GET", "/metrics"), ("GET", "/readyz")]  # fmt: skip
query_values = st.text(max_size=30) | st.sampled_from(
    ["99999999999999999999", "-1", "NaN", "1e400", "2026-13-45", "%00", "\u202e", "a" * 5000]
)


@FUZZ
@given(route=st.sampled_from(ROUTES), body=bodies,
       query=st.dictionaries(st.sampled_from([*FIELDS, "expected_version", "format"]),
                             query_values, max_size=4))  # fmt: skip
async def test_http_always_answers_in_the_envelope_and_never_500s(
    target: Target, route: tuple[str, str], body: bytes, query: dict[str, str]
) -> None:
    method, path = route
    before = await target.events()
    async with aiohttp.ClientSession() as http:
        async with http.request(method, target.base + path, params=query, data=body,
                                headers=target.admin) as r:  # fmt: skip
            data = await r.read()
            assert r.status < 500 or r.status == 503, (method, path, r.status, data[:300])
            if r.headers.get("Content-Type", "").startswith("application/json"):
                reply = _envelope(data)
                if not reply["ok"]:
                    assert await target.events() == before
            elif r.status != 400:  # 400 in text: the HTTP parser's own (a request line too long)
                assert r.status == 200, (r.status, data[:200])  # CSV or metrics text


async def test_the_poison_pill_is_terminated_counted_and_status_processing_continues(
    target: Target,
) -> None:
    """A 5,000-deep JSON body on vigil.feedback.<id> once killed the consumer for good (and the
    next manager's, after redelivery). Now: terminated (never redelivered), counted, and the
    next feedback still moves its stream."""
    nc, manager = target.nc, target.manager
    view = await ok(nc, "stream.create", {"source": {"url": "rtsp://cam.example/1"}})
    sid = view["stream_id"]
    state = await eventually(lambda: manager.streams.streams[sid].agent_id and
                             manager.streams.streams[sid], what="assigned to a-known")  # fmt: skip
    js = nc.jetstream()
    poison = b'{"seq": 1, "stats": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
    await js.publish("vigil.feedback.a-known", poison)
    await eventually(lambda: manager.feedback.counts["invalid"] >= 1, what="poison refused")
    good = {"seq": 2, "stream_id": sid, "version": state.assignment_version,
            "status": "in_progress", "ts": 1_800_000_000.0}  # fmt: skip
    await js.publish("vigil.feedback.a-known", json.dumps(good).encode())

    async def running() -> bool:
        got = await ok(nc, "stream.get", {"stream_id": sid})
        return bool(got["status"] == "in_progress")

    await eventually(running, what="the next feedback still processed")
    consumer = await js.consumer_info("VIGIL_FEEDBACK", "vigil-managers")
    assert consumer.num_redelivered == 0 and consumer.num_ack_pending == 0
    assert manager.feedback.counts["error"] == 0
