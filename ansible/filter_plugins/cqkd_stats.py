"""Percentiles for the plays' summaries (the verify play's discovery line)."""

from __future__ import annotations

import math
from typing import Any


def percentile(values: list[Any], fraction: float) -> float | None:
    """The nearest-rank percentile (fraction 0..1) of numbers; None for no numbers."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"cqkd_percentile": percentile}
