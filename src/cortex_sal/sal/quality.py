"""Bad samples: the per-channel rules a frame's raw samples must pass before Phase A (issue #15, item 4).

For each channel (a row of the frame's ``(C, n)`` samples, microvolts), the first rule that fails,
in this order:

1. ``NON_FINITE`` - a NaN or an infinite sample;
2. ``OUT_OF_RANGE`` - a sample with ``|x| > 10,000 uV`` (10 mV: beyond any scalp EEG, an
   artefact, a unit error or a broken amplifier);
3. ``FLAT_LINE`` - the channel's peak-to-peak is at most 0.01 uV: zero variance up to float32
   rounding (a resampled constant is not bit-exact). A live electrode is never this quiet: the
   ADS1299's own input-referred noise is 1 uVpp (TI datasheet SBAS499), a hundred times more;
4. ``SATURATED`` - a run of at least 16 consecutive samples (125 ms at 128 Hz) at the channel's
   maximum, or at its minimum, within a relative 1e-6 of it: a clipped plateau (the amplifier at
   its rail). Runs at the maximum and at the minimum are counted apart, so a square wave that
   alternates between two values is not "saturated" (it is the bridge's to refuse).

The rules are vectorised across channels (one pass of numpy reductions over the ``(C, n)`` view).
Custody: the per-channel extremes and masks derived from the samples are zeroed before they are
dropped, and no value is ever put in a message: the details name the rule and its bound only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, WrongTypeError
from .results import RefusalReason

__all__ = ["FLAT_PTP_UV", "PLAUSIBLE_UV", "SATURATION_RUN", "channel_faults", "fault_detail"]

PLAUSIBLE_UV = 10_000.0
FLAT_PTP_UV = 0.01
SATURATION_RUN = 16
SATURATION_REL_TOL = 1e-6

_DETAILS = {
    RefusalReason.NON_FINITE: "a NaN or infinite sample",
    RefusalReason.OUT_OF_RANGE: f"a sample beyond +/-{PLAUSIBLE_UV:,.0f} uV",
    RefusalReason.FLAT_LINE: f"flat line (peak-to-peak <= {FLAT_PTP_UV} uV)",
    RefusalReason.SATURATED: f"saturated ({SATURATION_RUN} or more samples at the channel's maximum or minimum)",
}


def fault_detail(reason: RefusalReason) -> str:
    """The human-readable detail of a bad-sample reason (no sample value in it)."""
    detail = _DETAILS.get(reason) if isinstance(reason, RefusalReason) else None
    if detail is None:
        raise InvalidArgumentError(f"not a bad-sample reason: {reason!r}")
    return detail


def _longest_run_at_least(mask: np.ndarray[Any, Any], k: int) -> np.ndarray[Any, Any]:
    """Per row of a bool (C, n) mask: whether it holds ``k`` consecutive True values."""
    c, n = mask.shape
    if n < k:
        return np.zeros(c, dtype=bool)
    counts = np.zeros((c, n + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, dtype=np.int32, out=counts[:, 1:])
    found: np.ndarray[Any, Any] = ((counts[:, k:] - counts[:, :-k]) == k).any(axis=1)
    counts[...] = 0
    return found


def channel_faults(samples: np.ndarray[Any, Any]) -> list[RefusalReason | None]:
    """The first failed rule of each channel of ``samples`` (C, n) (a view of the locked buffer), or
    ``None`` for a channel that passes every rule.

    A few numpy reductions per frame, whatever C: the extremes of each channel (a NaN or an infinity
    shows in them, so no pass over the samples is needed for ``NON_FINITE``), then one comparison of
    the samples with each extreme's bound in the samples' own dtype (the bounds are cast to it, never
    the samples to float64: no converted copy of them is made); the run search itself runs only for
    a channel with at least ``SATURATION_RUN`` samples at an extreme, which live EEG never has."""
    if not isinstance(samples, np.ndarray) or isinstance(samples, np.ma.MaskedArray):
        raise WrongTypeError(f"samples must be a numpy.ndarray, got {type(samples).__name__}")
    if samples.dtype.kind not in "iuf" or samples.ndim != 2 or 0 in samples.shape:
        raise InvalidArgumentError(
            f"samples must be a non-empty (channels, samples) array of reals, got {samples.dtype} {samples.shape}"
        )
    x = samples
    hi = np.maximum.reduce(x, axis=1)
    lo = np.minimum.reduce(x, axis=1)
    finite = np.isfinite(hi) & np.isfinite(lo)
    if not finite.all():  # keep the arithmetic below finite (no warning): those channels are refused anyway
        hi = np.where(finite, hi, 0)
        lo = np.where(finite, lo, 0)
    tol = np.maximum(np.abs(hi), np.abs(lo))
    tol *= SATURATION_REL_TOL
    # rounding to the samples' dtype keeps each bound on its side of the extreme (it is monotonic)
    at_hi = x >= (hi - tol)[:, None]
    at_lo = x <= (lo + tol)[:, None]
    counts = np.add.reduce(at_hi, axis=1).tolist(), np.add.reduce(at_lo, axis=1).tolist()
    highs, lows = hi.tolist(), lo.tolist()
    out: list[RefusalReason | None] = []
    for c, ok in enumerate(finite.tolist()):
        top, bottom = highs[c], lows[c]
        if not ok:
            out.append(RefusalReason.NON_FINITE)
        elif top > PLAUSIBLE_UV or bottom < -PLAUSIBLE_UV:
            out.append(RefusalReason.OUT_OF_RANGE)
        elif top - bottom <= FLAT_PTP_UV:
            out.append(RefusalReason.FLAT_LINE)
        elif (counts[0][c] >= SATURATION_RUN and _has_run(at_hi[c])) or (
            counts[1][c] >= SATURATION_RUN and _has_run(at_lo[c])
        ):
            out.append(RefusalReason.SATURATED)
        else:
            out.append(None)
    for derived in (hi, lo, tol):
        derived[...] = 0
    at_hi[...] = False
    at_lo[...] = False
    return out


def _has_run(mask: np.ndarray[Any, Any]) -> bool:
    """Whether a 1-D bool mask holds ``SATURATION_RUN`` consecutive True values."""
    return bool(_longest_run_at_least(mask.reshape(1, -1), SATURATION_RUN)[0])
