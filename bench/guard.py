"""The CI guard's rule: a guarded ratio fails when it dropped by ``TOLERANCE`` (30 %) or more
against the committed baseline (``bench/baseline.json``); absolute times are never compared.

A guarded ratio is a rate of vigil's path over the raw limit measured in the same run on the same
server, higher is better (``common.Row.guard``). Verdicts, per key of either side:

- ``ok``       within the tolerance (or better than the baseline);
- ``dropped``  current <= baseline x (1 - tolerance): fails;
- ``missing``  in the baseline, not measured now (its bench failed or no longer reports it):
               fails; if the row was removed on purpose, write the baseline again;
- ``new``      measured now, not in the baseline: passes (write the baseline to guard it).

Pure (no I/O): ``bench/run.py`` reads and writes the files, ``tests/test_bench_guard.py`` tests
this.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["TOLERANCE", "Verdict", "compare", "failed"]

TOLERANCE = 0.30
"""A drop of this fraction of the baseline's ratio or more fails."""

Status = Literal["ok", "dropped", "missing", "new"]


@dataclass(frozen=True)
class Verdict:
    key: str
    status: Status
    baseline: float | None = None
    current: float | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("dropped", "missing")

    @property
    def change(self) -> float | None:
        """current / baseline - 1 (-0.3: a 30 % drop), when both are known."""
        if self.baseline is None or self.current is None or self.baseline <= 0:
            return None
        return self.current / self.baseline - 1

    def describe(self) -> str:
        if self.status == "missing":
            return (f"{self.key}: baseline {self.baseline:.3f}, not measured now (its bench failed"
                    " or no longer reports it; if removed on purpose: make bench-baseline)")  # fmt: skip
        if self.status == "new":
            return f"{self.key}: {self.current:.3f}, new (no baseline yet: make bench-baseline)"
        change = self.change
        said = f"{change:+.0%}" if change is not None else "?"
        verdict = "DROPPED" if self.status == "dropped" else "ok"
        return f"{self.key}: {self.current:.3f} vs baseline {self.baseline:.3f} ({said}) {verdict}"


def compare(
    baseline: Mapping[str, float], current: Mapping[str, float], tolerance: float = TOLERANCE
) -> list[Verdict]:
    """One verdict per key of ``baseline`` or ``current``, sorted by key."""
    if not 0 < tolerance < 1:
        raise ValueError(f"tolerance {tolerance} must be a fraction between 0 and 1 (0.3 = 30 %)")
    verdicts = []
    for key in sorted(set(baseline) | set(current)):
        base, now = baseline.get(key), current.get(key)
        if base is None:
            verdicts.append(Verdict(key, "new", None, now))
        elif now is None:
            verdicts.append(Verdict(key, "missing", base, None))
        elif now <= base * (1 - tolerance) + 1e-12 * abs(base):
            verdicts.append(Verdict(key, "dropped", base, now))
        else:
            verdicts.append(Verdict(key, "ok", base, now))
    return verdicts


def failed(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.failed]
