"""The CLI's NATS client: one connection helper, one request with the envelope, readable failures.

Exit codes: 0 ok, 1 the command was refused (the error is printed), 2 usage error, 3 NATS
unreachable, the credentials refused, or no manager answering. A failure to connect says which:

    error: NATS at nats://127.0.0.1:4222 refused the credentials (Authorization Violation):
           check VIGIL_NATS_CREDS / VIGIL_NATS_USER (or .vigil/vigil.env, --data-dir)
    error: nothing answers at nats://127.0.0.1:4222 (connection refused): is `vigil up` running?
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import click
import orjson
from nats.aio.client import Client

from events import subjects
from events.connection import connect
from ops.cli.output import print_json
from ops.settings import ClientSettings, load_client_settings

__all__ = ["call", "connected", "explain", "fail", "request"]

_AUTH = ("authorization", "authentication", "user credentials", "invalid nkey", "signature",
         "expired", "revoked")  # fmt: skip


def explain(settings: ClientSettings, errors: list[BaseException]) -> str:
    """Why connecting to ``settings`` failed, and what to do about it."""
    url = settings.redacted_url()
    text = " ".join(str(e) or type(e).__name__ for e in errors).strip()
    low = text.lower()
    who = (f"credentials file {settings.nats_creds}" if settings.nats_creds
           else f"user {settings.nats_user}" if settings.nats_user else "no credentials")  # fmt: skip
    if any(word in low for word in _AUTH):
        return (f"NATS at {url} refused the credentials ({text.strip(' .')}; {who}): wrong"
                " credentials — check VIGIL_NATS_CREDS / VIGIL_NATS_USER / VIGIL_NATS_PASSWORD"
                " (or the vigil.env of --data-dir)")  # fmt: skip
    if "certificate" in low or "ssl" in low or "tls" in low:
        return f"TLS to NATS at {url} failed ({text}): trust its CA with VIGIL_NATS_TLS_CA"
    if "refused" in low or "errno 111" in low:
        return (f"nothing answers at {url} (connection refused): is `vigil up` running? (settings"
                " come from VIGIL_* or .vigil/vigil.env; --data-dir picks another)")  # fmt: skip
    if "timed out" in low or "timeout" in low:
        return f"NATS at {url} did not answer in time ({text}): check the address and firewall"
    return f"cannot reach NATS at {url}: {text or 'no server available'}"


@asynccontextmanager
async def connected(settings: ClientSettings | None = None) -> AsyncIterator[Client]:
    """A one-shot connection; exits with code 3 and a readable message when NATS is away or
    refuses the credentials."""
    settings = settings or load_client_settings()
    errors: list[BaseException] = []

    async def note(exc: Exception) -> None:  # the failure is reported once, below
        errors.append(exc)

    try:
        nc = await asyncio.wait_for(connect(settings, name="vigil-cli", reconnect_forever=False,
                                            connect_timeout=3, error_cb=note), 15)  # fmt: skip
    except Exception as exc:
        click.echo(f"error: {explain(settings, [*errors, exc] if not errors else errors)}",
                   err=True)  # fmt: skip
        sys.exit(3)
    try:
        yield nc
    finally:
        await nc.close()


async def request(settings: ClientSettings, name: str, body: dict[str, Any],
                  timeout: float = 10.0) -> dict[str, Any]:  # fmt: skip
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    async with connected(settings) as nc:
        try:
            msg = await nc.request(subjects.command(name), orjson.dumps(body), timeout=timeout)
        except NoRespondersError:
            click.echo("error: no manager is running (nobody answers vigil.cmd.*): start one"
                       " (`vigil up`, `vigil manager`)", err=True)  # fmt: skip
            sys.exit(3)
        except NatsTimeout:
            click.echo(f"error: the manager did not answer within {timeout:g} s", err=True)
            sys.exit(3)
    reply: dict[str, Any] = orjson.loads(msg.data)
    return reply


def fail(reply: dict[str, Any], as_json: bool) -> None:
    """Print a refused command's error (with field paths) and exit 1."""
    err = reply["error"]
    if as_json:
        print_json(reply)
    else:
        click.echo(f"error ({err['code']}): {err['message']}", err=True)
        for d in err.get("details", []):
            click.echo(f"  {d.get('path', '')}: {d.get('message', '')}", err=True)
    sys.exit(1)


def call(name: str, body: dict[str, Any], as_json: bool,
         show: Callable[[Any], None]) -> None:  # fmt: skip
    """Send command ``name``; print its result (``--json``: as JSON), or the error and exit 1."""
    reply = asyncio.run(request(load_client_settings(), name, body))
    if not reply.get("ok"):
        fail(reply, as_json)
    if as_json:
        print_json(reply["result"])
    else:
        show(reply["result"])
