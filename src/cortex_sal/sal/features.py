"""Phase A features, the bridge bounds, coherency, state labels and spectral bins (docs/sal.md).

Phase A of one frame::

    normalised = clip((x + 50) / 100, 0, 1)          # x in microvolts, computed in float64
    envelope   = abs(scipy.signal.hilbert(normalised))
    features   = [mean, std, p25, p75, max](envelope) # np.percentile "linear", population std

Custody: everything derived from the samples (the normalised signal, the analytic signal,
the envelope, spectra) lives in arrays this module allocates itself - or in the caller's
``work`` buffer - and is zeroed before it is dropped, on success and on error alike. Only
the five features (and the eight relative band powers) leave. Error messages say what was
wrong (type, dtype, shape, non-finite) and never carry a sample value.

Choices where docs/sal.md is silent:

* Samples must be a ``numpy.ndarray`` (not a list: converting one would make an unmanaged
  heap copy) of real numbers (dtype kind ``i``, ``u`` or ``f``); booleans, complex, object
  and masked arrays are refused. Any frame length >= 1 works for Phase A (the design's is
  256); spectral bins need >= 16 samples (8 bands of at least one bin each).
* Normalisation is computed in float64 whatever the input dtype, so a float32 frame and the
  same values as float64 give identical features.
* ``phase_a(samples, work)`` leaves the normalised signal in ``work`` on success (it is the
  caller's buffer to wipe - the shield does); on error ``work`` is zeroed. ``work`` must not
  overlap ``samples``.
* Spectral bins: the non-DC bins 1..n//2 of the rFFT (Nyquist included) are split into 8
  contiguous bands, band ``b`` holding bins ``k`` with ``floor((k - 1) * 8 / (n // 2)) == b``
  (16 bins each for n = 256). "Power 0" means zero up to the FFT's rounding: when the non-DC
  power is at most 1e-24 of the total power, all eight bins are 0 (a flat frame of a length
  that is not a power of two otherwise yields ~1e-33 of rounding noise, which would be
  normalised into eight meaningless bins).
* ``bridge_check``, ``coherency`` and ``state_label`` refuse non-finite input: a NaN compares
  false against every bound and would otherwise pass the bridge.
"""

from __future__ import annotations

import math
import numbers
from functools import lru_cache
from typing import Any, cast

import numpy as np
import scipy.fft
import scipy.signal
from numpy.ma import MaskedArray

from ..errors import InvalidArgumentError, WrongTypeError
from ..governance import DEFAULT_THRESHOLDS, ClinicalThresholds

__all__ = [
    "FEATURE_NAMES",
    "LABELS",
    "N_BANDS",
    "N_FEATURES",
    "bridge_check",
    "bridge_check_batch",
    "coherency",
    "coherency_batch",
    "phase_a",
    "phase_a_batch",
    "phase_a_channels",
    "spectral_bins",
    "spectral_bins_batch",
    "state_label",
    "state_label_batch",
]

LABELS: tuple[str, str, str] = ("ventral_vagal (calm)", "sympathetic (focused)", "dorsal_vagal (rest_needed)")
"""The three state labels, in bucket order (``LABELS.index(label)`` is the research bucket)."""

FEATURE_NAMES: tuple[str, ...] = ("mean", "std", "p25", "p75", "max")
N_FEATURES = 5
N_BANDS = 8
MIN_SPECTRAL_SAMPLES = 2 * N_BANDS
FLAT_POWER_RATIO = 1e-24  # non-DC power at or below this share of the total counts as "power 0"
COHERENCY_MEAN_EPS = 1e-12

_OFFSET_UV = 50.0
_SCALE_UV = 100.0
_QUANTILES = (0.25, 0.75)

Array = np.ndarray[Any, Any]


# -- input checks -------------------------------------------------------------------------


def _check_samples(samples: object, ndim: int, what: str) -> Array:
    if not isinstance(samples, np.ndarray) or isinstance(samples, MaskedArray):
        raise WrongTypeError(f"{what} must be a numpy.ndarray, got {type(samples).__name__}")
    if samples.dtype.kind not in "iuf":
        raise InvalidArgumentError(f"{what} must hold real numbers (int or float), got dtype {samples.dtype}")
    if samples.ndim != ndim or samples.shape[-1] == 0:
        want = "a non-empty 1-D array" if ndim == 1 else "a 2-D array (frames, samples) with at least one sample"
        raise InvalidArgumentError(f"{what} must be {want}, got shape {samples.shape}")
    return samples


def _check_work(work: object, samples: Array) -> Array:
    if not isinstance(work, np.ndarray) or isinstance(work, MaskedArray):
        raise WrongTypeError(f"work must be a numpy.ndarray, got {type(work).__name__}")
    if work.dtype != np.float64:
        raise InvalidArgumentError(f"work must have dtype float64 (native byte order), got {work.dtype}")
    if work.shape != samples.shape:
        raise InvalidArgumentError(f"work must have the samples' shape {samples.shape}, got {work.shape}")
    if not work.flags.writeable:
        raise InvalidArgumentError("work must be writeable")
    if np.may_share_memory(work, samples):
        raise InvalidArgumentError("work must not overlap the samples")
    return work


def _normalise_into(samples: Array, buf: Array, what: str) -> None:
    """``buf[...] = clip((samples + 50) / 100, 0, 1)`` in float64, in place (no other copy).

    The cast happens once, straight into ``buf``; the arithmetic then runs in place. On
    non-finite input ``buf`` is zeroed before the error is raised.
    """
    if samples.dtype.itemsize > 8 and samples.dtype.kind == "f":
        with np.errstate(over="ignore"):  # a longdouble beyond float64 becomes inf: refused just below
            np.copyto(buf, samples)
    else:
        np.copyto(buf, samples)
    if samples.dtype.kind == "f" and not np.isfinite(buf).all():
        buf[...] = 0.0
        raise InvalidArgumentError(f"{what} must be finite (NaN or infinity found, or a value beyond float64)")
    np.add(buf, _OFFSET_UV, out=buf)
    np.divide(buf, _SCALE_UV, out=buf)
    np.clip(buf, 0.0, 1.0, out=buf)


def _check_thresholds(thresholds: object) -> ClinicalThresholds:
    if type(thresholds) is not ClinicalThresholds and not isinstance(thresholds, ClinicalThresholds):
        raise WrongTypeError(f"thresholds must be ClinicalThresholds, got {type(thresholds).__name__}")
    return thresholds


# -- statistics of an envelope -----------------------------------------------------------


@lru_cache(maxsize=64)
def _percentile_plan(n: int) -> tuple[tuple[int, int, float], ...]:
    """(lower index, upper index, fraction) of each quantile, as ``np.percentile`` "linear" has them."""
    plan = []
    for q in _QUANTILES:
        virtual = (n - 1) * q
        lo = math.floor(virtual)
        if virtual >= n - 1:
            lo = hi = n - 1
            t = 0.0
        else:
            hi = lo + 1
            t = virtual - lo
        plan.append((lo, hi, t))
    return tuple(plan)


def _lerp(a: Any, b: Any, t: float) -> Any:
    """numpy's own ``_lerp`` (the same two formulas, so the result is bit-identical)."""
    d = b - a
    return b - d * (1.0 - t) if t >= 0.5 else a + d * t


def _stats_2d(env: Array) -> Array:
    """Row-wise ``[mean, std, p25, p75, max]`` of ``env`` (n, m) float64: shape (n, 5).

    ``env`` is consumed (sorted, then overwritten). The single path calls this on a one-row
    view, so single and batch share every floating-point operation.
    """
    rows, m = env.shape
    env.sort(axis=1)
    out = np.empty((rows, N_FEATURES), dtype=np.float64)
    out[:, 4] = env[:, m - 1]
    for j, (lo, hi, t) in enumerate(_percentile_plan(m)):
        out[:, 2 + j] = _lerp(env[:, lo], env[:, hi], t)
    mean = np.add.reduce(env, axis=1)
    np.divide(mean, m, out=mean)
    out[:, 0] = mean
    np.subtract(env, mean[:, None], out=env)
    np.multiply(env, env, out=env)
    var = np.add.reduce(env, axis=1)
    np.divide(var, m, out=var)
    np.sqrt(var, out=out[:, 1])
    return out


# -- Phase A ---------------------------------------------------------------------------------


def _envelope(analytic: Array) -> Array:
    """``abs(analytic)`` as ``sqrt(re * re + im * im)``: a new float64 array.

    Spelled out with correctly rounded element-wise operations (never ``hypot``, whose SIMD
    and scalar paths may differ in the last bit) so the envelope of a frame is bit-identical
    whether it is computed alone or as a row of a batch. Within 1 ulp of ``np.abs``; values
    are at most ~2, so nothing can overflow. The imaginary part of ``analytic`` is overwritten.
    """
    env = np.multiply(analytic.real, analytic.real)
    imag = analytic.imag
    np.multiply(imag, imag, out=imag)
    np.add(env, imag, out=env)
    np.sqrt(env, out=env)
    return env


def phase_a(samples: Array, work: Array | None = None) -> Array:
    """The five Phase A features ``[mean, std, p25, p75, max]`` of one frame's Hilbert envelope.

    ``samples``: 1-D real array (microvolts; float32 in the design, any int/float dtype
    accepted). ``work``: optional float64 array of the same shape that receives the
    normalised signal ``clip((x + 50) / 100, 0, 1)`` in place - the shield passes a locked
    buffer's array so the normalised signal never lives on the heap. It still holds the
    normalised signal on return (the caller wipes it); on error it is zeroed. Without
    ``work`` a private buffer is used and zeroed before returning.

    The envelope is ``|scipy.signal.hilbert(normalised)|``; the analytic signal scipy returns
    and the envelope are zeroed before they are dropped. ``phase_a(x)`` is bit-identical to
    the matching row of ``phase_a_batch`` (Phase B hashes the exact feature bytes, so "equal
    to 1e-12" would not do): both use the same scipy transform, envelope and statistics code.
    Returns a new float64 array of shape (5,).

    Raises ``WrongTypeError`` for a non-ndarray, ``InvalidArgumentError`` for a wrong
    dtype kind, shape, non-finite sample, or an unsuitable ``work``.
    """
    x = _check_samples(samples, 1, "samples")
    if work is None:
        buf = np.empty(x.shape, dtype=np.float64)
        own = True
    else:
        buf = _check_work(work, x)
        own = False
    analytic: Array | None = None
    env: Array | None = None
    failed = True
    try:
        _normalise_into(x, buf, "samples")
        analytic = scipy.signal.hilbert(buf)
        env = _envelope(analytic)
        analytic[...] = 0
        features = _stats_2d(env.reshape(1, -1))[0]
        failed = False
        return features
    finally:
        if analytic is not None:
            analytic[...] = 0
        if env is not None:
            env[...] = 0.0
        if own or failed:
            buf[...] = 0.0


def phase_a_batch(samples: Array) -> Array:
    """``phase_a`` of every row of ``samples`` (frames, samples), vectorised: shape (frames, 5).

    ``scipy.signal.hilbert`` along axis 1, the same envelope and statistics code as the
    single path: row ``i`` is bit-identical to ``phase_a(samples[i])`` (the tests check
    exact equality; docs/sal.md asks for 1e-12). Zero frames give a (0, 5) array. The
    normalised batch, the analytic signal and the envelope are zeroed before returning.
    """
    x = _check_samples(samples, 2, "samples")
    if x.shape[0] == 0:
        return np.empty((0, N_FEATURES), dtype=np.float64)
    norm = np.empty(x.shape, dtype=np.float64)
    analytic: Array | None = None
    env: Array | None = None
    try:
        _normalise_into(x, norm, "samples")
        analytic = scipy.signal.hilbert(norm, axis=1)
        norm[...] = 0.0
        env = _envelope(analytic)
        analytic[...] = 0
        return _stats_2d(env)
    finally:
        norm[...] = 0.0
        if analytic is not None:
            analytic[...] = 0
        if env is not None:
            env[...] = 0.0


def phase_a_channels(samples: Array, work: Array, rows: Array | None = None) -> tuple[Array, Array]:
    """Phase A and the spectral bins of every channel of one frame (C, n), vectorised across channels.

    ``work`` (C, n) float64 - the shield passes a locked buffer's array - receives the normalised
    signal (so it never lives on the heap) and is zeroed on return, success or error. ``rows``
    (bool, (C,)) selects the channels to compute: the others (bad samples, which may hold NaN) are
    never read, their rows of ``work`` are 0 and their features and bins are meaningless (the
    caller drops them). Returns ``(features (C, 5), bins (C, 8))``; a computed row is
    bit-identical to ``phase_a`` / ``spectral_bins`` of that channel alone (the same operations,
    along axis 1 as the batch functions). Same input rules as ``phase_a_batch``; a non-finite
    sample in a selected row raises ``InvalidArgumentError``.
    """
    x = _check_samples(samples, 2, "samples")
    w = _check_work(work, x)
    if rows is None:
        mask = np.ones(x.shape[0], dtype=bool)
    else:
        mask = np.asarray(rows)
        if mask.dtype != np.bool_ or mask.shape != (x.shape[0],):
            raise InvalidArgumentError(
                f"rows must be a bool array of shape ({x.shape[0]},), got {mask.dtype} {mask.shape}"
            )
    if x.shape[-1] < MIN_SPECTRAL_SAMPLES:
        raise InvalidArgumentError(
            f"spectral bins need at least {MIN_SPECTRAL_SAMPLES} samples per frame, got {x.shape[-1]}"
        )
    analytic: Array | None = None
    env: Array | None = None
    try:
        w[...] = 0.0
        with np.errstate(over="ignore"):  # a longdouble beyond float64 becomes inf: refused just below
            np.copyto(w, x, where=mask[:, None], casting="unsafe")
        if not np.isfinite(w).all():
            raise InvalidArgumentError("samples must be finite (NaN or infinity found, or a value beyond float64)")
        np.add(w, _OFFSET_UV, out=w)
        np.divide(w, _SCALE_UV, out=w)
        np.clip(w, 0.0, 1.0, out=w)
        bins = _band_power_of(w)
        analytic = scipy.signal.hilbert(w, axis=1)
        env = _envelope(analytic)
        analytic[...] = 0
        return _stats_2d(env), bins
    finally:
        w[...] = 0.0
        if analytic is not None:
            analytic[...] = 0
        if env is not None:
            env[...] = 0.0


# -- spectral bins --------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _band_starts(n: int) -> Array:
    k = n // 2  # non-DC one-sided bins 1..k
    starts = np.array([-(-b * k // N_BANDS) for b in range(N_BANDS)], dtype=np.intp)  # ceil(b * k / 8)
    starts.flags.writeable = False
    return starts


def _relative_band_power(samples: Array, what: str) -> Array:
    """Shared body of the spectral bins along the last axis (1-D or 2-D input)."""
    n = samples.shape[-1]
    if n < MIN_SPECTRAL_SAMPLES:
        raise InvalidArgumentError(f"spectral bins need at least {MIN_SPECTRAL_SAMPLES} samples per frame, got {n}")
    norm = np.empty(samples.shape, dtype=np.float64)
    try:
        _normalise_into(samples, norm, what)
        return _band_power_of(norm)
    finally:
        norm[...] = 0.0


def _band_power_of(norm: Array) -> Array:
    """The relative band powers of an already normalised signal (1-D or 2-D, along the last axis).
    ``norm`` is left as it is (the caller wipes it); every spectrum is zeroed before it is dropped."""
    n = norm.shape[-1]
    spectrum: Array | None = None
    power: Array | None = None
    try:
        spectrum = scipy.fft.rfft(norm, axis=-1)
        parts = spectrum.view(np.float64)  # re, im interleaved
        np.multiply(parts, parts, out=parts)
        power = np.add(parts[..., 0::2], parts[..., 1::2])
        spectrum[...] = 0
        bands = np.add.reduceat(power[..., 1:], _band_starts(n), axis=-1)
        total = np.add.reduce(bands, axis=-1, keepdims=True)
        live = total > FLAT_POWER_RATIO * (total + power[..., :1])
        out = np.zeros(bands.shape, dtype=np.float64)
        np.divide(bands, total, out=out, where=live)
        bands[...] = 0.0
        return out
    finally:
        if spectrum is not None:
            spectrum[...] = 0
        if power is not None:
            power[...] = 0.0


def spectral_bins(samples: Array) -> Array:
    """Relative power of the normalised frame in 8 equal-width bands (DC excluded): shape (8,).

    The bins sum to 1 (to rounding), or are all 0 when the frame has no non-DC power (see
    the module docstring for the band layout and "power 0"). Every spectrum is zeroed before
    it is dropped. Same input rules as ``phase_a``, with at least 16 samples.
    """
    return _relative_band_power(_check_samples(samples, 1, "samples"), "samples")


def spectral_bins_batch(samples: Array) -> Array:
    """``spectral_bins`` of every row of ``samples`` (frames, samples), vectorised: shape (frames, 8)."""
    x = _check_samples(samples, 2, "samples")
    if x.shape[0] == 0:
        return np.empty((0, N_BANDS), dtype=np.float64)
    return _relative_band_power(x, "samples")


# -- bridge, coherency, labels -----------------------------------------------------------------
#
# One definition of each rule, written with operations that mean the same on Python floats
# and on numpy arrays: the single-frame functions apply it to one frame's floats (cheap), the
# *_batch functions to columns of features (vectorised). Same comparisons, same division.

_BRIDGE_RULES: tuple[tuple[str, int, str], ...] = (
    ("std", 1, "bridge_max_std"),
    ("p75", 3, "bridge_max_p75"),
    ("peak", 4, "bridge_max_peak"),
)


def _bridge_exceeded(std: Any, p75: Any, peak: Any, t: ClinicalThresholds) -> tuple[Any, Any, Any]:
    """Whether each value exceeds its bound (``>``: a value equal to its bound passes), in the
    rules' order std, p75, peak: bools for one frame's floats, bool arrays for columns."""
    return (std > t.bridge_max_std, p75 > t.bridge_max_p75, peak > t.bridge_max_peak)


def _bridge_reason(f: list[float], t: ClinicalThresholds) -> str | None:
    """The first exceeded bound of one frame's features as ``"std 0.51 > 0.5"``, or ``None``."""
    for (name, index, bound_name), exceeded in zip(_BRIDGE_RULES, _bridge_exceeded(f[1], f[3], f[4], t), strict=True):
        if exceeded:
            bound = getattr(t, bound_name)
            return f"{name} {_above(f[index], bound)} > {float(bound)!r}"
    return None


def _coherency(mean: Any, std: Any) -> Any:
    """``std / mean``, ``0.0`` where ``abs(mean) < 1e-12``: floats or arrays alike.

    Where the mean is that small, ``mean + 1`` is divided by instead (never zero) and the
    (finite) quotient is multiplied by 0, so neither path ever divides by zero; elsewhere the
    quotient is multiplied by 1 (exact). ``+ 0.0`` turns the ``-0.0`` of a negative quotient
    times 0 into ``0.0``."""
    small = abs(mean) < COHERENCY_MEAN_EPS
    return std / (mean + small) * (1 - small) + 0.0


def _label_index(c: Any, t: ClinicalThresholds) -> Any:
    """The bucket: 0 when ``c < calm_below``, else 1 when ``c < focused_below``, else 2
    (an int for a float, an int array for an array)."""
    return (c >= t.calm_below) * (1 + (c >= t.focused_below))


def _check_features(features: object) -> list[float]:
    """One frame's five features as Python floats (cheap to compare; called once per frame)."""
    if type(features) is not np.ndarray and (not isinstance(features, np.ndarray) or isinstance(features, MaskedArray)):
        raise WrongTypeError(f"features must be a numpy.ndarray, got {type(features).__name__}")
    if features.shape != (N_FEATURES,):
        raise InvalidArgumentError(f"features must have shape ({N_FEATURES},), got {features.shape}")
    kind = features.dtype.kind
    if kind not in "iuf":
        raise InvalidArgumentError(f"features must hold real numbers, got dtype {features.dtype}")
    fast = kind == "f" and features.dtype.itemsize <= 8  # tolist() gives Python floats
    values: list[float] = features.tolist() if fast else [float(v) for v in features.tolist()]
    if not all(map(math.isfinite, values)):
        raise InvalidArgumentError("features must be finite (NaN or infinity found)")
    return values


def _check_feature_rows(features: object) -> Array:
    """Rows of features (frames, 5) as a finite float64 array: the batch's ``_check_features``."""
    if not isinstance(features, np.ndarray) or isinstance(features, MaskedArray):
        raise WrongTypeError(f"features must be a numpy.ndarray, got {type(features).__name__}")
    if features.ndim != 2 or features.shape[1] != N_FEATURES:
        raise InvalidArgumentError(f"features must have shape (frames, {N_FEATURES}), got {features.shape}")
    if features.dtype.kind not in "iuf":
        raise InvalidArgumentError(f"features must hold real numbers, got dtype {features.dtype}")
    with np.errstate(over="ignore"):  # a longdouble beyond float64 becomes inf: refused just below
        rows = np.asarray(features, dtype=np.float64)
    if not np.isfinite(rows).all():
        raise InvalidArgumentError("features must be finite (NaN or infinity found)")
    return rows


def _check_coherency(c: object) -> float:
    if type(c) is not float and (isinstance(c, bool | np.bool_) or not isinstance(c, numbers.Real)):
        raise WrongTypeError(f"coherency must be a real number, got {type(c).__name__}")
    value = float(c)
    if not math.isfinite(value):
        raise InvalidArgumentError("coherency must be finite (NaN or infinity given)")
    return value


def _check_coherency_array(c: object) -> Array:
    if not isinstance(c, np.ndarray) or isinstance(c, MaskedArray):
        raise WrongTypeError(f"coherency must be a numpy.ndarray, got {type(c).__name__}")
    if c.ndim != 1 or c.dtype.kind not in "iuf":
        raise InvalidArgumentError(f"coherency must be a 1-D array of real numbers, got {c.dtype} {c.shape}")
    with np.errstate(over="ignore"):  # a longdouble beyond float64 becomes inf: refused just below
        values = np.asarray(c, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidArgumentError("coherency must be finite (NaN or infinity given)")
    return values


def _above(value: float, bound: float) -> str:
    """``value`` with the fewest significant digits (>= 2) that still show it above ``bound``."""
    for digits in range(2, 18):
        text = f"{value:.{digits}g}"
        if float(text) > bound:
            return text
    return repr(value)


def bridge_check(features: Array, thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS) -> str | None:
    """``None`` when the features are within the bridge bounds, else the first reason found.

    Checked in order std (``features[1]``), p75 (``features[3]``), peak (``features[4]``);
    a value equal to its bound passes. Reasons read ``"std 0.51 > 0.5"``, ``"p75 0.75 > 0.7"``,
    ``"peak 0.95 > 0.9"`` (the value with just enough digits to show it exceeds the bound).
    """
    f = _check_features(features)
    return _bridge_reason(f, _check_thresholds(thresholds))


def bridge_check_batch(features: Array, thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS) -> list[str | None]:
    """``bridge_check`` of every row of ``features`` (frames, 5): the same rule, vectorised."""
    rows = _check_feature_rows(features)
    t = _check_thresholds(thresholds)
    std, p75, peak = _bridge_exceeded(rows[:, 1], rows[:, 3], rows[:, 4], t)
    outside = cast(list[bool], (std | p75 | peak).tolist())
    return [_bridge_reason(rows[i].tolist(), t) if out else None for i, out in enumerate(outside)]


def coherency(features: Array) -> float:
    """Coefficient of variation of the envelope: ``std / mean``; ``0.0`` when ``abs(mean) < 1e-12``.

    Returned as a Python float (it may overflow to ``inf`` only for absurd features that no
    bridge would pass).
    """
    mean, std = _check_features(features)[:2]
    return float(_coherency(mean, std))


def coherency_batch(features: Array) -> Array:
    """``coherency`` of every row of ``features`` (frames, 5): float64 (frames,), the same rule."""
    rows = _check_feature_rows(features)
    with np.errstate(over="ignore"):  # as Python's float division: an absurd quotient is inf
        return np.asarray(_coherency(rows[:, 0], rows[:, 1]), dtype=np.float64)


def state_label(c: float, thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS) -> str:
    """``c < calm_below`` (0.3): calm; ``c < focused_below`` (0.7): focused; else rest needed.

    ``c`` must be a finite real number (not a bool); a NaN would otherwise fall through to
    the last label.
    """
    value = _check_coherency(c)
    return LABELS[_label_index(value, _check_thresholds(thresholds))]


def state_label_batch(c: Array, thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS) -> list[str]:
    """``state_label`` of every element of ``c`` (a 1-D array of finite reals), the same rule."""
    values = _check_coherency_array(c)
    t = _check_thresholds(thresholds)
    return [LABELS[i] for i in _label_index(values, t).tolist()]
