"""The optional parts of ``vigil up``: local agents and demo streams."""

from __future__ import annotations

from ops.up import ExtraPart, UpOptions

__all__ = ["up_parts"]


def up_parts(options: UpOptions) -> list[ExtraPart]:
    return []
