"""The registry of analytics: name, version, JSON-Schema of params, analyzer and default rules.

The agent registers ``[a.describe() for a in ANALYTICS.values()]`` (``{name, version,
params_schema}``) with the manager, which refuses a stream whose params fail
:func:`validate_params`. Every analytic accepts optional ``action`` and ``event`` objects that
override its default rules (threshold, window_s, gap_s, ...).

    validate_params("motion", {"sensitivity": 2})
    # [ParamError(path='$.sensitivity', message='2 is greater than the maximum of 1')]
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jsonschema
import msgspec

from analytics import analyzers as a
from analytics import schemas
from analytics.errors import InvalidParams, UnknownAnalytic
from analytics.rules import ActionRule, EventRule, RuleSet
from analytics.tamper import TRIGGERS, Tamper, TamperParams

__all__ = [
    "ANALYTICS",
    "Analytic",
    "ParamError",
    "create_analyzer",
    "describe_all",
    "validate_params",
]


class ParamError(msgspec.Struct, frozen=True, kw_only=True):
    """One invalid field: ``path`` is a JSON path into the params object (``$.grid[0]``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Analytic:
    """A registered analytic. ``build`` makes the analyzer from params (rule keys removed);
    ``actions`` are its default action rules (one per trigger it emits), ``event`` its default
    event rule over them."""

    name: str
    version: str
    params_schema: schemas.Schema
    build: Callable[[Mapping[str, object]], a.Analyzer]
    actions: tuple[ActionRule, ...]
    event: EventRule

    @property
    def action(self) -> ActionRule:
        """The first default action rule (the only one, except for ``tamper``)."""
        return self.actions[0]

    def describe(self) -> dict[str, object]:
        """What the manager stores: ``{name, version, params_schema}`` (a deep copy)."""
        return {
            "name": self.name,
            "version": self.version,
            "params_schema": copy.deepcopy(self.params_schema),
        }

    def rules(self, params: Mapping[str, object]) -> RuleSet:
        """Default rules of this analytic with the ``action`` / ``event`` overrides of params
        (an ``action`` override applies to each of its actions)."""
        actions, event = self.actions, self.event
        if isinstance(overrides := params.get("action"), Mapping):
            actions = tuple(msgspec.structs.replace(x, **dict(overrides)) for x in actions)
        if isinstance(overrides := params.get("event"), Mapping):
            event = msgspec.structs.replace(event, **dict(overrides))
        return RuleSet(actions=actions, events=(event,))


def _builder(
    cls: Callable[[object], a.Analyzer], params_type: type[msgspec.Struct]
) -> Callable[[Mapping[str, object]], a.Analyzer]:
    def build(params: Mapping[str, object]) -> a.Analyzer:
        own = {k: v for k, v in params.items() if k not in ("action", "event")}
        return cls(msgspec.convert(own, params_type))

    return build


def _analytic(
    name: str,
    schema: schemas.Schema,
    build: Callable[[Mapping[str, object]], a.Analyzer],
    action: ActionRule | tuple[ActionRule, ...],
    event: EventRule,
    version: str = "1.0.0",
) -> Analytic:
    actions = action if isinstance(action, tuple) else (action,)
    return Analytic(
        name=name, version=version, params_schema=schema, build=build, actions=actions, event=event
    )


ANALYTICS: dict[str, Analytic] = {
    x.name: x
    for x in (
        _analytic(
            "motion",
            schemas.MOTION,
            _builder(a.Motion, a.MotionParams),  # type: ignore[arg-type]
            ActionRule(name="motion", triggers=("motion",), threshold=3, window_s=1.0, gap_s=1.0),
            EventRule(name="motion", actions=("motion",), gap_s=2.0),
            version="1.2.0",
        ),
        _analytic(
            "scene_change",
            schemas.SCENE_CHANGE,
            _builder(a.SceneChange, a.SceneChangeParams),  # type: ignore[arg-type]
            ActionRule(
                name="scene_change",
                triggers=("scene_change",),
                threshold=1,
                window_s=1.0,
                gap_s=0.0,
            ),
            EventRule(name="scene_change", actions=("scene_change",), gap_s=0.0),
            version="2.0.0",
        ),
        _analytic(
            "black_frame",
            schemas.BLACK_FRAME,
            _builder(a.BlackFrame, a.BlackFrameParams),  # type: ignore[arg-type]
            ActionRule(
                name="black_frame", triggers=("black_frame",), threshold=2, window_s=1.0, gap_s=0.5
            ),
            EventRule(name="black_frame", actions=("black_frame",), gap_s=1.0),
            version="1.2.0",
        ),
        _analytic(
            "frozen_frame",
            schemas.FROZEN_FRAME,
            _builder(a.FrozenFrame, a.FrozenFrameParams),  # type: ignore[arg-type]
            ActionRule(
                name="frozen_frame",
                triggers=("frozen_frame",),
                threshold=2,
                window_s=1.0,
                gap_s=0.25,
                min_duration_s=1.0,
            ),
            EventRule(name="frozen_frame", actions=("frozen_frame",), gap_s=1.0),
            version="2.1.0",
        ),
        _analytic(
            "brightness",
            schemas.BRIGHTNESS,
            _builder(a.Brightness, a.BrightnessParams),  # type: ignore[arg-type]
            ActionRule(
                name="brightness",
                triggers=("brightness",),
                threshold=2,
                window_s=1.0,
                gap_s=0.5,
                min_duration_s=0.5,
            ),
            EventRule(name="brightness", actions=("brightness",), gap_s=1.0),
            version="2.0.0",
        ),
        _analytic(
            "tamper",
            schemas.TAMPER,
            _builder(Tamper, TamperParams),  # type: ignore[arg-type]
            tuple(
                ActionRule(
                    name=trigger,
                    triggers=(trigger,),
                    threshold=3,
                    window_s=1.0,
                    gap_s=1.0,
                    min_duration_s=2.0,
                )
                for trigger in TRIGGERS
            ),
            EventRule(name="tamper", actions=TRIGGERS, gap_s=2.0),
            version="1.1.0",
        ),
    )
}


def describe_all() -> list[dict[str, object]]:
    """``{name, version, params_schema}`` of every registered analytic."""
    return [x.describe() for x in ANALYTICS.values()]


def validate_params(name: str, params: Mapping[str, object]) -> list[ParamError]:
    """Every error of ``params`` against the analytic's schema, each with its JSON path (``$`` is
    the params object). An unknown analytic is one error at ``$``."""
    analytic = ANALYTICS.get(name)
    if analytic is None:
        known = ", ".join(sorted(ANALYTICS))
        return [ParamError(path="$", message=f"unknown analytic {name!r}; use one of: {known}")]
    validator = jsonschema.Draft202012Validator(analytic.params_schema)
    errors = sorted(validator.iter_errors(dict(params)), key=lambda e: e.json_path)
    return [ParamError(path=e.json_path, message=e.message) for e in errors]


def create_analyzer(name: str, params: Mapping[str, object]) -> tuple[a.Analyzer, RuleSet]:
    """The analyzer and default rules of ``name`` for valid ``params``."""
    analytic = ANALYTICS.get(name)
    if analytic is None:
        raise UnknownAnalytic(name, list(ANALYTICS))
    errors = validate_params(name, params)
    if errors:
        raise InvalidParams(name, [str(e) for e in errors])
    return analytic.build(params), analytic.rules(params)
