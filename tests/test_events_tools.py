"""The other `vigil events` tools: export/import round trip, tail, replay --serve, and verify
against a tampered snapshot."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import msgspec
from nats.aio.client import Client

from events.jetstream import JetStreamStore
from ops.logtools.replay import rebuild, seq_at_time
from ops.logtools.verify import digest_dump, dump_projections, verify
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.settings import ClientSettings, ManagerSettings
from projections.snapshot import take_snapshot, write_snapshot
from tests.helpers import LOOPBACK_OK, eventually, ok
from tests.test_replay import vigil

FAST = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, master_lease_s=2)


async def _scenario(nc: Client) -> list[str]:
    await ok(nc, "agent.register", {"name": "a", "capacity": 2})
    ids = [(await ok(nc, "stream.create", {"source": {"url": f"rtsp://c/{i}"}}))["stream_id"]
           for i in range(4)]  # fmt: skip
    await ok(nc, "stream.patch", {"stream_id": ids[0], "action": "stop", "request_id": "r1"})
    await ok(nc, "stream.delete", {"stream_id": ids[1]})
    return ids


async def test_export_then_import_into_a_fresh_store_rebuilds_the_same_state(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    async with Manager(ClientSettings(nats_url=nats_server.url), FAST) as m:
        await eventually(lambda: m.master.is_master)
        await _scenario(nc)
        await eventually(lambda: sum(s.agent_id is not None for s in m.streams.live()) == 2)
    store = JetStreamStore(nc)
    last = await store.last_seq()
    original = digest_dump(dump_projections((await rebuild(nc)).projections))

    out = tmp_path / "events.jsonl"
    code, _, err = await vigil(nats_server.url, tmp_path, "events", "export", "-o", str(out))
    assert code == 0, err
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["seq"] for x in lines] == list(range(1, last + 1))
    assert lines[0]["event"]["type"] == "MasterElected" or lines[0]["subject"].startswith("vigil.")
    assert any(x["headers"].get("Nats-Msg-Id") for x in lines)
    # A window: --from-seq/--to-seq, and --since a time after everything: empty.
    code, part, _ = await vigil(nats_server.url, tmp_path, "events", "export", "--from-seq", "2",
                                "--to-seq", "4")  # fmt: skip
    assert [json.loads(x)["seq"] for x in part.splitlines()] == [2, 3, 4]
    code, none, _ = await vigil(nats_server.url, tmp_path, "events", "export", "--since",
                                str(time.time() + 60))  # fmt: skip
    assert code == 0 and none == ""

    # Importing into the same (non-empty) store is refused; a fresh server takes it.
    code, _, err = await vigil(nats_server.url, tmp_path, "events", "import", str(out))
    assert code == 1 and "--force" in err
    with EmbeddedNats(tmp_path / "forensics") as fresh:
        code, text, err = await vigil(fresh.url, tmp_path, "events", "import", str(out))
        assert code == 0, err
        assert f"imported {last} events" in text
        import nats

        nc2 = await nats.connect(fresh.url)
        try:
            assert await JetStreamStore(nc2).last_seq() == last
            copy = digest_dump(dump_projections((await rebuild(nc2)).projections))
        finally:
            await nc2.close()
    assert copy == original


async def test_tail_replay_serve_and_a_tampered_snapshot(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    url = nats_server.url
    async with Manager(ClientSettings(nats_url=url), FAST) as m:
        await eventually(lambda: m.master.is_master)
        ids = await _scenario(nc)
        store = JetStreamStore(nc)
        await eventually(lambda: sum(s.agent_id is not None for s in m.streams.live()) == 2)
        last = await store.last_seq()

        code, out, err = await vigil(url, tmp_path, "events", "tail", "--last", "3")
        assert code == 0, err
        rows = out.splitlines()
        assert len(rows) == 3 and rows[-1].split()[0] == str(last)
        code, out, _ = await vigil(url, tmp_path, "events", "tail", "--subject",
                                   f"vigil.evt.stream.{ids[0]}", "--json")  # fmt: skip
        events = [json.loads(x)["event"]["type"] for x in out.splitlines()]
        assert events[0] == "StreamCreated" and "StreamStopped" in events

        # tail --follow prints an event appended after it started.
        env_proc = await asyncio.create_subprocess_exec(
            *_vigil_argv("events", "tail", "--follow", "--last", "0"), env=_env(url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
        try:
            await asyncio.sleep(0)  # let it subscribe; the loop below retries until it shows
            assert env_proc.stdout is not None

            async def shows_new() -> bool:
                """Create a stream (the first may precede the subscription); read what came."""
                await ok(nc, "stream.create", {"source": {"url": "rtsp://c/new"}})
                try:
                    while True:
                        line = await asyncio.wait_for(env_proc.stdout.readline(), 2)  # type: ignore[union-attr]
                        if b"StreamCreated" in line:
                            return True
                except TimeoutError:
                    return False

            await eventually(shows_new, timeout=20, what="tail --follow prints new events")
        finally:
            env_proc.terminate()
            await env_proc.wait()

        # replay --seq N --serve: the read-only API on the past.
        port = free_port()
        seq = await seq_at_time(nc, time.time())
        proc = await asyncio.create_subprocess_exec(
            *_vigil_argv("events", "replay", "--seq", "4", "--serve", f"127.0.0.1:{port}"),
            env=_env(url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert b"read-only" in line, line
            base = f"http://127.0.0.1:{port}/api/v1"
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/streams") as r:
                    body = await r.json()
                    assert r.status == 200 and body["seq"] == 4
                past = await rebuild(nc, 4)
                assert len(body["result"]["streams"]) == len(list(past.by_name()["streams"].live()))
                async with http.post(
                    f"{base}/streams", json={"source": {"url": "rtsp://x/y"}}
                ) as r:
                    assert r.status == 403
                sid = body["result"]["streams"][0]["stream_id"]
                async with http.get(f"{base}/streams/{sid}/history") as r:
                    hist = await r.json()
                    assert all(e["seq"] <= 4 for e in hist["result"]["entries"])
        finally:
            proc.terminate()
            await proc.wait()
        assert seq >= last

        # A snapshot that does not match the log: verify names the entity, exit 1.
        usable = m.fleet.all()
        snap = take_snapshot(m.projector, usable)
        tampered = dict(snap.blobs)
        streams = type(m.streams)()
        streams.restore(snap.blobs["streams"])
        state = streams.streams[ids[2]]
        streams.streams[ids[2]] = msgspec.structs.replace(state, name="forged")
        tampered["streams"] = streams.snapshot()
        await write_snapshot(nc, msgspec.structs.replace(snap, blobs=tampered))
        checks = await verify(nc)
        by_label = {c.label.split()[0]: c for c in checks}
        assert by_label["live"].ok
        assert [d.key for d in by_label["snapshot"].diffs] == [f"streams/{ids[2]}"]
        code, out, _ = await vigil(url, tmp_path, "events", "verify", "--no-live")
        assert code == 1
        assert f'streams/{ids[2]}  state.name: log "new" ≠ snapshot' in out or "forged" in out, out


def _vigil_argv(*args: str) -> list[str]:
    from tests.test_replay import VIGIL

    return [VIGIL, *args]


def _env(url: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env["VIGIL_NATS_URL"] = url
    return env
