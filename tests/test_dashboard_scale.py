"""The dashboard with 20,000 streams: the cards count from the projections' indexes (not from
a page of the list), cursor paging stays right in both orders and under a filter, search finds
one stream, and a burst of 2,000 changes updates the counts and the page without a reload."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.aio.client import Client

from events.jetstream import JetStreamStore
from events.model import AnalyticRef, Cause, Source, StreamCreated, StreamStopped
from events.store import Append
from ops.http.auth import HttpAuth
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.runtime.up import serve_http
from ops.settings import ClientSettings, ManagerSettings
from tests.browser import artifacts, browser_page
from tests.helpers import LOOPBACK_OK

N = 20_000
CAUSE = Cause(kind="command", name="test")
WAIT_MS = 60_000


def sid(i: int) -> str:
    return f"s-{i:05d}"


async def seed(store: JetStreamStore) -> None:
    """20,000 streams created in order; every 4th stopped (15,000 pending, 5,000 stopped)."""
    now = time.time() - N
    items = [Append(f"stream.{sid(i)}", StreamCreated(
        at=now + i, cause=CAUSE, stream_id=sid(i), name=f"cam {i:05d}",
        source=Source(url=f"rtsp://cam-{i}.example/live"), kind="stream",
        analytics=(AnalyticRef(name="motion"),), labels={"site": f"site-{i % 10}"},
    ), msg_id=f"c{i}") for i in range(N)]  # fmt: skip
    items += [Append(f"stream.{sid(i)}", StreamStopped(at=now + N, cause=CAUSE, stream_id=sid(i)),
                     msg_id=f"s{i}") for i in range(0, N, 4)]  # fmt: skip
    for start in range(0, len(items), 5000):
        await store.append_batch(items[start : start + 5000])


@pytest.fixture
async def fleet(nats_server: EmbeddedNats, nc: Client) -> AsyncIterator[tuple[str, Manager]]:
    store = JetStreamStore(nc)
    await store.ensure()
    await seed(store)
    auth = HttpAuth.from_settings(admin_token="t", open_reads=True)
    settings = ManagerSettings(**LOOPBACK_OK)
    async with (
        Manager(ClientSettings(nats_url=nats_server.url), settings, run_master=False) as m,
        serve_http(m, f"127.0.0.1:{free_port()}", auth) as url,
    ):
        yield url, m


async def pages(http: aiohttp.ClientSession, url: str, **query: Any) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params = {**query, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{url}/api/v1/streams", params=params) as r:
            result = (await r.json())["result"]
        ids += [s["stream_id"] for s in result["streams"]]
        cursor = result["next_cursor"]
        if cursor is None:
            return ids


async def text_of(page: Any, test_id: str) -> str:
    return str(await page.get_by_test_id(test_id).inner_text())


async def test_twenty_thousand_streams_count_and_page_right(
    fleet: tuple[str, Manager], nc: Client, tmp_path: Path
) -> None:
    url, manager = fleet
    shots = artifacts(tmp_path, "dashboard-20k")
    async with aiohttp.ClientSession() as http:
        assert await pages(http, url) == [sid(i) for i in range(N)]
        assert await pages(http, url, order="newest") == [sid(i) for i in reversed(range(N))]
        assert await pages(http, url, status="stopped", order="newest") == [
            sid(i) for i in reversed(range(0, N, 4))]  # fmt: skip

    async with browser_page(tmp_path / "profile") as page:
        began = time.monotonic()
        await page.goto(url + "/#/overview")
        await page.get_by_test_id("count-total").get_by_text("20,000").wait_for(timeout=WAIT_MS)
        assert "15,000" in await text_of(page, "count-pending")
        assert "5,000" in await text_of(page, "count-stopped")
        overview_s = time.monotonic() - began
        await page.screenshot(path=shots / "1-overview-20k.png", full_page=True)
        await page.evaluate("window.__same_page = true")

        began = time.monotonic()
        await page.goto(url + "/#/streams")
        rng = page.get_by_test_id("range")
        await rng.get_by_text("1–50 of 20,000").wait_for(timeout=WAIT_MS)
        list_s = time.monotonic() - began
        rows = page.locator("table[data-testid=streams] tbody tr")
        assert await rows.count() == 50
        assert await rows.first.get_attribute("data-id") == sid(N - 1)
        for _ in range(3):
            await page.get_by_test_id("next").click()
        await rng.get_by_text("151–200 of 20,000").wait_for(timeout=WAIT_MS)
        assert await rows.first.get_attribute("data-id") == sid(N - 151)
        assert await rows.last.get_attribute("data-id") == sid(N - 200)
        await page.get_by_test_id("prev").click()
        await rng.get_by_text("101–150 of 20,000").wait_for(timeout=WAIT_MS)
        assert await rows.first.get_attribute("data-id") == sid(N - 101)
        await page.screenshot(path=shots / "2-page-3.png", full_page=True)

        await page.get_by_test_id("filter-status").select_option("stopped")
        await rng.get_by_text("1–50 of 5,000").wait_for(timeout=WAIT_MS)
        assert set(await rows.evaluate_all("rs => rs.map(r => r.dataset.status)")) == {"stopped"}
        await page.get_by_test_id("next").click()
        await rng.get_by_text("51–100 of 5,000").wait_for(timeout=WAIT_MS)
        assert await rows.first.get_attribute("data-id") == sid(N - 4 - 50 * 4)
        await page.get_by_test_id("prev").click()
        await rng.get_by_text("1–50 of 5,000").wait_for(timeout=WAIT_MS)

        # a burst: 2,000 pending streams stopped at once; counts and the page follow, live
        store = JetStreamStore(nc)
        stopped = [i for i in range(N - 1, -1, -1) if i % 4][:2000]
        burst = [Append(f"stream.{sid(i)}", StreamStopped(at=time.time(), cause=CAUSE,
                                                          stream_id=sid(i))) for i in stopped]  # fmt: skip
        await store.append_batch(burst)
        await rng.get_by_text("1–50 of 7,000").wait_for(timeout=WAIT_MS)
        assert await rows.first.get_attribute("data-id") == sid(N - 1)  # newest, now stopped
        assert set(await rows.evaluate_all("rs => rs.map(r => r.dataset.status)")) == {"stopped"}
        await page.screenshot(path=shots / "3-after-burst.png", full_page=True)

        search = page.get_by_test_id("search")
        await page.get_by_test_id("filter-status").select_option("")
        await search.fill("cam 12345")
        await rows.first.get_by_text("cam 12345").wait_for(timeout=WAIT_MS)
        await page.wait_for_function(
            "document.querySelectorAll('table[data-testid=streams] tbody tr').length === 1"
        )
        assert await page.evaluate("window.__same_page === true"), "the page was reloaded"

        await page.goto(url + "/#/overview")
        await page.get_by_test_id("count-pending").get_by_text("13,000").wait_for(timeout=WAIT_MS)
        assert "7,000" in await text_of(page, "count-stopped")
        await page.screenshot(path=shots / "4-overview-after-burst.png", full_page=True)
        assert not [e for e in page.vigil_errors if "Failed to load resource" not in e], (
            page.vigil_errors
        )
    print(
        f"\n20,000 streams: overview shown in {overview_s:.2f} s, first list page in {list_s:.2f} s"
    )
    assert manager.streams.counts["stopped"] == 7000
