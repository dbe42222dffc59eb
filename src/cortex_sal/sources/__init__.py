"""Sample sources for the shield, resampled and framed at the sensor (docs/sources.md).

Every source implements :class:`~.base.Source` (labels, microvolts, a native rate, blocks);
:func:`~.spec.open_spec` opens one from a spec (``synthetic``, ``edf:PATH``,
``brainflow:synthetic``, ``lsl:type=EEG``, ...); :func:`~.framing.frames` turns it into
C-contiguous ``(C, 256)`` float32 frames at 128 Hz, gaps counted. The optional packages
(pyedflib, brainflow, pylsl, pyxdf) are imported only when a source of theirs is opened.
"""

from __future__ import annotations

from .base import Block, Source
from .edf import EdfSource, bundled_edf_path
from .framing import FRAME_SAMPLES, OUTPUT_RATE_HZ, FrameCounter, Framer, frames, resampling_factors
from .spec import KINDS, installed, open_spec
from .synthetic import SyntheticSource, synthetic_eeg

__all__ = [
    "FRAME_SAMPLES",
    "KINDS",
    "OUTPUT_RATE_HZ",
    "Block",
    "EdfSource",
    "FrameCounter",
    "Framer",
    "Source",
    "SyntheticSource",
    "bundled_edf_path",
    "frames",
    "installed",
    "open_spec",
    "resampling_factors",
    "synthetic_eeg",
]
