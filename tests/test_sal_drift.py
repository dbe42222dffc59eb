"""CDI drift detector (docs/sal.md ``drift.py``): boundary tables on a manual clock.

Expected outcomes follow from the design's numbers (limit 2.5 per 60 s window, 3 hard /
5 soft violations block, baseline from >= 3 of the first 7 readings, z > 3, recovery below
60 % after a full window), never from running the detector.

Edge conventions under test (stated in drift.py): a reading ``t`` seconds old is in the
window iff ``t < 60`` (at 59.999 s it counts, at 60.0 s it has left); recovery needs at
least 60 s since the last violation or recovery step (59.999 s: no, 60.0 s: yes) and a
window sum strictly below 1.5; each reading is judged against the baseline collected
before it.
"""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.clock import ManualClock
from cortex_sal.errors import InvalidArgumentError, WrongTypeError
from cortex_sal.governance import DEFAULT_THRESHOLDS as T
from cortex_sal.governance import ClinicalThresholds
from cortex_sal.sal.drift import DriftDetector, DriftState
from hypothesis_profiles import examples

LIMIT = 2.5
WINDOW = 60.0
RECOVERY_BELOW = 1.5  # 60 % of 2.5

# Seven baseline readings with mean exactly 0.25 and population std exactly 0.0625:
# 0.25 + d / 32 for deviations d = (-4, -2, 1, 1, 1, 1, 2) (sum 0, sum of squares 28 = 7 * 2^2).
BASELINE = [0.25 + d / 32 for d in (-4, -2, 1, 1, 1, 1, 2)]
B_MEAN, B_STD = 0.25, 0.0625


def test_the_design_numbers() -> None:
    assert T.max_coherency_sum_per_minute == LIMIT and T.drift_window_s == WINDOW
    assert T.hard_violations_to_block == 3 and T.soft_violations_to_block == 5
    assert T.baseline_frames == 7 and T.baseline_min_readings == 3 and T.soft_z_score == 3.0
    assert T.recovery_fraction * T.max_coherency_sum_per_minute == RECOVERY_BELOW
    assert math.fsum(BASELINE) / 7 == B_MEAN
    assert math.sqrt(math.fsum((b - B_MEAN) ** 2 for b in BASELINE) / 7) == B_STD


class Feed:
    """A detector on a manual clock, fed (seconds since start, reading) pairs."""

    def __init__(self, thresholds: ClinicalThresholds = T) -> None:
        self.clock = ManualClock()
        self.start = self.clock.monotonic()
        self.detector = DriftDetector(thresholds=thresholds, clock=self.clock)
        self.at = 0.0
        self.states: list[DriftState] = []

    def __call__(self, at: float, c: float) -> DriftState:
        assert at >= self.at
        # land on start + at exactly (summing advances would accumulate rounding at the edges)
        self.clock.advance((self.start + at) - self.clock.monotonic())
        self.at = at
        state = self.detector.update(c)
        self.states.append(state)
        return state

    def many(self, readings: list[tuple[float, float]]) -> DriftState:
        for at, c in readings:
            self(at, c)
        return self.states[-1]

    def baseline(self, start: float = 0.0) -> float:
        """The seven BASELINE readings, one window apart (each window holds one reading)."""
        at = start
        for c in BASELINE:
            state = self(at, c)
            assert state.hard_violations == 0 and state.soft_violations == 0
            at += WINDOW
        assert self.states[-1].baseline_ready
        return at


def run(readings: list[tuple[float, float]]) -> DriftState:
    return Feed().many(readings)


# -- hard violations and the window ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "readings", "hard", "window_sum"),
    [
        ("one reading at the limit", [(0, 2.5)], 0, 2.5),
        ("one reading just above", [(0, math.nextafter(2.5, 3.0))], 1, math.nextafter(2.5, 3.0)),
        ("sum exactly 2.5", [(0, 1.0), (1, 1.0), (2, 0.5)], 0, 2.5),
        ("sum 2.5 + 1e-9", [(0, 1.0), (1, 1.0), (2, 0.5 + 1e-9)], 1, 2.5 + 1e-9),
        # 0.04 + 2.24 + 0.22 is 2.5000000000000004 added left to right, 2.5 correctly rounded
        ("decimal readings summing to 2.5", [(0, 0.04), (1, 2.24), (2, 0.22)], 0, 2.5),
        ("sum 2.6: one violation", [(0, 2.0), (1, 0.6)], 1, 2.6),
        ("every update above the limit counts", [(0, 2.0), (1, 0.6), (2, 0.1)], 2, 2.7),
    ],
)
def test_window_sum_limit(name: str, readings: list[tuple[float, float]], hard: int, window_sum: float) -> None:
    state = run(readings)
    assert state.hard_violations == hard, name
    assert state.window_sum == pytest.approx(window_sum, abs=1e-15)
    assert state.blocked is False
    assert (state.reason is None) == (hard == 0)


@pytest.mark.parametrize(
    ("age", "in_window"), [(0.0, True), (30.0, True), (59.9, True), (59.999, True), (60.0, False), (60.001, False)]
)
def test_window_edge(age: float, in_window: bool) -> None:
    state = run([(0.0, 2.0), (age, 0.6)])
    assert state.hard_violations == (1 if in_window else 0)
    assert state.window_sum == pytest.approx(2.6 if in_window else 0.6, abs=1e-12)


def test_readings_leave_one_by_one() -> None:
    feed = Feed()
    feed.many([(0, 0.5), (10, 0.25), (20, 0.125)])
    assert feed(59.999, 0.0).window_sum == 0.875
    assert feed(60.0, 0.0).window_sum == 0.375
    assert feed(70.0, 0.0).window_sum == 0.125
    assert feed(80.0, 0.0).window_sum == 0.0


def test_third_hard_violation_blocks_for_good() -> None:
    feed = Feed()
    s1, s2 = feed(0, 2.6), feed(1, 0.0)
    assert (s1.hard_violations, s1.capacity, s1.blocked) == (1, "FULL", False)
    assert (s2.hard_violations, s2.capacity, s2.blocked) == (2, "LIMITED", False)
    s3 = feed(2, 0.0)
    assert (s3.hard_violations, s3.capacity, s3.blocked) == (3, "NONE", True)
    assert s3.reason is not None and "blocked" in s3.reason and "window sum" in s3.reason
    # every recovery condition met, many times over: still blocked, nothing forgiven
    at = 2.0
    for _ in range(10):
        at += 10 * WINDOW
        state = feed(at, 0.0)
        assert state.blocked and state.hard_violations == 3 and state.capacity == "NONE"
        assert state.reason == s3.reason
        assert state.window_sum == 0.0
    assert feed.detector.blocked and feed.detector.state.blocked


def test_a_blocked_detector_keeps_recording_but_counts_nothing() -> None:
    feed = Feed()
    feed.many([(0, 2.6), (1, 0.0), (2, 0.0)])
    state = feed(3, 5.0)
    assert (
        state.window_sum == pytest.approx(7.6, abs=1e-15) and state.hard_violations == 3 and state.soft_violations == 0
    )


# -- soft violations ---------------------------------------------------------------------------------


def test_baseline_needs_three_readings() -> None:
    feed = Feed()
    assert feed(0, 0.1).baseline_ready is False
    assert feed(60, 0.2).baseline_ready is False
    assert feed(120, 0.3).baseline_ready is True


@pytest.mark.parametrize(
    ("reading", "soft"),
    [
        (B_MEAN + 3 * B_STD, 0),  # z exactly 3.0: no violation
        (B_MEAN - 3 * B_STD, 0),
        (math.nextafter(B_MEAN + 3 * B_STD, 1.0), 1),
        (B_MEAN + 3 * B_STD + 1e-9, 1),
        (B_MEAN - 3 * B_STD - 1e-12, 1),
        (0.0, 1),  # z = 4
        (B_MEAN, 0),
        (2.0, 1),  # z = 28, still below the hard limit on its own
    ],
)
def test_soft_z_score_boundary(reading: float, soft: int) -> None:
    assert abs(B_MEAN + 3 * B_STD - 0.4375) == 0.0  # exact in binary: z is computed exactly
    feed = Feed()
    at = feed.baseline()
    state = feed(at, reading)
    assert state.soft_violations == soft
    assert state.hard_violations == 0
    assert (state.reason is not None) == bool(soft)
    if soft:
        assert "z-score" in state.reason  # type: ignore[operator]


def test_the_fourth_reading_is_judged_against_the_first_three() -> None:
    # baseline 0.25, 0.5, 0.75: mean 0.5, std sqrt(1/24) ~ 0.2041
    std = math.sqrt(1 / 24)
    far = run([(0, 0.25), (60, 0.5), (120, 0.75), (180, 0.5 + 3.5 * std)])
    assert far.soft_violations == 1  # judged against a baseline that contained it, z would be ~1.5
    near = run([(0, 0.25), (60, 0.5), (120, 0.75), (180, 0.5 + 2.9 * std)])
    assert near.soft_violations == 0


def test_no_soft_check_before_three_readings() -> None:
    state = run([(0, 0.25), (60, 0.25), (120, 2.0)])
    assert state.soft_violations == 0 and state.baseline_ready


def test_a_flat_baseline_means_no_soft_check() -> None:
    feed = Feed()
    for i in range(7):
        feed(60.0 * i, 0.25)
    assert feed(420, 2.4).soft_violations == 0


def test_collection_stops_after_seven_and_the_fifth_soft_violation_blocks() -> None:
    feed = Feed()
    at = feed.baseline()
    outlier = 1.0  # z = 12 against the baseline; below the hard limit
    for k in range(1, 5):
        state = feed(at, outlier)
        at += WINDOW
        # if the outliers were collected the baseline would widen and stop flagging them
        assert (state.soft_violations, state.blocked, state.capacity) == (k, False, "FULL")
    fifth = feed(at, outlier)
    assert (fifth.soft_violations, fifth.hard_violations, fifth.blocked) == (5, 0, True)
    assert fifth.capacity == "NONE"
    assert fifth.reason is not None and "blocked" in fifth.reason and "z-score" in fifth.reason
    later = feed(at + 100 * WINDOW, B_MEAN)
    assert later.blocked and later.soft_violations == 5


def test_soft_violations_during_collection_are_collected_too() -> None:
    # readings 4..7 are judged against the readings before them, then collected
    std3 = math.sqrt(1 / 24)
    state = run([(0, 0.25), (60, 0.5), (120, 0.75), (180, 0.5 + 4 * std3)])
    assert state.soft_violations == 1
    # the 5th reading is judged against 4 readings including the outlier: wider, so 0.5 passes
    assert run([(0, 0.25), (60, 0.5), (120, 0.75), (180, 0.5 + 4 * std3), (240, 0.5)]).soft_violations == 1


# -- recovery -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reading", "forgiven"), [(1.4999, True), (math.nextafter(1.5, 0.0), True), (1.5, False)])
def test_recovery_needs_the_sum_below_sixty_percent(reading: float, forgiven: bool) -> None:
    feed = Feed()
    assert feed(0, 2.6).hard_violations == 1
    state = feed(60, reading)  # the 2.6 has just left the window
    assert state.window_sum == reading
    assert state.hard_violations == (0 if forgiven else 1)


@pytest.mark.parametrize(("since", "forgiven"), [(59.999, False), (60.0, True)])
def test_recovery_needs_a_full_window_since_the_violation(since: float, forgiven: bool) -> None:
    feed = Feed()
    feed(0, 2.0)
    assert feed(30, 0.6).hard_violations == 1  # the violation is at 30 s
    state = feed(30 + since, 0.1)
    assert state.window_sum < RECOVERY_BELOW
    assert state.hard_violations == (0 if forgiven else 1)
    assert state.reason is None


def test_one_hard_violation_per_window() -> None:
    feed = Feed()
    feed(0, 2.6)
    assert feed(1, 0.0).hard_violations == 2
    assert feed(61, 0.0).hard_violations == 1  # a full window since the violation at 1 s
    assert feed(62, 0.0).hard_violations == 1
    assert feed(120.999, 0.0).hard_violations == 1
    state = feed(121, 0.0)  # a full window since the recovery step at 61 s
    assert state.hard_violations == 0 and state.capacity == "FULL"
    assert feed(1000, 0.0).hard_violations == 0  # never below zero


def test_a_soft_violation_restarts_the_wait() -> None:
    feed = Feed()
    at = feed.baseline()  # 420 s
    assert feed(at, 2.6).hard_violations == 1  # also a soft violation (z = 37.6)
    soft_at = at + WINDOW
    state = feed(soft_at, 0.5)  # z = 4: soft only, no recovery in the same update
    assert (state.hard_violations, state.soft_violations) == (1, 2)
    assert feed(soft_at + 1, B_MEAN).hard_violations == 1  # 61 s since the hard one, 1 s since the soft one
    assert feed(soft_at + WINDOW, B_MEAN).hard_violations == 0


def test_no_recovery_while_the_window_stays_high() -> None:
    feed = Feed()
    feed(0, 2.6)
    for k in range(1, 6):
        state = feed(WINDOW * k, 1.6)  # alone in its window: no violation, but not below 1.5
        assert state.hard_violations == 1 and state.window_sum == 1.6


# -- capacity ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hard", "blocked", "capacity"),
    [
        (0, False, "FULL"),
        (1, False, "FULL"),
        (2, False, "LIMITED"),
        (3, False, "NONE"),
        (4, False, "NONE"),
        (0, True, "NONE"),
        (1, True, "NONE"),
        (2, True, "NONE"),
        (3, True, "NONE"),
    ],
)
def test_capacity_mapping(hard: int, blocked: bool, capacity: str) -> None:
    assert DriftState(hard, 0, blocked, 0.0, False, None).capacity == capacity


@pytest.mark.parametrize(("hard", "capacity"), [(0, "FULL"), (1, "FULL"), (2, "LIMITED"), (3, "NONE")])
def test_capacity_from_the_detector(hard: int, capacity: str) -> None:
    readings = [(0.0, 2.6)] + [(float(i), 0.0) for i in range(1, hard)] if hard else [(0.0, 0.1)]
    state = run(readings)
    assert state.hard_violations == hard and state.capacity == capacity


def test_drift_state_is_frozen() -> None:
    state = run([(0, 0.1)])
    with pytest.raises(AttributeError):
        state.blocked = True  # type: ignore[misc]


# -- another policy -----------------------------------------------------------------------------------------


def test_the_detector_follows_the_policy_in_force() -> None:
    policy = ClinicalThresholds(
        max_coherency_sum_per_minute=1.0, drift_window_s=10.0, hard_violations_to_block=2, soft_z_score=100.0
    )
    feed = Feed(policy)
    assert feed(0, 1.0).hard_violations == 0
    s = feed(5, 0.1)
    assert (s.hard_violations, s.capacity) == (1, "LIMITED")
    assert feed(10, 0.1).window_sum == pytest.approx(0.2)  # the reading at 0 s has left a 10 s window
    assert feed(15, 0.0).hard_violations == 0  # 10 s since the violation, sum 0.1 < 0.6
    s = feed(16, 1.5)
    assert (s.hard_violations, s.blocked) == (1, False)
    assert feed(17, 0.0).blocked


# -- bad input -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.1, -1e-300])
def test_bad_readings_are_refused_and_change_nothing(bad: float) -> None:
    feed = Feed()
    feed(0, 1.0)
    with pytest.raises(InvalidArgumentError):
        feed.detector.update(bad)
    state = feed(1, 1.5)
    assert state.window_sum == 2.5 and state.hard_violations == 0  # the bad reading was not added


@pytest.mark.parametrize("wrong", [True, "0.2", None, 0.2j, [0.2]])
def test_non_numbers_are_wrong_type(wrong: object) -> None:
    with pytest.raises(WrongTypeError):
        DriftDetector(clock=ManualClock()).update(wrong)  # type: ignore[arg-type]


def test_constructor_checks() -> None:
    with pytest.raises(WrongTypeError):
        DriftDetector(thresholds={"drift_window_s": 60})  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        DriftDetector(clock=object())  # type: ignore[arg-type]


def test_integer_and_numpy_readings() -> None:
    import numpy as np

    state = run([(0, 1), (1, np.float32(0.5)), (2, np.float64(1.0))])
    assert state.window_sum == 2.5 and state.hard_violations == 0


# -- properties ------------------------------------------------------------------------------------------------


@settings(max_examples=examples(80), deadline=None)
@given(st.lists(st.tuples(st.floats(0, 50), st.floats(0, 2.0)), min_size=1, max_size=40))
def test_window_sum_is_the_sum_of_readings_younger_than_the_window(steps: list[tuple[float, float]]) -> None:
    feed = Feed()
    at = 0.0
    seen: list[tuple[float, float]] = []
    for gap, c in steps:
        at += gap
        state = feed(at, c)
        seen.append((feed.clock.monotonic(), c))
        now = feed.clock.monotonic()
        assert state.window_sum == math.fsum(v for t, v in seen if now - t < WINDOW)
        assert 0 <= state.hard_violations <= 3 and state.soft_violations <= 5
        assert state.capacity in ("FULL", "LIMITED", "NONE")
        assert state.blocked == (state.hard_violations >= 3 or state.soft_violations >= 5)


def test_concurrent_updates_are_all_recorded() -> None:
    clock = ManualClock()
    detector = DriftDetector(clock=clock)

    def worker() -> None:
        for _ in range(500):
            detector.update(1e-4)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert detector.update(0.0).window_sum == math.fsum([1e-4] * 2000)


def test_apply_thresholds_changes_the_rules_and_keeps_the_window() -> None:
    clock = ManualClock()
    detector = DriftDetector(clock=clock)
    assert detector.thresholds is T
    for _ in range(3):
        assert not detector.update(0.5).blocked  # window sum 1.5 <= 2.5
    strict = ClinicalThresholds(max_coherency_sum_per_minute=1.0, hard_violations_to_block=1)
    detector.apply_thresholds(strict)
    assert detector.thresholds is strict
    state = detector.update(0.1)  # the readings still in the window now exceed the new limit
    assert state.window_sum == pytest.approx(1.6) and state.blocked and state.hard_violations_to_block == 1


def test_apply_thresholds_refuses_what_is_not_a_policy() -> None:
    detector = DriftDetector(clock=ManualClock())
    with pytest.raises(WrongTypeError):
        detector.apply_thresholds({"max_coherency_sum_per_minute": 1e9})  # type: ignore[arg-type]
    assert detector.thresholds is T
