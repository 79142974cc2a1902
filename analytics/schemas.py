"""JSON Schemas of the analytics' params, as the manager stores them (registered by the agent).

Every threshold is a parameter with its unit in its description; every analytic also accepts
``action`` and ``event`` objects overriding its default rules.
"""

from __future__ import annotations

__all__ = [
    "BLACK_FRAME",
    "BRIGHTNESS",
    "FROZEN_FRAME",
    "MOTION",
    "SCENE_CHANGE",
    "TAMPER",
    "Schema",
]

Schema = dict[str, object]


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


MOTION: Schema = _schema(
    "motion",
    {
        "sensitivity": _number(
            0,
            1,
            0.5,
            "0 ignores all but big changes, 1 sees small ones: a pixel changed when "
            "it moved by more than 10 + 50 * (1 - sensitivity) luma levels.",
        ),
        "min_area": _number(0, 1, 0.005, "Fraction of grid cells that must be active for motion."),
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
        "min_pixels": _integer(
            0,
            100_000,
            8,
            "Changed pixels a cell needs at least, whatever its size (sensor noise lights a "
            "few pixels of any cell; a small analysis picture has small cells).",
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
)

SCENE_CHANGE: Schema = _schema(
    "scene_change",
    {
        "threshold": _number(
            0,
            2,
            0.1,
            "Decorrelation (1 - r, 0..2) by which a cut's change must exceed the "
            "changes of the frames before and after it.",
        ),
        "abrupt": _number(
            0,
            2,
            0.5,
            "Decorrelation by which a cut's change may exceed just the previous frame's when "
            "the new scene keeps changing (its next frame as unrelated to the old picture).",
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
)

BLACK_FRAME: Schema = _schema(
    "black_frame",
    {
        "pixel_threshold": _integer(
            16, 255, 32, "Luma level at or below which a pixel is black (16 is black)."
        ),
        "ratio": _number(0, 1, 0.98, "Fraction of black pixels that makes a black frame."),
    },
)

FROZEN_FRAME: Schema = _schema(
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
        "refresh_frames": _integer(
            1, 100, 3, "Frames an encoder refresh may take (a keyframe, then refinements)."
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
        "min_still_s": _number(0, 60, 0.4, "Seconds a run lasts before its frames are reported."),
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
)

BRIGHTNESS: Schema = _schema(
    "brightness",
    {
        "min_level": _number(
            0, 1, 0.1, "Mean level (0 black 16, 1 white 235) under which it is dark."
        ),
        "max_level": _number(0, 1, 0.95, "Mean level (0 black, 1 white) above which it is bright."),
    },
)

TAMPER: Schema = _schema(
    "tamper",
    {
        "interval_s": _number(0, 60, 0.25, "Seconds between two looks (tampering lasts)."),
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
            "Global shift (fraction of the picture's width or height) that is a moved view.",
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
)
