"""Error estimation: Bob counts the mismatches in Alice's sample (the first bits of the
sorting rule, sorting.py), which both sides then discard."""

from __future__ import annotations

from collections.abc import Sequence


def mismatches(own: Sequence[int], indices: Sequence[int], other_bits: Sequence[int]) -> int:
    """How many of the other side's bits at `indices` differ from ours (Bob's answer)."""
    if len(indices) != len(other_bits):
        raise ValueError("sample indices and bits differ in length")
    if any(not 0 <= i < len(own) for i in indices):
        raise ValueError("sample index out of range")
    return sum(own[i] != bit for i, bit in zip(indices, other_bits, strict=True))


def qber(errors: int, compared: int) -> float:
    return errors / compared if compared else 0.0
