"""Errors of the analytics package.

AnalyticsError
├── SourceError            a source cannot be opened or read (``code``, ``fatal``)
├── InvalidParams          analytics params do not match their schema (``errors``)
├── UnknownAnalytic        an analytic name nobody registered
└── RulesError             an action/event rule set is inconsistent or malformed
"""

from __future__ import annotations

__all__ = ["AnalyticsError", "InvalidParams", "RulesError", "SourceError", "UnknownAnalytic"]


class AnalyticsError(Exception):
    """Base class of every error raised by ``analytics``."""


class SourceError(AnalyticsError):
    """A video source failed. ``fatal`` errors (a missing file) must not be retried."""

    def __init__(self, code: str, message: str, *, fatal: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fatal = fatal


class InvalidParams(AnalyticsError):
    """Params refused by an analytic's JSON schema; ``errors`` name each field path."""

    def __init__(self, analytic: str, errors: list[str]) -> None:
        super().__init__(f"invalid params for {analytic!r}: " + "; ".join(errors))
        self.analytic = analytic
        self.errors = errors


class UnknownAnalytic(AnalyticsError):
    """An analytic name that is not registered; the message lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown analytic {name!r}; use one of: {', '.join(sorted(known))}")
        self.name = name


class RulesError(AnalyticsError):
    """Action/event rules that cannot work, e.g. an event waiting for an undefined action."""
