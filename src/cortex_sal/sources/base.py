"""The one interface every sample source implements, and the helpers they share.

A :class:`Source` has channel ``labels``, ``units`` (always ``"uV"``: every source converts to
microvolts), its native ``rate_hz``, and :meth:`Source.blocks`: an iterator of :class:`Block`
(samples ``(C, n)`` in microvolts, timestamps ``(n,)`` in seconds). A block is contiguous: a
source that sees a gap (a jump of timestamps, a skipped package number) ends the block there and
starts the next with ``gap_before=True``; :mod:`.framing` turns that into a dropped frame and a
counted gap.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SourceDependencyError, SourceError

__all__ = [
    "GAP_FACTOR",
    "Block",
    "Source",
    "require",
    "select_channels",
    "split_at_gaps",
    "unit_scale",
]

GAP_FACTOR = 1.5  # consecutive timestamps further apart than 1.5 sample periods are a gap


@dataclass(frozen=True)
class Block:
    """Contiguous samples of every channel: ``samples`` (C, n) float in microvolts, ``timestamps``
    (n,) float64 seconds; ``gap_before``: samples were lost between the previous block and this one."""

    samples: np.ndarray[Any, Any]
    timestamps: np.ndarray[Any, Any]
    gap_before: bool = False

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.timestamps.ndim != 1 or self.samples.shape[1] != self.timestamps.shape[0]:
            raise SourceError(
                "a block needs samples (C, n) and timestamps (n,), "
                f"got {self.samples.shape} and {self.timestamps.shape}"
            )

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])


class Source(ABC):
    """A sample source: channel labels, microvolts, a native rate, blocks; closed when done."""

    #: the spec kind (``synthetic``, ``edf``, ``bdf``, ``brainflow``, ``lsl``, ``xdf``)
    kind: str = ""
    units: str = "uV"
    #: blocks arrive in real time (a device, a stream): reading one waits for the samples
    live: bool = False

    def __init__(self, *, name: str, labels: Sequence[str], rate_hz: float, description: str) -> None:
        self.name = name
        self.labels = tuple(labels)
        self.rate_hz = float(rate_hz)
        self.description = description
        self._closed = False

    @property
    def n_channels(self) -> int:
        return len(self.labels)

    @abstractmethod
    def blocks(self) -> Iterator[Block]:
        """Blocks of samples until the source ends (a file's end; a live source runs until closed)."""

    def close(self) -> None:
        """Release the file, device or stream. Idempotent."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.n_channels} channel(s) at {self.rate_hz:g} Hz>"


def require(module: str, extra: str) -> Any:
    """Import an optional package, or raise :class:`SourceDependencyError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SourceDependencyError(
            f"this source needs the optional package {module.split('.')[0]!r}: pip install 'cortex-sal[{extra}]'"
        ) from None


def select_channels(available: Sequence[str], wanted: Sequence[str] | None, *, what: str) -> list[int]:
    """Indices of ``wanted`` labels (exact, then case-insensitive) in ``available``; all when ``None``."""
    if wanted is None:
        return list(range(len(available)))
    if not wanted:
        raise SourceError(f"{what}: an empty channel selection; available: {', '.join(available)}")
    stripped = [a.strip() for a in available]
    folded = [a.lower() for a in stripped]
    out: list[int] = []
    for label in wanted:
        key = label.strip()
        if key in stripped:
            index = stripped.index(key)
        elif key.lower() in folded:
            index = folded.index(key.lower())
        else:
            raise SourceError(f"{what}: no channel {key!r}; available: {', '.join(stripped)}")
        if index in out:
            raise SourceError(f"{what}: channel {key!r} selected twice")
        out.append(index)
    return out


_UNITS = {
    "uv": 1.0,
    "µv": 1.0,
    "μv": 1.0,
    "microvolt": 1.0,
    "microvolts": 1.0,
    "mv": 1e3,
    "millivolt": 1e3,
    "millivolts": 1e3,
    "v": 1e6,
    "volt": 1e6,
    "volts": 1e6,
    "nv": 1e-3,
    "nanovolts": 1e-3,
}


def unit_scale(unit: str, *, what: str, missing_is_microvolts: bool = True) -> float:
    """The factor that turns ``unit`` into microvolts; an unknown unit is a :class:`SourceError`."""
    key = unit.strip().lower()
    if not key and missing_is_microvolts:
        return 1.0
    if key not in _UNITS:
        raise SourceError(f"{what}: unit {unit!r} is not a voltage this library converts (uV, mV, V, nV)")
    return _UNITS[key]


def split_at_gaps(
    samples: np.ndarray[Any, Any], timestamps: np.ndarray[Any, Any], rate_hz: float, last: float | None
) -> Iterator[Block]:
    """Blocks of ``samples`` split where consecutive timestamps (also from ``last``, the previous
    block's last timestamp) jump by more than ``GAP_FACTOR`` sample periods, or go backwards."""
    if timestamps.size == 0:
        return
    limit = GAP_FACTOR / rate_hz
    steps = np.diff(timestamps)
    cuts = np.flatnonzero((steps > limit) | (steps <= 0.0)) + 1
    first_gap = last is not None and not (0.0 < timestamps[0] - last <= limit)
    bounds = [0, *cuts.tolist(), timestamps.size]
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        yield Block(samples[:, a:b], timestamps[a:b], gap_before=first_gap if i == 0 else True)


def check_rate(rate: float, *, what: str) -> float:
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not math.isfinite(rate) or rate <= 0:
        raise SourceError(f"{what}: the sampling rate must be a positive number of Hz, got {rate!r}")
    return float(rate)
