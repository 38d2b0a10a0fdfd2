"""Error estimation: Alice picks a random sample of sifted positions and sacrifices it."""

from __future__ import annotations

from collections.abc import Sequence

from cqkd.qkd.sorting import random_permutation


def choose_sample(candidates: int, size: int) -> list[int]:
    """`size` distinct indices of 0..candidates-1, uniformly (CSPRNG), in increasing order."""
    if not 0 <= size <= candidates:
        raise ValueError(f"cannot sample {size} of {candidates} bits")
    # The first `size` of a uniform permutation: one CSPRNG call and a sort, where
    # SystemRandom.sample asks the OS for each index.
    return sorted(random_permutation(candidates)[:size])


def mismatches(own: Sequence[int], indices: Sequence[int], other_bits: Sequence[int]) -> int:
    """How many of the other side's bits at `indices` differ from ours (Bob's answer)."""
    if len(indices) != len(other_bits):
        raise ValueError("sample indices and bits differ in length")
    if any(not 0 <= i < len(own) for i in indices):
        raise ValueError("sample index out of range")
    return sum(own[i] != bit for i, bit in zip(indices, other_bits, strict=True))


def remove_indices(key: bytearray, indices: Sequence[int]) -> bytearray:
    """The key without the sacrificed positions."""
    kept = bytearray(key)
    for i in sorted(set(indices), reverse=True):
        del kept[i]
    return kept


def qber(errors: int, compared: int) -> float:
    return errors / compared if compared else 0.0
