"""Secure buffers: secrets that live in an arena slot and nowhere else.

A :class:`SecureBuffer` owns one slot of locked memory. It never turns into ``bytes``:
there is no buffer protocol, ``bytes(buf)`` raises, pickling and copying raise, and
``repr`` shows only the size and state. Code that needs the bytes works on the slot in
place (the crypto layer passes its address to libsodium) or borrows a short-lived
``bytearray`` with :meth:`SecureBuffer.export_bytearray`, which is zeroed on exit.
After :meth:`SecureBuffer.secure_purge` every use raises
:class:`~cortex_sal.errors.PurgedBufferError`: a purged key never silently reads as zeros.
"""

from __future__ import annotations

import ctypes
import hmac
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Self

from ..errors import (
    ForkedBufferError,
    InvalidArgumentError,
    NotCopyableError,
    PurgedBufferError,
    SecureMemoryError,
    WrongLengthError,
    WrongTypeError,
)
from . import _libc
from .arena import Slot, arena

current_arena = arena()

log = logging.getLogger("cortex_sal.securemem")


KEY_SIZE = 32

BytesLike = bytes | bytearray | memoryview


_memory_view = _libc.memory_view  # (address, size) -> a writable byte view onto it


def _byte_view(data: object, what: str) -> memoryview:
    """A flat byte view of a bytes-like argument, or a specific error."""
    if isinstance(data, SecureBuffer):
        raise WrongTypeError(f"{what}: expected a bytes-like object, got a {type(data).__name__}")
    try:
        view = memoryview(data)  # type: ignore[arg-type]  # any object: TypeError becomes WrongTypeError below
    except TypeError:
        raise WrongTypeError(f"{what}: expected a bytes-like object, got {type(data).__name__}") from None
    if not view.c_contiguous:
        raise InvalidArgumentError(f"{what}: buffer must be C-contiguous")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


class SecureBuffer:
    """``size`` bytes of secret in locked memory, zeroed when purged.

    Guarantees: the bytes live only in an arena slot (locked, dump-excluded, wiped in a
    forked child; see ``status()`` for what the kernel granted); ``secure_purge()``
    checks the slot's canary and zeroes it; every later use raises.
    """

    __slots__ = ("__weakref__", "_slot", "_view_root")
    _fixed_size: ClassVar[int | None] = None

    def __init__(self, size: int) -> None:
        """Allocate ``size`` zeroed bytes of locked memory."""
        if self._fixed_size is not None and size != self._fixed_size:
            raise WrongLengthError(f"{type(self).__name__} holds exactly {self._fixed_size} bytes, not {size}")
        self._view_root: memoryview | None = None
        self._slot: Slot | None = arena().allocate(size)

    # -- constructors ----------------------------------------------------------------

    @classmethod
    def allocate(cls, size: int | None = None) -> Self:
        """A zeroed buffer of ``size`` bytes (of the class's fixed size when it has one)."""
        return cls._new(size)

    @classmethod
    def random(cls, size: int | None = None) -> Self:
        """A buffer filled by the kernel CSPRNG straight into locked memory."""
        buf = cls._new(size)
        _libc.getrandom_into(buf._address(), len(buf))
        return buf

    @classmethod
    def from_bytes(cls, data: BytesLike, *, wipe_source: bool = False) -> Self:
        """Copy a bytes-like secret in; with ``wipe_source`` zero a writable source after.

        ``bytes`` sources cannot be wiped: the caller already holds an unlocked copy.
        """
        view = _byte_view(data, f"{cls.__name__} source")
        if wipe_source and view.readonly:
            raise WrongTypeError(f"wipe_source needs a writable source (e.g. bytearray), got {type(data).__name__}")
        buf = cls._new(len(view) if cls._fixed_size is None else cls._fixed_size, source_len=len(view))
        with buf._view() as dst:
            dst[:] = view
        if wipe_source:
            view[:] = bytes(len(view))
        return buf

    @classmethod
    def from_fd(cls, fd: int, size: int | None = None) -> Self:
        """Read exactly ``size`` bytes from a file descriptor straight into locked memory.

        Uses ``os.readv`` on the slot itself: no userspace buffer ever holds the bytes.
        """
        if not isinstance(fd, int) or isinstance(fd, bool) or not 0 <= fd < 2**31:
            raise WrongTypeError(f"fd must be a non-negative int, got {fd!r}")
        buf = cls._new(size)
        try:
            with buf._view() as dst:
                done = 0
                while done < len(dst):
                    try:
                        got = os.readv(fd, [dst[done:]])
                    except OSError as exc:  # not open, not readable, a directory, ...
                        raise InvalidArgumentError(f"cannot read a secret from fd {fd}: {exc.strerror}") from None
                    if got == 0:
                        raise WrongLengthError(f"fd closed after {done} of {len(dst)} secret bytes")
                    done += got
        except BaseException:
            buf.secure_purge()
            raise
        return buf

    @classmethod
    def _new(cls, size: int | None, *, source_len: int | None = None) -> Self:
        """A zeroed buffer of this class (``size`` is implied for fixed-size classes)."""
        fixed = cls._fixed_size
        if fixed is not None:
            if (size is not None and size != fixed) or (source_len is not None and source_len != fixed):
                got = source_len if source_len is not None else size
                raise WrongLengthError(f"{cls.__name__} holds exactly {fixed} bytes, got {got}")
            size = fixed
        if not isinstance(size, int) or isinstance(size, bool):
            raise WrongTypeError(f"size must be an int, got {type(size).__name__}")
        if size <= 0:
            raise InvalidArgumentError(f"size must be positive, got {size}")
        obj = cls.__new__(cls)
        SecureBuffer.__init__(obj, size)
        return obj

    # -- access (for the crypto layer and for this package) --------------------------

    def _live_slot(self) -> Slot:
        slot = self._slot
        if slot is None:
            raise PurgedBufferError(f"{type(self).__name__} was purged; it cannot be used again")
        if not current_arena.is_current(slot):
            raise ForkedBufferError(
                f"{type(self).__name__} was created before fork() (or the arena closed); its memory is wiped here"
            )
        return slot

    def _address(self) -> int:
        """Address of the first byte. Internal: valid only while the buffer is live."""
        slot = self._slot
        if slot is not None and slot.generation == current_arena.generation and not current_arena.closed:
            return slot.address
        return self._live_slot().address

    def _pointer(self) -> ctypes.c_void_p:
        """The address as a ready ``c_void_p`` (hot paths). Internal: valid only while live."""
        slot = self._slot
        if slot is not None and slot.generation == current_arena.generation and not current_arena.closed:
            return slot.pointer
        return self._live_slot().pointer

    def _span(self) -> tuple[int, int]:
        """``(address, size)`` in one call (hot paths). Internal: valid only while live."""
        slot = self._slot
        if slot is None or slot.generation != current_arena.generation or current_arena.closed:
            slot = self._live_slot()
        return slot.address, slot.size

    @contextmanager
    def _view(self) -> Iterator[memoryview]:
        """A writable memoryview onto the slot, released on exit. Internal."""
        slot = self._live_slot()
        view = _memory_view(slot.address, slot.size)
        try:
            yield view
        finally:
            view.release()

    def __len__(self) -> int:
        slot = self._slot
        if slot is None:
            raise PurgedBufferError(f"{type(self).__name__} was purged; it has no length any more")
        return slot.size

    @property
    def size(self) -> int:
        return len(self)

    @property
    def is_purged(self) -> bool:
        return self._slot is None

    def ensure_live(self) -> None:
        """Return if the buffer can be used; raise :class:`~cortex_sal.errors.PurgedBufferError`
        after a purge, :class:`~cortex_sal.errors.ForkedBufferError` in a forked child (or once
        the arena closed). For callers that must refuse a dead key before building anything."""
        self._live_slot()

    def zero(self, offset: int = 0, length: int | None = None) -> None:
        """Zero ``length`` bytes (the rest of the buffer by default) from ``offset``; the buffer stays live."""
        slot = self._live_slot()
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= slot.size:
            raise InvalidArgumentError(f"offset must be an int between 0 and {slot.size}, got {offset!r}")
        if length is None:
            length = slot.size - offset
        elif not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= slot.size - offset:
            raise InvalidArgumentError(f"length must be an int between 0 and {slot.size - offset}, got {length!r}")
        _libc.zero(slot.address + offset, length)

    def purge_probe(self) -> PurgeProbe:
        """A :class:`PurgeProbe` that tells, after this buffer is purged, whether its slot reads zero."""
        return PurgeProbe(self._live_slot())

    # -- the seed's API ---------------------------------------------------------------

    @contextmanager
    def export_bytearray(self) -> Iterator[bytearray]:
        """Lend a ``bytearray`` copy of the secret; it is zeroed when the block exits.

        Prefer the crypto layer, which works on the locked slot itself: the copy lives on
        the ordinary heap for the duration of the block.
        """
        slot = self._live_slot()
        copy = bytearray(slot.size)
        copy_address = ctypes.addressof((ctypes.c_char * slot.size).from_buffer(copy))
        ctypes.memmove(copy_address, slot.address, slot.size)
        try:
            yield copy
        finally:
            if len(copy):
                target = (ctypes.c_char * len(copy)).from_buffer(copy)
                _libc.zero(ctypes.addressof(target), len(copy))
                del target

    def constant_time_compare(self, other: SecureBuffer | BytesLike) -> bool:
        """Compare contents in constant time (for equal lengths); never copies either side."""
        with self._view() as mine:
            if isinstance(other, SecureBuffer):
                with other._view() as theirs:
                    return hmac.compare_digest(mine, theirs)
            return hmac.compare_digest(mine, _byte_view(other, "constant_time_compare argument"))

    def write(self, data: SecureBuffer | BytesLike, offset: int = 0, length: int | None = None) -> None:
        """Copy the first ``length`` bytes of ``data`` (all by default) in at ``offset``."""
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise InvalidArgumentError(f"offset must be a non-negative int, got {offset!r}")
        slot = self._live_slot()
        if isinstance(data, SecureBuffer):
            n, src = len(data), data._address()
        else:
            view = _byte_view(data, "write data")
            n = len(view)
            src = None
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or not 0 <= length <= n:
                raise InvalidArgumentError(f"length must be an int between 0 and {n}, got {length!r}")
            n = length
        if offset + n > slot.size:
            raise WrongLengthError(f"writing {n} bytes at offset {offset} overruns a {slot.size}-byte buffer")
        if src is not None:
            ctypes.memmove(slot.address + offset, src, n)
        elif (region_view := slot.region.view) is not None:  # the region's own byte view: no new view
            at = slot.offset + offset
            region_view[at : at + n] = view[:n]
        else:  # pragma: no cover - every mapped region has its view
            with self._view() as dst:
                dst[offset : offset + n] = view[:n]

    def secure_purge(self) -> None:
        """Zero the secret and release its slot. Idempotent.

        Raises :class:`~cortex_sal.errors.CanaryCorruptedError` if something wrote past
        the end of the buffer; the memory is wiped all the same.
        """
        slot = self._slot
        if slot is None:
            return
        self._slot = None
        reusable = self._release_views()
        arena().free(slot, reusable=reusable)

    def _release_views(self) -> bool:
        """Drop views lent out; return False if one is still held (slot must retire)."""
        return True

    def __enter__(self) -> Self:
        self._live_slot()
        return self

    def __exit__(self, *exc: object) -> None:
        self.secure_purge()

    def __del__(self) -> None:
        try:
            if getattr(self, "_slot", None) is not None:
                self.secure_purge()
        except SecureMemoryError as exc:  # never raise from a finaliser
            log.error("secure buffer finaliser: %s", exc)
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    # -- refusals ----------------------------------------------------------------------

    def __repr__(self) -> str:
        state = "purged" if self._slot is None else f"{self._slot.size} bytes, live"
        return f"<{type(self).__name__} {state}>"

    __str__ = __repr__

    def __bytes__(self) -> bytes:
        raise NotCopyableError(
            f"a {type(self).__name__} never becomes bytes; use its crypto operations or export_bytearray()"
        )

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError(f"a {type(self).__name__} cannot be pickled")

    def __copy__(self) -> Any:
        raise NotCopyableError(f"a {type(self).__name__} cannot be copied")

    def __deepcopy__(self, memo: object) -> Any:
        raise NotCopyableError(f"a {type(self).__name__} cannot be copied")

    def __getstate__(self) -> Any:
        raise NotCopyableError(f"a {type(self).__name__} cannot be pickled")


class PurgeProbe:
    """Watches the slot a buffer occupies, to check (self-tests) that purging zeroed it.

    :meth:`reads_zero` reads the slot's bytes in place, compares them with zeros and keeps
    nothing; it raises :class:`~cortex_sal.errors.SecureMemoryError` once the memory can no
    longer be read safely (the arena closed, the process forked, or the region was unmapped).
    """

    __slots__ = ("_address", "_generation", "_region", "_size")

    def __init__(self, slot: Slot) -> None:
        self._address = slot.address
        self._size = slot.size
        self._region = slot.region
        self._generation = slot.generation

    def reads_zero(self) -> bool:
        arena_now = arena()
        if (
            arena_now.closed
            or self._generation != arena_now.generation
            or not any(r is self._region for r in arena_now.regions())
        ):
            raise SecureMemoryError("the probed slot's memory is no longer mapped: it cannot be read")
        view = _memory_view(self._address, self._size)
        try:
            return not any(view)
        finally:
            view.release()

    def __repr__(self) -> str:
        return f"<PurgeProbe {self._size} bytes>"


class SecureKeyBuffer(SecureBuffer):
    """A 32-byte key in locked memory (the seed's ``SecureKeyBuffer``).

    ``SecureKeyBuffer()`` draws a random key inside locked memory;
    ``SecureKeyBuffer(key)`` copies a 32-byte bytes-like key in, and with
    ``wipe_source=True`` zeroes a ``bytearray`` source afterwards.
    """

    __slots__ = ()
    _fixed_size = KEY_SIZE

    def __init__(self, key: BytesLike | None = None, *, wipe_source: bool = False) -> None:
        self._view_root = None
        self._slot = None
        if key is None:
            if wipe_source:
                raise InvalidArgumentError("wipe_source needs a source key")
            self._slot = arena().allocate(KEY_SIZE)
            _libc.getrandom_into(self._slot.address, KEY_SIZE)
            return
        view = _byte_view(key, "SecureKeyBuffer key")
        if len(view) != KEY_SIZE:
            raise WrongLengthError(f"SecureKeyBuffer key must be exactly {KEY_SIZE} bytes, got {len(view)}")
        if wipe_source and view.readonly:
            raise WrongTypeError(f"wipe_source needs a writable source (e.g. bytearray), got {type(key).__name__}")
        self._slot = arena().allocate(KEY_SIZE)
        with self._view() as dst:
            dst[:] = view
        if wipe_source:
            view[:] = bytes(KEY_SIZE)

    @classmethod
    def generate(cls) -> Self:
        """A fresh random key, drawn straight into locked memory."""
        return cls()


__all__ = ["KEY_SIZE", "PurgeProbe", "SecureBuffer", "SecureKeyBuffer"]
