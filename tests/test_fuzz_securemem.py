"""Fuzzing the arguments of the securemem API (and the few keros/crypto constructors that take
plain Python values): any object a caller may pass is refused with the documented
``CortexError`` subclass, and a refusal leaves no slot behind in the arena.

These are not parsers of outside bytes (those have 10,000 examples each in the other
``test_fuzz_*`` files); 2,000 odd arguments per entry point are plenty here. The explicit tests
below close the rows of ``docs/security/BAD_INPUTS.md`` that no other test covered, and pin
what this fuzzing found.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fuzzlib
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cortex_sal.crypto import random_buffer
from cortex_sal.errors import (
    CortexError,
    HandshakeError,
    InvalidArgumentError,
    SensorNotCertifiedError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.keros import GatewayHandshake, ManualClock, Role, SecureBusSession, SensorHandshake, SensorRegistry
from cortex_sal.securemem import MAX_ALLOCATION, SecureBuffer, SecureKeyBuffer, SecureTensorBuffer, configure
from hypothesis_profiles import examples

ARGS = settings(max_examples=examples(2_000), deadline=None)

ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.binary(max_size=40).map(bytearray),
    st.binary(min_size=2, max_size=40).map(lambda b: memoryview(bytearray(b))[::2]),
    st.lists(st.integers(-3, 300), max_size=40),
    st.lists(st.one_of(st.integers(0, 3), st.lists(st.integers(0, 3), max_size=2)), max_size=5),
    st.tuples(st.integers(-2, 2**40), st.integers(-2, 5)),
    st.sampled_from([np.int64(3), np.float32(2.0), np.zeros(3), np.zeros((2, 2), dtype=object), object(), {}, 1j]),
)


def refused_cleanly(fn: Callable[[], Any], allowed: tuple[type[CortexError], ...]) -> Any:
    """Run ``fn``: a result (purged here if it is a secure buffer), or one of ``allowed``; no slot leaks."""
    with fuzzlib.paused_gc():
        slots = fuzzlib.live_slots()
        result, exc = fuzzlib.refusal(allowed, fn)
        if isinstance(result, SecureBuffer):
            result.secure_purge()
        elif isinstance(result, SecureBusSession):
            result.close()
        del result
        assert fuzzlib.live_slots() == slots
    return exc


SIZE_ERRORS = (WrongTypeError, InvalidArgumentError, WrongLengthError)


def big_but_valid(shape: object) -> bool:
    """A shape that may be valid (with some dtype of 1 to 16 bytes) and map more than 1 MiB.

    Skipped, not allocated. Beyond it a shape is either tiny (allocated, then purged) or needs
    more than ``MAX_ALLOCATION`` bytes whatever the dtype, and must be refused up front.
    """
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        return False
    return 2**20 < math.prod(dims) * 16 and math.prod(dims) <= MAX_ALLOCATION


@ARGS
@given(value=ODD)
def test_fuzz_secure_buffer_sizes(value: object) -> None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ALLOCATION:
        return  # a valid size: allocating it proves nothing here (and a huge one costs memory)
    for make in (SecureBuffer, SecureBuffer.allocate, SecureBuffer.random, random_buffer):
        assert refused_cleanly(lambda make=make: make(value), SIZE_ERRORS) is not None


@ARGS
@given(value=ODD, wipe=st.booleans())
def test_fuzz_secure_buffer_sources(value: object, wipe: bool) -> None:
    refused_cleanly(lambda: SecureBuffer.from_bytes(value, wipe_source=wipe), SIZE_ERRORS)  # type: ignore[arg-type]
    refused_cleanly(lambda: SecureKeyBuffer(value, wipe_source=wipe), SIZE_ERRORS)  # type: ignore[arg-type]


@ARGS
@given(data=ODD, offset=ODD, length=ODD)
def test_fuzz_write_and_compare(data: object, offset: object, length: object) -> None:
    with SecureBuffer(16) as buf:
        refused_cleanly(lambda: buf.write(data, offset, length), SIZE_ERRORS)  # type: ignore[arg-type]
        refused_cleanly(lambda: buf.write(data, 0), SIZE_ERRORS)  # type: ignore[arg-type]
        refused_cleanly(lambda: buf.constant_time_compare(data), (WrongTypeError, InvalidArgumentError))  # type: ignore[arg-type]


@ARGS
@given(shape=ODD, dtype=st.one_of(ODD, st.sampled_from(["f4", "<i2", "U3", "c8", "O", "?", "M8[s]", "f16"])))
@example(shape=288_230_376_151_711_745, dtype=None)  # found 2026-12-01: 2**61 + 8 bytes went to mmap
@example(shape=(1,) * 65, dtype="f4")  # numpy's view of more than 64 dimensions raised ValueError
@example(shape=1, dtype="0:")  # found 2026-12-01 (explore): np.dtype raised ValueError
@example(shape=1, dtype="01")  # found 2026-12-01 (explore): np.dtype raised SyntaxError
def test_fuzz_tensor_buffer(shape: object, dtype: object) -> None:
    if not big_but_valid(shape):
        refused_cleanly(lambda: SecureTensorBuffer(shape, dtype), SIZE_ERRORS)  # type: ignore[arg-type]
    with SecureTensorBuffer((2, 3)) as buf:
        refused_cleanly(lambda: buf.fill_from(shape), (InvalidArgumentError,))  # type: ignore[arg-type]


@ARGS
@given(policy=ODD, backend=ODD)
def test_fuzz_configure(policy: object, backend: object) -> None:
    from cortex_sal.securemem.arena import BACKENDS, LOCK_POLICIES, arena

    if (isinstance(policy, str) and policy in LOCK_POLICIES) or (isinstance(backend, str) and backend in BACKENDS):
        return  # a valid choice would change the process's policy
    before = (arena().lock_policy, arena().backend)
    refused_cleanly(lambda: configure(lock_policy=policy, backend=backend), (InvalidArgumentError, WrongTypeError))  # type: ignore[arg-type]
    assert (arena().lock_policy, arena().backend) == before  # None/None changes nothing either


@ARGS
@given(value=ODD)
def test_fuzz_keros_constructor_arguments(value: object) -> None:
    """ManualClock, SensorRegistry, the handshake machines and SecureBusSession."""
    allowed = (WrongTypeError, InvalidArgumentError, WrongLengthError)
    refused_cleanly(lambda: ManualClock(value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: ManualClock().advance(value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: SensorRegistry(value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: SensorRegistry([], min_snr_db=value, min_bits=value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: SensorRegistry.default().find_by_hash(value, ["a"]), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: SensorRegistry.default().find_by_hash(b"h", value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: SensorRegistry.default().admit(value), (*allowed, SensorNotCertifiedError))  # type: ignore[arg-type]
    refused_cleanly(lambda: SensorHandshake(value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: GatewayHandshake("gw", sensor_ids=value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: GatewayHandshake("gw", freshness_s=value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: GatewayHandshake("gw", registry=value), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: SensorHandshake("eeg_fp1_certified_v1", ephemeral_key=value), allowed)  # type: ignore[arg-type]
    for kwargs in ({"lifetime_s": value}, {"max_seq": value}):
        refused_cleanly(lambda kw=kwargs: SecureBusSession(SecureKeyBuffer(), b"abcd", Role.GATEWAY, **kw), allowed)
    refused_cleanly(lambda: SecureBusSession(value, b"abcd", Role.GATEWAY), allowed)  # type: ignore[arg-type]
    refused_cleanly(lambda: SecureBusSession(SecureKeyBuffer(), value, Role.GATEWAY), allowed)  # type: ignore[arg-type]


# -- found by this fuzzing ----------------------------------------------------------------------


def mapped_regions() -> int:
    from cortex_sal.securemem.arena import arena

    return len(arena().regions())


@pytest.mark.parametrize("size", [MAX_ALLOCATION + 1, 2**61 + 8, 2**62 + 1, 2**64, 2**64 + 4096, 2**70])
def test_sizes_beyond_the_maximum_are_refused(size: int) -> None:
    """Found by fuzzing, twice: a size of 2**64 or more wrapped in C's size_t, so the arena
    mapped a page or two and handed out a slot that claimed the full size; and a size below
    that (2**61 + 8 bytes, from ``SecureTensorBuffer(2**58 + 1)``) went to ``mmap``, whose
    ENOMEM surfaced as an undocumented error. Both are refused before anything is mapped."""
    slots, regions = fuzzlib.live_slots(), mapped_regions()
    for make in (SecureBuffer, SecureBuffer.allocate, SecureBuffer.random, random_buffer):
        with pytest.raises(InvalidArgumentError, match="exceeds the maximum of 1073741824 bytes"):
            make(size)
    with pytest.raises(InvalidArgumentError, match="beyond the maximum"):
        SecureTensorBuffer(-(-size // 8), np.float64)
    with pytest.raises(InvalidArgumentError, match="beyond the maximum"):
        SecureTensorBuffer((2**31, 2**31, 4), np.float64)
    assert (fuzzlib.live_slots(), mapped_regions()) == (slots, regions)


@pytest.mark.slow
def test_the_maximum_itself_is_a_valid_size() -> None:
    """The edge: exactly MAX_ALLOCATION bytes are mapped (about 2 s of page faults and zeroing);
    one more element of a tensor is refused."""
    with SecureBuffer(MAX_ALLOCATION) as buf:
        assert len(buf) == MAX_ALLOCATION
    with pytest.raises(InvalidArgumentError, match="beyond the maximum"):
        SecureTensorBuffer(MAX_ALLOCATION // 8 + 1, np.float64)


@pytest.mark.parametrize("spec", ["0:", "01", "i0", "(2)f4x"])
def test_tensor_dtype_strings_numpy_cannot_parse_are_wrong_type(spec: str) -> None:
    """Found 2026-12-01 by the explore profile: numpy parses dtype strings itself and raised
    ValueError for ``"0:"`` and SyntaxError for ``"01"``; now each is a ``WrongTypeError``."""
    slots = fuzzlib.live_slots()
    with pytest.raises(WrongTypeError, match="is not a numpy dtype"):
        SecureTensorBuffer(4, spec)
    assert fuzzlib.live_slots() == slots


def test_tensor_with_too_many_dimensions_is_refused() -> None:
    """Found 2026-12-01: 65 dimensions were allocated, then numpy refused to view them with a
    bare ValueError. The limit is numpy 1.x's (32), so every supported numpy can view it."""
    slots = fuzzlib.live_slots()
    with pytest.raises(InvalidArgumentError, match="at most 32 dimensions"):
        SecureTensorBuffer((1,) * 33)
    assert fuzzlib.live_slots() == slots
    with SecureTensorBuffer((1,) * 32, np.float32) as buf:
        assert buf.array.ndim == 32


OUT_OF_MEMORY_CHILD = """
import resource, sys
from cortex_sal.errors import SecureMemoryExhaustedError
from cortex_sal.securemem import MAX_ALLOCATION, SecureBuffer
from cortex_sal.securemem.arena import arena

with SecureBuffer(32):
    pass  # the arena's first region exists before the limit
with open("/proc/self/status") as fh:
    vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + 256 * 2**20, vm + 256 * 2**20))
live, regions = arena().live_slots(), len(arena().regions())
try:
    SecureBuffer(MAX_ALLOCATION)
except SecureMemoryExhaustedError as exc:
    assert isinstance(exc, MemoryError), "a MemoryError too, as Python's convention is"
    assert "no memory for a secure region" in str(exc), str(exc)
else:
    sys.exit("1 GiB under a 256 MiB address-space margin was granted")
assert (arena().live_slots(), len(arena().regions())) == (live, regions), "refusal left state behind"
with SecureBuffer(4096) as after:  # the arena still works
    assert len(after) == 4096
print("refused")
"""


def test_out_of_memory_below_the_maximum_is_a_documented_refusal() -> None:
    """A plausible size the kernel cannot map (here: an address-space limit in a child) is a
    ``SecureMemoryExhaustedError`` - a ``SecureMemoryError`` and a ``MemoryError`` - with
    nothing mapped and the arena still usable."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", OUT_OF_MEMORY_CHILD], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"


def test_fill_from_a_ragged_list_is_refused() -> None:
    """Found by fuzzing: ``np.asarray`` of a ragged list raised a bare ValueError."""
    with SecureTensorBuffer((2, 2)) as buf:
        buf.fill_from([[1, 2], [3, 4]])
        with pytest.raises(InvalidArgumentError):
            buf.fill_from([[1, 2], [3]])
        assert buf.array.tolist() == [[1, 2], [3, 4]]


def test_from_fd_refuses_closed_huge_and_short_fds(tmp_path: Path) -> None:
    """Found by fuzzing: a closed fd raised OSError and a huge one OverflowError; a short read
    is a WrongLengthError. Nothing stays allocated."""
    slots = fuzzlib.live_slots()
    r, w = os.pipe()
    os.close(w)
    os.close(r)
    with pytest.raises(InvalidArgumentError, match="cannot read"):
        SecureKeyBuffer.from_fd(r)
    with pytest.raises(WrongTypeError):
        SecureKeyBuffer.from_fd(2**40)
    with pytest.raises(InvalidArgumentError):
        SecureKeyBuffer.from_fd(os.open(tmp_path, os.O_RDONLY))  # a directory: EISDIR
    path = tmp_path / "short"
    path.write_bytes(bytes(31))
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(WrongLengthError):
            SecureKeyBuffer.from_fd(fd)
    finally:
        os.close(fd)
    assert fuzzlib.live_slots() == slots


def test_keros_constructors_refuse_bad_arguments() -> None:
    """Found by fuzzing: these raised bare TypeError/ValueError/AttributeError."""
    with pytest.raises(InvalidArgumentError):
        ManualClock().advance(-1)
    with pytest.raises(WrongTypeError):
        ManualClock("soon")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        ManualClock(math.nan)
    with pytest.raises(WrongTypeError):
        SensorRegistry([1, 2])  # type: ignore[list-item]
    with pytest.raises(WrongTypeError):
        SensorRegistry(None)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        SensorRegistry([], min_snr_db="30")  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        SensorRegistry([], min_bits=12.0)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        SensorRegistry.default().find_by_hash(np.zeros(32), ["a"])  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        SensorRegistry.default().find_by_hash(b"h", 5)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        GatewayHandshake("gw", sensor_ids=5)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        GatewayHandshake("gw", registry={"models": []})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        GatewayHandshake("gw", freshness_s=math.nan)
    with pytest.raises(WrongTypeError):
        SensorHandshake("eeg_fp1_certified_v1", ephemeral_key=bytes(32))  # type: ignore[arg-type]


def test_session_constructor_refuses_bad_arguments() -> None:
    slots = fuzzlib.live_slots()
    with pytest.raises(WrongTypeError):
        SecureBusSession(bytes(32), b"abcd", Role.GATEWAY)  # type: ignore[arg-type]
    with SecureKeyBuffer() as key:
        with pytest.raises(InvalidArgumentError):
            SecureBusSession(key, b"abc", Role.GATEWAY)
        with pytest.raises(WrongTypeError):
            SecureBusSession(key, b"abcd", "gateway")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            SecureBusSession(key, b"abcd", Role.GATEWAY, lifetime_s=math.nan)
    assert fuzzlib.live_slots() == slots


def test_missing_rows_of_the_securemem_table() -> None:
    """from_bytes of a non-buffer or an empty one, a non-contiguous key source, a bad write length."""
    with pytest.raises(WrongTypeError):
        SecureBuffer.from_bytes("secret")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        SecureBuffer.from_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="contiguous"):
        SecureKeyBuffer(np.zeros(64, np.uint8)[::2])
    with SecureBuffer(8) as buf:
        with pytest.raises(InvalidArgumentError):
            buf.write(b"abc", length=4)
        with pytest.raises(WrongTypeError):
            buf.write(["a"])  # type: ignore[arg-type]


def test_a_refused_handshake_event_is_a_handshake_error() -> None:
    """A non-bytes hello to a fresh gateway (the table's 'wrong type' row for the machines)."""
    with pytest.raises(HandshakeError):
        GatewayHandshake("gw").receive_sensor_hello("x" * 72)  # type: ignore[arg-type]
