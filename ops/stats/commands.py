"""The statistics commands beside the queries: ``stats.close`` (close days early) and
``stats.verify`` (reconciliation); and `stats_routes`, every statistics route but ``stats.daily``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client

from core.errors import Invalid
from ops.api.requests import (
    MonthlyStatsReq,
    RangeStatsReq,
    StatsCloseReq,
    StatsCorrectionsReq,
    StatsVerifyReq,
)
from ops.api.router import AnyRoute, Route
from ops.stats.feed import StatsFeed
from ops.stats.queries import CorrectionsView, RangeStatsView, StatsQueries, parse_day
from ops.stats.rollups import RollupStore
from ops.stats.verify import VerifyView, verify
from projections.agents import AgentsProjection
from projections.engine import Projector

__all__ = ["CloseView", "StatsCommands", "stats_routes"]


class CloseView(msgspec.Struct, frozen=True, kw_only=True):
    closed_through: str
    """Every day up to this one is closed now."""
    close_seq: int
    """The ``VIGIL_FEEDBACK`` sequence of the marker that closed it."""
    already: bool
    """The day was closed before this request."""


class StatsCommands:
    def __init__(self, nc: Client, queries: StatsQueries, store: RollupStore, feed: StatsFeed,
                 agents: AgentsProjection, projector: Projector) -> None:  # fmt: skip
        self.nc = nc
        self.queries = queries
        self.store = store
        self.feed = feed
        self.agents = agents
        self.projector = projector

    async def close(self, req: StatsCloseReq) -> tuple[CloseView, int]:
        """Close every day up to ``through`` now: its figures become final (rollups), and deltas
        that arrive later are counted as corrections. Only days that have ended."""
        parse_day(req.through, "$.through")
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        if req.through >= today:
            raise Invalid("$.through", f"{req.through} has not ended yet (it is {today} in UTC);"
                          " only past days can be closed")  # fmt: skip
        state = self.feed.stats.state
        if req.through <= state.closed_through:
            view = CloseView(closed_through=state.closed_through, close_seq=state.close_seq,
                             already=True)  # fmt: skip
            return view, self.projector.last_seq
        seq = await self.store.publish_close(req.through, reason="operator")
        await self.feed.wait_for(seq, timeout=10.0)
        view = CloseView(closed_through=state.closed_through, close_seq=state.close_seq,
                         already=False)  # fmt: skip
        return view, self.projector.last_seq

    async def verify(self, req: StatsVerifyReq) -> tuple[VerifyView, int]:
        """Recompute the closed days the feedback holds; compare with ``VIGIL_STATS``."""
        if req.day is not None:
            parse_day(req.day, "$.day")
        view = await verify(self.nc, self.agents, self.projector, self.store, day=req.day)
        return view, self.projector.last_seq


def stats_routes(queries: StatsQueries, commands: StatsCommands) -> list[AnyRoute]:
    """``stats.range``, ``stats.monthly``, ``stats.corrections``, ``stats.verify``,
    ``stats.close`` (``stats.daily`` is in the manager's own table)."""
    return [
        Route("stats.range", RangeStatsReq, queries.range, writes=False, result=RangeStatsView),
        Route("stats.monthly", MonthlyStatsReq, queries.monthly, writes=False,
              result=RangeStatsView),
        Route("stats.corrections", StatsCorrectionsReq, queries.corrections, writes=False,
              result=CorrectionsView),
        Route("stats.verify", StatsVerifyReq, commands.verify, writes=False, result=VerifyView),
        Route("stats.close", StatsCloseReq, commands.close, result=CloseView),
    ]  # fmt: skip
