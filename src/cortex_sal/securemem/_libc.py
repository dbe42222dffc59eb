"""The few libc calls securemem needs, declared once with their C signatures.

Only this module talks to libc. Every function returns the raw C result and
leaves ``errno`` readable through :func:`errno`; policy lives in the callers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap as _mmap
import os

PAGE_SIZE: int = _mmap.PAGESIZE

PROT_NONE = 0x0
PROT_READ = 0x1
PROT_WRITE = 0x2
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_ANONYMOUS = 0x20
MAP_FAILED = ctypes.c_void_p(-1).value

MADV_DONTFORK = 10
MADV_DONTDUMP = 16
MADV_WIPEONFORK = 18

PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4

SYS_memfd_secret = 447  # x86_64 and aarch64
SYS_getrandom = 318 if os.uname().machine == "x86_64" else 278

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

_mmap_fn = _libc.mmap
_mmap_fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_mmap_fn.restype = ctypes.c_void_p

_munmap = _libc.munmap
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_munmap.restype = ctypes.c_int

_mprotect = _libc.mprotect
_mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_mprotect.restype = ctypes.c_int

_mlock = _libc.mlock
_mlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_mlock.restype = ctypes.c_int

_munlock = _libc.munlock
_munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_munlock.restype = ctypes.c_int

_madvise = _libc.madvise
_madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_madvise.restype = ctypes.c_int

_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int

_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

_explicit_bzero = getattr(_libc, "explicit_bzero", None)
if _explicit_bzero is not None:
    _explicit_bzero.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    _explicit_bzero.restype = None


def errno() -> int:
    return ctypes.get_errno()


def strerror(code: int) -> str:
    return os.strerror(code)


def mmap(length: int, prot: int, flags: int, fd: int = -1) -> int | None:
    """Map ``length`` bytes; return the address or ``None`` on failure."""
    addr = _mmap_fn(None, length, prot, flags, fd, 0)
    if addr is None or addr == MAP_FAILED:
        return None
    return int(addr)


def munmap(addr: int, length: int) -> int:
    return int(_munmap(addr, length))


def mprotect(addr: int, length: int, prot: int) -> int:
    return int(_mprotect(addr, length, prot))


def mlock(addr: int, length: int) -> int:
    return int(_mlock(addr, length))


def munlock(addr: int, length: int) -> int:
    return int(_munlock(addr, length))


def madvise(addr: int, length: int, advice: int) -> int:
    return int(_madvise(addr, length, advice))


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return int(_prctl(option, arg2, arg3, arg4, arg5))


def memfd_secret() -> int:
    """Return a ``memfd_secret(2)`` file descriptor, or -1 (see :func:`errno`)."""
    return int(_syscall(ctypes.c_long(SYS_memfd_secret), ctypes.c_uint(0)))


def getrandom_into(addr: int, length: int) -> None:
    """Fill ``length`` bytes at ``addr`` from the kernel CSPRNG, no userspace copy."""
    done = 0
    while done < length:
        got = int(
            _syscall(
                ctypes.c_long(SYS_getrandom),
                ctypes.c_void_p(addr + done),
                ctypes.c_size_t(length - done),
                ctypes.c_uint(0),
            )
        )
        if got < 0:
            code = errno()
            if code == 4:  # EINTR
                continue
            raise OSError(code, "getrandom failed: " + strerror(code))
        done += got


def zero(addr: int, length: int) -> None:
    """Zero memory with a call the compiler cannot elide."""
    if length <= 0:
        return
    if _explicit_bzero is not None:
        _explicit_bzero(addr, length)
    else:  # ctypes.memset is a foreign call as well: never optimised away
        ctypes.memset(addr, 0, length)


_PyMemoryView_FromMemory = ctypes.pythonapi.PyMemoryView_FromMemory
_PyMemoryView_FromMemory.argtypes = [ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int]
_PyMemoryView_FromMemory.restype = ctypes.py_object
_PyBUF_WRITE = 0x200


def memory_view(address: int, size: int) -> memoryview:
    """A writable, format ``'B'`` memoryview straight onto ``size`` bytes at ``address``."""
    view: memoryview = _PyMemoryView_FromMemory(address, size, _PyBUF_WRITE)
    return view
