"""Sources and spools fenced, secrets kept out of the log: with the default policy a stream cannot
point an agent at the manager's files or its loopback services, and credentials in a source URL
appear in no view, log line, export or event."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from agent.runtime import Agent, AgentConfig
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import command, count_messages, eventually, ok

FAST = ManagerSettings(master_tick_s=0.1, heartbeat_interval_s=0.3, agent_downgrade_s=3)
VIGIL = str(Path(sys.executable).parent / "vigil")


@pytest.fixture
async def manager(nats_server: EmbeddedNats) -> AsyncIterator[Manager]:
    async with Manager(ClientSettings(nats_url=nats_server.url), FAST) as m:
        yield m


@pytest.mark.parametrize(
    ("body", "path", "says"),
    [
        ({"source": {"url": "file:///etc/passwd"}, "kind": "file"}, "$.source.url", "not allowed"),
        ({"source": {"url": "/proc/self/environ"}, "kind": "file"}, "$.source.url", "not allowed"),
        ({"source": {"url": "rtsp://127.0.0.1:8554/x"}}, "$.source.url", "127.0.0.1"),
        ({"source": {"url": "http://169.254.169.254/latest/meta-data"}}, "$.source.url", "169.254"),
        ({"source": {"url": "rtsp://localhost/x"}}, "$.source.url", "localhost"),
        ({"source": {"url": "rtsp://[::1]:554/x"}}, "$.source.url", "::1"),
        ({"source": {"url": "rtsp://cam.example/x"},
          "spool": {"type": "webhook", "url": "http://127.0.0.1:9000/hook"}}, "$.spool.url",
         "127.0.0.1"),
        ({"source": {"url": "rtsp://cam.example/x"},
          "spool": {"type": "directory", "path": "/srv/records/../../etc"}}, "$.spool.path", ".."),
        ({"source": {"url": "rtsp://cam.example/x"},
          "spool": {"type": "directory", "path": "/srv/records"}}, "$.spool.path", "not allowed"),
        ({"source": {"url": "gopher://cam.example/x"}}, "$.source.url", "scheme"),
    ],
)  # fmt: skip
async def test_unsafe_sources_and_spools_are_refused_at_create_with_the_field(
    manager: Manager, nc: Client, body: dict[str, object], path: str, says: str
) -> None:
    before = await count_messages(nc)
    reply = await command(nc, "stream.create", body)
    assert reply["ok"] is False and reply["error"]["code"] == "invalid", reply
    assert reply["error"]["details"][0]["path"] == path
    assert says in reply["error"]["message"]
    assert await count_messages(nc) == before  # nothing appended


async def test_a_file_inside_a_media_root_is_accepted_and_a_symlink_out_is_refused_by_the_agent(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "escape.mp4").symlink_to("/etc/passwd")
    settings = ManagerSettings(master_tick_s=0.1, media_roots=(str(media),))
    client = ClientSettings(nats_url=nats_server.url)
    async with Manager(client, settings):
        view = await ok(nc, "stream.create",
                        {"source": {"url": f"file://{media}/escape.mp4"}, "kind": "file"})  # fmt: skip
        from core.sources import SourcePolicy

        config = AgentConfig(name="a", outbox=tmp_path / "a" / "o.db", poll_interval_s=0.5,
                             sources=SourcePolicy(media_roots=(str(media),)))  # fmt: skip
        async with Agent(client, config):

            async def failed() -> dict[str, object] | None:
                got = await ok(nc, "stream.get", {"stream_id": view["stream_id"]})
                return got if got["status"] == "failure" else None

            got = await eventually(failed, timeout=30, what="stream refused by the agent")
        assert got["last_error"]["code"] == "source_not_allowed"  # type: ignore[index]
        assert got["last_error"]["fatal"] is True  # type: ignore[index]
        assert "/etc" not in str(got["last_error"])  # says nothing about what it points at


async def test_only_files_that_probe_as_video_are_decoded(
    nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    """FFmpeg renders a text file as video (its ``tty`` demuxer): the agent refuses anything
    that is not a video container, with the words it uses for a device, so nothing is told."""
    from analytics.clips import ClipSpec, write_clip
    from core.sources import SourcePolicy

    media = tmp_path / "media"
    media.mkdir()
    (media / "notes.mp4").write_text("a secret\n" * 200)
    clip = write_clip(media / "cam.mp4", ClipSpec(duration_s=2)).path
    settings = ManagerSettings(master_tick_s=0.1, media_roots=(str(media),))
    client = ClientSettings(nats_url=nats_server.url)
    async with Manager(client, settings):
        text = await ok(nc, "stream.create",
                        {"source": {"url": f"file://{media}/notes.mp4"}, "kind": "file"})  # fmt: skip
        video = await ok(nc, "stream.create", {"source": {"url": f"file://{clip}"}, "kind": "file"})
        config = AgentConfig(name="a", outbox=tmp_path / "a" / "o.db", poll_interval_s=0.5,
                             sources=SourcePolicy(media_roots=(str(media),)))  # fmt: skip
        async with Agent(client, config):

            async def ended(sid: str) -> dict[str, object] | None:
                got = await ok(nc, "stream.get", {"stream_id": sid})
                return got if got["status"] in ("failure", "done") else None

            refused = await eventually(lambda: ended(text["stream_id"]), timeout=60,
                                       what="the text file refused")  # fmt: skip
            decoded = await eventually(lambda: ended(video["stream_id"]), timeout=60,
                                       what="the video decoded")  # fmt: skip
        assert refused["status"] == "failure"
        assert refused["last_error"]["code"] == "source_not_allowed"  # type: ignore[index]
        assert "secret" not in str(refused["last_error"])
        assert decoded["status"] == "done", decoded


async def test_credentials_in_a_source_url_appear_in_no_view_log_export_or_event(
    manager: Manager, nc: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = "rtsp://operator:s3cr3t-pass@cam-7.example/live"
    view = await ok(nc, "stream.create", {"source": {"url": url}, "request_id": "cred-1"})
    sid = view["stream_id"]
    assert view["source"] == {"url": "rtsp://cam-7.example/live", "credentials": True}
    replay = await ok(nc, "stream.create", {"source": {"url": url}, "request_id": "cred-1"})
    assert replay == view
    seen = [view, await ok(nc, "stream.get", {"stream_id": sid}),
            await ok(nc, "stream.list", {})]  # fmt: skip

    # The assigned agent, and only it, gets the URL it must open.
    reg = await ok(nc, "agent.register", {"name": "edge", "capacity": 1})
    await eventually(lambda: manager.streams.streams[sid].agent_id == reg["agent_id"],
                     what="assigned")  # fmt: skip
    poll = await nc.request(f"vigil.agent.{reg['agent_id']}.streams", b"{}", timeout=5)
    assert b"s3cr3t-pass" in poll.data

    # Nowhere else: views, events, the request cache, the log export, log lines.
    assert all(b"s3cr3t" not in repr(v).encode() for v in seen)
    js = nc.jetstream()
    events = await js.stream_info("VIGIL_EVENTS")
    for seq in range(1, events.state.last_seq + 1):
        assert b"s3cr3t" not in (await js.get_msg("VIGIL_EVENTS", seq)).data
    env = {"VIGIL_NATS_URL": manager.client.nats_url, "VIGIL_DATA_DIR": str(tmp_path / "none")}
    proc = await asyncio.create_subprocess_exec(VIGIL, "events", "export", env=env,
                                                stdout=asyncio.subprocess.PIPE)  # fmt: skip
    exported, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    assert b"cam-7.example" in exported and b"s3cr3t" not in exported
    assert "s3cr3t" not in caplog.text

    # Deleting the stream deletes its secret.
    await ok(nc, "stream.delete", {"stream_id": sid})
    kv = await js.key_value("VIGIL_SECRETS")
    keys = await kv.keys() if await _has_keys(kv) else []
    assert sid not in keys


async def _has_keys(kv: object) -> bool:
    from nats.js.errors import NoKeysError

    try:
        await kv.keys()  # type: ignore[attr-defined]
    except NoKeysError:
        return False
    return True
