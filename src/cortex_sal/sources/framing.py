"""Resampling to 128 Hz and framing at the sensor: blocks in, ``(C, 256)`` float32 frames out.

**Resampling.** A native rate ``r`` is resampled by ``p/q = 128/r`` (reduced), refused unless
``p`` and ``q`` are both at most :data:`MAX_FACTOR` (1000): :class:`UnsupportedRateError`. The
filter is :func:`scipy.signal.resample_poly`'s own default: a linear-phase FIR low-pass of
``20 * max(p, q) + 1`` taps, Kaiser window (beta = 5.0, about 50 dB stop-band attenuation),
cut-off at the lower of the two Nyquist frequencies (64 Hz when downsampling). Components above
64 Hz are attenuated, not folded back; the pass band is flat to within 2 % up to 40 Hz (the
tests check 8, 10, 15 and 17 Hz sines at 200 and 2000 Hz: frequency within 0.1 Hz, amplitude
within 2 %). A native 128 Hz stream is passed through untouched (no filter).

**Streaming.** The input is resampled chunk by chunk, each chunk with a margin of input on both
sides as long as the filter's half length, so every output sample is exactly the one a
whole-signal ``resample_poly`` would compute: frame boundaries do not click. The first margin of
a stream (and of each stretch after a gap) is warm-up and makes no output (at most ``M`` input
samples, well under a second); the same margin at the end of a live stream is latency.

**High-pass (optional).** ``highpass_hz`` (``cortex-sal sensor --highpass HZ``) removes the DC
offset and slow drift that live amplifiers carry (the shield's normalisation,
``clip((x + 50) / 100)``, assumes a signal around 0 µV): a 2nd-order Butterworth high-pass run
causally on the 128 Hz output, its state carried from block to block (and started at the first
sample's steady state, so a DC offset makes no transient), reset after a gap. Off by default, so
files and the synthetic source reach the shield exactly as recorded.

**Gaps.** A block that starts with ``gap_before`` (the source saw lost samples) drops the frame in
progress (it would straddle the gap: counted in :attr:`FrameCounter.frames_dropped`), counts the
gap, and restarts the resampler on the samples after it. A frame is never built across a gap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, SourceError, UnsupportedRateError
from .base import Block, Source

__all__ = [
    "FRAME_SAMPLES",
    "MAX_FACTOR",
    "OUTPUT_RATE_HZ",
    "FrameCounter",
    "Framer",
    "frames",
    "resampling_factors",
]

OUTPUT_RATE_HZ = 128
FRAME_SAMPLES = 256
MAX_FACTOR = 1000
FRAME_DTYPE = np.dtype("<f4")


def resampling_factors(rate_hz: float) -> tuple[int, int]:
    """``(up, down)`` with ``up / down == 128 / rate_hz`` exactly, both at most :data:`MAX_FACTOR`."""
    if isinstance(rate_hz, bool) or not isinstance(rate_hz, int | float) or not math.isfinite(rate_hz) or rate_hz <= 0:
        raise UnsupportedRateError(f"the native rate must be a positive finite number of Hz, got {rate_hz!r}")
    rate = Fraction(rate_hz).limit_denominator(MAX_FACTOR)
    if abs(float(rate) - rate_hz) > 1e-9 * rate_hz:
        raise UnsupportedRateError(
            f"a native rate of {rate_hz!r} Hz is not a fraction with a denominator of at most {MAX_FACTOR}: "
            "it cannot be resampled exactly to 128 Hz"
        )
    ratio = Fraction(OUTPUT_RATE_HZ) / rate
    if ratio.numerator > MAX_FACTOR or ratio.denominator > MAX_FACTOR:
        raise UnsupportedRateError(
            f"{rate_hz!r} Hz to 128 Hz is {ratio.numerator}/{ratio.denominator}: both factors must be at most "
            f"{MAX_FACTOR} (rates such as 100, 125, 160, 200, 250, 256, 500, 512, 1000, 2000 Hz are)"
        )
    return ratio.numerator, ratio.denominator


@dataclass
class FrameCounter:
    """What the framer did: the sensor reports it (``cortex-sal sensor``'s summary)."""

    frames: int = 0  # frames emitted
    gaps: int = 0  # gaps the source reported
    frames_dropped: int = 0  # frames in progress when a gap came: never emitted
    samples_in: int = 0  # native samples taken in

    def summary(self) -> str:
        return f"{self.gaps} gap(s), {self.frames_dropped} frame(s) dropped at gaps"


class Framer:
    """Blocks of ``n_channels`` at ``rate_hz`` in, ``(C, 256)`` float32 frames at 128 Hz out."""

    def __init__(
        self, n_channels: int, rate_hz: float, *, counter: FrameCounter | None = None, highpass_hz: float | None = None
    ) -> None:
        if isinstance(n_channels, bool) or not isinstance(n_channels, int) or not 1 <= n_channels <= 1024:
            raise InvalidArgumentError(f"n_channels must be an int from 1 to 1024, got {n_channels!r}")
        self._sos: np.ndarray[Any, Any] | None = None
        if highpass_hz is not None:
            if (isinstance(highpass_hz, bool) or not isinstance(highpass_hz, int | float)
                    or not math.isfinite(highpass_hz) or not 0.01 <= highpass_hz <= 20.0):  # fmt: skip
                raise InvalidArgumentError(f"highpass_hz must be from 0.01 to 20 Hz, got {highpass_hz!r}")
            from scipy.signal import butter

            self._sos = butter(2, float(highpass_hz), btype="highpass", fs=OUTPUT_RATE_HZ, output="sos")
        self.highpass_hz = highpass_hz
        self.n_channels = n_channels
        self.rate_hz = float(rate_hz)
        self.up, self.down = resampling_factors(rate_hz)
        self.counter = counter if counter is not None else FrameCounter()
        self._passthrough = self.up == self.down == 1
        if self._passthrough:
            self.margin = 0
            self.chunk = 1
        else:
            half_len = 10 * max(self.up, self.down)  # resample_poly's filter: 2 * half_len + 1 taps (upsampled)
            reach = half_len // self.up + 2  # input samples each output sample needs on either side
            self.margin = self.down * math.ceil(reach / self.down)  # a multiple of down: outputs stay on the grid
            self.chunk = self.down * max(1, math.ceil(0.5 * self.rate_hz / self.down))
        self._reset()

    def _reset(self) -> None:
        self._input = np.zeros((self.n_channels, 0))  # native samples from input index _start - margin
        self._out = np.zeros((self.n_channels, 0))  # resampled samples of the frame in progress
        self._fresh = True
        self._zi: np.ndarray[Any, Any] | None = None  # the high-pass's state, started at the first sample

    @property
    def pending(self) -> int:
        """Resampled samples waiting for a full frame."""
        return int(self._out.shape[1])

    def push(self, block: Block) -> list[np.ndarray[Any, Any]]:
        """Take one block; return the frames it completes (each a new C-contiguous (C, 256) float32)."""
        samples = block.samples
        if samples.ndim != 2 or samples.shape[0] != self.n_channels:
            raise SourceError(f"a block of shape {samples.shape} does not have the framer's {self.n_channels} channels")
        if block.gap_before and not self._fresh:
            self.counter.gaps += 1
            if self._out.shape[1] or self._input.shape[1]:
                self.counter.frames_dropped += 1
            self._reset()
        elif block.gap_before:
            self.counter.gaps += 1
        if samples.shape[1] == 0:
            return []
        self._fresh = False
        self.counter.samples_in += samples.shape[1]
        x = np.asarray(samples, dtype=np.float64)
        if self._passthrough:
            self._append(x)
        else:
            self._input = np.concatenate((self._input, x), axis=1)
            self._resample()
        return self._cut()

    def _append(self, y: np.ndarray[Any, Any]) -> None:
        """Resampled samples, high-passed when asked, onto the frame in progress."""
        if self._sos is not None and y.shape[1]:
            from scipy.signal import sosfilt, sosfilt_zi

            if self._zi is None:  # the steady state of the first sample: a DC offset makes no transient
                self._zi = sosfilt_zi(self._sos)[:, None, :] * y[None, :, 0, None]
            y, self._zi = sosfilt(self._sos, y, axis=1, zi=self._zi)
        self._out = np.concatenate((self._out, y), axis=1)

    def _resample(self) -> None:
        from scipy.signal import resample_poly

        m, c = self.margin, self.chunk
        produced = []
        # _input[:, 0] is ``margin`` samples before the next chunk's first sample
        while self._input.shape[1] >= m + c + m:
            segment = self._input[:, : m + c + m]
            y = resample_poly(segment, self.up, self.down, axis=1)
            a = m * self.up // self.down
            produced.append(y[:, a : a + c * self.up // self.down])
            self._input = self._input[:, c:]
        if produced:
            self._append(np.concatenate(produced, axis=1))

    def _cut(self) -> list[np.ndarray[Any, Any]]:
        out = []
        while self._out.shape[1] >= FRAME_SAMPLES:
            frame = np.ascontiguousarray(self._out[:, :FRAME_SAMPLES], dtype=FRAME_DTYPE)
            self._out = self._out[:, FRAME_SAMPLES:]
            out.append(frame)
        self.counter.frames += len(out)
        return out


def frames(
    source: Source | Iterable[Block],
    *,
    n_channels: int | None = None,
    rate_hz: float | None = None,
    counter: FrameCounter | None = None,
    max_frames: int | None = None,
    highpass_hz: float | None = None,
) -> Iterator[np.ndarray[Any, Any]]:
    """The 128 Hz frames of a source (its channels and rate), ``(C, 256)`` float32 each, at most
    ``max_frames``. ``counter`` (a :class:`FrameCounter`) is updated as frames go out;
    ``highpass_hz``: the optional high-pass of :class:`Framer`."""
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise InvalidArgumentError(f"max_frames must be a positive int or None, got {max_frames!r}")
    if isinstance(source, Source):
        n_channels, rate_hz, blocks = source.n_channels, source.rate_hz, source.blocks()
    else:
        if n_channels is None or rate_hz is None:
            raise InvalidArgumentError("frames() of bare blocks needs n_channels and rate_hz")
        blocks = iter(source)
    framer = Framer(n_channels, rate_hz, counter=counter, highpass_hz=highpass_hz)
    sent = 0
    for block in blocks:
        for frame in framer.push(block):
            yield frame
            sent += 1
            if max_frames is not None and sent >= max_frames:
                return
