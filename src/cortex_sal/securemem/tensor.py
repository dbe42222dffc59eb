"""Raw samples in locked memory, viewed by numpy without a copy (the SAL's buffer).

``SecureTensorBuffer`` owns an arena slot and lends numpy an ndarray *onto* that slot:
``buf.array`` is a view, so ``np.shares_memory`` with the slot holds and nothing of the
samples is copied to the heap by the buffer itself. Exiting the context (or
``secure_purge()``) zeroes the samples. If a caller still holds a view at that point the
slot is zeroed and retired for good (never reused), so a stale view reads zeros and can
never see another session's samples.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InvalidArgumentError, WrongTypeError
from .arena import MAX_ALLOCATION
from .buffer import SecureBuffer, _memory_view

log = logging.getLogger("cortex_sal.securemem")

MAX_DIMENSIONS = 32  # numpy 1.x's limit (2.x allows 64): a shape every supported numpy can view


class SecureTensorBuffer(SecureBuffer):
    """An n-dimensional numeric array whose storage is an arena slot."""

    __slots__ = ("_array", "_dtype", "_shape")

    def __init__(self, shape: int | tuple[int, ...], dtype: npt.DTypeLike = np.float64) -> None:
        shape_t = (shape,) if isinstance(shape, int) and not isinstance(shape, bool) else shape
        if not isinstance(shape_t, tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape_t
        ):
            raise InvalidArgumentError(f"shape must be a positive int or a tuple of positive ints, got {shape!r}")
        if len(shape_t) > MAX_DIMENSIONS:
            raise InvalidArgumentError(f"a tensor has at most {MAX_DIMENSIONS} dimensions, got {len(shape_t)}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a deprecated spelling is refused, not half-accepted
                dt = np.dtype(dtype)
        except (TypeError, ValueError, SyntaxError, Warning):  # numpy parses strings: "0:", "01"
            raise WrongTypeError(f"dtype {dtype!r} is not a numpy dtype") from None
        if dt.kind not in "iuf" or dt.hasobject:
            raise InvalidArgumentError(f"dtype must be a plain integer or float type, got {dt}")
        nbytes = math.prod(shape_t) * dt.itemsize
        if nbytes > MAX_ALLOCATION:
            raise InvalidArgumentError(
                f"a tensor of shape {shape_t} and dtype {dt} needs {nbytes} bytes, "
                f"beyond the maximum of {MAX_ALLOCATION} bytes (1 GiB)"
            )
        self._shape = shape_t
        self._dtype = dt
        self._array: np.ndarray[Any, Any] | None = None
        super().__init__(nbytes)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        return self._dtype

    @property
    def array(self) -> np.ndarray[Any, Any]:
        """The numpy view onto the locked samples (no copy). Invalid after purge."""
        slot = self._live_slot()
        if self._array is None:
            self._view_root = _memory_view(slot.address, slot.size)
            self._array = np.frombuffer(self._view_root, dtype=self._dtype).reshape(self._shape)
        return self._array

    def fill_from(self, samples: npt.ArrayLike) -> None:
        """Copy samples of exactly this shape in (converting to this dtype, in place)."""
        try:
            src = np.asarray(samples)
        except (ValueError, TypeError):  # ragged nested sequences; the message would echo samples
            raise InvalidArgumentError(f"samples must form an array of shape {self._shape}") from None
        if src.shape != self._shape:
            raise InvalidArgumentError(f"samples have shape {src.shape}, buffer holds {self._shape}")
        np.copyto(self.array, src, casting="same_kind")

    def _release_views(self) -> bool:
        array, self._array = self._array, None
        root, self._view_root = self._view_root, None
        if root is None:
            return True
        # np.frombuffer wraps the root in a memoryview of its own and a caller's view points
        # at a base array, not at the root: check every link of the chain. Each is held by
        # one owner (our local, or the array whose base it is), ``chain``, ``obj`` and
        # getrefcount's argument; anything more is a caller's view.
        chain: list[object] = [root]
        link: object = array
        while link is not None:
            chain.append(link)
            link = link.base if isinstance(link, np.ndarray) else None
        held = False
        for obj in chain:
            held = held or sys.getrefcount(obj) > 4
        if held:
            log.warning("a view of a SecureTensorBuffer outlived it: slot zeroed and retired, the view reads zeros")
        return not held

    def __enter__(self) -> SecureTensorBuffer:
        self._live_slot()
        return self

    def __repr__(self) -> str:
        state = "purged" if self._slot is None else "live"
        return f"<SecureTensorBuffer shape={self._shape} dtype={self._dtype} {state}>"
