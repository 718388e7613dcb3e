"""Decision-time summaries: count, p50/p90/p95/p99, max and mean, in seconds.

Percentiles are ``statistics.quantiles(data, n=100, method="inclusive")``: linear interpolation between the
closest ranks over the observed range (the same as Excel ``PERCENTILE.INC`` and numpy's default), so p0 would be
the fastest decision and p100 the slowest, and a percentile never lies outside what was measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

#: The percentiles reported, in order.
PERCENTILES = (50, 90, 95, 99)
METHOD = "statistics.quantiles(n=100, method='inclusive')"


@dataclass(frozen=True)
class DurationStats:
    """Seconds from the payer receiving a request to its first final answer; None when nothing was decided."""

    count: int
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None
    mean: float | None


def duration_stats(seconds: Sequence[float]) -> DurationStats:
    """Summarise ``seconds`` (any order)."""
    data = sorted(seconds)
    if not data:
        return DurationStats(0, None, None, None, None, None, None)
    # Python < 3.13 wants two points for quantiles; one point is every percentile of itself.
    cuts = statistics.quantiles(data, n=100, method="inclusive") if len(data) > 1 else [data[0]] * 99
    p50, p90, p95, p99 = (cuts[p - 1] for p in PERCENTILES)
    return DurationStats(len(data), p50, p90, p95, p99, data[-1], statistics.fmean(data))


def stats_as_json(stats: DurationStats) -> dict[str, float | int | None]:
    return {"count": stats.count, "p50": stats.p50, "p90": stats.p90, "p95": stats.p95, "p99": stats.p99,
            "max": stats.max, "mean": stats.mean}
