"""Schema versions and upcasters: old event bodies are migrated as raw dicts, step by step.

To change an event incompatibly: bump its version in ``CURRENT_VERSIONS`` and register an
upcaster from the old version with ``@upcaster("Type", old_v)`` that returns the body at
``old_v + 1``. Commit a byte fixture of the old version under ``tests/fixtures/`` and a test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events import model

__all__ = ["CURRENT_VERSIONS", "upcast", "upcaster"]

Raw = dict[str, Any]
Upcaster = Callable[[Raw], Raw]

_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def _current_versions() -> dict[str, int]:
    versions: dict[str, int] = {}
    for cls in model.AnyEvent.__args__:
        versions[cls.__name__] = cls.__struct_defaults__[cls.__struct_fields__.index("v")]
    return versions


CURRENT_VERSIONS: dict[str, int] = _current_versions()


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return register


def upcast(raw: Raw) -> Raw:
    """Apply upcasters until the body is at its type's current version."""
    event_type = str(raw.get("type", ""))
    current = CURRENT_VERSIONS[event_type]
    version = int(raw.get("v", 1))
    while version < current:
        step = _UPCASTERS.get((event_type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event_type} v{version}")
        raw = step(raw)
        version += 1
        raw["v"] = version
    return raw


# ---- the upcasters ---------------------------------------------------------------------------


@upcaster("StreamCreated", 1)
def _stream_created_v1_to_v2(raw: Raw) -> Raw:
    """v1 stored the source as a bare ``url`` string and analytics as a list of names."""
    out = dict(raw)
    if "url" in out and "source" not in out:
        out["source"] = {"url": out.pop("url")}
    analytics = out.get("analytics", [])
    out["analytics"] = [{"name": a, "params": {}} if isinstance(a, str) else a for a in analytics]
    return out
