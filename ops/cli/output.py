"""How the CLI prints: tables that fit the terminal, readable values, JSON on demand.

Tables use the terminal's width (or ``COLUMNS``): long free text (errors, reasons, causes) is cut
with an ellipsis, ids never wrap, and the least useful columns go first when even that does not
fit. Piped output keeps whole lines (grep finds what it looks for). Values read as people write them: ``-`` for nothing, ``2.1 GB``,
``1.02 Mbit/s``, ``3.4 s ago`` — never Python's ``None`` or a raw JSON blob.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table

__all__ = [
    "FitTable",
    "ago",
    "console",
    "dash",
    "human_bps",
    "human_bytes",
    "labels",
    "print_fields",
    "print_json",
    "table",
    "when",
]


def console(*, stderr: bool = False) -> Console:
    """A console as wide as the terminal (or ``COLUMNS``). Piped output (a file, grep, a test)
    gets whole lines: nothing is cut where nobody reads a screen."""
    stream = sys.stderr if stderr else sys.stdout
    if "COLUMNS" in os.environ or stream.isatty():
        width = shutil.get_terminal_size((120, 24)).columns
    else:
        width = 400
    return Console(width=max(width, 60), stderr=stderr, soft_wrap=False, highlight=False)


class FitTable:
    """A borderless table that fits the console: ids and numbers keep their full width, ``wide``
    columns (free text) take what is left and end with an ellipsis, and when even that does not
    fit, the ``drop`` columns go first (--json always has everything)."""

    def __init__(self, columns: tuple[str, ...], *, wide: Iterable[str] = (),
                 right: Iterable[str] = (), drop: Iterable[str] = (),
                 title: str | None = None) -> None:  # fmt: skip
        self.columns = columns
        self.wide, self.right, self.drop = set(wide), set(right), list(drop)
        self.title = title
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        self.rows.append(tuple(cells))

    def _width(self, i: int) -> int:
        return max([len(self.columns[i]), *(len(r[i]) for r in self.rows)])

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        keep = list(range(len(self.columns)))
        widths = {i: self._width(i) for i in keep}

        def needed() -> int:
            fixed = sum(widths[i] for i in keep if self.columns[i] not in self.wide)
            free = sum(min(widths[i], 10) for i in keep if self.columns[i] in self.wide)
            return fixed + free + 2 * (len(keep) - 1)

        for name in self.drop:
            if needed() <= options.max_width:
                break
            keep = [i for i in keep if self.columns[i] != name]
        t = Table(box=None, title=self.title, header_style="bold", pad_edge=False,
                  collapse_padding=True)  # fmt: skip
        for i in keep:
            name = self.columns[i]
            if name in self.wide:
                t.add_column(name, overflow="ellipsis", no_wrap=True, ratio=1,
                             min_width=min(widths[i], 10))  # fmt: skip
            else:
                t.add_column(name, no_wrap=True, min_width=widths[i],
                             justify="right" if name in self.right else "left")  # fmt: skip
        for row in self.rows:
            t.add_row(*(row[i] for i in keep))
        yield t


def table(*columns: str, wide: Iterable[str] = (), right: Iterable[str] = (),
          drop: Iterable[str] = (), title: str | None = None) -> FitTable:  # fmt: skip
    """A `FitTable` of ``columns``."""
    return FitTable(columns, wide=wide, right=right, drop=drop, title=title)


def print_json(data: Any) -> None:
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def dash(value: Any) -> str:
    """``-`` for nothing, the value otherwise."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    return str(value)


def human_bytes(n: int | float | None) -> str:
    if not n:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PB"  # pragma: no cover


def human_bps(n: int | float | None) -> str:
    if not n:
        return "0"
    value = float(n)
    for unit in ("bit/s", "kbit/s", "Mbit/s", "Gbit/s"):
        if value < 1000 or unit == "Gbit/s":
            return f"{value:.2f} {unit}" if unit != "bit/s" else f"{int(value)} bit/s"
        value /= 1000
    return f"{value:.2f} Gbit/s"  # pragma: no cover


def ago(iso: str | None) -> str:
    """``3 min ago``."""
    if not iso:
        return "-"
    try:
        at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    seconds = (datetime.now(UTC) - at).total_seconds()
    return "in " + _span(-seconds) if seconds < 0 else _span(seconds) + " ago"


def when(iso: str | None) -> str:
    """``2026-11-30 10:16:20Z (3 min ago)``."""
    if not iso:
        return "-"
    try:
        at = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    seconds = (datetime.now(UTC) - at).total_seconds()
    if seconds < 0:
        ago = "in " + _span(-seconds)
    else:
        ago = _span(seconds) + " ago"
    return f"{at.strftime('%Y-%m-%d %H:%M:%S')}Z ({ago})"


def _span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def print_fields(rows: Iterable[tuple[str, Any]]) -> None:
    """``key   value`` lines, aligned; values already human (use `dash` for None)."""
    pairs = [(k, dash(v) if not isinstance(v, str) else (v or "-")) for k, v in rows]
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        click.echo(f"{key:<{width}}  {value}")


def labels(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) or "-"
