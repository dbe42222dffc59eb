"""``RawBiometricFrame``: one frame of raw samples in locked memory, zeroed on exit.

Samples are float32 little-endian microvolts at 128 Hz: 256 per channel, channel-major, so a
frame of C channels is a ``C x 1024``-byte payload (C = 1: exactly the 1024-byte frame of the
design). The buffer's shape is ``(256,)`` for one channel (as before multi-channel) and
``(C, 256)`` for more; :attr:`RawBiometricFrame.channels_view` is always ``(C, 256)``.
They arrive either straight from the channel - a v1 session or a v2 transport writes the
plaintext into this frame's own locked buffer, so no other copy is ever made - or,
through the seed's ``ingest_raw_data``, copied once from the caller's array. Processing
uses a numpy *view* of the buffer, never a heap copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import FrameFormatError, InvalidArgumentError, WrongTypeError
from ..keros.channel import Channel
from ..keros.registry import MAX_CHANNELS
from ..securemem import SecureTensorBuffer

SAMPLES_PER_FRAME = 256
SAMPLE_DTYPE = np.dtype("<f4")
FRAME_PAYLOAD_BYTES = SAMPLES_PER_FRAME * SAMPLE_DTYPE.itemsize


def sample_array(samples: object) -> np.ndarray[Any, Any]:
    """``np.asarray(samples)``; input numpy cannot turn into an array (ragged lists, ...) is an
    ``InvalidArgumentError`` whose message carries no sample value."""
    try:
        return np.asarray(samples)
    except (ValueError, TypeError):
        raise InvalidArgumentError(
            f"raw samples must form a rectangular numeric array, got {type(samples).__name__}"
        ) from None


class RawBiometricFrame:
    """Raw samples of one frame, held in a :class:`SecureTensorBuffer`."""

    __slots__ = ("_buffer",)

    def __init__(self, n_samples: int = SAMPLES_PER_FRAME, channels: int = 1) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int):
            raise WrongTypeError(f"channels must be an int, got {type(channels).__name__}")
        if not 1 <= channels <= MAX_CHANNELS:
            raise InvalidArgumentError(f"channels must be within 1..{MAX_CHANNELS}, got {channels}")
        shape = (n_samples,) if channels == 1 else (channels, n_samples)
        self._buffer = SecureTensorBuffer(shape, SAMPLE_DTYPE)

    @classmethod
    def from_channel(cls, channel: Channel, message: bytes, channels: int = 1) -> RawBiometricFrame:
        """Decrypt a channel message of exactly ``channels`` x 256 samples straight into a new frame's
        locked buffer.

        ``channel`` is any :class:`~cortex_sal.keros.channel.Channel`: a v1 session or a v2
        Noise transport; the size is checked against its overhead before anything is decrypted, and a
        message of another size is a ``FrameFormatError`` naming the channel count expected."""
        if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
            raise InvalidArgumentError(f"channels must be an int within 1..{MAX_CHANNELS}, got {channels!r}")
        payload = channels * FRAME_PAYLOAD_BYTES
        wire = channel.overhead + payload
        if not isinstance(message, bytes) or len(message) != wire:
            size = len(message) if isinstance(message, bytes) else type(message).__name__
            what = "" if channels == 1 else f" ({channels} channels x {SAMPLES_PER_FRAME} samples)"
            raise FrameFormatError(
                f"a raw frame of this sensor carries exactly {payload} payload bytes{what} ({wire} on the wire), "
                f"got {size}"
            )
        raw = cls(channels=channels)
        try:
            channel.open_into(message, raw._buffer)
        except BaseException:
            raw.close()
            raise
        return raw

    @classmethod
    def from_samples(cls, samples: npt.ArrayLike) -> RawBiometricFrame:
        """Copy samples (1-D, or (channels, samples); finite) in once; the caller's array is theirs to wipe.

        A (1, n) array gives the one-channel (n,) buffer, as a 1-D array does."""
        arr = sample_array(samples)
        if arr.ndim not in (1, 2) or arr.size == 0:
            raise InvalidArgumentError(f"raw samples must be a non-empty 1-D or (channels, samples) array, "
                                       f"got shape {arr.shape}")  # fmt: skip
        if arr.dtype.kind not in "iuf":
            raise InvalidArgumentError(f"raw samples must be numeric, got dtype {arr.dtype}")
        raw = cls(arr.shape[-1], 1 if arr.ndim == 1 else arr.shape[0])
        try:
            with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused just below
                np.copyto(raw._buffer.array.reshape(arr.shape), arr, casting="unsafe")
            if not np.isfinite(raw._buffer.array).all():
                raise InvalidArgumentError(
                    "raw samples must be finite (NaN or infinity found, or a value beyond float32)"
                )
        except BaseException:
            raw.close()
            raise
        return raw

    @property
    def samples(self) -> np.ndarray[Any, Any]:
        """A view of the locked samples (no copy). Invalid after the frame is closed."""
        return self._buffer.array

    @property
    def channels_view(self) -> np.ndarray[Any, Any]:
        """The locked samples as ``(C, n)`` (a view, no copy; C = 1 for a one-channel frame)."""
        arr = self._buffer.array
        return arr if arr.ndim == 2 else arr.reshape(1, -1)

    def close(self) -> None:
        """Zero the samples and release the buffer. Idempotent."""
        self._buffer.secure_purge()

    @property
    def is_closed(self) -> bool:
        return self._buffer.is_purged

    def __enter__(self) -> RawBiometricFrame:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RawBiometricFrame {'closed' if self.is_closed else 'live'}>"
