"""Action and event analyzers: configurable rules over triggers, then over actions.

An **action** opens when at least ``threshold`` of its named triggers fall within ``window_s``; it
closes once no trigger came for ``gap_s``. It spans ``[started_at, ended_at)`` in stream seconds:
from its first qualifying trigger to the first frame after its last trigger (half-open, like
ffmpeg's detectors). A closed action shorter than ``min_duration_s`` is not dropped at once: it is
held for the ``gap_s`` of the events that use it, and merged with the next piece of the same
action starting within that gap; only what is still short after merging is dropped. An **event**
groups its named actions that follow each other within ``gap_s`` and fires when the group holds
``threshold`` actions (distinct names if ``distinct``) whose starts fit in ``window_s``; it spans
its actions. Flushing (end of stream) closes everything open.

On **sparse frames** (keyframes only, or an ``analysis_fps`` cap: ``sparse_period_s`` given) a
rule keeps its meaning at the frames' granularity: an action needs at most as many triggers as
frames fit in its ``window_s`` (one frame every 2 s: one trigger), and its ``gap_s`` is at least
1.5 frame periods (consecutive frames continue it). The period is the median spacing of the last
frames seen (``sparse_period_s`` until two frames were seen).

Rules come from each analytic's defaults, its params (``action`` / ``event`` objects) and
optionally a TOML document::

    replace_defaults = false
    [[action]]
    name = "busy"
    triggers = ["motion"]
    threshold = 25
    window_s = 2.0
    [[event]]
    name = "intrusion"
    actions = ["busy", "scene_change"]
    threshold = 2
    distinct = true
    gap_s = 5.0
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections import deque
from collections.abc import Iterable, Mapping

import msgspec

from analytics.errors import RulesError
from analytics.types import ActionHit, EventHit, Trigger

__all__ = [
    "DURATION_SLACK_S",
    "ActionAnalyzer",
    "ActionRule",
    "EventAnalyzer",
    "EventRule",
    "RuleSet",
    "merge_rules",
    "merge_windows",
    "parse_rules_toml",
]

_MAX_KEPT = 256
_FRAMES_KEPT = 64
# Durations are compared with this slack: 25 frames at 25 fps last 1.0 s, not 0.9999999 s.
DURATION_SLACK_S = 1e-3


class ActionRule(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    triggers: tuple[str, ...]
    threshold: int = 1
    window_s: float = 1.0
    gap_s: float = 1.0
    min_duration_s: float = 0.0


class EventRule(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    actions: tuple[str, ...]
    threshold: int = 1
    window_s: float = math.inf
    gap_s: float = 0.0
    distinct: bool = False


class RuleSet(msgspec.Struct, frozen=True, kw_only=True):
    actions: tuple[ActionRule, ...] = ()
    events: tuple[EventRule, ...] = ()
    replace_defaults: bool = False


class _TomlRules(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    replace_defaults: bool = False
    action: tuple[ActionRule, ...] = ()
    event: tuple[EventRule, ...] = ()


def parse_rules_toml(text: str) -> RuleSet:
    """Parse rules from TOML (``[[action]]`` and ``[[event]]`` tables)."""
    try:
        raw = tomllib.loads(text)
        parsed = msgspec.convert(raw, _TomlRules)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise RulesError(f"invalid rules TOML: {exc}") from exc
    return RuleSet(
        actions=parsed.action, events=parsed.event, replace_defaults=parsed.replace_defaults
    )


def merge_rules(defaults: RuleSet, extra: RuleSet | None) -> RuleSet:
    """``extra`` rules replace same-named defaults (or all of them with ``replace_defaults``)."""
    if extra is None:
        merged = defaults
    else:
        base = RuleSet() if extra.replace_defaults else defaults
        actions = {r.name: r for r in (*base.actions, *extra.actions)}
        events = {r.name: r for r in (*base.events, *extra.events)}
        merged = RuleSet(actions=tuple(actions.values()), events=tuple(events.values()))
    known = {r.name for r in merged.actions}
    for event in merged.events:
        missing = sorted(set(event.actions) - known)
        if missing:
            raise RulesError(
                f"event {event.name!r} waits for undefined actions {missing}; define them"
            )
    for rule in merged.actions:
        if rule.threshold < 1 or rule.window_s <= 0 or rule.gap_s < 0:
            raise RulesError(f"action {rule.name!r}: threshold >= 1, window_s > 0, gap_s >= 0")
    return merged


def merge_windows(rules: RuleSet) -> dict[str, float]:
    """For each action, the longest ``gap_s`` of the events that use it: how long a piece
    shorter than its ``min_duration_s`` waits for a next piece to merge with."""
    windows: dict[str, float] = {}
    for event in rules.events:
        for name in event.actions:
            windows[name] = max(windows.get(name, 0.0), event.gap_s)
    return windows


class _Run:
    """A run of triggers for one action rule; keeps a bounded, evenly thinned sample of them."""

    def __init__(self, first: Trigger) -> None:
        self.started_at = first.ts
        self.last = first.ts
        self.count = 0
        self.score = 0.0
        self.kept: list[Trigger] = []
        self._stride = 1
        self.add(first)

    def add(self, trigger: Trigger) -> None:
        if self.count % self._stride == 0:
            self.kept.append(trigger)
            if len(self.kept) >= _MAX_KEPT:
                self.kept = self.kept[::2]
                self._stride *= 2
        self.count += 1
        self.last = trigger.ts
        self.score = max(self.score, trigger.score)


def _merge(first: ActionHit, second: ActionHit) -> ActionHit:
    """Two pieces of one action as one (``first`` starts earlier)."""
    kept = (*first.triggers, *second.triggers)
    if len(kept) > _MAX_KEPT:
        kept = kept[:: -(-len(kept) // _MAX_KEPT)]
    return ActionHit(
        name=first.name,
        started_at=first.started_at,
        ended_at=max(first.ended_at, second.ended_at),
        score=max(first.score, second.score),
        trigger_count=first.trigger_count + second.trigger_count,
        triggers=kept,
    )


class _Frames:
    """Timestamps of the last frames seen, to end an action at the first frame after it."""

    def __init__(self, default_period_s: float = 0.04) -> None:
        self._seen: deque[float] = deque(maxlen=_FRAMES_KEPT)
        self._default = default_period_s
        self._period: float | None = None

    def add(self, ts: float) -> None:
        if not self._seen or ts > self._seen[-1]:
            self._seen.append(ts)
            self._period = None

    def after(self, ts: float) -> float:
        """The first frame seen after ``ts``, at most one frame period after it (frames dropped
        or not seen yet: ``ts`` plus the period)."""
        limit = ts + self.period()
        for seen in self._seen:
            if seen > ts:
                return min(seen, limit)
        return limit

    def period(self) -> float:
        """The median spacing of the frames seen (``default_period_s`` before two frames)."""
        if self._period is None:
            if len(self._seen) < 2:
                self._period = self._default
            else:
                steps = sorted(b - a for a, b in itertools.pairwise(self._seen))
                self._period = steps[len(steps) // 2]
        return self._period


class _ActionState:
    def __init__(self, rule: ActionRule, frames: _Frames, merge_s: float, sparse: bool) -> None:
        self.rule = rule
        self.frames = frames
        self.merge_s = merge_s
        self.sparse = sparse
        self.threshold = rule.threshold
        self.gap_s = rule.gap_s
        self.recent: deque[Trigger] = deque()
        self.run: _Run | None = None
        self.dense = False
        self.held: ActionHit | None = None  # a short piece waiting for the next one

    def fit(self) -> None:
        """Fit the threshold and gap to the frame spacing (sparse frames)."""
        if not self.sparse:
            return
        rule, period = self.rule, self.frames.period()
        frames_in_window = int(rule.window_s / period + 1e-6) + 1
        self.threshold = max(1, min(rule.threshold, frames_in_window))
        self.gap_s = max(rule.gap_s, 1.5 * period)

    def feed(self, trigger: Trigger) -> ActionHit | None:
        closed = self.close_if_idle(trigger.ts)
        self.recent.append(trigger)
        while self.recent[0].ts < trigger.ts - self.rule.window_s:
            self.recent.popleft()
        if self.run is None:
            self.run = _Run(trigger)
        else:
            self.run.add(trigger)
        if not self.dense and len(self.recent) >= self.threshold:
            self.dense = True
            self.run = _Run(self.recent[0])  # the action starts with its qualifying window
            for t in list(self.recent)[1:]:
                self.run.add(t)
        return closed

    def close_if_idle(self, now: float) -> ActionHit | None:
        if self.run is not None and now - self.run.last > self.gap_s:
            return self.close()
        if self.run is None and self.held is not None and now - self.held.ended_at > self.merge_s:
            self.held = None
        return None

    def close(self) -> ActionHit | None:
        run, dense = self.run, self.dense
        self.run, self.dense = None, False
        self.recent.clear()
        if run is None or not dense:
            return None
        hit = ActionHit(
            name=self.rule.name,
            started_at=run.started_at,
            ended_at=self.frames.after(run.last),
            score=run.score,
            trigger_count=run.count,
            triggers=tuple(run.kept),
        )
        held, self.held = self.held, None
        if held is not None and hit.started_at - held.ended_at <= self.merge_s:
            hit = _merge(held, hit)
        if hit.ended_at - hit.started_at >= self.rule.min_duration_s - DURATION_SLACK_S:
            return hit
        if self.merge_s > 0:
            self.held = hit
        return None

    def open_since(self) -> float | None:
        """Start of the open run, or of a held piece that a next run may still extend."""
        if self.held is not None:
            return self.held.started_at
        return self.run.started_at if self.run is not None else None


class ActionAnalyzer:
    """Turns triggers into actions, one state machine per action rule.

    ``merge_s`` gives, per action name, how long a piece shorter than ``min_duration_s`` waits
    to merge with the next piece (see :func:`merge_windows`); 0 (the default) drops it at once.
    Call :meth:`frame` with every frame's timestamp before feeding that frame's triggers, so
    actions end at the first frame after their last trigger.
    """

    def __init__(
        self,
        rules: Iterable[ActionRule],
        merge_s: Mapping[str, float] | None = None,
        *,
        sparse_period_s: float | None = None,
    ) -> None:
        self._sparse = sparse_period_s is not None
        self._frames = _Frames(sparse_period_s or 0.04)
        merge_s = merge_s or {}
        self._states = [
            _ActionState(rule, self._frames, merge_s.get(rule.name, 0.0), self._sparse)
            for rule in rules
        ]
        for state in self._states:
            state.fit()
        self._by_trigger: dict[str, list[_ActionState]] = {}
        for state in self._states:
            for name in state.rule.triggers:
                self._by_trigger.setdefault(name, []).append(state)

    def feed(self, trigger: Trigger) -> list[ActionHit]:
        found = (s.feed(trigger) for s in self._by_trigger.get(trigger.name, ()))
        return [hit for hit in found if hit is not None]

    def frame(self, ts: float) -> list[ActionHit]:
        """A frame at ``ts``: remember it and close the actions that went quiet."""
        self._frames.add(ts)
        if self._sparse:
            for state in self._states:
                state.fit()
        return self.tick(ts)

    def tick(self, now: float) -> list[ActionHit]:
        """Time is ``now`` (no frame, e.g. a live source that is down): close what went quiet."""
        found = (
            s.close_if_idle(now)
            for s in self._states
            if s.run is not None or s.held is not None  # the others have nothing to close
        )
        return [hit for hit in found if hit is not None]

    def flush(self) -> list[ActionHit]:
        found = (s.close() for s in self._states)
        return sorted((hit for hit in found if hit is not None), key=lambda h: h.ended_at)

    def open_since(self) -> dict[str, float]:
        """Start of every action still open (or held to merge), by action name."""
        opened = {s.rule.name: s.open_since() for s in self._states}
        return {name: since for name, since in opened.items() if since is not None}


class _EventState:
    def __init__(self, rule: EventRule) -> None:
        self.rule = rule
        self.group: list[ActionHit] = []

    def feed(self, hit: ActionHit) -> EventHit | None:
        closed = None
        if self.group and hit.started_at - max(a.ended_at for a in self.group) > self.rule.gap_s:
            closed = self.close()
        self.group.append(hit)
        return closed

    def close_if_idle(self, now: float, open_since: dict[str, float]) -> EventHit | None:
        if not self.group:
            return None
        end = max(a.ended_at for a in self.group)
        joining = any(
            open_since.get(n, math.inf) - end <= self.rule.gap_s for n in self.rule.actions
        )
        if now - end > self.rule.gap_s and not joining:
            return self.close()
        return None

    def close(self) -> EventHit | None:
        group, self.group = sorted(self.group, key=lambda a: a.started_at), []
        if not group or not self._reaches_threshold(group):
            return None
        return EventHit(
            name=self.rule.name,
            started_at=min(a.started_at for a in group),
            ended_at=max(a.ended_at for a in group),
            score=max(a.score for a in group),
            actions=tuple(group),
        )

    def _reaches_threshold(self, group: list[ActionHit]) -> bool:
        lo = 0
        for hi in range(len(group)):
            while group[hi].started_at - group[lo].started_at > self.rule.window_s:
                lo += 1
            members = group[lo : hi + 1]
            count = len({a.name for a in members}) if self.rule.distinct else len(members)
            if count >= self.rule.threshold:
                return True
        return False


class EventAnalyzer:
    """Turns actions into events, one grouping state per event rule."""

    def __init__(self, rules: Iterable[EventRule]) -> None:
        self._states = [_EventState(rule) for rule in rules]

    def feed(self, hit: ActionHit) -> list[EventHit]:
        found = (s.feed(hit) for s in self._states if hit.name in s.rule.actions)
        return [event for event in found if event is not None]

    def tick(self, now: float, open_since: dict[str, float]) -> list[EventHit]:
        found = (s.close_if_idle(now, open_since) for s in self._states if s.group)
        return [event for event in found if event is not None]

    def has_open(self) -> bool:
        """Some event groups actions and has not closed yet."""
        return any(s.group for s in self._states)

    def flush(self) -> list[EventHit]:
        found = (s.close() for s in self._states)
        return sorted((e for e in found if e is not None), key=lambda e: e.ended_at)

    def open_since(self) -> float | None:
        """Start of the earliest action grouped into an event that has not closed yet."""
        starts = [a.started_at for s in self._states for a in s.group]
        return min(starts) if starts else None
