"""Small argument checks shared by every layer (the base layer: imports only ``errors``)."""

from __future__ import annotations

from .errors import InvalidArgumentError, WrongLengthError, WrongTypeError


def int_in_range(value: object, what: str, low: int, high: int) -> int:
    """``value`` if it is an int (not a bool) in ``low..high``; else ``WrongTypeError`` /
    ``InvalidArgumentError`` naming ``what`` and the range."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise WrongTypeError(f"{what} must be an int, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgumentError(f"{what} must be between {low} and {high}, got {value}")
    return value


def public_bytes(data: object, what: str, length: int | None = None) -> bytes:
    """A PUBLIC bytes-like argument (``bytes``, ``bytearray``, ``memoryview``) as ``bytes``, of
    exactly ``length`` bytes when given; else ``WrongTypeError`` / ``WrongLengthError`` naming
    ``what``.

    Copies are fine: the data is not secret. Anything else is refused - in particular a secure
    buffer (it is not bytes-like: copying a secret into ``bytes`` would leak it).
    """
    if type(data) is bytes:
        out = data
    elif isinstance(data, bytes | bytearray | memoryview):
        out = bytes(data)
    else:
        raise WrongTypeError(f"{what} is public data and must be bytes-like, got {type(data).__name__}")
    if length is not None and len(out) != length:
        raise WrongLengthError(f"{what} must be exactly {length} bytes, got {len(out)}")
    return out


__all__ = ["int_in_range", "public_bytes"]
