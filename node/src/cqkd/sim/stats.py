"""Percentiles of measured samples: the one definition behind `cqkd local`'s report, the
benches (bench/common/latency.py) and the container scaling study."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` (0 < fraction < 1, to 0.001) percentile of `samples`, interpolated
    between the closest ranks (statistics' "inclusive" method, numpy's default), in the
    samples' unit; one sample is its own percentile. Raises ValueError for no samples."""
    if not samples:
        raise ValueError("no samples")
    if len(samples) == 1:
        return float(samples[0])
    return statistics.quantiles(samples, n=1000, method="inclusive")[round(fraction * 1000) - 1]
