"""Injectable time: wall time for timestamps on the wire, monotonic time for lifetimes."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (timestamps that travel)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (lifetimes, windows)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock tests move by hand; both readings advance together."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._wall = float(start)
        self._mono = 1000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a manual clock only moves forward")
        self._wall += seconds
        self._mono += seconds


SYSTEM_CLOCK = SystemClock()
