"""Small argument checks shared by every layer (the base layer: imports only ``errors``)."""

from __future__ import annotations

from .errors import InvalidArgumentError, WrongTypeError


def int_in_range(value: object, what: str, low: int, high: int) -> int:
    """``value`` if it is an int (not a bool) in ``low..high``; else ``WrongTypeError`` /
    ``InvalidArgumentError`` naming ``what`` and the range."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise WrongTypeError(f"{what} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgumentError(f"{what} must be between {low} and {high}, got {value}")
    return value


__all__ = ["int_in_range"]
