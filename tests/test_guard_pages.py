"""Guard pages and canaries, exercised the hard way.

Guard pages: a child process touches one byte just outside an arena region's data (the
first byte after it, the last byte before it) through ctypes at the region's address, and
must die by ``SIGSEGV``; touching the first and last byte *inside* the data is the control
that must survive. Shared regions (slots) and dedicated regions (>= 16 KiB, where the slot
ends flush against the trailing guard), reads and writes, and both backends.

Canaries (what ``tests/test_securemem.py`` does not already cover): a canary hit on a
dedicated region that stays mapped (a numpy view outlives the buffer) is detected and the
slot still reads zeros afterwards; a one-byte underrun of a slot lands in its neighbour's
canary and is caught when the neighbour is freed, while the slot itself is untouched.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cortex_sal.errors import CanaryCorruptedError
from cortex_sal.securemem import SecureKeyBuffer, SecureTensorBuffer, _libc
from cortex_sal.securemem.arena import arena

ALIGN = 16
CANARY = 16
SIGSEGV_EXIT = -signal.SIGSEGV


def span_of(size: int) -> int:
    return (size + ALIGN - 1) // ALIGN * ALIGN + CANARY


def peek(address: int, length: int) -> bytes:
    return ctypes.string_at(address, length)


def poke(address: int, data: bytes) -> None:
    ctypes.memmove(address, data, len(data))


def _memfd_secret_available() -> bool:
    fd = _libc.memfd_secret()
    if fd < 0:
        return False
    os.close(fd)
    return True


MEMFD_SECRET = _memfd_secret_available()

TOUCH_CHILD = """
import ctypes, os, sys
kind, where, op, backend = sys.argv[1:5]
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer, configure
from cortex_sal.securemem.arena import arena
if backend == "memfd_secret":
    configure(backend="memfd_secret", lock_policy="strict")
buf = SecureKeyBuffer() if kind == "shared" else SecureBuffer.random(16 * 1024)
region = next(r for r in arena().regions() if r.contains(buf._address()))
assert region.dedicated == (kind == "dedicated") and region.backend == backend
span = (len(buf) + 15) // 16 * 16 + 16
if kind == "dedicated":  # the slot (data + canary) ends exactly where the trailing guard starts
    assert buf._address() + span == region.data + region.size
address = {
    "past_end": region.data + region.size,  # first byte of the trailing guard page
    "before_start": region.data - 1,  # last byte of the leading guard page
    "last_inside": region.data + region.size - 1,  # controls: the data's own edges
    "first_inside": region.data,
}[where]
cell = ctypes.c_ubyte.from_address(address)  # no access yet: from_address only records it
os.write(1, b"touching\\n")
if op == "read":
    value = cell.value
elif where.endswith("_inside"):
    cell.value = cell.value  # a real store, leaving the slot's bytes and canary as they were
else:
    cell.value = 0x41
os.write(1, b"survived\\n")
buf.secure_purge()
"""


def _no_core() -> None:  # preexec: a segfaulting child must not leave a core behind
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def touch(kind: str, where: str, op: str, backend: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_SAL_") and k != "PYTHONFAULTHANDLER"}
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", TOUCH_CHILD, kind, where, op, backend],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
        preexec_fn=_no_core,
    )


BACKENDS = [
    "mmap",
    pytest.param(
        "memfd_secret", marks=pytest.mark.skipif(not MEMFD_SECRET, reason="this kernel has no memfd_secret(2)")
    ),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["write", "read"])
@pytest.mark.parametrize("where", ["past_end", "before_start"])
@pytest.mark.parametrize("kind", ["shared", "dedicated"])
def test_one_byte_outside_a_region_faults(kind: str, where: str, op: str, backend: str, tmp_path: Path) -> None:
    result = touch(kind, where, op, backend, tmp_path)
    assert result.returncode == SIGSEGV_EXIT, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "touching\n"  # it got as far as the access, and no further
    assert not list(tmp_path.iterdir())  # and left no core file


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["write", "read"])
@pytest.mark.parametrize("where", ["last_inside", "first_inside"])
@pytest.mark.parametrize("kind", ["shared", "dedicated"])
def test_control_the_edge_bytes_inside_are_accessible(
    kind: str, where: str, op: str, backend: str, tmp_path: Path
) -> None:
    result = touch(kind, where, op, backend, tmp_path)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == "touching\nsurvived\n"
    assert result.stderr == ""  # the store left the canary intact: the purge was quiet


# -- canaries ----------------------------------------------------------------------------------


def test_canary_hit_on_a_dedicated_region_kept_mapped_is_wiped() -> None:
    """A view outlives the buffer, so the dedicated region stays mapped: we can look at it after."""
    shape = (64, 128)  # 32 KiB of float32: a dedicated region
    with pytest.raises(CanaryCorruptedError):  # raised by the purge on exit
        with SecureTensorBuffer(shape, np.float32) as buf:
            buf.fill_from(np.full(shape, 3.0, dtype=np.float32))
            address, size = buf._address(), len(buf)
            region = next(r for r in arena().regions() if r.contains(address))
            assert region.dedicated
            view = buf.array
            canary = peek(address + size, CANARY)
            assert canary != bytes(CANARY)
            poke(address + size, bytes([canary[0] ^ 0x01]))  # one byte past the data
    assert buf.is_purged
    assert region in arena().regions()  # retired, not unmapped: the view still points here
    assert peek(address, span_of(size)) == bytes(span_of(size))  # data and canary zeroed
    assert not view.any()


def _adjacent_key_pair() -> tuple[SecureKeyBuffer, SecureKeyBuffer, list[SecureKeyBuffer]]:
    """Two live keys whose slots touch (``b`` right after ``a``), and the rest to purge."""
    keys = [SecureKeyBuffer() for _ in range(64)]
    by_address = {k._address(): k for k in keys}
    for k in keys:
        after = by_address.get(k._address() + span_of(32))
        if after is not None:
            return k, after, [x for x in keys if x is not k and x is not after]
    for k in keys:
        k.secure_purge()
    raise AssertionError("no two adjacent slots among 64 fresh keys")


@pytest.mark.parametrize("how", ["overrun_of_a", "underrun_of_b"])
def test_a_stray_byte_between_neighbours_is_caught_and_both_are_wiped(how: str) -> None:
    a, b, rest = _adjacent_key_pair()
    try:
        a_addr, b_addr = a._address(), b._address()
        b_before = peek(b_addr, 32)
        # a's canary sits between the two: a one-byte overrun of a and a one-byte underrun
        # of b both land in it (its first and its last byte)
        target = a_addr + 32 if how == "overrun_of_a" else b_addr - 1
        assert a_addr + 32 <= target < b_addr
        poke(target, bytes([peek(target, 1)[0] ^ 0xFF]))
        assert peek(b_addr, 32) == b_before  # b's data untouched
        b.secure_purge()  # b's own canary is intact: quiet
        assert peek(b_addr, span_of(32)) == bytes(span_of(32))
        with pytest.raises(CanaryCorruptedError):
            a.secure_purge()
        assert a.is_purged
        assert peek(a_addr, span_of(32)) == bytes(span_of(32))
    finally:
        for k in (a, b, *rest):
            if not k.is_purged:
                k.secure_purge()
