"""Action and event analyzers on hand-made trigger sequences; rules from TOML; the registry."""

from __future__ import annotations

import msgspec
import pytest

from analytics.analyzers import (
    BlackFrameParams,
    BrightnessParams,
    FrozenFrameParams,
    MotionParams,
    SceneChangeParams,
)
from analytics.errors import InvalidParams, RulesError, UnknownAnalytic
from analytics.registry import ANALYTICS, create_analyzer, describe_all, validate_params
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
from analytics.tamper import TamperParams
from analytics.types import ActionHit, Trigger


def triggers(name: str, start: float, end: float, step: float = 0.04) -> list[Trigger]:
    count = round((end - start) / step) + 1
    return [Trigger(name=name, ts=start + i * step, score=0.5) for i in range(count)]


def run_actions(analyzer: ActionAnalyzer, items: list[Trigger], until: float) -> list[ActionHit]:
    """Each trigger comes with its own frame; then no frame until ``until``."""
    hits: list[ActionHit] = []
    for trigger in items:
        hits += analyzer.frame(trigger.ts)
        hits += analyzer.feed(trigger)
    hits += analyzer.tick(until)
    return hits


def test_an_action_spans_its_dense_run_and_closes_after_the_gap() -> None:
    analyzer = ActionAnalyzer([ActionRule(name="m", triggers=("motion",), threshold=3, gap_s=1.0)])
    hits = run_actions(analyzer, triggers("motion", 2.0, 5.0), until=6.5)

    assert len(hits) == 1  # [first trigger, one frame after the last): half-open
    assert (hits[0].started_at, round(hits[0].ended_at, 6)) == (2.0, 5.04)
    assert hits[0].trigger_count == 76


def test_sparse_triggers_below_the_threshold_make_no_action() -> None:
    analyzer = ActionAnalyzer(
        [ActionRule(name="m", triggers=("motion",), threshold=3, window_s=1.0)]
    )
    sparse = [Trigger(name="motion", ts=t, score=1.0) for t in (0.0, 0.9, 1.8, 2.7)]
    assert run_actions(analyzer, sparse, until=10.0) == []
    assert analyzer.flush() == []


def test_min_duration_drops_short_runs() -> None:
    rule = ActionRule(name="f", triggers=("frozen",), threshold=2, gap_s=0.25, min_duration_s=1.0)
    analyzer = ActionAnalyzer([rule])
    short = triggers("frozen", 1.0, 1.6) + triggers("frozen", 3.0, 4.6)
    hits = run_actions(analyzer, short, until=6.0)
    assert [(h.started_at, round(h.ended_at, 6)) for h in hits] == [(3.0, 4.64)]


def test_flush_closes_an_open_action() -> None:
    analyzer = ActionAnalyzer([ActionRule(name="m", triggers=("motion",), threshold=2)])
    for trigger in triggers("motion", 1.0, 2.0):
        assert analyzer.feed(trigger) == []
    assert analyzer.open_since() == {"m": 1.0}
    (hit,) = analyzer.flush()
    assert hit.started_at == 1.0 and analyzer.open_since() == {}


def test_kept_triggers_are_bounded_for_long_actions() -> None:
    analyzer = ActionAnalyzer([ActionRule(name="m", triggers=("motion",))])
    (hit,) = run_actions(analyzer, triggers("motion", 0.0, 400.0), until=500.0)
    assert hit.trigger_count == 10001 and len(hit.triggers) <= 256


def hit(name: str, start: float, end: float) -> ActionHit:
    return ActionHit(name=name, started_at=start, ended_at=end, score=1.0, trigger_count=1)


def test_an_event_needs_distinct_actions_within_its_window() -> None:
    rule = EventRule(name="trouble", actions=("a", "b"), threshold=2, distinct=True, gap_s=5.0)
    events = EventAnalyzer([rule])
    assert events.feed(hit("a", 1.0, 2.0)) == []
    assert events.feed(hit("a", 3.0, 4.0)) == []
    assert events.tick(20.0, {}) == []  # two actions, one name: not distinct

    assert events.feed(hit("a", 30.0, 31.0)) == []
    assert events.feed(hit("b", 33.0, 34.0)) == []
    (event,) = events.tick(40.0, {})
    assert (event.name, event.started_at, event.ended_at) == ("trouble", 30.0, 34.0)
    assert [a.name for a in event.actions] == ["a", "b"]


def test_an_event_waits_for_an_open_action_that_may_join() -> None:
    events = EventAnalyzer([EventRule(name="e", actions=("a",), gap_s=1.0)])
    events.feed(hit("a", 1.0, 2.0))
    assert events.tick(5.0, {"a": 2.5}) == []  # started within the gap, still open
    events.feed(hit("a", 2.5, 6.0))
    (event,) = events.tick(7.5, {})
    assert (event.started_at, event.ended_at) == (1.0, 6.0)


def test_rules_toml_replaces_defaults_by_name() -> None:
    defaults = RuleSet(
        actions=(ActionRule(name="motion", triggers=("motion",)),),
        events=(EventRule(name="motion", actions=("motion",)),),
    )
    extra = parse_rules_toml('[[action]]\nname = "motion"\ntriggers = ["motion"]\nthreshold = 9\n')
    merged = merge_rules(defaults, extra)
    assert [a.threshold for a in merged.actions] == [9]
    assert [e.name for e in merged.events] == ["motion"]


@pytest.mark.parametrize(
    "text",
    [
        "[[action]]\nname = 1\n",
        "[[acton]]\nname = 'x'\n",
        "not toml = = 1",
        '[[event]]\nname = "e"\nactions = ["missing"]\n',
    ],
)
def test_bad_rules_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(RulesError):
        merge_rules(RuleSet(), parse_rules_toml(text))


def test_registry_describes_every_analytic_for_the_manager() -> None:
    described = describe_all()
    assert {d["name"] for d in described} == {
        "motion",
        "scene_change",
        "black_frame",
        "frozen_frame",
        "brightness",
        "tamper",
    }
    for entry in described:
        assert set(entry) == {"name", "version", "params_schema"}
        assert (
            isinstance(entry["params_schema"], dict) and entry["params_schema"]["type"] == "object"
        )
        assert validate_params(str(entry["name"]), {}) == []


@pytest.mark.parametrize(
    ("name", "params", "path"),
    [
        ("motion", {"sensitivity": 2}, "$.sensitivity"),
        ("motion", {"grid": [16, 0]}, "$.grid[1]"),
        ("motion", {"gird": [16, 9]}, "$"),
        ("motion", {"action": {"threshold": 0}}, "$.action.threshold"),
        ("black_frame", {"ratio": "high"}, "$.ratio"),
        ("frozen_frame", {"event": {"gap": 1}}, "$.event"),
        ("teleport", {}, "$"),
    ],
)
def test_invalid_params_name_the_field_path(
    name: str, params: dict[str, object], path: str
) -> None:
    errors = validate_params(name, params)
    assert [e.path for e in errors] == [path], errors
    assert str(errors[0]).startswith(f"{path}: ")


def test_all_errors_are_reported_at_once() -> None:
    errors = validate_params("motion", {"sensitivity": -1, "min_area": 3})
    assert [e.path for e in errors] == ["$.min_area", "$.sensitivity"]


def test_create_analyzer_applies_rule_overrides_and_refuses_bad_params() -> None:
    analyzer, rules = create_analyzer("motion", {"sensitivity": 0.9, "action": {"threshold": 7}})
    assert analyzer.name == "motion"
    assert (
        rules.actions[0].threshold == 7
        and rules.actions[0].gap_s == ANALYTICS["motion"].action.gap_s
    )
    with pytest.raises(InvalidParams) as refused:
        create_analyzer("motion", {"sensitivity": 7})
    assert "$.sensitivity" in str(refused.value)
    with pytest.raises(UnknownAnalytic):
        create_analyzer("teleport", {})


# -- record semantics (issue 17) -------------------------------------------------------------------


def test_an_action_ends_at_the_first_frame_after_its_last_trigger() -> None:
    analyzer = ActionAnalyzer([ActionRule(name="b", triggers=("black",), threshold=2, gap_s=0.5)])
    hits: list[ActionHit] = []
    for i in range(60):  # frames every 0.04 s, black from 0.4 s to 1.2 s (exclusive)
        ts = round(i * 0.04, 6)
        hits += analyzer.frame(ts)
        if 0.4 <= ts < 1.2:
            hits += analyzer.feed(Trigger(name="black", ts=ts, score=1.0))

    assert [(h.started_at, h.ended_at) for h in hits] == [(0.4, 1.2)]  # [start, end)


def freeze_rules(event_gap_s: float) -> tuple[ActionAnalyzer, EventAnalyzer]:
    action = ActionRule(name="f", triggers=("frozen",), threshold=2, gap_s=0.25, min_duration_s=1.0)
    event = EventRule(name="f", actions=("f",), gap_s=event_gap_s)
    rules = RuleSet(actions=(action,), events=(event,))
    return ActionAnalyzer(rules.actions, merge_windows(rules)), EventAnalyzer(rules.events)


def run_rules(items: list[Trigger], until: float, event_gap_s: float) -> list[tuple[float, float]]:
    actions, events = freeze_rules(event_gap_s)
    found = []
    for hit in run_actions(actions, items, until) + actions.flush():
        found += events.feed(hit)
    found += events.flush()
    return [(e.started_at, round(e.ended_at, 6)) for e in found]


def test_short_pieces_merge_within_the_event_gap_before_min_duration_applies() -> None:
    # a freeze cut in two by a keyframe: 0.6 s, a 0.4 s hole, 0.5 s; each piece under 1 s
    pieces = triggers("frozen", 2.0, 2.56) + triggers("frozen", 3.0, 3.44)

    assert run_rules(pieces, until=6.0, event_gap_s=1.0) == [(2.0, 3.48)]
    assert run_rules(pieces, until=6.0, event_gap_s=0.0) == []  # no gap: each piece too short


def test_a_lone_short_piece_is_still_dropped() -> None:
    lone = triggers("frozen", 2.0, 2.56) + triggers("frozen", 5.0, 6.2)

    assert run_rules(lone, until=8.0, event_gap_s=1.0) == [(5.0, 6.24)]


def test_a_held_piece_keeps_its_event_open() -> None:
    actions, _ = freeze_rules(event_gap_s=1.0)
    run_actions(actions, triggers("frozen", 2.0, 2.56), until=2.9)

    assert actions.open_since() == {"f": 2.0}  # a next piece may still extend it
    assert actions.tick(4.0) == [] and actions.open_since() == {}


PARAMS = {
    "motion": MotionParams,
    "scene_change": SceneChangeParams,
    "black_frame": BlackFrameParams,
    "frozen_frame": FrozenFrameParams,
    "brightness": BrightnessParams,
    "tamper": TamperParams,
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_every_parameter_is_in_the_schema_with_its_default_and_a_description(name: str) -> None:
    properties = dict(ANALYTICS[name].params_schema["properties"])  # type: ignore[call-overload]
    del properties["action"], properties["event"]
    defaults = msgspec.json.decode(msgspec.json.encode(PARAMS[name]()))

    assert set(properties) == set(defaults)
    for field, schema in properties.items():
        assert schema["default"] == defaults[field], field
        assert len(schema["description"]) > 20, field
