"""The set of feedback seqs already counted, per agent (and day): a floor plus disjoint ranges.

Pure and small, so that it can be kept for every closed day of years: an agent's seqs of one day
are nearly one range. `mark_applied` is the one step; `is_applied` the one question.
"""

from __future__ import annotations

import bisect

import msgspec

__all__ = ["MAX_RANGES", "AppliedSeqs", "is_applied", "mark_applied"]

MAX_RANGES = 1024
"""Ranges kept above an agent's floor (per day) before the lowest gap is closed."""


class AppliedSeqs(msgspec.Struct, frozen=True, kw_only=True):
    """Seqs of one agent already counted: all of ``1..floor`` plus the closed ``ranges`` above.

    ``ranges`` are sorted, disjoint, non-adjacent ``(lo, hi)`` pairs with ``lo > floor + 1``.
    """

    floor: int = 0
    ranges: tuple[tuple[int, int], ...] = ()


def is_applied(seqs: AppliedSeqs, seq: int) -> bool:
    """True if `seq` was counted already (or lies in a closed gap)."""
    if seq <= seqs.floor:
        return True
    i = bisect.bisect_right(seqs.ranges, seq, key=lambda r: r[0]) - 1
    return i >= 0 and seqs.ranges[i][1] >= seq


def mark_applied(
    seqs: AppliedSeqs, seq: int, *, max_ranges: int = MAX_RANGES
) -> tuple[AppliedSeqs, int]:
    """The set with `seq` added, and how many gaps had to be closed to stay within `max_ranges`.

    `seq` must not be applied yet (check `is_applied` first).
    """
    ranges = list(seqs.ranges)
    i = bisect.bisect_right(ranges, seq, key=lambda r: r[0])  # ranges[:i] start at or below seq
    left = i > 0 and ranges[i - 1][1] + 1 == seq
    right = i < len(ranges) and ranges[i][0] - 1 == seq
    if left and right:
        ranges[i - 1 : i + 1] = [(ranges[i - 1][0], ranges[i][1])]
    elif left:
        ranges[i - 1] = (ranges[i - 1][0], seq)
    elif right:
        ranges[i] = (seq, ranges[i][1])
    else:
        ranges.insert(i, (seq, seq))
    floor = seqs.floor
    closed = 0
    while ranges and (ranges[0][0] == floor + 1 or len(ranges) > max_ranges):
        if ranges[0][0] != floor + 1:
            closed += 1
        floor = ranges.pop(0)[1]
    return AppliedSeqs(floor=floor, ranges=tuple(ranges)), closed
