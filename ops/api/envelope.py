"""The reply envelope of every command (NATS and HTTP), and the mapping of errors to codes.

::

    {"ok": true,  "result": {...}, "seq": N}          seq: the event-log sequence reflected
    {"ok": false, "error": {"code", "message", "details": [{"path", "message"}]}}

The Structs are ``events.protocol.OkReply`` / ``ErrorReply`` (agents read the same envelope).
"""

from __future__ import annotations

import msgspec

from core.errors import DomainError
from events.protocol import ErrorBody, ErrorDetail, ErrorReply, OkReply, ReplyCode

__all__ = [
    "HTTP_STATUS",
    "decode_reply",
    "encode",
    "error_body",
    "error_reply",
    "ok_reply",
]

HTTP_STATUS: dict[str, int] = {
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "unavailable": 503,
    "internal": 500,
}

encode = msgspec.json.Encoder().encode
"""Encode a reply (or any Struct) to JSON bytes."""


def ok_reply(result: object, seq: int) -> bytes:
    return encode(OkReply(result=result, seq=seq))


def error_body(
    code: ReplyCode, message: str, details: list[ErrorDetail] | None = None
) -> ErrorBody:
    return ErrorBody(code=code, message=message, details=details or [])


def error_reply(code: ReplyCode, message: str, details: list[ErrorDetail] | None = None) -> bytes:
    return encode(ErrorReply(error=error_body(code, message, details)))


def domain_error_body(exc: DomainError) -> ErrorBody:
    details = [ErrorDetail(d.get("path", "$"), d.get("message", "")) for d in exc.details]
    code: ReplyCode = exc.code  # type: ignore[assignment]
    return ErrorBody(code=code, message=exc.message, details=details)


class _Envelope(msgspec.Struct):
    ok: bool
    result: msgspec.Raw = msgspec.Raw(b"null")
    error: ErrorBody | None = None
    seq: int = 0


_decode_envelope = msgspec.json.Decoder(_Envelope).decode


def decode_reply(data: bytes) -> tuple[bool, msgspec.Raw, ErrorBody | None, int]:
    """(ok, raw result, error, seq) of a reply envelope."""
    env = _decode_envelope(data)
    return env.ok, env.result, env.error, env.seq
