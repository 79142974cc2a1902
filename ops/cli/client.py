"""The CLI's NATS client: one connection helper, one request with the envelope, readable failures.

Exit codes: 0 ok, 1 the command was refused (the error is printed), 2 usage error, 3 NATS
unreachable or no manager answering.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import click
import orjson
from nats.aio.client import Client

from events import subjects
from events.connection import connect
from ops.settings import ClientSettings, load_client_settings

__all__ = ["connected", "fail", "request"]


async def _quiet(_exc: Exception) -> None:  # the failure is reported once, by us
    return None


@asynccontextmanager
async def connected(settings: ClientSettings | None = None) -> AsyncIterator[Client]:
    """A one-shot connection; exits with code 3 and a readable message when NATS is away."""
    settings = settings or load_client_settings()
    try:
        nc = await connect(settings, name="vigil-cli", reconnect_forever=False, connect_timeout=3,
                           error_cb=_quiet)  # fmt: skip
    except Exception as exc:
        why = str(exc) or type(exc).__name__
        if "authorization" in why.lower():
            hint = "wrong credentials: check VIGIL_NATS_* (or ./.vigil/vigil.env)"
        else:
            hint = "is `vigil up` running? (settings come from VIGIL_* or ./.vigil/vigil.env)"
        click.echo(f"error: cannot reach NATS at {settings.redacted_url()}: {why}. {hint}",
                   err=True)  # fmt: skip
        sys.exit(3)
    try:
        yield nc
    finally:
        await nc.close()


async def request(settings: ClientSettings, name: str, body: dict[str, Any]) -> dict[str, Any]:
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    async with connected(settings) as nc:
        try:
            msg = await nc.request(subjects.command(name), orjson.dumps(body), timeout=10)
        except NoRespondersError:
            click.echo("error: no manager is running (no responders on vigil.cmd.*)", err=True)
            sys.exit(3)
        except NatsTimeout:
            click.echo("error: the manager did not answer within 10 s", err=True)
            sys.exit(3)
    reply: dict[str, Any] = orjson.loads(msg.data)
    return reply


def fail(reply: dict[str, Any], as_json: bool) -> None:
    """Print a refused command's error (with field paths) and exit 1."""
    err = reply["error"]
    if as_json:
        click.echo(orjson.dumps(reply, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(f"error ({err['code']}): {err['message']}", err=True)
        for d in err.get("details", []):
            click.echo(f"  {d.get('path', '')}: {d.get('message', '')}", err=True)
    sys.exit(1)
