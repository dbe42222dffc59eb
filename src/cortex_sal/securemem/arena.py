"""The arena: locked, guarded, dump-excluded, fork-wiped pages carved into slots.

Guarantees (each read back from the kernel by :func:`cortex_sal.securemem.status`):

* every region is one mapping ``[guard page | data pages | guard page]``; the guards are
  ``PROT_NONE``, so a linear overrun off either end faults;
* data pages are ``mlock``ed (VmFlags ``lo``), excluded from core dumps (``dd``) and, for
  the ``mmap`` backend, wiped in a forked child (``wf``); the ``memfd_secret`` backend's
  pages are not in the kernel's direct map at all, and are not inherited by a child;
* a slot is ``[data | 16-byte canary | padding to 16]``; freeing checks the canary, then
  zeroes the whole slot whatever the canary said;
* the arena grows by whole regions; small slots never share a page with anything but
  other slots, and large buffers get a dedicated region that is unmapped when freed.

Lock policy: ``best-effort`` (default) keeps working when the kernel refuses a protection
and reports it through ``status()`` and the ``cortex_sal.securemem`` logger; ``strict``
raises :class:`~cortex_sal.errors.MemoryLockError` and leaves nothing mapped. Neither
emits a Python warning.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import logging
import os
import threading
from dataclasses import dataclass, field

from ..errors import (
    CanaryCorruptedError,
    InvalidArgumentError,
    MemoryLockError,
    SecureMemoryError,
    SecureMemoryExhaustedError,
)
from . import _libc

log = logging.getLogger("cortex_sal.securemem")

BEST_EFFORT = "best-effort"
STRICT = "strict"
LOCK_POLICIES = (BEST_EFFORT, STRICT)

BACKEND_MMAP = "mmap"
BACKEND_MEMFD_SECRET = "memfd_secret"
BACKENDS = (BACKEND_MMAP, BACKEND_MEMFD_SECRET)

ALIGN = 16
CANARY_SIZE = 16
FIRST_REGION_BYTES = 64 * 1024
MAX_REGION_BYTES = 1024 * 1024
DEDICATED_THRESHOLD = 16 * 1024  # slots at least this large get a region of their own

_PAGE = _libc.PAGE_SIZE


MAX_ALLOCATION = 2**30
"""The largest secure buffer, in bytes (1 GiB), refused above with ``InvalidArgumentError``.

Locked memory is scarce (``RLIMIT_MEMLOCK``, physical RAM): no secret, key or window of raw
samples comes near this (64 channels at 1 kHz for 30 minutes of float64 is 0.9 GiB), and a
size from a caller's arithmetic beyond it is a bug to report, not a mapping to attempt. It
also keeps every size far below the wrap-around of C's ``size_t``.
"""


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


@dataclass(eq=False)
class Region:
    """One mapping: guard page, ``size`` data bytes at ``data``, guard page."""

    base: int
    total: int
    data: int
    size: int
    backend: str
    dedicated: bool
    locked: bool
    dontdump: bool
    wipeonfork: bool
    problems: list[str] = field(default_factory=list)
    bump: int = 0
    # a byte view onto the data pages, for the canaries (a slice assignment or comparison costs a
    # fraction of a ctypes call); released before the region is unmapped
    view: memoryview | None = None

    def contains(self, addr: int) -> bool:
        return self.data <= addr < self.data + self.size


class Slot:
    """``size`` usable bytes at ``address``; ``span`` includes padding and canary."""

    __slots__ = ("address", "generation", "offset", "pointer", "region", "size", "span")

    def __init__(self, region: Region, offset: int, size: int, span: int, generation: int) -> None:
        self.region = region
        self.offset = offset
        self.size = size
        self.span = span
        self.generation = generation
        self.address = region.data + offset
        self.pointer = ctypes.c_void_p(self.address)  # ctypes passes this without conversion

    @property
    def canary_address(self) -> int:
        return self.address + self.size  # right after the data: a 1-byte overrun hits it


class Arena:
    """Process-wide allocator of locked slots. Use :func:`arena` to get the instance."""

    def __init__(self, lock_policy: str = BEST_EFFORT, backend: str = BACKEND_MMAP) -> None:
        _check_choice("lock_policy", lock_policy, LOCK_POLICIES)
        _check_choice("backend", backend, BACKENDS)
        self.lock_policy = lock_policy
        self.backend = backend
        self.generation = 0
        self.closed = False
        # re-entrant: the garbage collector may finalise a buffer (and so free its slot)
        # in the middle of an allocation, on the thread that already holds the lock
        self._lock = threading.RLock()
        self._regions: list[Region] = []
        self._free: dict[int, list[tuple[Region, int]]] = {}
        self._live: dict[int, Slot] = {}
        self._canary = bytearray(CANARY_SIZE)
        self._canary_buf = (ctypes.c_char * CANARY_SIZE).from_buffer(self._canary)
        _libc.getrandom_into(ctypes.addressof(self._canary_buf), CANARY_SIZE)
        self._next_region_bytes = FIRST_REGION_BYTES

    # -- configuration -------------------------------------------------------------

    def configure(self, *, lock_policy: str | None = None, backend: str | None = None) -> None:
        with self._lock:
            if backend is not None:
                _check_choice("backend", backend, BACKENDS)  # before anything changes
            if lock_policy is not None:
                _check_choice("lock_policy", lock_policy, LOCK_POLICIES)
                if lock_policy == STRICT:
                    weak = [r for r in self._regions if r.problems]
                    if weak:
                        raise MemoryLockError(
                            f"cannot switch to strict: {len(weak)} existing region(s) lack protections "
                            f"({'; '.join(weak[0].problems)})"
                        )
                self.lock_policy = lock_policy
            if backend is not None:
                self.backend = backend

    # -- regions -------------------------------------------------------------------

    def _new_region(self, size: int, dedicated: bool) -> Region:
        size = _round_up(size, _PAGE)
        total = size + 2 * _PAGE
        backend = self.backend
        problems: list[str] = []
        base: int | None = None
        if backend == BACKEND_MEMFD_SECRET:
            base, why = _map_memfd_secret(total)
            if base is None:
                if self.lock_policy == STRICT:
                    raise MemoryLockError(f"memfd_secret backend unavailable: {why}")
                problems.append(f"memfd_secret unavailable ({why}); fell back to mmap")
                backend = BACKEND_MMAP
        if base is None:
            base = _libc.mmap(total, _libc.PROT_READ | _libc.PROT_WRITE, _libc.MAP_PRIVATE | _libc.MAP_ANONYMOUS)
            if base is None:
                code = _libc.errno()
                if code == errno.ENOMEM:
                    raise SecureMemoryExhaustedError(
                        f"no memory for a secure region of {total} bytes: {_libc.strerror(code)}"
                    )
                raise SecureMemoryError(f"mmap of {total} bytes failed: {_libc.strerror(code)}")
        data = base + _PAGE
        try:
            for guard in (base, data + size):
                if _libc.mprotect(guard, _PAGE, _libc.PROT_NONE) != 0:
                    raise SecureMemoryError(
                        f"mprotect(PROT_NONE) of a guard page failed: {_libc.strerror(_libc.errno())}"
                    )
            dontdump = _libc.madvise(base, total, _libc.MADV_DONTDUMP) == 0
            if not dontdump:
                problems.append(f"MADV_DONTDUMP refused ({_libc.strerror(_libc.errno())})")
            fork_advice = _libc.MADV_WIPEONFORK if backend == BACKEND_MMAP else _libc.MADV_DONTFORK
            wipeonfork = _libc.madvise(data, size, fork_advice) == 0
            if not wipeonfork:
                name = "MADV_WIPEONFORK" if backend == BACKEND_MMAP else "MADV_DONTFORK"
                problems.append(f"{name} refused ({_libc.strerror(_libc.errno())})")
            if backend == BACKEND_MEMFD_SECRET:
                # the kernel maps secret memory VM_LOCKED (charged to RLIMIT_MEMLOCK by the
                # mmap above); mlock(2) on it always fails with ENOMEM (GUP refuses its pages)
                locked = True
            else:
                locked = _libc.mlock(data, size) == 0
            if not locked:
                problems.append(f"mlock of {size} bytes refused ({_libc.strerror(_libc.errno())})")
            if problems and self.lock_policy == STRICT:
                raise MemoryLockError("strict lock policy: " + "; ".join(problems))
        except BaseException:
            _libc.munmap(base, total)
            raise
        if problems:
            log.warning("secure memory degraded (best-effort policy): %s", "; ".join(problems))
        region = Region(base, total, data, size, backend, dedicated, locked, dontdump, wipeonfork, problems)
        region.view = _libc.memory_view(data, size)
        self._regions.append(region)
        return region

    def _release_region(self, region: Region) -> None:
        if region.view is not None:
            region.view.release()  # never used on unmapped pages
            region.view = None
        _libc.zero(region.data, region.size)
        if region.locked:
            _libc.munlock(region.data, region.size)
        _libc.munmap(region.base, region.total)
        self._regions.remove(region)

    def ensure_region(self) -> None:
        """Create the first region now (so ``status()`` has something to report)."""
        with self._lock:
            self._check_open()
            if not any(not r.dedicated for r in self._regions):
                self._new_region(self._next_region_bytes, dedicated=False)

    # -- slots ---------------------------------------------------------------------

    def allocate(self, size: int) -> Slot:
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise InvalidArgumentError(f"secure allocation size must be a positive int, got {size!r}")
        if size > MAX_ALLOCATION:
            raise InvalidArgumentError(
                f"secure allocation of {size} bytes exceeds the maximum of {MAX_ALLOCATION} bytes (1 GiB)"
            )
        span = (size + ALIGN - 1) // ALIGN * ALIGN + CANARY_SIZE  # _round_up(size, ALIGN) + the canary
        with self._lock:
            if self.closed:
                self._check_open()
            if span >= DEDICATED_THRESHOLD:
                region = self._new_region(span, dedicated=True)
                offset = region.size - span  # the slot ends at the trailing guard page
                region.bump = region.size
            else:
                free = self._free.get(span)
                region, offset = free.pop() if free else self._take(span)
            slot = Slot(region, offset, size, span, self.generation)
            self._write_canary(slot)
            self._live[id(slot)] = slot
            return slot

    def _take(self, span: int) -> tuple[Region, int]:
        """A new ``span`` (the caller has found no freed one of that size): the bump of a shared
        region with room, or a new region."""
        for region in reversed(list(self._regions)):
            if not region.dedicated and region.size - region.bump >= span:
                offset = region.bump
                region.bump += span
                return region, offset
        region = self._new_region(self._next_region_bytes, dedicated=False)
        self._next_region_bytes = min(self._next_region_bytes * 2, MAX_REGION_BYTES)
        region.bump = span
        return region, 0

    def _write_canary(self, slot: Slot) -> None:
        view = slot.region.view
        if view is None:  # pragma: no cover - every mapped region has its view
            ctypes.memmove(slot.canary_address, self._canary_buf, CANARY_SIZE)
            return
        at = slot.offset + slot.size  # right after the data (canary_address, relative to the region)
        view[at : at + CANARY_SIZE] = self._canary

    def _canary_intact(self, slot: Slot) -> bool:
        view = slot.region.view
        if view is None:  # pragma: no cover - every mapped region has its view
            stored = (ctypes.c_char * CANARY_SIZE).from_address(slot.canary_address)
            return memoryview(stored).cast("B") == memoryview(self._canary)
        at = slot.offset + slot.size
        return view[at : at + CANARY_SIZE] == self._canary

    def free(self, slot: Slot, *, reusable: bool = True) -> None:
        """Check the canary, zero the slot, give it back. Raise if the canary was hit.

        ``reusable=False`` keeps the zeroed slot out of circulation forever (used when a
        caller still holds a view on it: the view must never see another secret).
        """
        with self._lock:
            if self._live.pop(id(slot), None) is None:
                return  # already freed, or inherited across fork and dropped
            if slot.generation != self.generation or self.closed:
                return
            intact = self._canary_intact(slot)
            _libc.zero(slot.address, slot.span)
            if slot.region.dedicated:
                if reusable:
                    self._release_region(slot.region)
            elif reusable and intact:
                self._free.setdefault(slot.span, []).append((slot.region, slot.offset))
        if not intact:
            raise CanaryCorruptedError(
                f"canary of a {slot.size}-byte secure slot was overwritten (a write ran past its end); "
                "the slot was wiped and retired"
            )

    def is_current(self, slot: Slot) -> bool:
        return slot.generation == self.generation and not self.closed

    def _check_open(self) -> None:
        if self.closed:
            raise SecureMemoryError("the secure arena is closed (interpreter shutting down)")

    # -- introspection ---------------------------------------------------------------

    def regions(self) -> list[Region]:
        with self._lock:
            return list(self._regions)

    def live_slots(self) -> tuple[int, int]:
        """(number of live slots, bytes they hold)."""
        with self._lock:
            return len(self._live), sum(s.size for s in self._live.values())

    # -- process lifecycle ----------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        # Locks are not inherited, anonymous pages read as zeros (MADV_WIPEONFORK) and
        # memfd_secret pages are not mapped at all (MADV_DONTFORK): forget them all.
        self._lock = threading.RLock()
        self.generation += 1
        self._regions = []
        self._free = {}
        self._live = {}
        self._next_region_bytes = FIRST_REGION_BYTES

    def wipe_all(self) -> None:
        """Zero every region and close the arena (runs at interpreter exit)."""
        with self._lock:
            for region in self._regions:
                _libc.zero(region.data, region.size)
            self.closed = True


def _map_memfd_secret(total: int) -> tuple[int | None, str]:
    fd = _libc.memfd_secret()
    if fd < 0:
        return None, _libc.strerror(_libc.errno())
    try:
        os.ftruncate(fd, total)
        base = _libc.mmap(total, _libc.PROT_READ | _libc.PROT_WRITE, _libc.MAP_SHARED, fd)
        if base is None:
            return None, "mmap of the secret memfd failed: " + _libc.strerror(_libc.errno())
        return base, ""
    except OSError as exc:
        return None, exc.strerror or str(exc)
    finally:
        os.close(fd)


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidArgumentError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _arena_from_environment() -> Arena:
    return Arena(
        os.environ.get("CORTEX_SAL_LOCK_POLICY", BEST_EFFORT),
        os.environ.get("CORTEX_SAL_BACKEND", BACKEND_MMAP),
    )


_arena = _arena_from_environment()


def arena() -> Arena:
    """The process's arena (policy and backend from ``CORTEX_SAL_LOCK_POLICY`` / ``_BACKEND``)."""
    return _arena


def configure(*, lock_policy: str | None = None, backend: str | None = None) -> None:
    """Set the lock policy and/or backend for regions created from now on."""
    _arena.configure(lock_policy=lock_policy, backend=backend)


os.register_at_fork(after_in_child=_arena._after_fork_in_child)
atexit.register(_arena.wipe_all)
