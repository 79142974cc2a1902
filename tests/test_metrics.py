"""``/metrics`` as an on-call engineer reads it: it parses with prometheus-client's own parser,
carries the process collectors, and the histograms and counters move as a scenario runs (a
camera streaming through an agent, a stream whose file is missing, one no agent can take)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from nats.aio.client import Client
from prometheus_client.parser import text_string_to_metric_families

from agent.runtime import Agent, AgentConfig
from analytics.clips import ClipSpec, write_clip
from ops.http.auth import HttpAuth
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.runtime.up import serve_http
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import AGENT_SOURCES, LOOPBACK_OK, eventually, ok

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def site(nats_server: EmbeddedNats) -> AsyncIterator[tuple[str, Manager]]:
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, heartbeat_interval_s=0.5,
                               feedback_interval_s=0.5)  # fmt: skip
    auth = HttpAuth.from_settings(admin_token="t", open_reads=True)
    async with (
        Manager(ClientSettings(nats_url=nats_server.url), settings) as m,
        serve_http(m, f"127.0.0.1:{free_port()}", auth) as url,
    ):
        yield url, m


async def scrape(url: str, query: str = "") -> tuple[set[str], Samples]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics{query}") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    families, samples = set(), {}
    for family in text_string_to_metric_families(text):  # raises on anything malformed
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return families, samples


def value(samples: Samples, metric: str, **labels: str) -> float:
    """The sum of ``metric``'s samples whose labels include ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and want <= ls)


async def test_metrics_parse_and_move_as_a_scenario_runs(
    site: tuple[str, Manager], nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    url, manager = site
    families, before = await scrape(url)
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "python_info",
                 "python_gc_objects_collected", "vigil_command_seconds", "vigil_append_seconds",
                 "vigil_master_tick_seconds", "vigil_event_loop_lag_seconds", "vigil_projection_lag_events",
                 "vigil_projection_lag_seconds", "vigil_snapshot_age_events", "vigil_master",
                 "vigil_master_epoch", "vigil_streams", "vigil_streams_waiting",
                 "vigil_stream_failures", "vigil_stream_restarts", "vigil_nats_connected",
                 "vigil_alarms_active", "vigil_event_seq"):  # fmt: skip
        assert name in families, name
    assert value(before, "vigil_nats_connected") == 1 and value(before, "vigil_master") == 1

    clip = write_clip(tmp_path / "cam.ts", ClipSpec(duration_s=10.0, timeline=()))
    config = AgentConfig(name="edge-1", outbox=tmp_path / "edge-1" / "outbox.db", groups=("lobby",),
                         poll_interval_s=1.0, sources=AGENT_SOURCES, analytics=("motion",))  # fmt: skip
    async with Agent(ClientSettings(nats_url=nats_server.url), config) as agent:
        await eventually(agent.registered.is_set, what="the agent registered")
        live = await ok(nc, "stream.create", {"source": {"url": f"file://{clip.path}"},
                                              "name": "gate", "analytics": [{"name": "motion"}]})  # fmt: skip
        missing = await ok(nc, "stream.create", {"source": {"url": f"file://{tmp_path}/gone.ts"},
                                                 "kind": "file", "analytics": [{"name": "motion"}]})  # fmt: skip
        await ok(nc, "stream.create", {"source": {"url": "rtsp://cam.example/1"}, "group": "hq"})
        sid = live["stream_id"]

        async def running() -> Samples | None:
            _, now = await scrape(url)
            moving = value(now, "vigil_stream_fps", stream_id=sid) > 0
            # bytes reach the meters per media second: a bitrate after the first one
            bits = value(now, "vigil_stream_bitrate_bps", stream_id=sid, name="gate") > 0
            failed = value(now, "vigil_stream_failures_total", code="source_not_found") >= 1
            return now if moving and bits and failed else None

        after = await eventually(
            running, timeout=60, what="fps and bitrate of the running stream, and the failure"
        )
        assert value(after, "vigil_stream_frames_decoded_total", stream_id=sid) > 0
        assert (
            value(after, "vigil_stream_failures_total", code="source_not_found", kind="fatal") == 1
        )
        assert value(after, "vigil_streams", status="in_progress") == 1
        assert value(after, "vigil_streams", status="failure") == 1
        assert value(after, "vigil_streams_waiting", group="hq") == 1
        assert value(after, "vigil_agent_cpu_percent", name="edge-1", groups="lobby") >= 0
        assert any(n == "vigil_agent_heartbeat_age_seconds" and ("name", "edge-1") in labels
                   for n, labels in after)  # fmt: skip
        assert value(after, "vigil_agent_outbox_depth", name="edge-1") >= 0
        await eventually(lambda: manager.alarms.is_active("stream_failed", f"stream.{missing['stream_id']}"),
                         timeout=30, what="the stream_failed alarm")  # fmt: skip
        _, after = await scrape(url)
        assert value(after, "vigil_alarms_active", kind="stream_failed") == 1
        assert value(after, "vigil_alarms_unacked", kind="stream_failed") == 1

        # every series the Grafana dashboard plots exists (docs/grafana-dashboard.json)
        await manager.snapshots.maybe_write(force=True)
        _, now = await scrape(url)
        names = {n for n, _ in now}
        dashboard = (Path(__file__).parent.parent / "docs" / "grafana-dashboard.json").read_text()
        plotted = set(re.findall(r"\b((?:vigil|process)_[a-z_]+)", dashboard))
        assert len(plotted) > 30 and plotted <= names, sorted(plotted - names)

        # a frequent fleet-level scrape leaves the per-stream (and per-agent) series out
        fleet, lean = await scrape(url, "?streams=0")
        assert "vigil_stream_fps" not in fleet and "vigil_stream_frames_decoded" not in fleet
        assert (
            "vigil_agent_load" in fleet and value(lean, "vigil_streams", status="in_progress") == 1
        )
        fleet, _ = await scrape(url, "?streams=false&agents=0")
        assert not {"vigil_stream_fps", "vigil_agent_load", "vigil_agent_cpu_percent"} & fleet
        assert {"vigil_streams", "vigil_agents", "vigil_master"} <= fleet
        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics?streams=maybe") as r:
            assert r.status == 400 and "$.streams" in (await r.json())["error"]["message"]

    # the histograms moved: three creates answered, events appended, the master ticked
    creates = "vigil_command_seconds_count"
    assert value(after, creates, command="stream.create", outcome="ok") - value(
        before, creates, command="stream.create", outcome="ok") == 3  # fmt: skip
    assert (
        value(
            after, "vigil_command_seconds_bucket", command="stream.create", outcome="ok", le="+Inf"
        )
        == 3
    )
    assert value(after, "vigil_append_seconds_count", kind="append", outcome="ok") > value(
        before, "vigil_append_seconds_count", kind="append", outcome="ok")  # fmt: skip
    assert value(after, "vigil_append_seconds_count", kind="append_batch", outcome="ok") > 0
    assert value(after, "vigil_master_tick_seconds_count") > value(
        before, "vigil_master_tick_seconds_count"
    )
    assert value(after, "vigil_event_seq") > value(before, "vigil_event_seq")
    assert value(after, "vigil_projection_lag_events") == 0
