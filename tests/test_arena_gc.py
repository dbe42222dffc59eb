"""A buffer finalised by the garbage collector *during* an allocation must not deadlock."""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import gc
from cortex_sal.securemem import SecureKeyBuffer, SecureBuffer

gc.set_threshold(7, 1, 1)  # frequent collections, landing at varying points of allocate()
for round_ in range(3000):
    cycle = []
    cycle.append(cycle)
    cycle.append(SecureKeyBuffer())          # unreachable once `cycle` is rebound:
    if round_ % 50 == 0:
        cycle.append(SecureBuffer(20_000))   # only the collector can finalise them
    cycle = None
    keep = SecureKeyBuffer()
    keep.secure_purge()
gc.collect()
from cortex_sal.securemem.arena import arena
assert arena().live_slots()[0] <= 1, arena().live_slots()  # at most the HMAC scratch state
print("ok")
"""


def test_collector_finalising_buffers_during_allocation_does_not_deadlock() -> None:
    result = subprocess.run([sys.executable, "-W", "error", "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
