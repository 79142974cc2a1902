"""Helpers shared by snapshottable projections: versioned msgpack blobs and canonical dumps.

A projection's blob is a msgspec Struct with ``v`` (its format version) first, encoded as
msgpack. ``decode_blob`` raises ``SnapshotError`` on a corrupt blob or another version: the
caller then ignores the whole snapshot and folds from zero.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from projections.engine import SnapshotError

__all__ = ["decode_blob", "encode_blob", "entity_dump"]

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()


def encode_blob(state: msgspec.Struct) -> bytes:
    return _encoder.encode(state)


def decode_blob(data: bytes, blob_type: type[T], version: int) -> T:
    """Decode a projection blob of ``blob_type`` at format ``version``, else ``SnapshotError``."""
    try:
        head = msgspec.msgpack.decode(data, type=_Head)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"{blob_type.__name__}: unreadable blob: {exc}") from None
    if head.v != version:
        raise SnapshotError(f"{blob_type.__name__}: format v{head.v}, this code reads v{version}")
    try:
        return msgspec.msgpack.decode(data, type=blob_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SnapshotError(f"{blob_type.__name__}: {exc}") from None


class _Head(msgspec.Struct):
    v: int = 0


def entity_dump(states: dict[str, Any], seqs: dict[str, int]) -> dict[str, Any]:
    """``{key: {"state": builtins | None, "seq": last seq}}`` for every key either map knows."""
    keys = set(states) | set(seqs)
    return {
        k: {"state": msgspec.to_builtins(states.get(k)), "seq": seqs.get(k, 0)}
        for k in sorted(keys)
    }
