"""Score reported intervals against a clip's ground truth, per event kind, in frames.

A reported interval ``[started_at, ended_at)`` (stream seconds, half-open) becomes frames
``[round(started_at * fps), round(ended_at * fps))``. Each truth span is matched with at most one
report (the one overlapping it most, "either" frames around the span included) and each report
with at most one span. Unmatched spans are misses; unmatched reports are false positives unless
they lie wholly in frames labelled "either" (then they are ignored). A matched boundary inside
the span's "either" frames has no error; otherwise the error is its distance, in frames, to them
(positive: late, negative: early).

    card = score(truth(clip), found)
    card.kinds["frozen_frame"].misses  # 0
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from analytics.accuracy.truth import KINDS, Span, Truth

__all__ = ["Found", "KindScore", "ScoreCard", "score"]


@dataclass(frozen=True)
class Found:
    """One interval a detector reported: event kind and ``[started_at, ended_at)`` in seconds."""

    kind: str
    started_at: float
    ended_at: float


@dataclass
class KindScore:
    """How one detector did on one event kind of one clip."""

    truths: int = 0
    reported: int = 0
    hits: int = 0
    misses: int = 0
    false_positives: int = 0
    start_errors: list[int] = field(default_factory=list)
    end_errors: list[int] = field(default_factory=list)
    missed: list[Span] = field(default_factory=list)
    spurious: list[tuple[int, int]] = field(default_factory=list)

    @property
    def worst_start(self) -> int:
        return max((abs(e) for e in self.start_errors), default=0)

    @property
    def worst_end(self) -> int:
        return max((abs(e) for e in self.end_errors), default=0)

    @property
    def worst(self) -> int:
        return max(self.worst_start, self.worst_end)

    @property
    def errors(self) -> int:
        """Misses plus false positives."""
        return self.misses + self.false_positives

    def within(self, frames: int) -> bool:
        """No miss, no false positive and every boundary within ``frames``."""
        return self.errors == 0 and self.worst <= frames


@dataclass
class ScoreCard:
    """Scores of every event kind of one clip."""

    kinds: dict[str, KindScore] = field(default_factory=dict)


def _boundary_error(value: int, at: int, slack_before: int, slack_after: int) -> int:
    if value < at - slack_before:
        return value - (at - slack_before)
    if value > at + slack_after:
        return value - (at + slack_after)
    return 0


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def score_kind(truth: Truth, kind: str, found: Iterable[Found]) -> KindScore:
    """Match the reports of ``kind`` with its truth spans."""
    spans = truth.spans(kind)
    reports = sorted(
        (
            round(f.started_at * truth.fps),
            max(round(f.ended_at * truth.fps), 1 + round(f.started_at * truth.fps)),
        )
        for f in found
        if f.kind == kind
    )
    result = KindScore(truths=len(spans), reported=len(reports))
    pairs = sorted(
        (
            (-_overlap(r0, r1, s.start - s.early, s.end + s.late), ri, si)
            for ri, (r0, r1) in enumerate(reports)
            for si, s in enumerate(spans)
        ),
    )
    used_reports: set[int] = set()
    used_spans: set[int] = set()
    for negative, ri, si in pairs:
        if negative == 0 or ri in used_reports or si in used_spans:
            continue
        used_reports.add(ri)
        used_spans.add(si)
        (r0, r1), span = reports[ri], spans[si]
        result.hits += 1
        result.start_errors.append(_boundary_error(r0, span.start, span.early, 0))
        result.end_errors.append(_boundary_error(r1, span.end, 0, span.late))
    for si, span in enumerate(spans):
        if si not in used_spans:
            result.misses += 1
            result.missed.append(span)
    for ri, (r0, r1) in enumerate(reports):
        if ri not in used_reports and not truth.is_either(kind, r0, r1):
            result.false_positives += 1
            result.spurious.append((r0, r1))
    return result


def score(truth: Truth, found: Iterable[Found], kinds: Iterable[str] = KINDS) -> ScoreCard:
    """Score every kind of ``kinds`` (all by default) against ``truth``."""
    found = list(found)
    return ScoreCard(kinds={kind: score_kind(truth, kind, found) for kind in kinds})
