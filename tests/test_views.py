"""Views: timestamps are written as datetime would write them, to the millisecond."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from ops.api.views import iso


def _datetime_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_iso_is_what_datetime_writes_including_rounding_at_the_edges() -> None:
    rng = random.Random(18)
    edges = [0.0, -0.5, -1.0000004, 1.9999996, 1.0005, 1796065532.4985, 1796065532.9999995,
             2577763818.3249993, 2468233759.1539993]  # fmt: skip
    for ts in edges + [rng.uniform(-1e9, 4e9) for _ in range(20_000)]:
        assert iso(ts) == _datetime_iso(ts), ts
    assert iso(None) is None
