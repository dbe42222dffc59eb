"""Replay of one stream of an XDF recording through the optional pyxdf: ``pip install 'cortex-sal[xdf]'``.

The stream is chosen by name (``xdf:PATH#NAME``) or by ``type=``/``name=``/``source_id=``
(``xdf:PATH#type=EEG``); exactly one stream must match. Its labels and units come from the
stream header's ``desc/channels/channel``; timestamps are the recording's (pyxdf synchronises
the clocks; dejittering is off so that a real pause stays a pause): a jump of more than 1.5
sample periods is a gap. The whole stream is read at open (XDF has no index to seek by).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import SourceError
from .base import Block, Source, require, select_channels, split_at_gaps, unit_scale

__all__ = ["XdfSource"]

BLOCK_SECONDS = 4.0


def _first(node: Any, key: str, default: str = "") -> str:
    try:
        value = node[key][0]
    except (KeyError, IndexError, TypeError):
        return default
    return str(value) if value is not None else default


class XdfSource(Source):
    kind = "xdf"

    def __init__(self, path: str, stream: str, *, channels: Sequence[str] | None = None) -> None:
        pyxdf = require("pyxdf", "xdf")
        if not os.path.isfile(path):
            raise SourceError(f"no XDF file at {path!r}")
        prop, sep, value = stream.partition("=")
        if not sep:
            prop, value = "name", stream
        if prop not in ("name", "type", "source_id") or not value:
            raise SourceError(f"an XDF stream is chosen by NAME, name=, type= or source_id=, got {stream!r}")
        try:
            streams, _ = pyxdf.load_xdf(path, synchronize_clocks=True, dejitter_timestamps=False)
        except Exception as exc:  # pyxdf raises what its parser meets (struct, XML, EOF errors); a file of
            # garbage is read as no stream at all (refused below)
            raise SourceError(f"{path!r} is not a readable XDF file: {type(exc).__name__}") from None
        what = f"XDF {os.path.basename(path)!r}"
        infos = [s["info"] for s in streams]
        matches = [i for i, info in enumerate(infos) if _first(info, prop) == value]
        names = ", ".join(f"{_first(i, 'name')} (type {_first(i, 'type')})" for i in infos) or "none"
        if len(matches) != 1:
            raise SourceError(f"{what}: {len(matches)} streams with {prop}={value!r}, need one; it has: {names}")
        chosen = streams[matches[0]]
        info = chosen["info"]
        rate = float(_first(info, "nominal_srate", "0") or 0)
        if rate <= 0:
            raise SourceError(f"{what}: stream {value!r} has an irregular rate: only regular EEG streams are framed")
        data = np.asarray(chosen["time_series"])
        if data.dtype.kind not in "iuf" or data.ndim != 2:
            raise SourceError(f"{what}: stream {value!r} is not numeric samples")
        count = data.shape[1]
        labels, units = [f"ch{i + 1}" for i in range(count)], [""] * count
        try:
            described = info["desc"][0]["channels"][0]["channel"]
        except (KeyError, IndexError, TypeError):
            described = []
        if len(described) == count:
            labels = [_first(ch, "label", f"ch{i + 1}") for i, ch in enumerate(described)]
            units = [_first(ch, "unit") for ch in described]
        self._picked = select_channels(labels, channels, what=what)
        scale = np.array([unit_scale(units[i], what=f"{what} channel {labels[i]!r}") for i in self._picked])[:, None]
        self._samples = np.ascontiguousarray(data.T[self._picked], dtype=np.float64) * scale
        self._stamps = np.asarray(chosen["time_stamps"], dtype=np.float64)
        super().__init__(
            name=f"xdf:{os.path.basename(path)}",
            labels=[labels[i] for i in self._picked],
            rate_hz=rate,
            description=f"XDF {os.path.basename(path)} stream {_first(info, 'name')}, "
            f"{len(self._picked)} channel(s), {rate:g} Hz",
        )

    def blocks(self) -> Iterator[Block]:
        step = max(1, int(BLOCK_SECONDS * self.rate_hz))
        last: float | None = None
        for start in range(0, self._stamps.size, step):
            if self.closed:
                return
            ts = self._stamps[start : start + step]
            yield from split_at_gaps(self._samples[:, start : start + step], ts, self.rate_hz, last)
            last = float(ts[-1])

    def close(self) -> None:
        if not self.closed:
            self._samples = np.zeros((self.n_channels, 0))
        super().close()
