"""Bounds for free-form JSON: no value is stored that cannot be served back.

Typed fields carry their own bounds (``msgspec.Meta``). Free-form parts (analytics ``params``, a
``params_schema``) are ``JsonObject``: after decoding they are walked once, and refused when
nested deeper than `MAX_DEPTH`, holding integers outside signed 64 bits, non-finite floats, or
more than `MAX_NODES` values — each of which an encoder would later refuse (a 500 forever).

``decode`` is the one way to decode untrusted bytes: it also turns the ``RecursionError`` that a
5,000-deep document raises inside msgspec into an ordinary `DecodeError`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, TypeVar

import msgspec

__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_NODES",
    "MIN_INT",
    "BoundsError",
    "JsonObject",
    "check_field",
    "check_json",
    "decode",
]

MAX_DEPTH = 16
MAX_NODES = 10_000
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
MAX_STRING = 64 * 1024

JsonObject = Annotated[dict[str, Any], msgspec.Meta(max_length=64)]

T = TypeVar("T")


class BoundsError(ValueError):
    """A free-form value out of bounds; ``path`` is where (``$.params.a[3]``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{message} - at `{path}`")
        self.path = path
        self.message = message


def check_json(value: Any, path: str = "") -> None:
    """Raise `BoundsError` unless ``value`` is JSON any encoder can serve back."""
    nodes = 0
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        v, p, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise BoundsError(path, f"more than {MAX_NODES} values")
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            if not MIN_INT <= v <= MAX_INT:
                raise BoundsError(p, "integer outside the signed 64-bit range")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise BoundsError(p, "number is not finite")
        elif isinstance(v, str):
            if len(v) > MAX_STRING:
                raise BoundsError(p, f"string longer than {MAX_STRING} characters")
        elif isinstance(v, dict):
            if depth >= MAX_DEPTH:
                raise BoundsError(p, f"nested deeper than {MAX_DEPTH} levels")
            for k, item in v.items():
                if len(k) > 256:
                    raise BoundsError(p, "object key longer than 256 characters")
                stack.append((item, f"{p}.{k}", depth + 1))
        elif isinstance(v, list):
            if depth >= MAX_DEPTH:
                raise BoundsError(p, f"nested deeper than {MAX_DEPTH} levels")
            stack.extend((item, f"{p}[{i}]", depth + 1) for i, item in enumerate(v))
        else:
            raise BoundsError(p, f"not a JSON value ({type(v).__name__})")


def check_field(value: Any, field: str) -> None:
    """For a Struct's ``__post_init__``: raise ``ValueError`` naming the sub-path as
    ``message @.field.sub``; msgspec adds the outer path (``ops.api`` merges the two)."""
    try:
        check_json(value)
    except BoundsError as exc:
        raise ValueError(f"{exc.message} @.{field}{exc.path}") from None


def decode(data: bytes, type_: type[T], *, decoder: msgspec.json.Decoder[T] | None = None) -> T:
    """Decode untrusted JSON into ``type_``; every failure is a msgspec Decode/ValidationError."""
    try:
        if decoder is not None:
            return decoder.decode(data)
        return msgspec.json.decode(data, type=type_)
    except RecursionError:
        raise msgspec.DecodeError("JSON nested too deeply") from None
