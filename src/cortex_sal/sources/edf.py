"""EDF and BDF files (EDF+, BDF+) through the optional pyedflib: ``pip install 'cortex-sal[edf]'``.

Channels are chosen by label (all signals when none is named; annotation signals are never
samples and are left out); every chosen channel must share one sampling rate, or the file is
refused with the rates listed. Samples are converted to microvolts from each signal's physical
dimension (uV, mV, V). Annotations are ignored. Timestamps count from the file's start (the
records of an EDF are contiguous: no gap is reported).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import SourceError
from .base import Block, Source, require, select_channels, unit_scale

__all__ = ["EdfSource", "bundled_edf_path"]

READ_SECONDS = 4.0  # samples read per block, in seconds of the file


class EdfSource(Source):
    """One EDF/BDF file; ``channels`` by label (``None``: every signal)."""

    kind = "edf"

    def __init__(self, path: str, *, channels: Sequence[str] | None = None) -> None:
        pyedflib = require("pyedflib", "edf")
        if not isinstance(path, str) or not path:
            raise SourceError(f"an EDF/BDF path must be a non-empty string, got {path!r}")
        if not os.path.isfile(path):
            raise SourceError(f"no EDF/BDF file at {path!r}")
        try:
            reader = pyedflib.EdfReader(path)
        except OSError as exc:
            raise SourceError(f"{path!r} is not a readable EDF/BDF file: {exc}") from None
        self._reader: Any = reader
        try:
            labels = [str(x).strip() for x in reader.getSignalLabels()]
            signals = [i for i, x in enumerate(labels) if "annotation" not in x.lower()]
            what = f"EDF/BDF {os.path.basename(path)!r}"
            chosen = [signals[i] for i in select_channels([labels[i] for i in signals], channels, what=what)]
            if not chosen:
                raise SourceError(f"{what} holds no signal")
            rates = {i: float(reader.getSampleFrequency(i)) for i in chosen}
            if len(set(rates.values())) != 1:
                listed = ", ".join(f"{labels[i]} {r:g} Hz" for i, r in rates.items())
                raise SourceError(
                    f"{what}: the chosen channels do not share one sampling rate ({listed}); "
                    "choose channels of one rate: edf:PATH#LABEL,LABEL"
                )
            self._scale = np.array(
                [unit_scale(reader.getPhysicalDimension(i), what=f"{what} channel {labels[i]!r}") for i in chosen]
            )[:, None]
            self._chosen = chosen
            self._n = min(int(reader.getNSamples()[i]) for i in chosen)
            rate = rates[chosen[0]]
            super().__init__(
                name=f"{'bdf' if path.lower().endswith('.bdf') else 'edf'}:{os.path.basename(path)}",
                labels=[labels[i] for i in chosen],
                rate_hz=rate,
                description=f"EDF/BDF file {os.path.basename(path)}, channel(s) {', '.join(labels[i] for i in chosen)}"
                f", {rate:g} Hz",
            )
        except BaseException:
            reader.close()
            raise
        self.path = path
        self.kind = "bdf" if path.lower().endswith(".bdf") else "edf"

    @property
    def n_samples(self) -> int:
        return self._n

    def blocks(self) -> Iterator[Block]:
        step = max(1, int(READ_SECONDS * self.rate_hz))
        for start in range(0, self._n, step):
            if self.closed:
                return
            n = min(step, self._n - start)
            data = np.stack([self._reader.readSignal(i, start, n) for i in self._chosen]) * self._scale
            yield Block(data, (start + np.arange(n)) / self.rate_hz)

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
        super().close()


def bundled_edf_path() -> str | None:
    """The real one-channel scalp EEG shipped inside pyedflib (Fp1, 128 Hz), when pyedflib is installed."""
    try:
        import pyedflib
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(pyedflib.__file__), "tests", "data", "test_subsecond.edf")
    return path if os.path.exists(path) else None
