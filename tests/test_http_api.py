"""The HTTP API done right: 201 + Location, ETag / If-Match, the envelope on every error, the
OpenAPI document generated from the route table (and answers that match it), health bodies,
the overview, a stream's analysis records with their JPEG frames, and live updates (SSE)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest
from nats.aio.client import Client

from analytics.records import AnalysisRecord, EventInfo, WindowFrame, encode_record
from ops.http.auth import HttpAuth
from ops.http.routes import ROUTES
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.runtime.up import serve_http
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, eventually

ADMIN = {"Authorization": "Bearer adm1n"}
RTSP = {"source": {"url": "rtsp://cam-1.example/live"}}
# the smallest JPEG (1x1 grey), as an agent's record would carry it
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////"
    "////////////////////////////////////2wBDAf//////////////////////////////////////////"
    "////////////////////////////////////////////wAARCAABAAEDASIAAhEBAxEB/8QAFQABAQAAAAAA"
    "AAAAAAAAAAAAAAf/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFAEBAAAAAAAAAAAAAAAAAAAAAP/EABQRAQAA"
    "AAAAAAAAAAAAAAAAAAD/2gAMAwEAAhEDEQA/AKpgB//Z"
)


class Api:
    def __init__(self, url: str, http: aiohttp.ClientSession, manager: Manager) -> None:
        self.url = url
        self.http = http
        self.manager = manager
        self.doc: dict[str, Any] = {}

    async def call(self, method: str, path: str, *, body: Any = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Mapping[str, str], Any]:  # fmt: skip
        data = orjson.dumps(body) if body is not None else None
        async with self.http.request(method, self.url + path, data=data,
                                     headers={**ADMIN, **(headers or {})}) as r:  # fmt: skip
            raw = await r.read()
            is_json = r.content_type == "application/json"
            return r.status, r.headers.copy(), orjson.loads(raw) if is_json else raw

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        """``body`` matches the schema the document gives for (path, method, status)."""
        op = self.doc["paths"][path][method.lower()]
        assert str(status) in op["responses"], (method, path, status, body)
        schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
        jsonschema.validate(body, {**schema, "components": self.doc["components"]})


@pytest.fixture
async def api(nats_server: EmbeddedNats) -> AsyncIterator[Api]:
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1)
    async with (
        Manager(ClientSettings(nats_url=nats_server.url), settings) as m,
        serve_http(m, f"127.0.0.1:{free_port()}", HttpAuth.from_settings(admin_token="adm1n")) as url,
        aiohttp.ClientSession() as http,
    ):  # fmt: skip
        a = Api(url, http, m)
        _, _, a.doc = await a.call("GET", "/openapi.json")
        yield a


async def test_create_answers_201_with_location_and_etag_and_if_match_guards_changes(
    api: Api,
) -> None:
    status, headers, body = await api.call("POST", "/api/v1/streams", body=RTSP)
    assert status == 201, body
    api.check("POST", "/api/v1/streams", status, body)
    sid = body["result"]["stream_id"]
    assert headers["Location"] == f"/api/v1/streams/{sid}" and headers["ETag"] == '"1"'

    status, headers, body = await api.call("GET", headers["Location"])
    assert status == 200 and headers["ETag"] == '"1"'
    api.check("GET", "/api/v1/streams/{id}", status, body)

    stop = {"action": "stop"}
    status, headers, body = await api.call("PATCH", f"/api/v1/streams/{sid}", body=stop,
                                           headers={"If-Match": '"1"'})  # fmt: skip
    assert status == 200 and body["result"]["status"] == "stopped" and headers["ETag"] == '"2"'
    for stale in ('"1"', 'W/"1"', '"abc"', "garbage"):
        status, _, body = await api.call("PATCH", f"/api/v1/streams/{sid}", body={"action": "start"},
                                         headers={"If-Match": stale})  # fmt: skip
        assert status == 412 and body["error"]["code"] == "conflict", (stale, body)
        api.check("PATCH", "/api/v1/streams/{id}", status, body)
    status, _, body = await api.call(
        "DELETE", f"/api/v1/streams/{sid}", headers={"If-Match": '"1"'}
    )
    assert status == 412, body
    status, _, body = await api.call("DELETE", f"/api/v1/streams/{sid}", headers={"If-Match": "*"})
    assert status == 200 and body["result"] == {"stream_id": sid, "deleted": True}
    api.check("DELETE", "/api/v1/streams/{id}", status, body)
    status, _, body = await api.call("GET", f"/api/v1/streams/{sid}")
    assert status == 404 and body["error"]["code"] == "not_found"

    # the same request_id again: the same stream, still 201 with its Location
    first = await api.call("POST", "/api/v1/streams", body={**RTSP, "request_id": "r-7"})
    again = await api.call("POST", "/api/v1/streams", body={**RTSP, "request_id": "r-7"})
    assert first[0] == again[0] == 201 and first[1]["Location"] == again[1]["Location"]

    status, headers, body = await api.call("POST", "/api/v1/groups", body={"name": "lobby"})
    assert status == 201 and headers["Location"] == "/api/v1/groups/lobby", body
    status, _, body = await api.call("PUT", "/api/v1/groups/lobby", body={"failback": False},
                                     headers={"If-Match": '"5"'})  # fmt: skip
    assert status == 412, body
    status, headers, body = await api.call("PUT", "/api/v1/groups/lobby", body={"failback": False},
                                           headers={"If-Match": '"1"'})  # fmt: skip
    assert status == 200 and headers["ETag"] == '"2"' and body["result"]["failback"] is False


async def test_every_error_is_the_json_envelope(api: Api) -> None:
    async with api.http.get(api.url + "/api/v1/nope") as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
    async with api.http.put(api.url + "/api/v1/streams", headers=ADMIN) as r:
        assert r.status == 405 and "GET" in r.headers["Allow"]
        assert (await r.json())["ok"] is False
    async with api.http.post(api.url + "/api/v1/streams", data=b"x" * (1024 * 1024 + 10),
                             headers=ADMIN) as r:  # fmt: skip
        assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"
    async with api.http.get(api.url + "/api/v1/streams") as r:
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    status, _, body = await api.call("GET", "/api/v1/streams?limit=0")
    assert status == 400 and body["error"]["details"][0]["path"] == "$.limit"
    status, _, body = await api.call("GET", "/api/v1/stats/daily?date=2026-01-01&format=xml")
    assert status == 400 and body["error"]["details"][0]["path"] == "$.format"


async def test_the_document_describes_every_route_with_typed_answers(api: Api) -> None:
    doc = api.doc
    served = {(r.method.lower(), r.path) for r in ROUTES}
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
            assert ok["content"], (method, path)  # every success says what it is
            red5 = path.startswith("/api/v1/schedules")  # Red5's shapes, kept for its clients
            if path.startswith("/api/v1/") and "application/json" in ok["content"] and not red5:
                name = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                assert name.startswith("OkReply_"), (method, path, name)
                result = doc["components"]["schemas"][name]["properties"]["result"]
                assert "$ref" in result, (method, path)  # a Struct, never {"type": "object"}
            for code, answer in op["responses"].items():
                if code.startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema["$ref"].endswith("/ErrorReply"), (method, path, code)
    assert doc["paths"]["/api/v1/stats/daily"]["get"]["responses"]["200"]["content"]["text/csv"]
    async with api.http.get(api.url + "/docs") as r:
        assert r.status == 200 and "openapi.json" in await r.text()


async def test_health_bodies_match_their_schema(api: Api) -> None:
    for path in ("/healthz", "/readyz"):
        status, _, body = await api.call("GET", path)
        assert status == 200, body
        api.check("GET", path, status, body)
    status, _, body = await api.call("GET", "/readyz")
    assert (
        body["result"]["status"] == "ready"
        and body["result"]["manager_id"] == api.manager.manager_id
    )


async def test_the_overview_counts_from_the_indexes(api: Api) -> None:
    for _ in range(3):
        await api.call("POST", "/api/v1/streams", body=RTSP)
    status, _, body = await api.call("GET", "/api/v1/overview")
    assert status == 200, body
    api.check("GET", "/api/v1/overview", status, body)
    view = body["result"]
    assert view["streams_total"] == 3 and view["streams"]["pending"] == 3
    assert [(w["count"], w["code"]) for w in view["waiting"]] == [(3, "no_ready_agent")]
    assert view["agents"]["total"] == 0 and view["alarms"]["active"] >= 0


async def test_a_streams_records_and_their_frames(api: Api, nc: Client) -> None:
    _, _, body = await api.call("POST", "/api/v1/streams", body=RTSP)
    sid = body["result"]["stream_id"]
    js = nc.jetstream()
    now = time.time()
    for n in range(12):
        record = AnalysisRecord(
            record_id=f"r{n}", stream_id=sid, agent_id="a-1",
            event=EventInfo(name="motion", started_at=now + n, ended_at=now + n + 1, score=0.5),
            actions=[], triggers=[],
            window=[WindowFrame(ts=n + 0.5, jpeg_b64=base64.b64encode(JPEG).decode())],
        )  # fmt: skip
        await js.publish(f"vigil.records.a-1.{sid}", encode_record(record))
    await js.publish("vigil.records.a-1.s-other", b"{}")
    status, _, body = await api.call("GET", f"/api/v1/streams/{sid}/records?limit=5")
    assert status == 200, body
    api.check("GET", "/api/v1/streams/{id}/records", status, body)
    result = body["result"]
    assert result["total"] == 12 and [r["record_id"] for r in result["records"]] == [
        "r11", "r10", "r9", "r8", "r7"]  # fmt: skip
    url = result["records"][0]["frames"][0]["url"]
    async with api.http.get(api.url + url, headers=ADMIN) as r:
        assert r.status == 200 and r.content_type == "image/jpeg" and await r.read() == JPEG
    other = url.replace(sid, "s-other")
    async with api.http.get(api.url + other, headers=ADMIN) as r:
        assert r.status == 404  # a record of another stream is not served under this one
    status, _, body = await api.call("GET", "/api/v1/streams/s-none/records")
    assert status == 200 and body["result"] == {"stream_id": "s-none", "records": [], "total": 0}


async def test_live_updates_push_what_changed(api: Api) -> None:
    events: list[tuple[str, Any]] = []

    async def listen() -> None:
        async with api.http.get(api.url + "/api/v1/live", headers=ADMIN) as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
            name = None
            async for line in r.content:
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    name = text[7:]
                elif text.startswith("data: ") and name:
                    events.append((name, orjson.loads(text[6:])))

    task = asyncio.create_task(listen())
    try:
        await eventually(lambda: any(n == "hello" for n, _ in events), what="hello")
        _, _, body = await api.call("POST", "/api/v1/streams", body=RTSP)
        sid = body["result"]["stream_id"]

        def pushed() -> bool:
            return any(n == "streams" and any(s["stream_id"] == sid for s in d["changed"])
                       for n, d in events)  # fmt: skip

        await eventually(pushed, what="the new stream pushed")
        await eventually(lambda: any(n == "overview" and d["streams"]["pending"] == 1
                                     for n, d in events), what="overview pushed")  # fmt: skip
        record = AnalysisRecord(record_id="r-live", stream_id=sid, agent_id="a-1",
                                event=EventInfo(name="motion", started_at=1.0, ended_at=2.0, score=0.5),
                                actions=[], triggers=[], window=[])  # fmt: skip
        ack = await api.manager.nc.jetstream().publish(
            f"vigil.records.a-1.{sid}", encode_record(record)
        )
        await eventually(lambda: any(n == "records" and {"stream_id": sid, "seq": ack.seq} in d["records"]
                                     for n, d in events), what="the new record pushed")  # fmt: skip
        await api.call("DELETE", f"/api/v1/streams/{sid}")
        await eventually(lambda: any(n == "streams" and sid in d["removed"] for n, d in events),
                         what="the deletion pushed")  # fmt: skip
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_streams_page_newest_first_and_search(api: Api) -> None:
    ids = []
    for n in range(5):
        body = {**RTSP, "name": f"cam {n}", "labels": {"floor": "roof" if n % 2 else "lobby"}}
        ids.append((await api.call("POST", "/api/v1/streams", body=body))[2]["result"]["stream_id"])
    seen: list[str] = []
    cursor = ""
    while True:
        status, _, body = await api.call("GET", f"/api/v1/streams?order=newest&limit=2{cursor}")
        assert status == 200, body
        seen += [s["stream_id"] for s in body["result"]["streams"]]
        if body["result"]["next_cursor"] is None:
            break
        cursor = f"&cursor={body['result']['next_cursor']}"
    assert seen == ids[::-1]
    _, _, body = await api.call("GET", "/api/v1/streams?q=ROOF")
    assert [s["stream_id"] for s in body["result"]["streams"]] == [ids[1], ids[3]]
    _, _, body = await api.call("GET", f"/api/v1/streams?q={ids[4][-6:]}&order=newest")
    assert [s["stream_id"] for s in body["result"]["streams"]] == [ids[4]]
