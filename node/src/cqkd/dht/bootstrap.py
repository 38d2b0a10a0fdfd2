"""Choosing which bootstrap node a joining node contacts: the seed's four strategies.

A bootstrap that fails `FAILURE_LIMIT` times in a row is unhealthy and skipped while a
healthy one exists. At most `max_connections` joins are steered to one bootstrap per
`interval`; when every candidate is at that cap the join still goes ahead (the cap spreads
load, it never blocks a node from joining).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

Address = tuple[str, int]
FAILURE_LIMIT = 3


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    LEAST_LOADED = "least_loaded"
    PRIORITY = "priority"
    RANDOM = "random"


@dataclass
class BootstrapState:
    address: Address
    priority: int
    failures: int = 0
    reported_load: int = 0
    steered: deque[float] = field(default_factory=deque)

    @property
    def healthy(self) -> bool:
        return self.failures < FAILURE_LIMIT


class BootstrapSelector:
    """Picks bootstrap addresses; the list order is the priority order."""

    def __init__(
        self,
        addresses: list[Address],
        strategy: Strategy,
        max_connections: int = 50,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        start: int = 0,
    ) -> None:
        if not addresses:
            raise ValueError("at least one bootstrap address is required")
        self.strategy = strategy
        self.max_connections = max_connections
        self.interval = interval
        self._clock = clock
        self._rng = rng or random.Random()
        self._states = [BootstrapState(addr, i) for i, addr in enumerate(addresses)]
        self._by_address = {s.address: s for s in self._states}
        self._cursor = start % len(self._states)

    @property
    def states(self) -> list[BootstrapState]:
        return list(self._states)

    def _steered_now(self, state: BootstrapState) -> int:
        horizon = self._clock() - self.interval
        while state.steered and state.steered[0] <= horizon:
            state.steered.popleft()
        return len(state.steered)

    def _candidates(self, exclude: set[Address]) -> list[BootstrapState]:
        pool = [s for s in self._states if s.address not in exclude]
        healthy = [s for s in pool if s.healthy]
        pool = healthy or pool
        below_cap = [s for s in pool if self._steered_now(s) < self.max_connections]
        return below_cap or pool

    def select(self, exclude: set[Address] | None = None) -> Address | None:
        """The next bootstrap to contact, or None when every address is excluded."""
        candidates = self._candidates(exclude or set())
        if not candidates:
            return None
        if self.strategy is Strategy.ROUND_ROBIN:
            size = len(self._states)
            allowed = {s.priority for s in candidates}
            while self._cursor not in allowed:
                self._cursor = (self._cursor + 1) % size
            chosen = self._states[self._cursor]
            self._cursor = (self._cursor + 1) % size
        elif self.strategy is Strategy.LEAST_LOADED:
            chosen = min(
                candidates, key=lambda s: (s.reported_load + self._steered_now(s), s.priority)
            )
        elif self.strategy is Strategy.PRIORITY:
            chosen = min(candidates, key=lambda s: s.priority)
        else:
            chosen = self._rng.choice(candidates)
        chosen.steered.append(self._clock())
        return chosen.address

    def record_success(self, address: Address) -> None:
        self._by_address[address].failures = 0

    def record_failure(self, address: Address) -> None:
        self._by_address[address].failures += 1

    def record_load(self, address: Address, load: int) -> None:
        self._by_address[address].reported_load = load
