"""Log lines that say which agent and which stream they are about, as text or as JSON.

Two context variables, ``agent_id`` and ``stream_id``, follow the work: an agent binds its id
around everything it starts (tasks copy the context they were created in), a stream's worker
runs in a copy with its stream id. `ContextFilter` puts both on every record (unless the call
gave them with ``extra=``), so each line carries them::

    {"ts": "2026-11-30T10:16:20.511Z", "level": "WARNING", "logger": "agent.runtime",
     "agent_id": "a-7872f83eb140", "stream_id": "s-1dcd81b0", "cause": "refused",
     "message": "stream s-1dcd81b0: camera unreachable (refused: …)"}

``setup(fmt="json")`` is what ``vigil --log-format json`` calls.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "TextFormatter",
    "agent_id",
    "bound",
    "setup",
    "stream_id",
]

agent_id: ContextVar[str | None] = ContextVar("vigil_agent_id", default=None)
stream_id: ContextVar[str | None] = ContextVar("vigil_stream_id", default=None)

_FIELDS = ("agent_id", "stream_id", "cause")


@contextlib.contextmanager
def bound(*, agent: str | None = None, stream: str | None = None) -> Iterator[None]:
    """Within the block (and in tasks created in it) log lines name ``agent`` / ``stream``."""
    tokens = []
    if agent is not None:
        tokens.append((agent_id, agent_id.set(agent)))
    if stream is not None:
        tokens.append((stream_id, stream_id.set(stream)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds ``agent_id`` and ``stream_id`` (from ``extra=`` or the context) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "agent_id", None) is None:
            record.agent_id = agent_id.get()
        if getattr(record, "stream_id", None) is None:
            record.stream_id = stream_id.get()
        if not hasattr(record, "cause"):
            record.cause = None
        return True


def _ts(record: logging.LogRecord) -> str:
    return (
        datetime.fromtimestamp(record.created, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, the ids, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {"ts": _ts(record), "level": record.levelname,
                                   "logger": record.name}  # fmt: skip
        for key in _FIELDS:
            value = getattr(record, key, None)
            if value is not None or key != "cause":
                line[key] = value
        line["message"] = record.getMessage()
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [agent stream]: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            str(v)
            for v in (getattr(record, "agent_id", None), getattr(record, "stream_id", None))
            if v
        ]
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


def setup(*, level: int = logging.INFO, fmt: Literal["text", "json"] = "text") -> None:
    """Log to stderr with the ids on every line; quiet the chatty libraries."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("nats").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
