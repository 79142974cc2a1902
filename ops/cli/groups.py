"""``vigil group create|update|get|list|delete``: redundancy groups (a client of the NATS
commands ``vigil.cmd.group.*``)."""

from __future__ import annotations

from typing import Any

import click

from ops.cli.client import call
from ops.cli.output import console, table

__all__ = ["group"]


def _member(text: str) -> dict[str, Any]:
    name, sep, priority = text.rpartition(":")
    if not sep or not priority.isdigit() or not name:
        return {"agent": text, "priority": 1}
    return {"agent": name, "priority": int(priority)}


def _show(g: dict[str, Any]) -> None:
    click.echo(f"group      {g['name']}  ({g['mode']}, version {g['version']})")
    if g["mode"] == "active_standby":
        click.echo(f"active     {g['active'] or '-'}  since {g['active_since'] or '-'}")
        click.echo(f"why        {g['last_change'] or '-'}")
        click.echo(f"timings    keepalive {g['keepalive_s']}s, failover {g['failover_s']}s,"
                   f" failback {'on' if g['failback'] else 'off'}"
                   f" (hold {g['failback_hold_s']}s)")  # fmt: skip
        click.echo(f"history    {g['failovers']} failover(s), {g['failbacks']} failback(s)")
    click.echo(f"streams    {g['streams']}")
    for m in g["members"]:
        ids = ",".join(m["agent_ids"]) or "-"
        click.echo(f"  {m['priority']:>4}  {m['agent']:<24} {m['role']:<8} {m['status']:<9} {ids}")


def _show_list(result: dict[str, Any]) -> None:
    t = table("group", "mode", "active", "members", "streams", "failovers", "failbacks",
              wide=("members",), right=("streams", "failovers", "failbacks"))  # fmt: skip
    for g in result["groups"]:
        members = " ".join(f"{m['agent']}:{m['priority']}" + ("*" if m["role"] == "active" else "")
                           for m in g["members"])  # fmt: skip
        t.add_row(g["name"], g["mode"], g["active"] or "-", members or "-", str(g["streams"]),
                  str(g["failovers"]), str(g["failbacks"]))  # fmt: skip
    console().print(t)
    if not result["groups"]:
        click.echo("no groups (vigil group create NAME ...)", err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
member_option = click.option("--member", "members", multiple=True,
                             help="AGENT_NAME[:PRIORITY] (lowest priority first); repeatable")  # fmt: skip


@click.group()
def group() -> None:
    """Redundancy groups: pools, active/standby (N+1, N+2, N:1), failover and failback.

    \b
    Examples:
      vigil group create hq --mode active_standby --member prim:1 --member sec:2
      vigil group get hq
      vigil group update hq --no-failback
      vigil group list --json
    """


@group.command("create")
@click.argument("name")
@click.option("--mode", type=click.Choice(["pool", "active_standby"]), default="pool",
              show_default=True)  # fmt: skip
@member_option
@click.option("--keepalive", "keepalive_s", type=float, default=None,
              help="heartbeat interval members are told (s) [1]")  # fmt: skip
@click.option("--failover", "failover_s", type=float, default=None,
              help="active member silent this long: fail over (s) [3]")  # fmt: skip
@click.option("--failback/--no-failback", default=None, help="return to the primary [on]")
@click.option("--hold", "failback_hold_s", type=float, default=None,
              help="the primary must be healthy this long before failback (s) [10]")  # fmt: skip
@json_option
def create(name: str, mode: str, members: tuple[str, ...], keepalive_s: float | None,
           failover_s: float | None, failback: bool | None, failback_hold_s: float | None,
           as_json: bool) -> None:  # fmt: skip
    """Create group NAME.

    \b
    Examples:
      vigil group create lobby                                   # a pool
      vigil group create hq --mode active_standby --member prim:1 --member sec:2 \\
          --keepalive 1 --failover 3 --failback --hold 10
    """
    body: dict[str, Any] = {"name": name, "mode": mode, "members": [_member(m) for m in members]}
    for key, value in (("keepalive_s", keepalive_s), ("failover_s", failover_s),
                       ("failback", failback), ("failback_hold_s", failback_hold_s)):  # fmt: skip
        if value is not None:
            body[key] = value
    call("group.create", body, as_json, _show)


@group.command("update")
@click.argument("name")
@click.option("--mode", type=click.Choice(["pool", "active_standby"]), default=None)
@member_option
@click.option("--keepalive", "keepalive_s", type=float, default=None)
@click.option("--failover", "failover_s", type=float, default=None)
@click.option("--failback/--no-failback", default=None)
@click.option("--hold", "failback_hold_s", type=float, default=None)
@json_option
def update(name: str, mode: str | None, members: tuple[str, ...], keepalive_s: float | None,
           failover_s: float | None, failback: bool | None, failback_hold_s: float | None,
           as_json: bool) -> None:  # fmt: skip
    """Change group NAME (options left out are kept; --member replaces all members).

    \b
    Examples:
      vigil group update hq --no-failback
      vigil group update hq --member prim:1 --member sec:2 --member spare:3
    """
    body: dict[str, Any] = {"name": name}
    if members:
        body["members"] = [_member(m) for m in members]
    for key, value in (("mode", mode), ("keepalive_s", keepalive_s), ("failover_s", failover_s),
                       ("failback", failback), ("failback_hold_s", failback_hold_s)):  # fmt: skip
        if value is not None:
            body[key] = value
    call("group.update", body, as_json, _show)


@group.command("get")
@click.argument("name")
@json_option
def get(name: str, as_json: bool) -> None:
    """Show group NAME: members, roles, the active member and why.

    \b
    Example:
      vigil group get hq
    """
    call("group.get", {"name": name}, as_json, _show)


@group.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List groups.

    \b
    Example:
      vigil group list --json
    """
    call("group.list", {}, as_json, _show_list)


@group.command("delete")
@click.argument("name")
@json_option
def delete(name: str, as_json: bool) -> None:
    """Delete group NAME (refused while streams name it).

    \b
    Example:
      vigil group delete lobby
    """
    call("group.delete", {"name": name}, as_json, lambda r: click.echo(f"deleted {r['name']}"))
