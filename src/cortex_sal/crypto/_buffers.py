"""Turning arguments into C pointers, with the checks every primitive shares.

:func:`address` and :func:`pointer` are THE accessor of this package for the raw address of a
secure buffer: every call into libsodium that reads or writes locked memory in place gets its
address here, and nowhere outside ``crypto/`` (and ``securemem/``, which owns the memory) is an
address taken. Both raise :class:`~cortex_sal.errors.PurgedBufferError` /
:class:`~cortex_sal.errors.ForkedBufferError` for a dead buffer, so an address is only ever
taken of live memory; it is valid until the buffer is purged. (They are securemem's own
accessors, bound here without a wrapper: hot paths pay no extra call.) :func:`view` lends a
memoryview onto the slot for the one consumer that reads memory rather than an address (hashlib).

Public (non-secret) arguments are checked by :func:`cortex_sal.checks.public_bytes`.
"""

from __future__ import annotations

import ctypes
from typing import TypeVar, overload

from ..errors import WrongLengthError, WrongTypeError
from ..securemem import SecureBuffer

BytesLike = bytes | bytearray | memoryview
Readable = SecureBuffer | BytesLike

address = SecureBuffer._address  # address(buf) -> int: the first byte of a live buffer
pointer = SecureBuffer._pointer  # pointer(buf) -> ctypes.c_void_p of the same address, ready-made
span = SecureBuffer._span  # span(buf) -> (address, size) of a live buffer, in one call
view = SecureBuffer._view  # with view(buf) as mv: a memoryview onto the slot (hashlib reads it in place)


_B = TypeVar("_B", bound=SecureBuffer)


@overload
def secret(buf: _B, what: str, length: int | None = None) -> _B: ...
@overload
def secret(buf: object, what: str, length: int | None = None) -> SecureBuffer: ...
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
            self.pointer: int | bytes | None = address(data)
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
