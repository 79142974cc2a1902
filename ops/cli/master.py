"""``vigil master``: which manager is master now, since when, in which epoch (and what this
answering manager thinks of itself)."""

from __future__ import annotations

from typing import Any

import click

from ops.cli.client import call
from ops.cli.output import print_fields, when

__all__ = ["master"]


def _show(m: dict[str, Any]) -> None:
    me = m.get("this_manager") or {}
    print_fields([
        ("master", m.get("manager_id") or "none elected"),
        ("epoch", m.get("epoch")),
        ("since", when(m.get("since"))),
        ("election event", m.get("election_seq")),
        ("answered by", f"{me.get('manager_id', '-')}"
                        f" ({'master' if me.get('is_master') else 'standby'})" if me else "-"),
    ])  # fmt: skip


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def master(as_json: bool) -> None:
    """Show the current master: its manager id, epoch and since when.

    Any manager answers from the log; the master's decisions are fenced on its epoch.

    \b
    Examples:
      vigil master
      vigil master --json
    """
    call("master.get", {}, as_json, _show)
