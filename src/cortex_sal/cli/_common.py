"""What every command family shares: error guarding and argument types."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import CortexError

F = TypeVar("F", bound=Callable[..., int])


def guarded(func: F, error: type[CortexError]) -> F:
    """Turn stray OS and value errors of bad input into ``error`` (the CLI exits 2 on a ``CortexError``)."""

    def run(*args: Any, **kwargs: Any) -> int:
        try:
            return func(*args, **kwargs)
        except CortexError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise error(f"{type(e).__name__}: {e}") from None

    run.__doc__ = func.__doc__
    run.__name__ = func.__name__
    return run  # type: ignore[return-value]  # run takes and returns what func does


def timestamp_arg(value: str) -> float:
    """argparse type: a finite, non-negative number of seconds since the epoch."""
    try:
        t = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds since the epoch: {value!r}") from None
    if not math.isfinite(t) or t < 0:
        raise argparse.ArgumentTypeError(f"not a finite, non-negative epoch time: {value!r}")
    return t


__all__ = ["guarded", "timestamp_arg"]
