"""Latency percentiles, computed one way for every bench that reports them."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], fraction: float) -> float:
    """The `fraction` (0.01 to 0.99, in steps of 0.01) percentile of two or more samples,
    interpolated between the closest ranks (statistics' "inclusive" method, numpy's
    default), in the samples' unit."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[round(fraction * 100) - 1]


def summary_ms(samples: list[float]) -> dict[str, float]:
    """p50 and p99 of `samples` (seconds) in milliseconds, rounded to 0.1 ms."""
    return {
        "p50_ms": round(percentile(samples, 0.50) * 1000, 1),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 1),
    }
