"""schemathesis against ``/openapi.json`` of a live manager: for every operation, bounded
examples of valid and of invalid requests; no answer may be a 5xx, have an undocumented status
or content type, or violate the documented schema (the envelope, the result Struct).

``VIGIL_SCHEMATHESIS_EXAMPLES`` (default 12) sets the examples per operation and mode.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ops.http.auth import HttpAuth
from ops.runtime.manager import Manager
from ops.runtime.natsd import EmbeddedNats, free_port
from ops.runtime.up import serve_http
from ops.settings import ClientSettings, ManagerSettings
from tests.helpers import LOOPBACK_OK

EXAMPLES = int(os.environ.get("VIGIL_SCHEMATHESIS_EXAMPLES", "12"))
ADMIN = {"Authorization": "Bearer schema-admin"}
SKIP = {"/api/v1/live"}  # an endless event stream: tested in tests/test_http_api.py
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]  # fmt: skip


@pytest.fixture
def live_url(nats_server: EmbeddedNats) -> Iterator[str]:
    """A manager and its HTTP API running in a thread of their own (schemathesis is sync)."""
    box: dict[str, Any] = {}
    ready = threading.Event()

    async def serve() -> None:
        settings = ManagerSettings(**LOOPBACK_OK, master_tick_s=0.2)
        auth = HttpAuth.from_settings(admin_token="schema-admin")
        async with (
            Manager(ClientSettings(nats_url=nats_server.url), settings) as m,
            serve_http(m, f"127.0.0.1:{free_port()}", auth) as url,
        ):
            box.update(url=url, loop=asyncio.get_running_loop(), stop=asyncio.Event())
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="api", daemon=True)
    thread.start()
    assert ready.wait(60), "the manager did not start"
    try:
        yield box["url"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


def test_every_operation_answers_as_documented(live_url: str) -> None:
    # some state to read: a stream, a group, and a record-less history
    s = requests.post(f"{live_url}/api/v1/streams", json={"source": {"url": "rtsp://c.example/1"}},
                      headers=ADMIN, timeout=10)  # fmt: skip
    assert s.status_code == 201, s.text
    requests.post(f"{live_url}/api/v1/groups", json={"name": "lobby"}, headers=ADMIN, timeout=10)
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    failures: list[str] = []
    operations = 0
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                case.call_and_validate(base_url=live_url, session=session, headers=ADMIN,
                                       checks=CHECKS, timeout=30)  # fmt: skip

            try:
                check()
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                assert mode == GenerationMode.NEGATIVE, operation.path
            except Exception as exc:  # collect every operation's failure, then report them all
                failures.append(
                    f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}"
                )
    assert operations >= 25
    assert not failures, "\n\n".join(failures)
