"""The CI guard's rule (bench/guard.py): a ratio fails when it dropped by 30 % or more against the
committed baseline; the figures themselves are for `make bench`, not for tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.guard import TOLERANCE, compare, failed

BASELINE = {"append.batch": 1.0, "outbox.drain": 0.8}


def by_key(baseline: dict[str, float], current: dict[str, float]) -> dict[str, str]:
    return {v.key: v.status for v in compare(baseline, current)}


def test_a_drop_of_30_percent_fails() -> None:
    # given a baseline, when a ratio is 30 % lower
    verdicts = compare(BASELINE, {"append.batch": 0.70, "outbox.drain": 0.8})
    # then it dropped, and only it fails
    assert [(v.key, v.status) for v in failed(verdicts)] == [("append.batch", "dropped")]
    assert "DROPPED" in failed(verdicts)[0].describe()


def test_a_drop_of_29_percent_passes() -> None:
    statuses = by_key(BASELINE, {"append.batch": 0.71, "outbox.drain": 0.8 * 0.71})
    assert statuses == {"append.batch": "ok", "outbox.drain": "ok"}


def test_a_ratio_that_rose_passes() -> None:
    assert by_key(BASELINE, {"append.batch": 3.0, "outbox.drain": 0.81}) == {
        "append.batch": "ok",
        "outbox.drain": "ok",
    }


def test_a_ratio_not_measured_any_more_fails_and_says_what_to_do() -> None:
    verdicts = compare(BASELINE, {"append.batch": 1.0})
    [missing] = failed(verdicts)
    assert (missing.key, missing.status, missing.current) == ("outbox.drain", "missing", None)
    assert "make bench-baseline" in missing.describe()


def test_a_new_ratio_passes_until_it_has_a_baseline() -> None:
    verdicts = compare({}, {"replay.rebuild": 0.9})
    assert [(v.key, v.status, v.failed) for v in verdicts] == [("replay.rebuild", "new", False)]
    assert "make bench-baseline" in verdicts[0].describe()


def test_the_tolerance_is_a_fraction() -> None:
    with pytest.raises(ValueError, match="fraction"):
        compare(BASELINE, BASELINE, tolerance=30)


def test_the_committed_baseline_is_readable() -> None:
    data = json.loads((Path(__file__).parent.parent / "bench" / "baseline.json").read_text())
    assert data["tolerance"] == TOLERANCE
    assert data["ratios"] and all(v > 0 for v in data["ratios"].values())
