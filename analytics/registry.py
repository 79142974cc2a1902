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

Schema = dict[str, object]


class ParamError(msgspec.Struct, frozen=True, kw_only=True):
    """One invalid field: ``path`` is a JSON path into the params object (``$.grid[0]``)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _number(lo: float, hi: float, default: float, description: str) -> Schema:
    return {
        "type": "number",
        "minimum": lo,
        "maximum": hi,
        "default": default,
        "description": description,
    }


def _integer(lo: int, hi: int, default: int, description: str) -> Schema:
    return {
        "type": "integer",
        "minimum": lo,
        "maximum": hi,
        "default": default,
        "description": description,
    }


_ACTION_SCHEMA: Schema = {
    "type": "object",
    "description": "Override of the default action rule of this analytic.",
    "additionalProperties": False,
    "properties": {
        "threshold": _integer(1, 100_000, 1, "Triggers needed within window_s."),
        "window_s": _number(
            0.01, 3600, 1.0, "Seconds in which threshold triggers must fall to open the action."
        ),
        "gap_s": _number(0, 3600, 1.0, "Seconds without a trigger that end the action."),
        "min_duration_s": _number(
            0,
            3600,
            0.0,
            "Seconds an action must last, after merging pieces that the event's gap_s joins.",
        ),
    },
}
_EVENT_SCHEMA: Schema = {
    "type": "object",
    "description": "Override of the default event rule of this analytic.",
    "additionalProperties": False,
    "properties": {
        "threshold": _integer(1, 10_000, 1, "Actions needed for an event."),
        "gap_s": _number(0, 3600, 0.0, "Seconds: actions at most this far apart form one event."),
    },
}


def _schema(title: str, properties: dict[str, Schema]) -> Schema:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "additionalProperties": False,
        "properties": {**properties, "action": _ACTION_SCHEMA, "event": _EVENT_SCHEMA},
    }


@dataclass(frozen=True)
class Analytic:
    """A registered analytic. ``build`` makes the analyzer from params (rule keys removed);
    ``actions`` are its default action rules (one per trigger it emits), ``event`` its default
    event rule over them."""

    name: str
    version: str
    params_schema: Schema
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
    schema: Schema,
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
            _schema(
                "motion",
                {
                    "sensitivity": _number(
                        0,
                        1,
                        0.5,
                        "0 ignores all but big changes, 1 sees small ones: a pixel changed when "
                        "it moved by more than 10 + 50 * (1 - sensitivity) luma levels.",
                    ),
                    "min_area": _number(
                        0, 1, 0.005, "Fraction of grid cells that must be active for motion."
                    ),
                    "max_area": _number(
                        0,
                        1,
                        0.6,
                        "Fraction of active cells above which the whole picture changed (a cut, "
                        "lights, a pan): not motion.",
                    ),
                    "grid": {
                        "type": "array",
                        "description": "[columns, rows] of the difference grid.",
                        "items": {"type": "integer", "minimum": 1, "maximum": 128},
                        "minItems": 2,
                        "maxItems": 2,
                        "default": [16, 9],
                    },
                    "cell_fraction": _number(
                        0, 1, 0.02, "Fraction of a cell's pixels that must change to activate it."
                    ),
                    "dark_level": _number(
                        0,
                        1,
                        0.25,
                        "Mean level (0 black, 1 white) under which the pixel threshold shrinks "
                        "in proportion (a dark scene spans few levels).",
                    ),
                    "noise_levels": _integer(
                        0,
                        255,
                        10,
                        "Luma levels under which a change is noise, however dark the scene.",
                    ),
                },
            ),
            _builder(a.Motion, a.MotionParams),  # type: ignore[arg-type]
            ActionRule(name="motion", triggers=("motion",), threshold=3, window_s=1.0, gap_s=1.0),
            EventRule(name="motion", actions=("motion",), gap_s=2.0),
            version="1.1.0",
        ),
        _analytic(
            "scene_change",
            _schema(
                "scene_change",
                {
                    "threshold": _number(
                        0,
                        2,
                        0.1,
                        "Decorrelation (1 - r, 0..2) by which a cut's change must exceed the "
                        "changes of the frames before and after it.",
                    ),
                    "level_scale": _number(
                        1,
                        255,
                        64.0,
                        "Luma levels of mean-level change that count as a change of 1 (a light "
                        "switched on is a cut, a fade over several frames is not).",
                    ),
                    "min_contrast": _number(
                        0,
                        128,
                        4.0,
                        "Luma standard deviation (levels) under which a frame is flat and not "
                        "judged (black, covered lens).",
                    ),
                },
            ),
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
            _schema(
                "black_frame",
                {
                    "pixel_threshold": _integer(
                        16, 255, 32, "Luma level at or below which a pixel is black (16 is black)."
                    ),
                    "ratio": _number(
                        0, 1, 0.98, "Fraction of black pixels that makes a black frame."
                    ),
                },
            ),
            _builder(a.BlackFrame, a.BlackFrameParams),  # type: ignore[arg-type]
            ActionRule(
                name="black_frame", triggers=("black_frame",), threshold=2, window_s=1.0, gap_s=0.5
            ),
            EventRule(name="black_frame", actions=("black_frame",), gap_s=1.0),
            version="1.1.0",
        ),
        _analytic(
            "frozen_frame",
            _schema(
                "frozen_frame",
                {
                    "pixel_levels": _integer(
                        0, 255, 2, "Luma levels by which a pixel must change to count as changed."
                    ),
                    "max_changed": _number(
                        0,
                        1,
                        0.005,
                        "Fraction of changed pixels up to which a frame holds the previous one.",
                    ),
                    "block_size": _integer(
                        2, 64, 8, "Side (pixels of the analysis picture) of the averaged blocks."
                    ),
                    "max_refresh": _number(
                        0,
                        255,
                        3.0,
                        "Luma levels a block mean may change in an encoder refresh (keyframe).",
                    ),
                    "refresh_interval_s": _number(
                        0, 3600, 1.0, "Seconds: at most one refresh per interval continues a run."
                    ),
                    "max_drift": _number(
                        0,
                        255,
                        6.0,
                        "Luma levels a block mean may drift from the run's first frame.",
                    ),
                    "min_still_s": _number(
                        0, 60, 0.4, "Seconds a run lasts before its frames are reported."
                    ),
                    "ignore_black": {
                        "type": "boolean",
                        "default": True,
                        "description": "Black is not frozen (left to black_frame).",
                    },
                    "black_threshold": _integer(
                        16, 255, 32, "Luma at or below which a pixel is black (limited range)."
                    ),
                    "black_ratio": _number(
                        0,
                        1,
                        0.9,
                        "Fraction of black pixels that makes a frame black (with ignore_black).",
                    ),
                },
            ),
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
            version="2.0.0",
        ),
        _analytic(
            "brightness",
            _schema(
                "brightness",
                {
                    "min_level": _number(
                        0, 1, 0.1, "Mean level (0 black 16, 1 white 235) under which it is dark."
                    ),
                    "max_level": _number(
                        0, 1, 0.95, "Mean level (0 black, 1 white) above which it is bright."
                    ),
                },
            ),
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
            _schema(
                "tamper",
                {
                    "interval_s": _number(
                        0, 60, 0.25, "Seconds between two looks (tampering lasts)."
                    ),
                    "flat_levels": _number(
                        0,
                        255,
                        4.0,
                        "Luma standard deviation (levels, of ~80 px wide block means) under "
                        "which the picture is flat: covered.",
                    ),
                    "covered_ratio": _number(
                        0, 1, 0.25, "Contrast under this fraction of the reference's: covered."
                    ),
                    "min_shift": _number(
                        0,
                        0.5,
                        0.03,
                        "Global shift (fraction of the picture's width or height) that is a "
                        "moved view.",
                    ),
                    "min_match": _number(
                        -1,
                        1,
                        0.6,
                        "Correlation with the reference (moved by the shift, or not) that "
                        "counts as the same view.",
                    ),
                    "match_margin": _number(
                        0,
                        2,
                        0.2,
                        "How much better the moved reference must match than the unmoved one.",
                    ),
                    "defocus_ratio": _number(
                        0,
                        1,
                        0.6,
                        "Edge strength under this fraction of the reference's: defocused.",
                    ),
                    "refresh_s": _number(
                        0, 86_400, 10.0, "Seconds between retakes of the reference while normal."
                    ),
                    "relearn_s": _number(
                        0,
                        86_400,
                        30.0,
                        "Seconds a view that does not match the reference (moved, turned) "
                        "lasts before it becomes the reference.",
                    ),
                },
            ),
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
