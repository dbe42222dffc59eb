"""securemem: the only code that maps, locks, protects and zeroes memory.

* :class:`SecureKeyBuffer` - a 32-byte key in locked memory (the seed's API);
* :class:`SecureBuffer` - any-size secret (HMAC states, Ed25519 keys, derived material);
* :class:`SecureTensorBuffer` - raw samples that numpy views without a copy;
* :func:`status` - what the kernel really grants the arena; :func:`configure` - the lock
  policy (``best-effort`` or ``strict``) and backend (``mmap`` or ``memfd_secret``);
* :data:`MAX_ALLOCATION` - the largest buffer (1 GiB); beyond it ``InvalidArgumentError``,
  and a kernel out of memory below it ``SecureMemoryExhaustedError``.
"""

from .arena import BACKEND_MEMFD_SECRET, BACKEND_MMAP, BEST_EFFORT, MAX_ALLOCATION, STRICT, configure
from .buffer import KEY_SIZE, PurgeProbe, SecureBuffer, SecureKeyBuffer
from .harden import HardeningReport, harden_process
from .status import ArenaStatus, RegionStatus, status
from .tensor import SecureTensorBuffer

__all__ = [
    "BACKEND_MEMFD_SECRET",
    "BACKEND_MMAP",
    "BEST_EFFORT",
    "KEY_SIZE",
    "MAX_ALLOCATION",
    "STRICT",
    "ArenaStatus",
    "HardeningReport",
    "PurgeProbe",
    "RegionStatus",
    "SecureBuffer",
    "SecureKeyBuffer",
    "SecureTensorBuffer",
    "configure",
    "harden_process",
    "status",
]
