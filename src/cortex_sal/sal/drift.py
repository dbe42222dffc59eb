"""CDI drift detector, one per sensor (docs/sal.md "drift.py", SYSTEM.md "Shield pipeline" step 7).

Each ``update(c)`` adds the coherency reading ``c`` at ``clock.monotonic()`` to a sliding
window of ``drift_window_s`` and then, in this order:

1. **hard violation** - the window sum is ``> max_coherency_sum_per_minute`` (a sum equal
   to the limit passes); the ``hard_violations_to_block``-th blocks the detector for good;
2. **soft violation** - once a baseline exists, ``|c - mean| / std > soft_z_score`` (a
   z-score equal to the bound passes; a baseline std of 0 means no soft check); the
   ``soft_violations_to_block``-th blocks for good;
3. **recovery** - if no violation was counted by this update, the window sum is strictly
   below ``recovery_fraction * max_coherency_sum_per_minute`` and at least ``drift_window_s``
   has passed since the last violation or the last recovery step, one hard violation is
   forgiven. Never when blocked; soft violations are never forgiven.

Conventions where docs/sal.md is silent (each chosen to err on the side of caution):

* **Window edge**: a reading taken at ``t`` is in the window at ``now`` iff
  ``now - t < drift_window_s``; a reading exactly ``drift_window_s`` old has left (a
  reading at 0 s still counts at 59.999 s and no longer at 60.0 s). The sum is computed
  with ``math.fsum`` over the window, so it is the correctly rounded sum of the readings
  whatever their order (a sum of exactly 2.5 is never pushed over the limit by rounding).
* **Baseline**: the first ``baseline_frames`` readings are collected (every one of them,
  violating or not). Each reading is judged against the baseline of the readings collected
  *before* it - so with ``baseline_min_readings`` (3) collected, the 4th reading is already
  checked - and only then collected itself. (Judging a reading against a baseline that
  contains it would make a soft violation impossible during collection: with n readings,
  ``|z| <= (n - 1) / sqrt(n) < 3`` for n <= 7.) ``std`` is the population standard
  deviation (ddof=0, ``numpy.std``'s default) of the collected readings.
* **"The last violation"** for recovery means the last violation of either kind: a soft
  violation also restarts the one-window wait. A violation counted by an update forbids a
  recovery step in the same update.
* **Blocked**: once blocked the counters, the baseline and the reason are frozen; updates
  still record the reading (``window_sum`` stays truthful) and return the blocked state.
* **Readings** must be finite real numbers ``>= 0`` (coherency is ``std / mean`` of an
  envelope, never negative); a negative reading would lower the window sum and is refused
  with ``InvalidArgumentError``, a non-number with ``WrongTypeError``.
* A clock that goes backwards keeps readings in the window longer and delays recovery
  (never the reverse).
* Thread-safe: one lock per detector.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import InvalidArgumentError, WrongTypeError
from ..governance import DEFAULT_THRESHOLDS, ClinicalThresholds

__all__ = ["CAPACITIES", "DriftDetector", "DriftState"]

CAPACITIES: tuple[str, str, str] = ("FULL", "LIMITED", "NONE")


@dataclass(frozen=True)
class DriftState:
    """What one ``update`` left behind.

    ``reason`` is ``None`` unless this update counted a violation (then it says which and
    why) or the detector is blocked (then it is the reason of the block, on every later
    update). ``hard_violations_to_block`` (default 3) is the policy's number, carried so
    that ``capacity`` follows a non-default policy too.
    """

    hard_violations: int
    soft_violations: int
    blocked: bool
    window_sum: float
    baseline_ready: bool
    reason: str | None
    hard_violations_to_block: int = 3

    @property
    def capacity(self) -> str:
        """``"NONE"`` when blocked or at the block count of hard violations (3), ``"LIMITED"``
        one short of it (2), ``"FULL"`` below that (0-1)."""
        if self.blocked or self.hard_violations >= self.hard_violations_to_block:
            return "NONE"
        if self.hard_violations >= self.hard_violations_to_block - 1:
            return "LIMITED"
        return "FULL"


def _reading(value: object) -> float:
    if type(value) is not float and (isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real)):
        raise WrongTypeError(f"a coherency reading must be a real number, got {type(value).__name__}")
    c = float(value)
    if not math.isfinite(c):
        raise InvalidArgumentError("a coherency reading must be finite (NaN or infinity given)")
    if c < 0.0:
        raise InvalidArgumentError("a coherency reading must be >= 0 (it is std / mean of an envelope)")
    return c


class DriftDetector:
    """The CDI drift detector of one sensor. See the module docstring for the exact rules."""

    def __init__(self, thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS, clock: Clock = SYSTEM_CLOCK) -> None:
        if not isinstance(thresholds, ClinicalThresholds):
            raise WrongTypeError(f"thresholds must be ClinicalThresholds, got {type(thresholds).__name__}")
        if not (callable(getattr(clock, "monotonic", None)) and callable(getattr(clock, "time", None))):
            raise WrongTypeError(f"clock must have time() and monotonic(), got {type(clock).__name__}")
        self._t = thresholds
        self._clock = clock
        self._lock = threading.Lock()
        self._times: deque[float] = deque()  # monotonic time of each reading in the window
        self._values: deque[float] = deque()  # the readings, in the same order
        self._baseline: list[float] = []
        self._ready = False  # at least baseline_min_readings collected
        self._mean = 0.0
        self._std = 0.0
        self._hard = 0
        self._soft = 0
        self._blocked = False
        self._block_reason: str | None = None
        self._last_event: float | None = None  # last violation or recovery step
        self._window_sum = 0.0

    # -- reading ---------------------------------------------------------------------

    @property
    def blocked(self) -> bool:
        return self._blocked

    @property
    def state(self) -> DriftState:
        """The state as of the last update (no reading added); ``reason`` is the block reason or ``None``."""
        with self._lock:
            return self._state(self._block_reason)

    def _state(self, reason: str | None) -> DriftState:
        # positional: hard, soft, blocked, window_sum, baseline_ready, reason, hard_violations_to_block
        return DriftState(
            self._hard,
            self._soft,
            self._blocked,
            self._window_sum,
            self._ready,
            reason,
            self._t.hard_violations_to_block,
        )

    @property
    def thresholds(self) -> ClinicalThresholds:
        """The policy this detector applies."""
        return self._t

    def apply_thresholds(self, thresholds: ClinicalThresholds) -> None:
        """Apply a new policy from the next ``update`` on (a policy change, ``apply_policy``).

        The window, the baseline, the counters and a block are kept: only the rules change
        (a longer window sees the readings still held, a lower block count blocks at the next
        violation). ``thresholds`` that are not :class:`ClinicalThresholds` raise
        ``WrongTypeError`` and change nothing.
        """
        if not isinstance(thresholds, ClinicalThresholds):
            raise WrongTypeError(f"thresholds must be ClinicalThresholds, got {type(thresholds).__name__}")
        with self._lock:
            self._t = thresholds

    # -- update ----------------------------------------------------------------------

    def update(self, coherency: float) -> DriftState:
        """Add one reading (now) and return the resulting state."""
        c = _reading(coherency)
        t = self._t
        with self._lock:
            now = float(self._clock.monotonic())
            times, values = self._times, self._values
            times.append(now)
            values.append(c)
            while times and now - times[0] >= t.drift_window_s:
                times.popleft()
                values.popleft()
            total = math.fsum(values)
            self._window_sum = total
            if self._blocked:
                return self._state(self._block_reason)

            reasons: list[str] = []
            limit = t.max_coherency_sum_per_minute
            if total > limit:
                self._hard += 1
                self._last_event = now
                reasons.append(
                    f"window sum {total:.6g} > {limit:g} over {t.drift_window_s:g} s "
                    f"(hard violation {self._hard} of {t.hard_violations_to_block})"
                )
            if self._std > 0.0:  # only ever > 0 once the baseline is ready
                z = abs(c - self._mean) / self._std
                if z > t.soft_z_score:
                    self._soft += 1
                    self._last_event = now
                    reasons.append(
                        f"z-score {z:.4g} > {t.soft_z_score:g} against the baseline "
                        f"(soft violation {self._soft} of {t.soft_violations_to_block})"
                    )
            if len(self._baseline) < t.baseline_frames:
                self._collect(c)

            if self._hard >= t.hard_violations_to_block or self._soft >= t.soft_violations_to_block:
                self._blocked = True
                self._block_reason = "blocked for good: " + "; ".join(reasons)
                return self._state(self._block_reason)
            if (
                not reasons
                and self._hard > 0
                and total < t.recovery_fraction * limit
                and self._last_event is not None
                and now - self._last_event >= t.drift_window_s
            ):
                self._hard -= 1
                self._last_event = now
            return self._state("; ".join(reasons) if reasons else None)

    def _collect(self, c: float) -> None:
        self._baseline.append(c)
        n = len(self._baseline)
        if n >= self._t.baseline_min_readings:
            self._ready = True
            mean = math.fsum(self._baseline) / n
            self._mean = mean
            self._std = math.sqrt(math.fsum((x - mean) ** 2 for x in self._baseline) / n)
