"""Sample sources for the shield: a synthetic EEG channel, and EDF files (optional pyedflib).

Each source yields frames of 256 float32 samples in microvolts at 128 Hz.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import InvalidArgumentError

FRAME = 256
RATE_HZ = 128.0


@dataclass(frozen=True)
class Source:
    name: str
    sensor_model: str
    description: str
    rate_hz: float
    frames: Iterator[np.ndarray]


def synthetic_eeg(n_frames: int, *, seed: int = 1) -> Source:
    """A synthetic single-channel EEG: a steady alpha rhythm (10 Hz, 4 uV), theta (6 Hz,
    1.5 uV) and background noise (1 uV). Steady on purpose: the design's drift detector
    flags a stream whose coherency wanders from its first seven frames."""
    if not isinstance(n_frames, int) or isinstance(n_frames, bool) or n_frames < 1:
        raise InvalidArgumentError(f"n_frames must be a positive int, got {n_frames!r}")
    rng = np.random.default_rng(seed)

    def frames() -> Iterator[np.ndarray]:
        t = np.arange(FRAME) / RATE_HZ
        for i in range(n_frames):
            t0 = i * FRAME / RATE_HZ
            alpha = 4.0 * np.sin(2 * np.pi * 10.0 * (t + t0))
            theta = 1.5 * np.sin(2 * np.pi * 6.0 * (t + t0) + 0.3)
            noise = rng.normal(0.0, 1.0, FRAME)
            yield (alpha + theta + noise).astype(np.float32)

    return Source(
        "synthetic", "eeg_fp1_certified_v1", "synthetic EEG (alpha + theta + noise), 128 Hz", RATE_HZ, frames()
    )


def edf_file(path: str, *, channel: int = 0, max_frames: int | None = None) -> Source:
    """Frames from one channel of an EDF file, resampling refused: it must be 128 Hz."""
    try:
        import pyedflib
    except ImportError:
        raise InvalidArgumentError(
            "reading EDF files needs the optional pyedflib (pip install cortex-sal[edf])"
        ) from None
    reader = pyedflib.EdfReader(path)
    try:
        rate = float(reader.getSampleFrequency(channel))
        if rate != RATE_HZ:
            raise InvalidArgumentError(f"EDF channel {channel} is sampled at {rate} Hz; the shield expects 128 Hz")
        label = reader.getSignalLabels()[channel]
        signal = reader.readSignal(channel).astype(np.float32)
    finally:
        reader.close()
    n = len(signal) // FRAME
    if max_frames is not None:
        n = min(n, max_frames)
    model = "eeg_fp1_certified_v1" if label.strip().lower() == "fp1" else "eeg_occipital_certified_v1"

    def frames() -> Iterator[np.ndarray]:
        for i in range(n):
            yield signal[i * FRAME : (i + 1) * FRAME]

    return Source(
        f"edf:{os.path.basename(path)}", model, f"real scalp EEG, channel {label}, {rate:.0f} Hz", rate, frames()
    )


def bundled_edf_path() -> str | None:
    """The real one-channel scalp EEG shipped inside pyedflib, when pyedflib is installed."""
    try:
        import pyedflib
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(pyedflib.__file__), "tests", "data", "test_subsecond.edf")
    return path if os.path.exists(path) else None
