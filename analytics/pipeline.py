"""The analysis levels after the collector, for one stream: handler → analyzers → actions →
events → records. Single-threaded: the worker feeds it frames in order.

Each frame becomes one :class:`~analytics.picture.Picture` that every analyzer of the stream
shares (what one measures, the others reuse). A stream analysed on sparse frames (keyframes
only, or an ``analysis_fps`` cap) gets its action rules fitted to the frame spacing
(:class:`~analytics.rules.ActionAnalyzer`'s ``sparse``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from analytics.analyzers import Analyzer
from analytics.collector import Frame
from analytics.handler import StreamHandler, WindowConfig
from analytics.picture import Picture
from analytics.records import AnalysisRecord, build_record
from analytics.registry import create_analyzer
from analytics.rules import (
    ActionAnalyzer,
    ActionRule,
    EventAnalyzer,
    EventRule,
    RuleSet,
    merge_rules,
    merge_windows,
    parse_rules_toml,
)
from analytics.types import ActionHit, EventHit, Trigger

__all__ = ["AnalyticRequest", "Found", "Pipeline"]


class AnalyticRequest(Protocol):
    """An analytic name with its params (``analytics.worker.AnalyticSpec`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def params(self) -> Mapping[str, object]: ...


@dataclass
class Found:
    """What one frame (or a flush) produced."""

    triggers: int = 0
    events: int = 0
    records: list[AnalysisRecord] = field(default_factory=list)


class Pipeline:
    """Runs the analyzers and rules on frames and builds the records of finished events.

    A record waits until ``window.post_s`` of frames after its event have been seen, so its
    window can include them; ``flush`` (end of stream or stop) builds everything still pending.
    """

    def __init__(
        self,
        stream_id: str,
        agent_id: str,
        analyzers: list[Analyzer],
        rules: RuleSet,
        window: WindowConfig,
        *,
        live: bool,
        sparse_period_s: float | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.agent_id = agent_id
        self.analyzers = analyzers
        self.handler = StreamHandler(live=live, window=window)
        self.actions = ActionAnalyzer(
            rules.actions, merge_windows(rules), sparse_period_s=sparse_period_s
        )
        self.events = EventAnalyzer(rules.events)
        self._pending: list[EventHit] = []
        # Thumbnails a record may still take: the window's margin before anything still open,
        # and before the oldest time an analyzer may date a trigger it still holds back.
        lookback = max((a.lookback_s for a in analyzers), default=0.0)
        self._keep_s = window.pre_s + lookback + 1.0
        self._thumbs_seen = 0

    @classmethod
    def build(
        cls,
        stream_id: str,
        agent_id: str,
        analytics: Iterable[AnalyticRequest],
        rules_toml: str | None,
        window: WindowConfig,
        *,
        live: bool,
        sparse_period_s: float | None = None,
    ) -> Pipeline:
        """Validate params and rules (raises ``InvalidParams``, ``UnknownAnalytic``,
        ``RulesError``) and assemble the pipeline."""
        analyzers: list[Analyzer] = []
        actions: list[ActionRule] = []
        events: list[EventRule] = []
        for spec in analytics:
            analyzer, rules = create_analyzer(spec.name, spec.params)
            analyzers.append(analyzer)
            actions.extend(rules.actions)
            events.extend(rules.events)
        defaults = RuleSet(actions=tuple(actions), events=tuple(events))
        extra = parse_rules_toml(rules_toml) if rules_toml else None
        rules = merge_rules(defaults, extra)
        return cls(
            stream_id,
            agent_id,
            analyzers,
            rules,
            window,
            live=live,
            sparse_period_s=sparse_period_s,
        )

    def process(self, frame: Frame) -> Found:
        """:meth:`admit` then :meth:`analyse` one frame."""
        return self.analyse(self.admit(frame))

    def admit(self, frame: Frame) -> Picture:
        """Take ``frame`` as it arrives (its timestamp, a thumbnail when one is due, while the
        decoded frame is at hand) and return its picture, to :meth:`analyse` in arrival order,
        at once or in a batch with the next ones."""
        return Picture(self.handler.update(frame), frame.gray)

    def analyse(self, picture: Picture) -> Found:
        """Run the analyzers and rules on an admitted picture; build the records due."""
        ts = picture.ts
        found = Found()
        hits: list[ActionHit] = self.actions.frame(ts)
        for analyzer in self.analyzers:
            triggers: list[Trigger] = analyzer.analyse(picture)
            if triggers:
                found.triggers += len(triggers)
                for trigger in triggers:
                    hits.extend(self.actions.feed(trigger))
        self._add_events(hits, ts, found)
        self._emit_ready(ts, found)
        if self.handler.thumbs_taken != self._thumbs_seen:  # forget what no record can take
            self._thumbs_seen = self.handler.thumbs_taken
            self.handler.release(self._needed_since(ts) - self.handler.window.pre_s)
        return found

    def _needed_since(self, ts: float) -> float:
        """The earliest time a record may still start at."""
        since = [ts - self._keep_s, *self.actions.open_since().values()]
        since.extend(e.started_at for e in self._pending)
        opened = self.events.open_since()
        if opened is not None:
            since.append(opened)
        return min(since)

    def tick(self, now: float) -> Found:
        """Advance time without a frame (a live source that is down): close what went quiet."""
        found = Found()
        self._add_events(self.actions.tick(now), now, found)
        self._emit_ready(now, found)
        return found

    def flush(self) -> Found:
        found = Found()
        for hit in self.actions.flush():
            self._add_events([hit], None, found)
        new = self.events.flush()
        self._accept(new, found)
        self._emit_ready(None, found)
        return found

    def _add_events(self, hits: list[ActionHit], ts: float | None, found: Found) -> None:
        new: list[EventHit] = []
        for hit in sorted(hits, key=lambda h: h.ended_at):
            new.extend(self.events.feed(hit))
        if ts is not None and self.events.has_open():
            new.extend(self.events.tick(ts, self.actions.open_since()))
        self._accept(new, found)

    def _accept(self, new: list[EventHit], found: Found) -> None:
        found.events += len(new)
        self._pending.extend(new)

    def _emit_ready(self, ts: float | None, found: Found) -> None:
        post = self.handler.window.post_s
        ready = [e for e in self._pending if ts is None or ts >= e.ended_at + post]
        if not ready:
            return
        self._pending = [e for e in self._pending if e not in ready]
        for event in ready:
            window = self.handler.select_window(event.started_at, event.ended_at)
            found.records.append(build_record(self.stream_id, self.agent_id, event, window))
