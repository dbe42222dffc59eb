"""Injectable time: wall time for timestamps on the wire, monotonic time for lifetimes."""

from __future__ import annotations

import math
import numbers
import time
from typing import Protocol

from .errors import InvalidArgumentError, WrongTypeError


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
        self._wall = _seconds(start, "start")
        self._mono = 1000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if _seconds(seconds, "seconds") < 0:
            raise InvalidArgumentError("a manual clock only moves forward")
        self._wall += seconds
        self._mono += seconds


class ScaledClock:
    """A clock that runs ``factor`` times faster than the system's from the moment it is made.

    For a demo that replays recordings faster than real time: the receiving side's lifetimes and
    windows (drift, liveness, consent) then see the data's own timing, not the playback's."""

    def __init__(self, factor: float) -> None:
        f = _seconds(factor, "factor")
        if not 0 < f <= 10_000:
            raise InvalidArgumentError(f"factor must be in (0, 10000], got {factor!r}")
        self._factor = f
        self._wall0, self._mono0 = time.time(), time.monotonic()

    def time(self) -> float:
        return self._wall0 + (time.monotonic() - self._mono0) * self._factor

    def monotonic(self) -> float:
        return self._mono0 + (time.monotonic() - self._mono0) * self._factor


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise WrongTypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise InvalidArgumentError(f"{what} must be a finite number of seconds, got {value!r}")
    return seconds


SYSTEM_CLOCK = SystemClock()
