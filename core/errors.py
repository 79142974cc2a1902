"""Domain errors raised by ``decide``; the manager maps each to a reply code.

::

    DomainError
    ├── Invalid            the request is malformed (code ``invalid``, with the field path)
    ├── NotFound           no such stream/agent (code ``not_found``)
    ├── IllegalTransition  not allowed in the current status (code ``conflict``)
    ├── VersionMismatch    expected_version is not the current version (code ``conflict``)
    └── Stale              feedback/decision about an old version; ignored and counted
"""

from __future__ import annotations

__all__ = ["DomainError", "IllegalTransition", "Invalid", "NotFound", "Stale", "VersionMismatch"]


class DomainError(Exception):
    code = "internal"

    def __init__(self, message: str, *, details: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class Invalid(DomainError):
    code = "invalid"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{message} (at {path})", details=[{"path": path, "message": message}])
        self.path = path


class NotFound(DomainError):
    code = "not_found"


class IllegalTransition(DomainError):
    code = "conflict"


class VersionMismatch(DomainError):
    code = "conflict"


class Stale(DomainError):
    code = "conflict"
