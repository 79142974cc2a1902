"""A real browser for the dashboard tests: Debian's chromium driven by Playwright's Python
package (no browser download: ``executable_path``), a fresh profile per test, screenshots saved
as test artifacts (``VIGIL_ARTIFACTS``, default the test's tmp dir)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def artifacts(tmp_path: Path, name: str) -> Path:
    """Where this test's screenshots go."""
    base = os.environ.get("VIGIL_ARTIFACTS")
    out = Path(base) / name if base else tmp_path / "artifacts"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _chromium() -> str:
    path = shutil.which(CHROMIUM) or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if path is None:
        pytest.fail(f"no chromium at {CHROMIUM}: the dashboard tests need Debian's browser"
                    " (sudo apt-get install chromium; .ci/run installs it), or set VIGIL_CHROMIUM")  # fmt: skip
    return path


@asynccontextmanager
async def browser_page(
    profile: Path, *, width: int = 1024, height: int = 900
) -> AsyncIterator[object]:
    """A page of a headless chromium at ``width`` px; console errors and page errors are kept
    in ``page.vigil_errors``."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        pytest.fail("Playwright's Python package is missing: pip install -e '.[dev]'")
    executable = _chromium()
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=ARGS,
            viewport={"width": width, "height": height},
        )  # fmt: skip
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.vigil_errors = errors  # type: ignore[attr-defined]
            yield page
        finally:
            await context.close()
