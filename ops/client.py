"""A client of the NATS commands for the CLI: one request, the envelope, readable failures."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import click
import orjson

from ops.config import ClientSettings

__all__ = ["fail", "request"]


async def request(settings: ClientSettings, name: str, body: dict[str, Any]) -> dict[str, Any]:
    import nats
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    async def quiet(_exc: Exception) -> None:  # the failure is reported below, once
        return None

    try:
        connecting = nats.connect(**settings.connect_options(), connect_timeout=3, error_cb=quiet,  # type: ignore[arg-type]
                                  max_reconnect_attempts=0, allow_reconnect=False)  # fmt: skip
        nc = await asyncio.wait_for(connecting, 5)
    except Exception as exc:
        why = str(exc) or "no answer"
        click.echo(f"error: cannot reach NATS at {settings.nats_url}: {why}. Is `vigil up` running?"
                   " (settings come from VIGIL_* or ./.vigil/vigil.env)", err=True)  # fmt: skip
        sys.exit(3)
    try:
        msg = await nc.request(f"vigil.cmd.{name}", orjson.dumps(body), timeout=10)
    except NoRespondersError:
        click.echo("error: no manager is running (no responders on vigil.cmd.*)", err=True)
        sys.exit(3)
    except NatsTimeout:
        click.echo("error: the manager did not answer within 10 s", err=True)
        sys.exit(3)
    finally:
        await nc.close()
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
