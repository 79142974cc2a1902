"""``vigil schedule …`` (scale events at a date, Red5 style) and ``vigil scale …`` (launch
configs, scale policies, the autoscaler's view of a group): clients of ``vigil.cmd.schedule.*``,
``vigil.cmd.launch.*``, ``vigil.cmd.policy.*`` and ``vigil.cmd.scaling.*``.

Dates are UTC milliseconds (as Red5 takes them), ISO 8601 (``2026-12-01T20:00:00Z``) or relative
to now (``+20s``, ``+15m``, ``+2h``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import click

from ops.cli.client import call

__all__ = ["parse_date", "scale", "schedule"]

json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")
_REL = re.compile(r"^\+(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_date(text: str) -> int:
    """UTC milliseconds from ``1796…`` (ms), ``+15m`` (from now) or ISO 8601 (UTC if no zone)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    rel = _REL.match(text)
    if rel:
        return int((time.time() + float(rel.group(1)) * _UNIT[rel.group(2)]) * 1000)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: give UTC ms, +20s/+15m/+2h, or ISO 8601") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _when(ms: str | None) -> str:
    if not ms:
        return "-"
    t = int(ms) / 1000
    stamp = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    delta = t - time.time()
    rel = f"in {delta:.0f}s" if delta >= 0 else f"{-delta:.0f}s ago"
    return f"{ms} ({stamp}, {rel})"


def _show(s: dict[str, Any]) -> None:
    d = s["data"]
    regions = ", ".join(f"{r['name']} {r['info']['min_agents']}..{r['info']['max_agents']}"
                        for r in d.get("region", []))  # fmt: skip
    new = f"  (new group: launch {d['launch']}, policy {d['policy']})" if d.get("policy") else ""
    click.echo(f"schedule   {s['eventName']}  (id {s['id']}, {s['state']})")
    click.echo(f"group      {d['group']}{new}")
    click.echo(f"agents     {regions}")
    click.echo(f"date       {_when(s['date'])}")
    if s.get("until"):
        click.echo(f"until      {_when(s['until'])}")
    p = s.get("plan")
    if p:
        word = "started with" if p["fixed"] else "plans"
        click.echo(f"start      {_when(p['start'])}")
        click.echo(f"lead       {p['lead_s']:g}s = {p['formula']}")
        click.echo(f"figures    {word}: {p['agents_now']} agent(s) now, {p['agents_target']} wanted,"
                   f" {p['agents_to_add']} to add; startup {p['startup_s']:g}s ({p['startup_from']});"
                   f" buffer {p['buffer_s']:g}s")  # fmt: skip
        if p.get("note"):
            click.echo(f"note       {p['note']}")
    if s.get("agents"):
        a = s["agents"]
        click.echo(
            f"now        {a['ready']} ready, {a['launching']} launching, target {a['target']}"
        )
    if s.get("reason"):
        click.echo(f"reason     {s['reason']}")


def _show_list(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for col in ("eventName", "id", "state", "group", "agents", "date", "planned start", "lead"):
        table.add_column(col)
    for s in result["schedules"]:
        p = s.get("plan") or {}
        agents = "+".join(str(r["info"]["min_agents"]) for r in s["data"].get("region", []))
        table.add_row(s["eventName"], str(s["id"]), s["state"], s["data"]["group"], agents,
                      _when(s["date"]), _when(p.get("start")),
                      f"{p['lead_s']:g}s ({p['mode']})" if p else "-")  # fmt: skip
    Console().print(table)


@click.group()
def schedule() -> None:
    """Scale events at a date (Red5's event scheduler); vigil computes the lead time."""


def _body(name: str, date: str | None, group: str | None, launch: str | None,
          policy: str | None, agents: int | None, max_agents: int | None, region: str,
          until: str | None, buffer_s: float | None) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"eventName": name}
    if date is not None:
        body["date"] = str(parse_date(date))
    if until is not None:
        body["until"] = str(parse_date(until))
    if buffer_s is not None:
        body["buffer_s"] = buffer_s
    if agents is not None or group or launch or policy:
        data: dict[str, Any] = {}
        for key, value in (("group", group), ("launch", launch), ("policy", policy)):
            if value:
                data[key] = value
        if agents is not None:
            hi = max_agents if max_agents is not None else agents
            data["region"] = [{"name": region, "info": {"min_agents": agents, "max_agents": hi}}]
        body["data"] = data
    return body


def _options(f: Any) -> Any:
    for option in reversed([
        click.option("--group", default=None, help="the group to resize (or the new group's name)"),
        click.option("--launch", default=None, help="launch config (required for a new group)"),
        click.option("--policy", default=None, help="a new scale policy: creates a new group"),
        click.option("--agents", type=click.IntRange(0, 10_000), default=None,
                     help="agents wanted from the date (min_agents)"),
        click.option("--max", "max_agents", type=click.IntRange(0, 10_000), default=None,
                     help="at most this many (default: --agents)"),
        click.option("--region", default="default", show_default=True),
        click.option("--until", default=None, help="back to the base policy after this date"),
        click.option("--buffer", "buffer_s", type=click.FloatRange(0, 86400), default=None,
                     help="setup buffer added to the lead time (s) [managers' default]"),
        json_option,
    ]):  # fmt: skip
        f = option(f)
    return f


@schedule.command("create")
@click.argument("name")
@click.option("--date", required=True, help="UTC ms, ISO 8601 or +15m")
@_options
def create(name: str, date: str, group: str | None, launch: str | None, policy: str | None,
           agents: int | None, max_agents: int | None, region: str, until: str | None,
           buffer_s: float | None, as_json: bool) -> None:  # fmt: skip
    """Schedule event NAME: the group has --agents ready at --date.

    \b
    Examples:
      vigil schedule create auction --date +30m --group lobby --agents 11
      vigil schedule create launch-night --date 2026-12-01T20:00:00Z --launch default \\
            --policy night --agents 4 --max 8 --until 2026-12-02T02:00:00Z
    """
    if agents is None:
        raise click.UsageError("--agents is required")
    call("schedule.create", _body(name, date, group, launch, policy, agents, max_agents, region,
                                  until, buffer_s), as_json, _show)  # fmt: skip


@schedule.command("update")
@click.argument("name")
@click.option("--date", default=None, help="UTC ms, ISO 8601 or +15m")
@_options
def update(name: str, date: str | None, group: str | None, launch: str | None,
           policy: str | None, agents: int | None, max_agents: int | None, region: str,
           until: str | None, buffer_s: float | None, as_json: bool) -> None:  # fmt: skip
    """Change pending schedule NAME (options left out are kept; --agents/--group replace data).

    \b
    Examples:
      vigil schedule update auction --date +45m
      vigil schedule update auction --group lobby --agents 12
    """
    body = _body(name, date, group, launch, policy, agents, max_agents, region, until, buffer_s)
    if "data" in body and ("region" not in body["data"] or "group" not in body["data"]):
        raise click.UsageError(
            "to change data give both --group (or --launch/--policy) and --agents"
        )
    call("schedule.update", body, as_json, _show)


@schedule.command("get")
@click.argument("name")
@json_option
def get(name: str, as_json: bool) -> None:
    """Show schedule NAME: its planned start and the figures used.

    \b
    Examples:
      vigil schedule get auction
      vigil schedule get auction --json
    """
    call("schedule.get", {"eventName": name}, as_json, _show)


@schedule.command("list")
@click.option("--state", type=click.Choice(["pending", "running", "done", "failed", "cancelled"]),
              default=None)  # fmt: skip
@click.option("--group", default=None)
@json_option
def list_(state: str | None, group: str | None, as_json: bool) -> None:
    """List schedules.

    \b
    Examples:
      vigil schedule list
      vigil schedule list --state pending --group lobby
    """
    body = {k: v for k, v in (("state", state), ("group", group)) if v}
    call("schedule.list", body, as_json, _show_list)


@schedule.command("delete")
@click.argument("name")
@json_option
def delete(name: str, as_json: bool) -> None:
    """Cancel schedule NAME (pending or running; the base policy resumes), or forget an ended one.

    \b
    Examples:
      vigil schedule delete auction
    """
    call("schedule.delete", {"eventName": name}, as_json, _show)


# ---- vigil scale -----------------------------------------------------------------------------


def _each(key: str, show: Any) -> Any:
    def every(result: dict[str, Any]) -> None:
        for row in result[key]:
            show(row)

    return every


@click.group()
def scale() -> None:
    """Autoscaling: launch configs, scale policies, and what the autoscaler does per group."""


@scale.group("launch")
def launch() -> None:
    """Launch configs: how one agent of a group is started (provider local or command)."""


def _show_launch(c: dict[str, Any]) -> None:
    learned = (f"{c['startup_learned_s']:g}s learned (median of {len(c['startup_samples'])})"
               if c["startup_learned_s"] is not None else "not measured yet")  # fmt: skip
    provider = c["provider"] + (f" ({c['command']})" if c["command"] else "")
    click.echo(f"launch config {c['name']}: provider {provider}, capacity {c['capacity']},"
               f" {'parallel' if c['parallel'] else 'sequential'}")  # fmt: skip
    click.echo(f"  startup {c['startup_s']:g}s default, {learned}; deadline {c['deadline_s']:g}s,"
               f" attempts {c['attempts']}")  # fmt: skip
    if c["labels"] or c["analytics"]:
        click.echo(f"  labels {c['labels']}  analytics {c['analytics'] or 'all'}")


def _launch_options(f: Any) -> Any:
    for option in reversed([
        click.option("--provider", type=click.Choice(["local", "command"]), default=None),
        click.option("--command", default=None, help="a command configured on the managers"),
        click.option("--capacity", type=click.IntRange(1, 10_000), default=None),
        click.option("--label", "labels", multiple=True, help="KEY=VALUE; repeatable"),
        click.option("--analytic", "analytics", multiple=True, help="offer only these"),
        click.option("--startup", "startup_s", type=float, default=None,
                     help="startup time assumed until measured (s) [30]"),
        click.option("--deadline", "deadline_s", type=float, default=None,
                     help="a launch must register within this (s) [120]"),
        click.option("--attempts", type=click.IntRange(1, 100), default=None),
        click.option("--parallel/--sequential", default=None,
                     help="launch side by side or one after another [local: parallel]"),
        json_option,
    ]):  # fmt: skip
        f = option(f)
    return f


def _launch_body(name: str, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    labels = kw.pop("labels")
    analytics = kw.pop("analytics")
    if labels:
        body["labels"] = dict(x.split("=", 1) for x in labels)
    if analytics:
        body["analytics"] = list(analytics)
    body.update({k: v for k, v in kw.items() if v is not None})
    return body


@launch.command("create")
@click.argument("name")
@_launch_options
def launch_create(name: str, as_json: bool, **kw: Any) -> None:
    """Create launch config NAME.

    \b
    Examples:
      vigil scale launch create edge --provider local --capacity 8
      vigil scale launch create k8s --provider command --command kubectl-scale --startup 60
    """
    call("launch.create", _launch_body(name, **kw), as_json, _show_launch)


@launch.command("update")
@click.argument("name")
@_launch_options
def launch_update(name: str, as_json: bool, **kw: Any) -> None:
    """Change launch config NAME (options left out are kept).

    \b
    Examples:
      vigil scale launch update edge --capacity 16
    """
    call("launch.update", _launch_body(name, **kw), as_json, _show_launch)


@launch.command("get")
@click.argument("name")
@json_option
def launch_get(name: str, as_json: bool) -> None:
    """Show launch config NAME with its learned startup time.

    \b
    Examples:
      vigil scale launch get edge
    """
    call("launch.get", {"name": name}, as_json, _show_launch)


@launch.command("list")
@json_option
def launch_list(as_json: bool) -> None:
    """List launch configs.

    \b
    Examples:
      vigil scale launch list --json
    """
    call("launch.list", {}, as_json, _each("launch_configs", _show_launch))


@launch.command("delete")
@click.argument("name")
@json_option
def launch_delete(name: str, as_json: bool) -> None:
    """Delete launch config NAME.

    \b
    Examples:
      vigil scale launch delete edge
    """
    call("launch.delete", {"name": name}, as_json, lambda r: click.echo(f"deleted {r['name']}"))


@scale.group("policy")
def policy() -> None:
    """Scale policies: a group's base min..max agents and its load thresholds."""


def _show_policy(p: dict[str, Any]) -> None:
    click.echo(f"policy {p['name']}: group {p['group']}, launch {p['launch']},"
               f" {p['min_agents']}..{p['max_agents']} agents; out above {p['scale_out_above']:g},"
               f" in below {p['scale_in_below']:g}, cooldown {p['cooldown_s']:g}s"
               f" (set by {p['set_by']})")  # fmt: skip


def _policy_options(f: Any) -> Any:
    for option in reversed([
        click.option("--launch", default=None),
        click.option("--min", "min_agents", type=click.IntRange(0, 10_000), default=None),
        click.option("--max", "max_agents", type=click.IntRange(0, 10_000), default=None),
        click.option("--out-above", "scale_out_above", type=float, default=None,
                     help="load above which agents are added [0.8]"),
        click.option("--in-below", "scale_in_below", type=float, default=None,
                     help="load below which one is drained [0.3]"),
        click.option("--cooldown", "cooldown_s", type=float, default=None, help="(s) [60]"),
        json_option,
    ]):  # fmt: skip
        f = option(f)
    return f


@policy.command("create")
@click.argument("name")
@click.option("--group", default=None, help="the group it scales (default: NAME)")
@_policy_options
def policy_create(name: str, group: str | None, as_json: bool, **kw: Any) -> None:
    """Create scale policy NAME.

    \b
    Examples:
      vigil scale policy create lobby --launch edge --min 2 --max 10
    """
    body = {"name": name, **({"group": group} if group else {}),
            **{k: v for k, v in kw.items() if v is not None}}  # fmt: skip
    call("policy.create", body, as_json, _show_policy)


@policy.command("update")
@click.argument("name")
@_policy_options
def policy_update(name: str, as_json: bool, **kw: Any) -> None:
    """Change scale policy NAME (options left out are kept).

    \b
    Examples:
      vigil scale policy update lobby --max 20
    """
    call("policy.update", {"name": name, **{k: v for k, v in kw.items() if v is not None}},
         as_json, _show_policy)  # fmt: skip


@policy.command("get")
@click.argument("name")
@json_option
def policy_get(name: str, as_json: bool) -> None:
    """Show scale policy NAME.

    \b
    Examples:
      vigil scale policy get lobby
    """
    call("policy.get", {"name": name}, as_json, _show_policy)


@policy.command("list")
@json_option
def policy_list(as_json: bool) -> None:
    """List scale policies.

    \b
    Examples:
      vigil scale policy list
    """
    call("policy.list", {}, as_json, _each("policies", _show_policy))


@policy.command("delete")
@click.argument("name")
@json_option
def policy_delete(name: str, as_json: bool) -> None:
    """Delete scale policy NAME.

    \b
    Examples:
      vigil scale policy delete lobby
    """
    call("policy.delete", {"name": name}, as_json, lambda r: click.echo(f"deleted {r['name']}"))


def _show_scaling(g: dict[str, Any]) -> None:
    b = g["bounds"]
    figures = f"{b['min_agents']}..{b['max_agents']} ({g['bounds_from']})" if b else "none"
    click.echo(f"group {g['group']}: {g['ready']} ready, {g['launching']} launching, wants"
               f" {g['desired']} ({g['reason']}); bounds {figures}; load {g['demand']}/"
               f"{g['capacity']}")  # fmt: skip
    if g["failures"]:
        click.echo(f"  {g['failures']} failed launch(es) in a row: {g['last_failure']}")
    for e in g["live"]:
        extra = f", draining: {e['draining']}" if e.get("draining") else ""
        took = f", took {e['took_s']:g}s" if e["took_s"] is not None else ""
        click.echo(f"  {e['launch_id']:<24} {e['status']:<10} {e['agent_id'] or '-'}{took}{extra}")
    for e in g["history"][-5:]:
        click.echo(f"  {e['launch_id']:<24} {e['status']:<10} {e['end_reason'] or ''}")


@scale.command("status")
@click.argument("group", required=False)
@json_option
def status(group: str | None, as_json: bool) -> None:
    """What the autoscaler does for GROUP (or every scaled group).

    \b
    Examples:
      vigil scale status
      vigil scale status lobby --json
    """
    if group:
        call("scaling.get", {"name": group}, as_json, _show_scaling)
    else:
        call("scaling.list", {}, as_json, _each("groups", _show_scaling))
