"""Latency summaries for the benches, with the project's one percentile
(cqkd.sim.stats.percentile)."""

from __future__ import annotations

from cqkd.sim.stats import percentile

__all__ = ["percentile", "summary_ms"]


def summary_ms(samples: list[float]) -> dict[str, float]:
    """p50 and p99 of `samples` (seconds) in milliseconds, rounded to 0.1 ms."""
    return {
        "p50_ms": round(percentile(samples, 0.50) * 1000, 1),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 1),
    }
