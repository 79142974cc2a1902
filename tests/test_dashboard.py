"""The dashboard in a real browser (headless chromium, 1,024 px wide): a token, a stream created
with the button that waits pending and turns in_progress without a reload once an agent comes,
its detail with the history and a thumbnail of an analysis record, stopped with the button, an
alarm acknowledged. Screenshots are saved as artifacts (tests/browser.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from agent.runtime import Agent, AgentConfig
from analytics.clips import ClipSpec, Segment, write_clip
from ops.http.auth import HttpAuth
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.runtime.up import serve_http
from ops.settings import ClientSettings, ManagerSettings
from tests.browser import artifacts, browser_page
from tests.helpers import AGENT_SOURCES, LOOPBACK_OK, eventually, ok

TOKEN = "op-t0ken"
WAIT_MS = 60_000


@pytest.fixture
async def site(nats_server: EmbeddedNats) -> AsyncIterator[tuple[str, Manager]]:
    settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.1, heartbeat_interval_s=0.5)
    auth = HttpAuth.from_settings(admin_token=TOKEN)  # reads need the token too
    async with (
        Manager(ClientSettings(nats_url=nats_server.url), settings) as m,
        serve_http(m, f"127.0.0.1:{free_port()}", auth) as url,
    ):
        yield url, m


def real_errors(page: Any) -> list[str]:
    """JavaScript errors (refused requests before the token was given are expected)."""
    return [e for e in page.vigil_errors if "Failed to load resource" not in e]


async def test_an_operator_acts_from_the_dashboard(
    site: tuple[str, Manager], nats_server: EmbeddedNats, nc: Client, tmp_path: Path
) -> None:
    url, manager = site
    shots = artifacts(tmp_path, "dashboard")
    clip = write_clip(tmp_path / "gate.ts", ClipSpec(duration_s=12.0, timeline=(
        Segment("motion", 1.0, 3.0), Segment("motion", 6.0, 8.0))))  # fmt: skip
    async with browser_page(tmp_path / "profile") as page:
        await page.goto(url + "/")
        # reads need a token here: the page asks for it, and keeps it for this tab
        await page.get_by_test_id("token-dialog").wait_for(state="visible", timeout=WAIT_MS)
        await page.get_by_test_id("token-input").fill(TOKEN)
        await page.get_by_test_id("token-save").click()
        await page.locator("#live.on").wait_for(timeout=WAIT_MS)
        await page.evaluate("window.__same_page = true")

        # create a stream with the button: no agent offers motion yet, so it waits (pending)
        await page.goto(url + "/#/streams")
        await page.get_by_test_id("new-stream").click()
        await page.get_by_test_id("create-url").fill(f"file://{clip.path}")
        await page.get_by_test_id("create-name").fill("gate camera")
        await page.get_by_test_id("create-analytics").fill("motion")
        await page.get_by_test_id("create-unregistered").check()
        await page.get_by_test_id("create-submit").click()
        status = page.get_by_test_id("detail-status")
        await status.get_by_text("pending").wait_for(timeout=WAIT_MS)
        await (
            page.get_by_test_id("waiting")
            .get_by_text("no agent offers motion")
            .wait_for(timeout=WAIT_MS)
        )
        sid = page.url.rsplit("/", 1)[1]
        await page.screenshot(path=shots / "1-created-pending.png", full_page=True)

        await page.get_by_text("‹ streams").click()
        row = page.locator(f'tr[data-id="{sid}"]')
        await row.get_by_text("pending").wait_for(timeout=WAIT_MS)
        await page.evaluate("window.__same_page = true")
        config = AgentConfig(name="edge-1", outbox=tmp_path / "edge-1" / "outbox.db",
                             poll_interval_s=1.0, sources=AGENT_SOURCES, analytics=("motion",))  # fmt: skip
        async with Agent(ClientSettings(nats_url=nats_server.url), config):
            # the row turns in_progress by itself (live updates, no reload)
            await row.get_by_text("in progress").wait_for(timeout=WAIT_MS)
            assert await page.evaluate("window.__same_page === true"), "the page was reloaded"
            assert await row.get_attribute("data-status") == "in_progress"
            await page.screenshot(path=shots / "2-list-in-progress.png", full_page=True)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1024, f"the stream list is {width} px wide at 1,024 px"

            # its detail: history and a thumbnail of an analysis record
            await row.locator("td").first.click()
            await status.get_by_text("in progress").wait_for(timeout=WAIT_MS)
            history = page.get_by_test_id("history")
            await history.get_by_text("StreamRunning").wait_for(timeout=WAIT_MS)
            assert await history.locator("li").count() >= 3
            thumb = page.get_by_test_id("thumbnail").first
            await thumb.wait_for(timeout=WAIT_MS)
            await eventually(lambda: thumb.evaluate("img => img.complete && img.naturalWidth > 0"),
                             timeout=30, what="the thumbnail loaded")  # fmt: skip
            await page.screenshot(path=shots / "3-detail-history-thumbnail.png", full_page=True)

            # stop it with the button
            await page.locator("#d-actions").get_by_test_id("stop").click()
            await status.get_by_text("stopped").wait_for(timeout=WAIT_MS)
            assert (await ok(nc, "stream.get", {"stream_id": sid}))["status"] == "stopped"
            await history.get_by_text("StreamStopped").wait_for(timeout=WAIT_MS)
            await page.screenshot(path=shots / "4-stopped.png", full_page=True)

            # a stream whose file is missing fails for good: an alarm, acknowledged here
            bad = await ok(nc, "stream.create", {"source": {"url": f"file://{tmp_path}/missing.ts"},
                                                 "kind": "file", "analytics": [{"name": "motion"}]})  # fmt: skip
            await page.goto(url + "/#/alarms")
            alarm = page.locator("tr[data-alarm]", has_text=f"stream.{bad['stream_id']}")
            await alarm.get_by_test_id("ack").click(timeout=WAIT_MS)
            await alarm.get_by_text("✓ dashboard").wait_for(timeout=WAIT_MS)
            listed = await ok(nc, "alarm.list", {"source": f"stream.{bad['stream_id']}"})
            assert listed["alarms"][0]["acked_by"] == "dashboard"
            await page.screenshot(path=shots / "5-alarm-acked.png", full_page=True)

            # groups and agents: edge-1 becomes the active member of an active/standby group
            await ok(nc, "group.create", {"name": "hq", "mode": "active_standby", "members": [
                {"agent": "edge-1", "priority": 1}, {"agent": "edge-2", "priority": 2}]})  # fmt: skip
            await page.goto(url + "/#/groups")
            await page.get_by_test_id("groups").get_by_text("edge-1 (1)").wait_for(timeout=WAIT_MS)
            await page.get_by_test_id("groups").locator(".badge.active").wait_for(timeout=WAIT_MS)
            await page.screenshot(path=shots / "6-groups.png", full_page=True)
            await page.goto(url + "/#/agents")
            await page.get_by_test_id("agents").get_by_text("▶ hq").wait_for(timeout=WAIT_MS)

            await page.goto(url + "/#/overview")
            await page.get_by_test_id("count-total").get_by_text("2").wait_for(timeout=WAIT_MS)
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1024, f"the overview is {width} px wide at 1,024 px"
            await page.screenshot(path=shots / "7-overview.png", full_page=True)
        assert not real_errors(page), real_errors(page)
    assert manager.ready
