"""The stream commands over NATS against a real manager and nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK, command, count_messages, ok

FILE = {"source": {"url": "file:///tmp/x.mp4"}, "kind": "file"}


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    async with Manager(
        ClientSettings(nats_url=nats_server.url), ManagerSettings(**LOOPBACK_OK)
    ) as m:
        yield m


async def test_create_get_list(manager: Manager, nc: Client) -> None:
    view = await ok(nc, "stream.create", {**FILE, "name": "lobby", "labels": {"floor": "1"}})
    assert view["status"] == "pending" and view["version"] == 1 and view["name"] == "lobby"
    assert view["kind"] == "file" and view["source"] == {"url": "file:///tmp/x.mp4"}
    got = await ok(nc, "stream.get", {"stream_id": view["stream_id"]})
    assert got == view
    listed = await ok(nc, "stream.list", {})
    assert [s["stream_id"] for s in listed["streams"]] == [view["stream_id"]]


async def test_list_pages_with_a_cursor_and_filters(manager: Manager, nc: Client) -> None:
    ids = [(await ok(nc, "stream.create", FILE))["stream_id"] for _ in range(5)]
    await ok(nc, "stream.patch", {"stream_id": ids[0], "action": "stop"})
    page1 = await ok(nc, "stream.list", {"limit": 2})
    page2 = await ok(nc, "stream.list", {"limit": 2, "cursor": page1["next_cursor"]})
    page3 = await ok(nc, "stream.list", {"limit": 2, "cursor": page2["next_cursor"]})
    assert [s["stream_id"] for p in (page1, page2, page3) for s in p["streams"]] == ids
    assert page3["next_cursor"] is None
    stopped = await ok(nc, "stream.list", {"status": "stopped"})
    assert [s["stream_id"] for s in stopped["streams"]] == ids[:1]


async def test_stop_start_delete(manager: Manager, nc: Client) -> None:
    sid = (await ok(nc, "stream.create", FILE))["stream_id"]
    stopped = await ok(nc, "stream.patch", {"stream_id": sid, "action": "stop"})
    assert (stopped["status"], stopped["version"]) == ("stopped", 2)
    started = await ok(nc, "stream.patch", {"stream_id": sid, "action": "start"})
    assert (started["status"], started["version"]) == ("pending", 3)
    assert await ok(nc, "stream.delete", {"stream_id": sid}) == {"stream_id": sid, "deleted": True}
    reply = await command(nc, "stream.get", {"stream_id": sid})
    assert reply["error"]["code"] == "not_found"


async def test_concurrent_patches_with_the_same_expected_version(
    manager: Manager, nc: Client
) -> None:
    sid = (await ok(nc, "stream.create", FILE))["stream_id"]
    replies = await asyncio.gather(
        command(nc, "stream.patch", {"stream_id": sid, "action": "stop", "expected_version": 1}),
        command(nc, "stream.patch", {"stream_id": sid, "action": "stop", "expected_version": 1}),
    )
    assert sorted(r["ok"] for r in replies) == [False, True]
    loser = next(r for r in replies if not r["ok"])
    assert loser["error"]["code"] == "conflict"
    assert (await ok(nc, "stream.get", {"stream_id": sid}))["version"] == 2


async def test_the_same_request_id_creates_one_stream(manager: Manager, nc: Client) -> None:
    body = {**FILE, "request_id": "req-42"}
    first, second = await asyncio.gather(
        command(nc, "stream.create", body), command(nc, "stream.create", body)
    )
    third = await command(nc, "stream.create", body)
    assert first["ok"] and second["ok"] and third["ok"]
    assert (
        first["result"]["stream_id"]
        == second["result"]["stream_id"]
        == third["result"]["stream_id"]
    )
    assert len((await ok(nc, "stream.list", {}))["streams"]) == 1
    assert await count_messages(nc) == 1


async def test_a_refused_request_id_is_judged_afresh(manager: Manager, nc: Client) -> None:
    """A refusal changed nothing, so it is not remembered: once an agent offers the analytic,
    the same request_id creates the stream."""
    body = {**FILE, "request_id": "req-7", "analytics": [{"name": "plates"}]}
    refused = await command(nc, "stream.create", body)
    assert not refused["ok"] and refused["error"]["code"] == "invalid"
    assert "plates" in refused["error"]["message"]
    await ok(
        nc, "agent.register", {"name": "lpr", "capacity": 1, "analytics": [{"name": "plates"}]}
    )
    created = await ok(nc, "stream.create", body)
    again = await ok(nc, "stream.create", body)
    assert created["stream_id"] == again["stream_id"]
    assert await count_messages(nc) == 1


BAD_BODIES = [
    (b"not json", "$"),
    (b"[1, 2]", "$"),
    (b'{"kind": "file"}', "$"),
    (b'{"source": {"url": 5}, "kind": "file"}', "$.source.url"),
    (b'{"source": {"url": "file:///x"}, "kind": "disk"}', "$.kind"),
    (b'{"source": {"url": "' + b"a" * 5000 + b'"}}', "$.source.url"),
    (b'{"source": {"url": "file:///x"}, "name": "' + b"n" * 100_000 + b'"}', "$.name"),
    (b'{"source": {"url": "ftp://x/y"}}', "$.source.url"),
    (b'{"source": {"url": "file:///x"}, "analytics": [{"name": 3}]}', "$.analytics[0].name"),
    (
        b'{"source": {"url": "file:///x"}, "autorestart": {"max_attempts": -1}}',
        "$.autorestart.max_attempts",
    ),
    (b'{"source": {"url": "file:///x"}, "surprise": 1}', "$"),
]


@pytest.mark.parametrize("body,path", BAD_BODIES)
async def test_bad_bodies_are_invalid_with_the_path_and_append_nothing(
    manager: Manager, nc: Client, body: bytes, path: str
) -> None:
    reply = await command(nc, "stream.create", body)
    assert reply["ok"] is False and reply["error"]["code"] == "invalid", reply
    assert reply["error"]["details"][0]["path"] == path
    assert await count_messages(nc) == 0


async def test_bad_patch_and_unknown_command(manager: Manager, nc: Client) -> None:
    reply = await command(nc, "stream.patch", {"stream_id": "s-x", "action": "pause"})
    assert (
        reply["error"]["code"] == "invalid" and reply["error"]["details"][0]["path"] == "$.action"
    )
    reply = await command(nc, "stream.patch", {"stream_id": "s-nope", "action": "stop"})
    assert reply["error"]["code"] == "not_found"
    reply = await command(nc, "stream.explode", {})
    assert reply["error"]["code"] == "not_found"
    assert await count_messages(nc) == 0


async def test_state_is_rebuilt_from_events_after_restart(
    nats_server: EmbeddedNats, nc: Client
) -> None:
    settings = ClientSettings(nats_url=nats_server.url)
    policy = ManagerSettings(**LOOPBACK_OK)
    async with Manager(settings, policy):
        a = await ok(nc, "stream.create", FILE)
        b = await ok(nc, "stream.create", FILE)
        await ok(nc, "stream.patch", {"stream_id": b["stream_id"], "action": "stop"})
        before = await ok(nc, "stream.list", {})
    async with Manager(settings, policy):
        after = await ok(nc, "stream.list", {})
    assert after == before
    assert {s["stream_id"]: s["status"] for s in after["streams"]} == {
        a["stream_id"]: "pending",
        b["stream_id"]: "stopped",
    }


async def test_http_metrics_dashboard_and_auth(
    manager: Manager, nc: Client, tmp_path: Path
) -> None:
    from aiohttp import ClientSession

    from ops.http.auth import HttpAuth, add_token
    from ops.runtime.natsd import free_port
    from ops.runtime.up import serve_http

    hostport = f"127.0.0.1:{free_port()}"
    tokens = tmp_path / "tokens"
    viewer = add_token(tokens, "viewer", "grafana")
    auth = HttpAuth.from_settings(admin_token="s3cret", tokens_file=tokens)
    async with serve_http(manager, hostport, auth) as url, ClientSession() as http:
        body = {"source": {"url": "rtsp://cam/9"}}
        async with http.post(f"{url}/api/v1/streams", json=body) as r:
            assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
        async with http.get(f"{url}/api/v1/streams") as r:
            assert r.status == 401  # reads need a token unless configured open
        async with http.get(f"{url}/api/v1/streams", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
        async with http.post(f"{url}/api/v1/streams?accessToken={viewer}", json=body) as r:
            assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
        async with http.get(f"{url}/api/v1/streams?accessToken={viewer}") as r:
            assert r.status == 200
        async with http.post(f"{url}/api/v1/streams?accessToken=s3cret", json=body) as r:
            assert r.status == 200
            sid = (await r.json())["result"]["stream_id"]
        headers = {"Authorization": "Bearer s3cret"}
        async with http.patch(
            f"{url}/api/v1/streams/{sid}", json={"action": "stop"}, headers=headers
        ) as r:
            assert r.status == 200 and (await r.json())["result"]["status"] == "stopped"
        async with http.patch(f"{url}/api/v1/streams/{sid}", data=b"{nope", headers=headers) as r:
            assert r.status == 400
        async with http.get(f"{url}/api/v1/streams/s-missing", headers=headers) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"
        async with http.get(f"{url}/metrics", headers=headers) as r:
            text = await r.text()
            assert 'vigil_streams{status="stopped"} 1.0' in text
        async with http.get(f"{url}/openapi.json") as r:
            doc = await r.json()
            assert doc["openapi"].startswith("3.1")
            assert "source" in doc["components"]["schemas"]["CreateStreamReq"]["required"]
            assert {"get", "post"} <= set(doc["paths"]["/api/v1/streams"])
        async with http.get(f"{url}/") as r:
            assert r.status == 200 and "<title>vigil</title>" in await r.text()
        async with http.delete(f"{url}/api/v1/streams/{sid}", headers=headers) as r:
            assert r.status == 200


async def test_a_manager_without_a_token_refuses_http_writes_and_says_so(manager: Manager) -> None:
    from aiohttp import ClientSession

    from ops.runtime.natsd import free_port
    from ops.runtime.up import serve_http

    hostport = f"127.0.0.1:{free_port()}"
    async with serve_http(manager, hostport, None) as url, ClientSession() as http:
        async with http.post(f"{url}/api/v1/streams", json={"source": {"url": "rtsp://c/1"}},
                             headers={"Authorization": "Bearer anything"}) as r:  # fmt: skip
            body = await r.json()
            assert r.status == 403 and "no API token" in body["error"]["message"]
        async with http.get(f"{url}/readyz") as r:
            assert r.status == 200  # health stays open
