"""Turning arguments into C pointers, with the checks every primitive shares."""

from __future__ import annotations

import ctypes

from ..errors import WrongLengthError, WrongTypeError
from ..securemem import SecureBuffer

BytesLike = bytes | bytearray | memoryview
Readable = SecureBuffer | BytesLike


def public_bytes(data: object, what: str, length: int | None = None) -> bytes:
    """A public bytes-like argument as ``bytes`` (copies are fine: it is not secret)."""
    if isinstance(data, bytes):
        out = data
    elif isinstance(data, SecureBuffer):
        raise WrongTypeError(f"{what} is public data; pass bytes, not a {type(data).__name__}")
    elif isinstance(data, bytearray | memoryview):
        out = bytes(data)
    else:
        raise WrongTypeError(f"{what} must be bytes-like, got {type(data).__name__}")
    if length is not None and len(out) != length:
        raise WrongLengthError(f"{what} must be exactly {length} bytes, got {len(out)}")
    return out


def secret(buf: object, what: str, length: int | None = None) -> SecureBuffer:
    """A secret argument: it must be a live secure buffer (of ``length`` bytes)."""
    if not isinstance(buf, SecureBuffer):
        raise WrongTypeError(
            f"{what} must be a SecureBuffer/SecureKeyBuffer (secrets never travel as {type(buf).__name__})"
        )
    if length is not None and len(buf) != length:
        raise WrongLengthError(f"{what} must be exactly {length} bytes, got {len(buf)}")
    return buf


class Input:
    """Pointer and length of a readable argument: a secure buffer (in place) or bytes-like.

    Holds whatever keeps the memory alive for as long as the ``Input`` lives.
    """

    __slots__ = ("_keep", "length", "pointer")

    def __init__(self, data: object, what: str) -> None:
        if isinstance(data, SecureBuffer):
            self.length = len(data)
            self.pointer: int | bytes | None = data._address()
            self._keep: object = data
        elif isinstance(data, bytes):
            self.length = len(data)
            self.pointer = data  # ctypes passes a bytes object as a char* to its contents
            self._keep = data
        elif isinstance(data, memoryview) and not data.readonly and not data.c_contiguous:
            raise WrongTypeError(f"{what} must be a contiguous buffer, got a strided memoryview")
        elif isinstance(data, bytearray) or (isinstance(data, memoryview) and not data.readonly):
            view = memoryview(data).cast("B") if isinstance(data, memoryview) else data
            self.length = len(view)
            if self.length == 0:
                self.pointer, self._keep = None, data
            else:
                arr = (ctypes.c_char * self.length).from_buffer(view)
                self.pointer, self._keep = ctypes.addressof(arr), arr
        elif isinstance(data, memoryview):
            copy = bytes(data)  # a read-only public view: a copy is harmless
            self.length, self.pointer, self._keep = len(copy), copy, copy
        else:
            raise WrongTypeError(f"{what} must be bytes-like or a SecureBuffer, got {type(data).__name__}")
