"""A synthetic EEG of any number of channels and any rate, seeded.

Each channel: a steady alpha rhythm (10 Hz, 4 uV), theta (6 Hz, 1.5 uV) and background noise
(N(0, 1) uV). Steady on purpose: the design's drift detector flags a stream whose coherency
wanders from its first seven frames. Channel ``c`` has its rhythms shifted by ``0.25 * c``
radians (channel 0 not at all), so channels differ but stay comparable.

The default (1 channel, 128 Hz, seed 1) is the signal this library has always streamed, bit for
bit: blocks of 256 samples, float64, cast to float32 by the framer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from .base import Block, Source

__all__ = ["BLOCK", "MAX_CHANNELS", "SyntheticSource", "synthetic_eeg"]

BLOCK = 256
MAX_CHANNELS = 256


class SyntheticSource(Source):
    kind = "synthetic"

    def __init__(
        self, *, channels: int = 1, rate_hz: float = 128.0, seed: int = 1, n_blocks: int | None = None
    ) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
            raise InvalidArgumentError(f"channels must be an int from 1 to {MAX_CHANNELS}, got {channels!r}")
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, int | float) or not 1.0 <= rate_hz <= 100_000.0:
            raise InvalidArgumentError(f"rate_hz must be a number of Hz from 1 to 100000, got {rate_hz!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InvalidArgumentError(f"seed must be a non-negative int, got {seed!r}")
        if n_blocks is not None and (isinstance(n_blocks, bool) or not isinstance(n_blocks, int) or n_blocks < 1):
            raise InvalidArgumentError(f"n_blocks must be a positive int or None, got {n_blocks!r}")
        labels = ["synthetic"] if channels == 1 else [f"S{c + 1}" for c in range(channels)]
        super().__init__(
            name="synthetic",
            labels=labels,
            rate_hz=rate_hz,
            description=f"synthetic EEG (alpha + theta + noise), {channels} channel(s), {float(rate_hz):g} Hz",
        )
        self.seed = seed
        self.n_blocks = n_blocks

    def blocks(self) -> Iterator[Block]:
        rng = np.random.default_rng(self.seed)
        rate = self.rate_hz
        t = np.arange(BLOCK) / rate
        phase = (0.25 * np.arange(self.n_channels))[:, None]
        i = 0
        while (self.n_blocks is None or i < self.n_blocks) and not self.closed:
            t0 = i * BLOCK / rate
            if self.n_channels == 1:  # today's arithmetic exactly (no phase term): bit-identical frames
                alpha: Any = 4.0 * np.sin(2 * np.pi * 10.0 * (t + t0))
                theta: Any = 1.5 * np.sin(2 * np.pi * 6.0 * (t + t0) + 0.3)
            else:
                alpha = 4.0 * np.sin(2 * np.pi * 10.0 * (t + t0) + phase)
                theta = 1.5 * np.sin(2 * np.pi * 6.0 * (t + t0) + 0.3 + phase)
            noise = rng.normal(0.0, 1.0, (self.n_channels, BLOCK))
            yield Block(np.broadcast_to(alpha + theta, (self.n_channels, BLOCK)) + noise, t0 + t)
            i += 1


class _LegacyFrames:
    """What ``synthetic_eeg`` returned before the sources package: kept for the shield's callers."""

    def __init__(self, source: SyntheticSource, n_frames: int) -> None:
        self.name = source.name
        self.sensor_model = "eeg_fp1_certified_v1"
        self.description = "synthetic EEG (alpha + theta + noise), 128 Hz"
        self.rate_hz = 128.0
        self.frames = (block.samples[0].astype(np.float32) for block in source.blocks())
        self._n = n_frames


def synthetic_eeg(n_frames: int, *, seed: int = 1) -> _LegacyFrames:
    """``n_frames`` one-channel frames at 128 Hz as 1-D ``(256,)`` float32 arrays (``.frames``), the
    shape today's one-channel shield takes. The new interface is :class:`SyntheticSource`."""
    if not isinstance(n_frames, int) or isinstance(n_frames, bool) or n_frames < 1:
        raise InvalidArgumentError(f"n_frames must be a positive int, got {n_frames!r}")
    return _LegacyFrames(SyntheticSource(seed=seed, n_blocks=n_frames), n_frames)
