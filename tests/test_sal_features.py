"""Phase A, spectral bins, bridge, coherency and labels (docs/sal.md ``features.py``).

Known answers never come from the code under test: Phase A is checked against an analytic
signal built here from ``scipy.fft`` (the textbook one-sided spectrum) and against a
periodic sine whose envelope is known in closed form; spectral bins against a hand-rolled
``numpy.fft`` band sum and pure tones; the bridge, coherency and labels against boundary
tables written from the design's numbers.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pytest
import scipy.fft
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cortex_sal.errors import InvalidArgumentError, WrongTypeError
from cortex_sal.governance import DEFAULT_THRESHOLDS as T
from cortex_sal.governance import ClinicalThresholds
from cortex_sal.sal import features as F
from cortex_sal.sal.features import (
    LABELS,
    bridge_check,
    bridge_check_batch,
    coherency,
    coherency_batch,
    phase_a,
    phase_a_batch,
    spectral_bins,
    spectral_bins_batch,
    state_label,
    state_label_batch,
)
from hypothesis_profiles import examples

N = 256
SECRET = 12345.678  # a recognisable sample value that must never appear in a message


# -- independent formulations -----------------------------------------------------------------


def normalised(x: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(x, dtype=np.float64) + 50.0) / 100.0, 0.0, 1.0)


def envelope_by_fft(v: np.ndarray) -> np.ndarray:
    """|analytic signal| from the one-sided spectrum: X[0], 2 X[1..n/2-1], X[n/2], 0 elsewhere."""
    n = v.shape[-1]
    spectrum = scipy.fft.fft(v)
    one_sided = np.zeros(n, dtype=complex)
    one_sided[0] = spectrum[0]
    if n % 2 == 0:
        one_sided[1 : n // 2] = 2 * spectrum[1 : n // 2]
        one_sided[n // 2] = spectrum[n // 2]
    else:
        one_sided[1 : (n + 1) // 2] = 2 * spectrum[1 : (n + 1) // 2]
    return np.abs(scipy.fft.ifft(one_sided))


def five(env: np.ndarray) -> np.ndarray:
    return np.array([env.mean(), env.std(), np.percentile(env, 25), np.percentile(env, 75), env.max()])


def expected_phase_a(x: np.ndarray) -> np.ndarray:
    return five(envelope_by_fft(normalised(x)))


def expected_bins(x: np.ndarray) -> np.ndarray:
    power = np.abs(np.fft.rfft(normalised(x))) ** 2
    ac = power[1:]
    per_band = len(ac) // 8
    bands = np.array([ac[b * per_band : (b + 1) * per_band].sum() for b in range(8)])
    return bands / bands.sum()


def eeg(seed: int, n: int = N, amplitude: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 128.0
    x = amplitude * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6)) + rng.normal(0, amplitude / 4, n)
    return x.astype(np.float32)


# -- Phase A: known answers ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_phase_a_matches_an_fft_built_analytic_signal(seed: int, dtype: Any) -> None:
    x = (eeg(seed) * (1 + seed)).astype(dtype)  # larger seeds clip more
    got = phase_a(x)
    assert got.shape == (5,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected_phase_a(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cycles", [1, 5, 16, 37])
@pytest.mark.parametrize(("offset_uv", "amp_uv"), [(0.0, 20.0), (-10.0, 35.0), (12.5, 8.0)])
def test_phase_a_of_a_periodic_sine_has_the_closed_form_envelope(cycles: int, offset_uv: float, amp_uv: float) -> None:
    # x = offset + A sin(theta) with a whole number of cycles (no clipping): the normalised
    # signal is c + a sin(theta), c = (offset + 50) / 100, a = A / 100, whose analytic signal
    # is c + a (sin(theta) - i cos(theta)), so envelope^2 = c^2 + 2 a c sin(theta) + a^2.
    theta = 2 * np.pi * cycles * np.arange(N) / N
    x = offset_uv + amp_uv * np.sin(theta)
    c, a = (offset_uv + 50) / 100, amp_uv / 100
    env = np.sqrt(c * c + 2 * a * c * np.sin(theta) + a * a)
    np.testing.assert_allclose(phase_a(x), five(env), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("level_uv", "value"), [(0.0, 0.5), (-50.0, 0.0), (-100.0, 0.0), (50.0, 1.0), (1000.0, 1.0), (-30.0, 0.2)]
)
def test_phase_a_of_a_flat_frame(level_uv: float, value: float) -> None:
    got = phase_a(np.full(N, level_uv, dtype=np.float32))
    np.testing.assert_allclose(got, [value, 0.0, value, value, value], rtol=0, atol=1e-12)


def test_phase_a_accepts_integer_samples_and_other_lengths() -> None:
    x = np.arange(-60, 60, dtype=np.int16)
    np.testing.assert_allclose(phase_a(x), expected_phase_a(x), rtol=0, atol=1e-12)
    for n in (1, 2, 3, 17, 255, 300):
        y = eeg(n, n)
        np.testing.assert_allclose(phase_a(y), expected_phase_a(y), rtol=0, atol=1e-12)


def test_percentiles_are_numpys_linear_method_bit_for_bit() -> None:
    for seed in range(20):
        x = eeg(seed, N, amplitude=40.0)
        analytic = scipy.signal.hilbert(normalised(x))
        env = np.sqrt(analytic.real**2 + analytic.imag**2)  # the envelope as features.py documents it
        got = phase_a(x)
        assert got[2] == np.percentile(env, 25) and got[3] == np.percentile(env, 75) and got[4] == env.max()


# -- Phase A: the work buffer and custody --------------------------------------------------------


def test_work_receives_the_normalised_signal_in_place() -> None:
    x = eeg(3, amplitude=60.0)  # clips
    work = np.full(N, 7.0)
    features = phase_a(x, work)
    np.testing.assert_array_equal(work, normalised(x))
    np.testing.assert_array_equal(features, phase_a(x))  # same result with or without work


@pytest.mark.parametrize(
    ("module", "name", "call", "shape"),
    [
        (scipy.signal, "hilbert", lambda: phase_a(eeg(1)), (N,)),
        (scipy.signal, "hilbert", lambda: phase_a(eeg(1), np.zeros(N)), (N,)),
        (scipy.signal, "hilbert", lambda: phase_a_batch(np.stack([eeg(i) for i in range(4)])), (4, N)),
        (scipy.fft, "rfft", lambda: spectral_bins(eeg(1)), (N // 2 + 1,)),
        (scipy.fft, "rfft", lambda: spectral_bins_batch(np.stack([eeg(i) for i in range(4)])), (4, N // 2 + 1)),
    ],
)
def test_arrays_returned_by_scipy_are_zeroed(
    monkeypatch: pytest.MonkeyPatch, module: Any, name: str, call: Any, shape: tuple[int, ...]
) -> None:
    returned: list[np.ndarray] = []
    real = getattr(module, name)

    def spy(*args: Any, **kwargs: Any) -> np.ndarray:
        out = real(*args, **kwargs)
        returned.append(out)
        return out

    monkeypatch.setattr(module, name, spy)
    result = call()
    assert result.any()
    assert len(returned) == 1 and returned[0].shape == shape
    assert not returned[0].any(), f"the array scipy's {name} returned must be zeroed before it is dropped"


def test_private_buffers_hold_nothing_after_return(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every float64 buffer phase_a allocates itself is zero when it returns."""
    made: list[np.ndarray] = []
    real_empty = np.empty

    def spy_empty(*args: Any, **kwargs: Any) -> np.ndarray:
        out = real_empty(*args, **kwargs)
        if sys._getframe(1).f_globals.get("__name__") == F.__name__:  # only the module's own buffers
            made.append(out)
        return out

    monkeypatch.setattr(F.np, "empty", spy_empty)
    results = [phase_a(eeg(2)), spectral_bins(eeg(2)), spectral_bins_batch(np.stack([eeg(2), eeg(3)]))]
    monkeypatch.undo()
    assert len(made) >= 3
    for buf in made:
        if not any(buf is r or buf is r.base for r in results):  # the features themselves may leave
            assert not buf.any()


# -- batch ---------------------------------------------------------------------------------------------


@settings(max_examples=examples(60), deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.sampled_from([1, 2, 5, 16, 64, 255, 256])),
        elements=st.floats(-400, 400, width=32),
    )
)
def test_phase_a_batch_equals_single(batch: np.ndarray) -> None:
    got = phase_a_batch(batch)
    assert got.shape == (batch.shape[0], 5)
    for i, row in enumerate(batch):
        # bit for bit: Phase B hashes the feature bytes, so 1e-12 would not be enough
        assert got[i].tobytes() == phase_a(row).tobytes()
        np.testing.assert_allclose(got[i], expected_phase_a(row), rtol=0, atol=1e-12)


@settings(max_examples=examples(40), deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 5), st.sampled_from([16, 17, 100, 256])),
        elements=st.floats(-200, 200),
    )
)
def test_spectral_bins_batch_equals_single(batch: np.ndarray) -> None:
    got = spectral_bins_batch(batch)
    assert got.shape == (batch.shape[0], 8)
    for i, row in enumerate(batch):
        np.testing.assert_allclose(got[i], spectral_bins(row), rtol=0, atol=1e-12)


def test_batches_of_random_eeg_match_single_rows() -> None:
    batch = np.stack([eeg(i, amplitude=10.0 + 5 * (i % 9)) for i in range(300)])
    a, b = phase_a_batch(batch), spectral_bins_batch(batch)
    for i in range(0, 300, 7):
        assert a[i].tobytes() == phase_a(batch[i]).tobytes()
        np.testing.assert_allclose(b[i], spectral_bins(batch[i]), rtol=0, atol=1e-12)


def test_empty_batches() -> None:
    assert phase_a_batch(np.zeros((0, N), np.float32)).shape == (0, 5)
    assert spectral_bins_batch(np.zeros((0, N), np.float32)).shape == (0, 8)


# -- spectral bins ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_spectral_bins_match_a_hand_rolled_band_sum(seed: int) -> None:
    x = eeg(seed, amplitude=30.0)
    got = spectral_bins(x)
    assert got.shape == (8,) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected_bins(x), rtol=0, atol=1e-12)
    assert math.isclose(got.sum(), 1.0, abs_tol=1e-12)


@pytest.mark.parametrize(("k", "band"), [(1, 0), (16, 0), (17, 1), (64, 3), (65, 4), (127, 7), (128, 7)])
def test_a_pure_tone_lands_in_its_band(k: int, band: int) -> None:
    # bins 1..128 of a 256-sample frame, 16 per band: bin k is in band (k - 1) // 16
    x = 20.0 * np.cos(2 * np.pi * k * np.arange(N) / N)
    got = spectral_bins(x)
    want = np.zeros(8)
    want[band] = 1.0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [256, 250, 255, 100])
@pytest.mark.parametrize("level", [-80.0, 0.0, 13.0, 400.0])
def test_a_flat_frame_has_no_power(n: int, level: float) -> None:
    np.testing.assert_array_equal(spectral_bins(np.full(n, level)), np.zeros(8))


def test_spectral_bins_need_16_samples() -> None:
    assert spectral_bins(eeg(0, 16)).shape == (8,)
    with pytest.raises(InvalidArgumentError, match="16"):
        spectral_bins(eeg(0, 15))


# -- bad input ----------------------------------------------------------------------------------------


def _with_secret(bad: float) -> np.ndarray:
    x = np.full(N, SECRET, dtype=np.float64)
    x[17] = bad
    return x


@pytest.mark.parametrize("fn", [phase_a, spectral_bins])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_samples_are_refused_without_echoing_values(fn: Any, bad: float) -> None:
    with pytest.raises(InvalidArgumentError, match="finite") as info:
        fn(_with_secret(bad))
    assert "12345" not in str(info.value)
    batch = np.stack([_with_secret(0.0), _with_secret(bad)])
    batch_fn = phase_a_batch if fn is phase_a else spectral_bins_batch
    with pytest.raises(InvalidArgumentError, match="finite") as info:
        batch_fn(batch)
    assert "12345" not in str(info.value)


def test_float32_overflow_of_a_wider_type_is_refused() -> None:
    x = np.full(N, 1.0, dtype=np.longdouble)
    if np.finfo(np.longdouble).max <= np.finfo(np.float64).max:
        pytest.skip("longdouble is float64 here")
    x[3] = np.longdouble(np.finfo(np.float64).max) * 4
    with pytest.raises(InvalidArgumentError, match="finite"):
        phase_a(x)


@pytest.mark.parametrize("fn", [phase_a, spectral_bins, phase_a_batch, spectral_bins_batch])
@pytest.mark.parametrize("value", [[0.0] * N, (0.0,) * N, 3.0, None, "samples", np.ma.masked_array(np.zeros(N))])
def test_non_arrays_are_wrong_type(fn: Any, value: object) -> None:
    with pytest.raises(WrongTypeError):
        fn(value)


@pytest.mark.parametrize("fn", [phase_a, spectral_bins])
@pytest.mark.parametrize("dtype", [bool, complex, object, "U3", "datetime64[s]"])
def test_wrong_dtype_kind_is_refused(fn: Any, dtype: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="dtype"):
        fn(np.zeros(N, dtype=dtype))
    with pytest.raises(InvalidArgumentError, match="dtype"):
        (phase_a_batch if fn is phase_a else spectral_bins_batch)(np.zeros((2, N), dtype=dtype))


@pytest.mark.parametrize("shape", [(), (0,), (2, N), (N, 1, 1)])
def test_single_paths_want_a_non_empty_1d_frame(shape: tuple[int, ...]) -> None:
    for fn in (phase_a, spectral_bins):
        with pytest.raises(InvalidArgumentError, match="shape"):
            fn(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(N,), (2, 0), (2, N, 1)])
def test_batch_paths_want_2d(shape: tuple[int, ...]) -> None:
    for fn in (phase_a_batch, spectral_bins_batch):
        with pytest.raises(InvalidArgumentError, match="shape"):
            fn(np.zeros(shape, np.float32))


def test_bad_work_buffers() -> None:
    x = eeg(0)
    with pytest.raises(WrongTypeError):
        phase_a(x, [0.0] * N)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="float64"):
        phase_a(x, np.zeros(N, np.float32))
    with pytest.raises(InvalidArgumentError, match="shape"):
        phase_a(x, np.zeros(N + 1))
    frozen = np.zeros(N)
    frozen.flags.writeable = False
    with pytest.raises(InvalidArgumentError, match="writeable"):
        phase_a(x, frozen)
    y = eeg(1).astype(np.float64)
    with pytest.raises(InvalidArgumentError, match="overlap"):
        phase_a(y, y)
    np.testing.assert_array_equal(y, eeg(1).astype(np.float64))  # untouched


def test_work_is_zeroed_when_the_samples_are_refused() -> None:
    work = np.full(N, 7.0)
    with pytest.raises(InvalidArgumentError):
        phase_a(_with_secret(math.nan), work)
    assert not work.any()


# -- bridge -----------------------------------------------------------------------------------------------


def vector(std: float = 0.1, p75: float = 0.6, peak: float = 0.8) -> np.ndarray:
    return np.array([0.5, std, 0.4, p75, peak])


BRIDGE_TABLE = [
    # (name, bound from the design, feature builder)
    ("std", 0.5, lambda v: vector(std=v)),
    ("p75", 0.7, lambda v: vector(p75=v, peak=0.85)),
    ("peak", 0.9, lambda v: vector(peak=v)),
]


@pytest.mark.parametrize(("name", "bound", "build"), BRIDGE_TABLE)
def test_bridge_boundaries(name: str, bound: float, build: Any) -> None:
    assert getattr(T, {"std": "bridge_max_std", "p75": "bridge_max_p75", "peak": "bridge_max_peak"}[name]) == bound
    for inside in (0.0, bound - 1e-9, np.nextafter(bound, 0.0), bound):  # equal to the bound passes
        assert bridge_check(build(inside), T) is None, (name, inside)
    for outside in (np.nextafter(bound, 1.0), bound + 1e-9, bound + 0.01, 1.0):
        reason = bridge_check(build(outside), T)
        assert reason is not None and reason.startswith(f"{name} ") and reason.endswith(f" > {bound}"), reason
        shown = float(reason.split()[1])
        assert shown > bound, reason  # the value shown really exceeds the bound


def test_bridge_reason_text_and_order() -> None:
    assert bridge_check(vector(std=0.51), T) == "std 0.51 > 0.5"
    assert bridge_check(vector(p75=0.75, peak=0.85), T) == "p75 0.75 > 0.7"
    assert bridge_check(vector(peak=0.95), T) == "peak 0.95 > 0.9"
    assert bridge_check(vector(std=0.500000001), T) == "std 0.500000001 > 0.5"
    assert bridge_check(vector(std=0.6, p75=0.8, peak=0.95), T).startswith("std ")  # type: ignore[union-attr]
    assert bridge_check(vector(p75=0.8, peak=0.95), T).startswith("p75 ")  # type: ignore[union-attr]
    assert bridge_check(vector()) is None  # thresholds default to the design's


def test_bridge_follows_the_policy_in_force() -> None:
    strict = ClinicalThresholds(bridge_max_std=0.05)
    assert bridge_check(vector(std=0.1), strict) == "std 0.1 > 0.05"


def test_bridge_refuses_bad_features() -> None:
    with pytest.raises(InvalidArgumentError, match="finite"):
        bridge_check(vector(std=math.nan), T)  # a NaN would pass every comparison
    with pytest.raises(InvalidArgumentError, match="shape"):
        bridge_check(np.zeros(4), T)
    with pytest.raises(WrongTypeError):
        bridge_check([0.5, 0.1, 0.4, 0.6, 0.8], T)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        bridge_check(vector(), {"bridge_max_std": 0.5})  # type: ignore[arg-type]


def test_a_real_noisy_frame_fails_the_bridge_and_a_calm_one_passes() -> None:
    square = np.where(np.arange(N) % 2, 150.0, -150.0)  # clipped to 0/1
    assert bridge_check(phase_a(square), T) is not None
    assert bridge_check(phase_a(eeg(0, amplitude=8.0)), T) is None


# -- coherency and labels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mean", "std", "want"),
    [
        (0.0, 0.3, 0.0),
        (0.0, 0.0, 0.0),
        (1e-13, 0.2, 0.0),
        (-1e-13, 0.2, 0.0),
        (0.5, 0.125, 0.25),
        (0.75, 0.25, 1 / 3),
        (0.5, 0.0, 0.0),
        (0.25, 0.5, 2.0),
        (1e-12, 1e-12, 1.0),  # the cut-off is abs(mean) < 1e-12: 1e-12 itself divides
    ],
)
def test_coherency(mean: float, std: float, want: float) -> None:
    got = coherency(np.array([mean, std, 0.1, 0.2, 0.3]))
    assert type(got) is float
    assert got == pytest.approx(want, rel=1e-15, abs=0.0)


def test_coherency_refuses_bad_features() -> None:
    with pytest.raises(InvalidArgumentError):
        coherency(np.array([math.inf, 0.1, 0.1, 0.1, 0.1]))
    with pytest.raises(InvalidArgumentError):
        coherency(np.zeros(6))
    with pytest.raises(WrongTypeError):
        coherency((0.5, 0.1, 0.4, 0.6, 0.8))  # type: ignore[arg-type]


def test_labels() -> None:
    assert LABELS == ("ventral_vagal (calm)", "sympathetic (focused)", "dorsal_vagal (rest_needed)")
    table = [(0.0, 0), (-0.5, 0), (0.2999, 0), (0.3, 1), (0.6999, 1), (0.7, 2), (5.0, 2), (1, 2), (np.float32(0.5), 1)]
    for c, idx in table:
        assert state_label(c, T) == LABELS[idx], c
    assert state_label(np.nextafter(0.3, 0.0)) == LABELS[0]
    assert state_label(np.nextafter(0.7, 0.0)) == LABELS[1]


def test_labels_follow_the_policy_and_refuse_nonsense() -> None:
    assert state_label(0.35, ClinicalThresholds(calm_below=0.4)) == LABELS[0]
    for bad in (math.nan, math.inf):
        with pytest.raises(InvalidArgumentError):
            state_label(bad, T)
    for wrong in (True, "0.2", None, 0.2 + 0j):
        with pytest.raises(WrongTypeError):
            state_label(wrong, T)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        state_label(0.2, object())  # type: ignore[arg-type]


# -- the batch rules are the single rules, row by row -----------------------------------------


def _rule_rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    rows = rng.uniform(0.0, 1.0, (400, 5))
    rows[:40, 0] = 0.0  # mean 0: coherency 0
    rows[40:60, 0] = 1e-13  # below the epsilon
    rows[60:80, 1] = T.bridge_max_std  # on the edge: passes
    rows[80:100, 3] = T.bridge_max_p75
    rows[100:120, 4] = T.bridge_max_peak
    return rows


@pytest.mark.parametrize("thresholds", [T, ClinicalThresholds(bridge_max_std=0.05, calm_below=0.4)])
def test_batch_rules_equal_the_single_rules(thresholds: ClinicalThresholds) -> None:
    rows = _rule_rows()
    assert bridge_check_batch(rows, thresholds) == [bridge_check(r, thresholds) for r in rows]
    coh = coherency_batch(rows)
    assert coh.tolist() == [coherency(r) for r in rows]  # bit for bit
    assert state_label_batch(coh, thresholds) == [state_label(c, thresholds) for c in coh.tolist()]
    assert any(r is None for r in bridge_check_batch(rows, thresholds))
    assert any(r is not None for r in bridge_check_batch(rows, thresholds))


def test_batch_rules_of_no_rows() -> None:
    empty = np.empty((0, 5))
    assert bridge_check_batch(empty) == [] and coherency_batch(empty).shape == (0,)
    assert state_label_batch(np.empty(0)) == []


def test_batch_rules_refuse_what_the_single_rules_refuse() -> None:
    bad = _rule_rows()[:3].copy()
    bad[1, 3] = math.nan
    for fn in (bridge_check_batch, coherency_batch):
        with pytest.raises(InvalidArgumentError, match="finite"):
            fn(bad)
        with pytest.raises(InvalidArgumentError, match="shape"):
            fn(np.zeros((3, 4)))
        with pytest.raises(InvalidArgumentError, match="shape"):
            fn(np.zeros(5))  # one frame: the single rule's input
        with pytest.raises(WrongTypeError):
            fn([[0.5, 0.1, 0.4, 0.6, 0.8]])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="finite"):
        state_label_batch(np.array([0.1, math.inf]))
    with pytest.raises(InvalidArgumentError):
        state_label_batch(np.array([True, False]))
    with pytest.raises(WrongTypeError):
        state_label_batch([0.1, 0.2])  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        bridge_check_batch(np.zeros((1, 5)), {"bridge_max_std": 0.5})  # type: ignore[arg-type]
