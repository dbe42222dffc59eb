"""The scrub after every ChaCha20-Poly1305 call keyed by a secret: registers and dead C stack (:data:`WIPE`).

What a ChaCha20-Poly1305 decrypt leaves behind once it has returned (libsodium 1.0.20, its
AVX2 ChaCha20, measured 2026-12-02 by reading a child's ``[stack]`` and ``/proc/<pid>/syscall``
after a decrypt of a known plaintext, offsets from the interpreter's C stack pointer ``E`` at
the call, for plaintexts of 1 to 8192 bytes):

* **Vector registers.** After the call, XMM/YMM registers still hold 16-byte pieces of the
  last plaintext and keystream blocks. They reach memory when anything saves the register
  file to the stack: the dynamic linker's lazy binding (``_dl_runtime_resolve_xsavec``, the
  first call of a not yet bound function - it is what the residue rows caught, at the
  child's first ``write`` after the decrypts) or a signal (the kernel writes the signal frame,
  registers included, below the stack pointer). Without either, no 8-byte fragment of the
  plaintext or keystream is in the dead stack.
* **The dead stack.** ``chacha20_encrypt_bytes`` (a 1536-byte frame, 32-byte aligned) does not
  wipe its spill slots: the key's eight 32-bit words stay there, each repeated 4 or 8 times
  (the vectorised state; a pattern the residue harness does not look for). Compiled cffi
  call: that frame spans about ``E-1008`` to ``E-2592``; ctypes call: ``E-2008`` to
  ``E-3584``. libsodium wipes every other frame of the decrypt itself (Poly1305 state, block
  0, the ChaCha20 input block).

:data:`WIPE` is a 53-byte x86-64 function, mapped read+execute from a sealed memfd (the page
is never writable in this process) and called through cffi's ABI mode: ``vzeroall`` (every
YMM/ZMM register 0-15 to zero: the AVX2 and SSSE3 ChaCha20 code can name no other), the
caller-saved integer registers to zero, then :data:`WIPE_BYTES` of the stack below its own
entry to zero. Called with no arguments from the very Python function that made the decrypt
call, it runs at the same interpreter C stack pointer ``E``; its entry is at about ``E-680``
(cffi ABI mode with no arguments is the shallowest binding there is: above the ChaCha20
frame of either binding), so it zeroes from there to about ``E-8900``, more than twice the
deepest ChaCha20 frame. This holds whatever the Python call depth (an asyncio callback
starts a new interpreter frame deeper down: ``E`` moves, and everything moves with it) and
whatever the plaintext size (the frame's size does not depend on it). About 0.15 us, against
about 0.9 us for a dummy decrypt of the same shape.

Unavailable (:data:`UNAVAILABLE` says why, and the callers fall back to the same call made on a
public dummy: :func:`cortex_sal.crypto.aead.scrub_fallback`)
when ``CORTEX_SAL_NO_WIPE`` is set (tests of the fallback), off Linux x86-64, without AVX
(libsodium's own CPU check), without cffi, or where the system refuses an executable mapping
(SELinux ``execmem``, ``vm.memfd_noexec``).

The wipe writes zeros to the 8 KiB below its own stack frame: a thread with less than about
9 KiB of its stack left at a ChaCha20 call would fault there (the dummy call needs about 3.6 KiB).
An encryption spills the key's words as a decryption does (the same ``chacha20_encrypt_bytes``
frame): every call keyed by a secret, in either direction, is followed by the wipe.
"""

from __future__ import annotations

import fcntl
import importlib
import mmap
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from ._sodium import sodium

_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
WIPE_BYTES = 8192  # from the wipe's entry down: covers E-680 .. E-8900 (ChaCha20's frame: at most E-3584)


def machine_code(length: int = WIPE_BYTES) -> bytes:
    """The wipe: ``void wipe(void)``, x86-64 System V, AVX. ``length`` is a multiple of 32."""
    if length <= 0 or length % 32 or length >= 2**31:
        raise ValueError(f"a wipe length must be a positive multiple of 32 below 2^31, got {length}")
    return b"".join(
        [
            b"\xc5\xfc\x77",  # vzeroall                  ymm0-15 (zmm0-15) = 0
            b"\x31\xd2\x31\xf6\x31\xff",  # xor edx,edx; xor esi,esi; xor edi,edi
            b"\x45\x31\xc0\x45\x31\xc9\x45\x31\xd2\x45\x31\xdb",  # xor r8d..r11d
            b"\x48\x89\xe0",  # mov rax, rsp
            b"\x48\x83\xe0\xe0",  # and rax, -32
            b"\x48\x8d\x88" + (-length & 0xFFFFFFFF).to_bytes(4, "little"),  # lea rcx, [rax - length]
            b"\x48\x83\xe8\x20",  # 1: sub rax, 32           (downwards: page by page)
            b"\xc5\xfd\x7f\x00",  # vmovdqa [rax], ymm0
            b"\x48\x39\xc8",  # cmp rax, rcx
            b"\x77\xf3",  # ja 1b
            b"\x31\xc0\x31\xc9",  # xor eax,eax; xor ecx,ecx
            b"\xc3",  # ret
        ]
    )


def _load(length: int = WIPE_BYTES) -> tuple[Callable[[], None] | None, tuple[Any, ...], str]:
    """(the wipe, what keeps it alive, why not): the wipe is None when it cannot be used here."""
    if os.environ.get("CORTEX_SAL_NO_WIPE"):  # tests of the fallback (and a site that forbids the mapping)
        return None, (), "the wipe is turned off by CORTEX_SAL_NO_WIPE"
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64") or sys.maxsize < 2**63 - 1:
        return None, (), f"no wipe for {sys.platform}/{platform.machine()} (x86-64 Linux only)"
    if not sodium.sodium_runtime_has_avx():
        return None, (), "no wipe without AVX (libsodium's CPU check)"
    try:
        cffi: Any = importlib.import_module("cffi")  # PyNaCl's own dependency (no type stubs)
    except ImportError as exc:
        return None, (), f"no wipe without cffi ({exc})"
    code = machine_code(length)
    try:
        fd = os.memfd_create("cortex-sal-wipe", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, code)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)  # the code can no longer change
            page = mmap.mmap(fd, len(code), flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_EXEC)
        finally:
            os.close(fd)
    except (OSError, AttributeError, ValueError) as exc:  # no memfd, or no executable mapping allowed
        return None, (), f"no executable mapping for the wipe ({exc})"
    ffi = cffi.FFI()
    start = ffi.from_buffer(page)
    wipe: Callable[[], None] = ffi.cast("void(*)(void)", start)
    wipe()  # once now: every lazily bound function on its call path is bound before any secret
    return wipe, (page, start, ffi), ""


WIPE, _KEEP, UNAVAILABLE = _load()
