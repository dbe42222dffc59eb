"""Tests of the secure-memory layer: buffers, canaries, the arena, tensors, status, fork.

Memory is checked from the outside: bytes are read back with ctypes at the slot's address
(the small-slot regions stay mapped after a purge) and the kernel's view of the mappings
is read from /proc/self/smaps with a parser of this file's own.
"""

from __future__ import annotations

import copy
import ctypes
import itertools
import json
import os
import pickle
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable

import numpy as np
import pytest

from cortex_sal.crypto import aead_decrypt, aead_encrypt, hmac_sha256, hmac_sha256_verify, x25519_public_key
from cortex_sal.errors import (
    CanaryCorruptedError,
    ForkedBufferError,
    InvalidArgumentError,
    MemoryLockError,
    NotCopyableError,
    PurgedBufferError,
    SecureMemoryError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.securemem import (
    BACKEND_MMAP,
    SecureBuffer,
    SecureKeyBuffer,
    SecureTensorBuffer,
    configure,
    status,
)
from cortex_sal.securemem.arena import arena

PAGE = os.sysconf("SC_PAGE_SIZE")
KEY = bytes(range(0xA0, 0xC0))  # 32 distinctive bytes
ALIGN = 16
CANARY = 16


def span_of(size: int) -> int:
    """Bytes a slot of ``size`` occupies: data rounded to 16 plus a 16-byte canary."""
    return (size + ALIGN - 1) // ALIGN * ALIGN + CANARY


def peek(address: int, length: int) -> bytes:
    return ctypes.string_at(address, length)


def poke(address: int, data: bytes) -> None:
    ctypes.memmove(address, data, len(data))


def flip(address: int) -> None:
    """Change the byte at ``address`` whatever it holds (a fixed byte written over a random
    canary leaves it intact one time in 256)."""
    poke(address, bytes([peek(address, 1)[0] ^ 0x01]))


def export(buf: SecureBuffer) -> bytes:
    with buf.export_bytearray() as ba:
        return bytes(ba)


# -- an smaps parser of the test's own ---------------------------------------------------


def parse_smaps() -> list[dict[str, object]]:
    maps: list[dict[str, object]] = []
    current: dict[str, object] | None = None
    with open("/proc/self/smaps") as fh:
        for line in fh:
            fields = line.split()
            if not fields:
                continue
            key = fields[0]
            if not key.endswith(":") and "-" in key:
                lo, hi = key.split("-")
                current = {"start": int(lo, 16), "end": int(hi, 16), "perms": fields[1], "flags": set()}
                maps.append(current)
            elif key == "VmFlags:" and current is not None:
                current["flags"] = set(fields[1:])
            elif key == "Locked:" and current is not None:
                current["locked_kb"] = int(fields[1])
    return maps


def maps_overlapping(maps: list[dict[str, object]], start: int, end: int) -> list[dict[str, object]]:
    return [m for m in maps if m["start"] < end and m["end"] > start]  # type: ignore[operator]


def arena_mappings_over(start: int, end: int) -> list[dict[str, object]]:
    """Mappings over ``[start, end)`` that carry the arena's marks (locked or dump-excluded).

    Once a region is unmapped, the kernel may hand its address range to the next ``mmap`` of
    anyone (Python's allocator, glibc): such a mapping is neither, so it does not count.
    """
    return [m for m in maps_overlapping(parse_smaps(), start, end) if m["flags"] & {"lo", "dd"}]  # type: ignore[operator]


def vm_lck_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    raise AssertionError("no VmLck line in /proc/self/status")


def run_child(code: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORTEX_SAL_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- SecureKeyBuffer construction -------------------------------------------------------


@pytest.mark.parametrize("make", [bytes, bytearray, lambda b: memoryview(bytearray(b)), memoryview])
def test_key_from_bytes_like(make):
    with SecureKeyBuffer(make(KEY)) as key:
        assert len(key) == 32
        assert export(key) == KEY
        assert peek(key._address(), 32) == KEY


def test_key_from_non_byte_memoryview_format():
    words = memoryview(bytearray(KEY)).cast("I")  # 8 four-byte items, 32 bytes
    with SecureKeyBuffer(words) as key:
        assert export(key) == KEY


@pytest.mark.parametrize("length", [31, 33, 0])
@pytest.mark.parametrize("make", [bytes, bytearray, memoryview])
def test_key_wrong_length(length, make):
    live_before = arena().live_slots()
    with pytest.raises(WrongLengthError):
        SecureKeyBuffer(make(bytes(length)))
    assert arena().live_slots() == live_before  # nothing allocated for a refused key


@pytest.mark.parametrize("bad", ["k" * 32, 32, list(KEY), 3.0, object()])
def test_key_wrong_type(bad):
    with pytest.raises(WrongTypeError):
        SecureKeyBuffer(bad)


def test_key_from_secure_buffer_is_wrong_type():
    with SecureKeyBuffer(KEY) as other, pytest.raises(WrongTypeError):
        SecureKeyBuffer(other)


def test_wipe_source_zeroes_bytearray():
    source = bytearray(KEY)
    with SecureKeyBuffer(source, wipe_source=True) as key:
        assert source == bytearray(32)
        assert export(key) == KEY


def test_wipe_source_through_writable_memoryview():
    backing = bytearray(KEY)
    with SecureKeyBuffer(memoryview(backing), wipe_source=True) as key:
        assert backing == bytearray(32)
        assert export(key) == KEY


def test_no_wipe_source_leaves_source_alone():
    source = bytearray(KEY)
    with SecureKeyBuffer(source):
        assert source == KEY


@pytest.mark.parametrize("source", [KEY, memoryview(KEY)])
def test_wipe_source_readonly_is_wrong_type(source):
    live_before = arena().live_slots()
    with pytest.raises(WrongTypeError):
        SecureKeyBuffer(source, wipe_source=True)
    assert arena().live_slots() == live_before


def test_wipe_source_without_source():
    with pytest.raises(InvalidArgumentError):
        SecureKeyBuffer(wipe_source=True)


def test_random_keys_differ():
    with SecureKeyBuffer() as a, SecureKeyBuffer() as b, SecureKeyBuffer.generate() as c:
        va, vb, vc = export(a), export(b), export(c)
        assert len({va, vb, vc}) == 3
        assert va != bytes(32)
        assert not a.constant_time_compare(b)


# -- export_bytearray -------------------------------------------------------------------


def test_export_bytearray_content_and_zeroed_after():
    with SecureKeyBuffer(KEY) as key:
        with key.export_bytearray() as ba:
            assert isinstance(ba, bytearray)
            assert ba == KEY
            kept = ba
            address = ctypes.addressof((ctypes.c_char * 32).from_buffer(ba))
        assert kept == bytearray(32)
        assert peek(address, 32) == bytes(32)
        assert export(key) == KEY  # the secret itself is untouched


def test_export_bytearray_zeroed_when_block_raises():
    class Boom(Exception):
        pass

    with SecureKeyBuffer(KEY) as key:
        kept = None
        with pytest.raises(Boom), key.export_bytearray() as ba:
            kept = ba
            assert ba == KEY
            raise Boom
        assert kept == bytearray(32)


def test_export_bytearray_is_a_copy():
    with SecureKeyBuffer(KEY) as key:
        with key.export_bytearray() as ba:
            ba[0] ^= 0xFF
        assert export(key) == KEY


# -- constant_time_compare --------------------------------------------------------------


def test_constant_time_compare():
    other = bytearray(KEY)
    other[-1] ^= 1
    with SecureKeyBuffer(KEY) as key, SecureKeyBuffer(KEY) as same, SecureKeyBuffer(bytes(other)) as diff:
        assert key.constant_time_compare(KEY) is True
        assert key.constant_time_compare(bytearray(KEY)) is True
        assert key.constant_time_compare(memoryview(KEY)) is True
        assert key.constant_time_compare(same) is True
        assert key.constant_time_compare(key) is True
        assert key.constant_time_compare(bytes(other)) is False
        assert key.constant_time_compare(other) is False
        assert key.constant_time_compare(diff) is False
        assert key.constant_time_compare(KEY[:31]) is False
        assert key.constant_time_compare(KEY + b"\0") is False
        assert key.constant_time_compare(b"") is False
        with SecureBuffer.from_bytes(KEY + b"x") as longer:
            assert key.constant_time_compare(longer) is False
            assert longer.constant_time_compare(KEY + b"x") is True
        with pytest.raises(WrongTypeError):
            key.constant_time_compare("not bytes")  # type: ignore[arg-type]


# -- purge ------------------------------------------------------------------------------


def test_purge_idempotent_and_is_purged():
    key = SecureKeyBuffer(KEY)
    assert not key.is_purged
    key.secure_purge()
    assert key.is_purged
    key.secure_purge()
    key.secure_purge()
    assert key.is_purged


def test_every_use_after_purge_raises():
    key = SecureKeyBuffer(KEY)
    live = SecureKeyBuffer(KEY)
    key.secure_purge()
    uses = [
        lambda: key.export_bytearray().__enter__(),
        lambda: key.constant_time_compare(KEY),
        lambda: key.constant_time_compare(live),
        lambda: live.constant_time_compare(key),
        lambda: key._address(),
        lambda: len(key),
        lambda: key.size,
        lambda: key.write(b"x"),
        lambda: live.write(key),
        lambda: key.__enter__(),
        lambda: hmac_sha256(key, b"message"),
        lambda: hmac_sha256(key, b"a", b"b"),
        lambda: hmac_sha256(live, key),
        lambda: hmac_sha256_verify(key, bytes(32), b"message"),
        lambda: aead_encrypt(key, bytes(12), b"plaintext"),
        lambda: x25519_public_key(key),
    ]
    for i, use in enumerate(uses):
        with pytest.raises(PurgedBufferError):
            use()
        assert key.is_purged, i
    assert export(live) == KEY
    live.secure_purge()


def test_context_manager_exit_purges():
    with SecureKeyBuffer(KEY) as key:
        assert export(key) == KEY
    assert key.is_purged
    with pytest.raises(PurgedBufferError):
        len(key)


def test_context_manager_exit_purges_on_exception():
    with pytest.raises(ZeroDivisionError), SecureKeyBuffer(KEY) as key:
        1 / 0  # noqa: B018
    assert key.is_purged


def test_purge_zeroes_slot_including_canary():
    key = SecureKeyBuffer(KEY)
    address = key._address()
    span = span_of(32)
    before = peek(address, span)
    assert before[:32] == KEY
    assert before[32:] != bytes(span - 32)  # the canary is random, not zeros
    key.secure_purge()
    assert peek(address, span) == bytes(span)


@pytest.mark.parametrize("size", [1, 20, 33, 1000])
def test_purge_zeroes_odd_sized_buffer(size):
    buf = SecureBuffer.random(size)
    address = buf._address()
    span = span_of(size)
    assert peek(address, span) != bytes(span)
    buf.secure_purge()
    assert peek(address, span) == bytes(span)


def test_del_of_unpurged_buffer_zeroes_slot():
    key = SecureKeyBuffer(KEY)
    address = key._address()
    live_before = arena().live_slots()[0]
    assert peek(address, 32) == KEY
    del key
    assert peek(address, span_of(32)) == bytes(span_of(32))
    assert arena().live_slots()[0] == live_before - 1


# -- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "leak",
    [
        bytes,
        pickle.dumps,
        lambda b: pickle.dumps(b, protocol=0),
        lambda b: pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL),
        copy.copy,
        copy.deepcopy,
        lambda b: copy.deepcopy([b]),
    ],
)
@pytest.mark.parametrize("cls", [SecureKeyBuffer, lambda k: SecureBuffer.from_bytes(k)])
def test_not_copyable(leak, cls):
    with cls(KEY) as key:
        with pytest.raises(NotCopyableError):
            leak(key)
        assert export(key) == KEY


def test_no_buffer_protocol():
    with SecureKeyBuffer(KEY) as key:
        with pytest.raises(TypeError):
            memoryview(key)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            bytearray(key)  # type: ignore[call-overload]


def test_repr_and_str_hold_no_key_bytes():
    printable = b"TOPSECRET-pass-phrase-0123456789"
    assert len(printable) == 32
    for secret in (KEY, printable, os.urandom(32)):
        with SecureKeyBuffer(secret) as key:
            texts = [repr(key), str(key), f"{key}", f"{key!r}", repr([key])]
            hexed = secret.hex()
            for text in texts:
                low = text.lower()
                # no 4 consecutive hex digits of the key, in either case
                for i in range(0, len(hexed) - 3, 2):
                    assert hexed[i : i + 4] not in low
                # no 4 consecutive raw bytes of the key
                raw = secret.decode("latin-1")
                for i in range(len(raw) - 3):
                    assert raw[i : i + 4] not in text
                assert "32" in text  # it does say what it is
        assert "purged" in repr(key)


# -- canary -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [20, 1, 15, 16, 32, 47])
def test_one_byte_overrun_detected(size):
    buf = SecureBuffer.random(size)
    address = buf._address()
    span = span_of(size)
    flip(address + len(buf))
    with pytest.raises(CanaryCorruptedError) as info:
        buf.secure_purge()
    assert isinstance(info.value, SecureMemoryError)
    assert buf.is_purged
    assert peek(address, span) == bytes(span)
    with pytest.raises(PurgedBufferError):
        len(buf)
    buf.secure_purge()  # idempotent afterwards: no second error


@pytest.mark.parametrize("at", [0, 7, CANARY - 1])
def test_any_canary_byte_flip_detected(at):
    buf = SecureBuffer.random(20)
    address = buf._address()
    target = address + 20 + at
    flip(target)
    with pytest.raises(CanaryCorruptedError):
        buf.secure_purge()
    assert peek(address, span_of(20)) == bytes(span_of(20))


def test_corrupted_slot_is_retired():
    buf = SecureBuffer(20)
    address = buf._address()
    flip(address + 20)
    with pytest.raises(CanaryCorruptedError):
        buf.secure_purge()
    fresh = [SecureBuffer(20) for _ in range(50)]
    try:
        assert address not in {b._address() for b in fresh}
    finally:
        for b in fresh:
            b.secure_purge()


def test_intact_canary_purges_quietly():
    buf = SecureBuffer.random(20)
    poke(buf._address(), bytes(20))  # writing inside the buffer is fine
    buf.secure_purge()


def test_canary_dedicated_region():
    size = 64 * 1024
    buf = SecureBuffer.random(size)
    address = buf._address()
    region = next(r for r in arena().regions() if r.contains(address))
    assert region.dedicated
    flip(address + size)
    with pytest.raises(CanaryCorruptedError):
        buf.secure_purge()
    assert buf.is_purged
    assert region not in arena().regions()
    # the dedicated region is gone from the address space (it cannot be read back)
    assert not arena_mappings_over(region.base, region.base + region.total)


def test_del_with_corrupted_canary_does_not_raise(caplog):
    buf = SecureBuffer(20)
    address = buf._address()
    flip(address + 20)
    with caplog.at_level("ERROR", logger="cortex_sal.securemem"):
        del buf
    assert peek(address, span_of(20)) == bytes(span_of(20))
    assert any("canary" in r.getMessage() for r in caplog.records)


# -- the arena --------------------------------------------------------------------------


def test_mixed_allocations_distinct_aligned_non_overlapping():
    rng = random.Random(1234)
    sizes = [rng.choice([1, 7, 16, 17, 32, 33, 100, 255, 1000, 4096, 5000, 16 * 1024, 20000]) for _ in range(400)]
    bufs = [SecureBuffer(s) for s in sizes]
    try:
        spans = sorted((b._address(), b._address() + span_of(len(b))) for b in bufs)
        assert len({a for a, _ in spans}) == len(bufs)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start
        regions = arena().regions()
        for b in bufs:
            address = b._address()
            assert address % ALIGN == 0
            owner = [r for r in regions if r.contains(address)]
            assert len(owner) == 1
            assert address + span_of(len(b)) <= owner[0].data + owner[0].size
            assert owner[0].dedicated == (span_of(len(b)) >= 16 * 1024)
        # each buffer's bytes are its own
        for i, b in enumerate(bufs):
            b.write(bytes([i % 251 + 1]) * len(b))
        for i, b in enumerate(bufs):
            assert peek(b._address(), len(b)) == bytes([i % 251 + 1]) * len(b)
    finally:
        for b in bufs:
            b.secure_purge()


def test_freed_slots_are_reused():
    a = SecureBuffer(20)
    address = a._address()
    a.secure_purge()
    b = SecureBuffer(20)
    assert b._address() == address
    assert peek(address, 20) == bytes(20)  # the reused slot starts zeroed
    b.secure_purge()
    # a key has a different span (48 vs 48 for 20 bytes: same class), and a 100-byte one does not fit
    c = SecureBuffer(100)
    assert c._address() != address
    c.secure_purge()


def test_growth_adds_regions_in_process():
    a = arena()
    before = [r for r in a.regions() if not r.dedicated]
    keys = [SecureKeyBuffer() for _ in range(3000)]
    limit = 0
    while len([r for r in a.regions() if not r.dedicated]) == len(before) and limit < 50_000:
        keys.append(SecureKeyBuffer())  # earlier tests may have left room: fill it up
        limit += 1
    try:
        after = [r for r in a.regions() if not r.dedicated]
        assert len(after) > len(before)
        new = [r for r in after if r not in before]
        largest_before = max((r.size for r in before), default=32 * 1024)
        assert new[0].size == min(2 * largest_before, 1024 * 1024)
        for k in keys[::97]:
            assert any(r.contains(k._address()) for r in after)
        assert keys[0].constant_time_compare(keys[0])
    finally:
        for k in keys:
            k.secure_purge()


def test_growth_in_fresh_process():
    result = run_child(
        """
        import json
        from cortex_sal.securemem import SecureKeyBuffer
        from cortex_sal.securemem.arena import arena
        counts = []
        keys = []
        for i in range(3000):
            keys.append(SecureKeyBuffer())
            counts.append(len(arena().regions()))
        print(json.dumps({"sizes": [r.size for r in arena().regions()], "counts": counts,
                          "live": arena().live_slots()}))
        """
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sizes"] == [64 * 1024, 128 * 1024]
    per_first = 64 * 1024 // span_of(32)  # 1365 keys fit in the first region
    assert data["counts"].index(2) == per_first
    assert data["live"] == [3000, 3000 * 32]


def test_live_slots_counts():
    a = arena()
    n0, b0 = a.live_slots()
    sizes = [1, 32, 100, 5000, 20000]
    bufs = [SecureBuffer(s) for s in sizes]
    assert a.live_slots() == (n0 + len(sizes), b0 + sum(sizes))
    bufs[0].secure_purge()
    assert a.live_slots() == (n0 + len(sizes) - 1, b0 + sum(sizes) - 1)
    bufs[0].secure_purge()
    assert a.live_slots() == (n0 + len(sizes) - 1, b0 + sum(sizes) - 1)
    for b in bufs:
        b.secure_purge()
    assert a.live_slots() == (n0, b0)
    s = status()
    assert (s.slots_live, s.bytes_live) == (n0, b0)


def test_dedicated_region_unmapped_after_purge():
    buf = SecureBuffer(16 * 1024)
    address = buf._address()
    region = next(r for r in arena().regions() if r.contains(address))
    assert region.dedicated
    lo, hi = region.base, region.base + region.total
    assert arena_mappings_over(lo, hi)
    buf.secure_purge()
    assert region not in arena().regions()
    assert not arena_mappings_over(lo, hi)


def test_just_below_dedicated_threshold_shares_a_region():
    size = 16 * 1024 - CANARY - ALIGN  # span just under 16 KiB
    buf = SecureBuffer(size)
    try:
        region = next(r for r in arena().regions() if r.contains(buf._address()))
        assert not region.dedicated
    finally:
        buf.secure_purge()


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "32", None])
def test_secure_buffer_bad_size(size):
    with pytest.raises((InvalidArgumentError, WrongTypeError)):
        SecureBuffer(size)  # type: ignore[arg-type]
    with pytest.raises((InvalidArgumentError, WrongTypeError)):
        SecureBuffer.allocate(size)  # type: ignore[arg-type]


def test_write_bounds():
    with SecureBuffer(20) as buf:
        buf.write(b"abc", offset=17)
        with pytest.raises(WrongLengthError):
            buf.write(b"abcd", offset=17)
        with pytest.raises(WrongLengthError):
            buf.write(bytes(21))
        with pytest.raises(InvalidArgumentError):
            buf.write(b"a", offset=-1)
        buf.write(b"0123456789", offset=0, length=4)
        assert export(buf)[:4] == b"0123"
        assert export(buf)[17:] == b"abc"
        buf.secure_purge()  # no overrun happened: canary intact


# -- SecureTensorBuffer -----------------------------------------------------------------


def test_tensor_view_shares_slot_memory():
    with SecureTensorBuffer((4, 8), np.float32) as buf:
        arr = buf.array
        assert arr.shape == (4, 8) and arr.dtype == np.float32
        assert arr.ctypes.data == buf._address()
        assert len(buf) == 4 * 8 * 4
        assert not arr.any()
        arr[1, 2] = 3.5
        raw = peek(buf._address(), len(buf))
        assert np.frombuffer(raw, dtype=np.float32).reshape(4, 8)[1, 2] == 3.5
        poke(buf._address(), np.float32(-2.0).tobytes())
        assert arr[0, 0] == -2.0
        assert buf.array is arr
        del arr


def test_tensor_fill_from():
    with SecureTensorBuffer((3, 5), np.float64) as buf:
        samples = np.arange(15, dtype=np.float64).reshape(3, 5)
        buf.fill_from(samples)
        assert np.array_equal(buf.array, samples)
        assert not np.shares_memory(buf.array, samples)
        assert np.frombuffer(peek(buf._address(), len(buf)), dtype=np.float64).tolist() == list(range(15))
        buf.fill_from(np.ones((3, 5), dtype=np.float32))  # converted in place
        assert buf.array.sum() == 15
        buf.fill_from([[1, 2, 3, 4, 5]] * 3)
        assert buf.array[2, 4] == 5
        for bad in (np.zeros((5, 3)), np.zeros(15), np.zeros((3, 5, 1)), np.zeros((3, 4)), 1.0):
            with pytest.raises(InvalidArgumentError):
                buf.fill_from(bad)
        assert buf.array[2, 4] == 5  # refused fills wrote nothing


@pytest.mark.parametrize("shape", [0, -3, (0,), (2, 0), (2, -1), (2.0,), [2, 3], (True,), True, "4", None])
def test_tensor_bad_shape(shape):
    live = arena().live_slots()
    with pytest.raises(InvalidArgumentError):
        SecureTensorBuffer(shape)
    assert arena().live_slots() == live


@pytest.mark.parametrize("dtype", [object, np.complex128, np.bool_, "U4", "S4", "M8[s]", [("a", "f4")]])
def test_tensor_bad_dtype_value(dtype):
    with pytest.raises(InvalidArgumentError):
        SecureTensorBuffer((2, 2), dtype)


@pytest.mark.parametrize("dtype", ["not-a-dtype", 3.5])
def test_tensor_bad_dtype_type(dtype):
    with pytest.raises(WrongTypeError):
        SecureTensorBuffer((2, 2), dtype)


@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.float32, np.float64, "<i8", ">f4"])
def test_tensor_good_dtypes(dtype):
    with SecureTensorBuffer(6, dtype) as buf:
        assert buf.shape == (6,)
        assert buf.array.dtype == np.dtype(dtype)
        buf.fill_from(np.arange(6, dtype=dtype))
        assert buf.array.tolist() == list(range(6))


def test_tensor_zeroed_on_exit_and_slot_reused_when_no_view_kept():
    with SecureTensorBuffer((16,), np.float64) as buf:
        buf.fill_from(np.full(16, 7.0))
        address = buf._address()
    assert buf.is_purged
    assert peek(address, span_of(128)) == bytes(span_of(128))
    with pytest.raises(PurgedBufferError):
        buf.array  # noqa: B018
    with SecureTensorBuffer((16,), np.float64) as again:
        assert again._address() == address  # nothing held the old slot: it went back to the pool
        assert not again.array.any()


@pytest.mark.parametrize(
    "keep",
    [
        lambda a: a,
        lambda a: a[1:],
        lambda a: a.reshape(-1),
        lambda a: a.T,
        lambda a: a.view(np.uint8),
        lambda a: np.asarray(a),
        lambda a: memoryview(a),
        lambda a: memoryview(a[0]),
    ],
    ids=["array", "slice", "reshape", "transpose", "dtype-view", "asarray", "memoryview", "row-memoryview"],
)
def test_tensor_view_kept_after_exit_reads_zeros_and_slot_not_reused(keep):
    with SecureTensorBuffer((4, 8), np.float32) as buf:
        buf.fill_from(np.full((4, 8), 9.0))
        address = buf._address()
        view = keep(buf.array)
    assert buf.is_purged
    stale = np.asarray(view)
    assert not stale.any()
    assert peek(address, span_of(128)) == bytes(span_of(128))
    others = [SecureTensorBuffer((4, 8), np.float32) for _ in range(20)]
    try:
        for other in others:
            assert other._address() != address
            other.fill_from(np.full((4, 8), 5.0))
        assert not np.asarray(view).any()
        assert peek(address, span_of(128)) == bytes(span_of(128))
    finally:
        for other in others:
            other.secure_purge()


def test_tensor_view_kept_on_dedicated_region_in_child():
    # a dedicated region that got unmapped under a live view would crash the reader, so
    # this runs in a child process: a segfault there is a plain test failure here
    result = run_child(
        """
        import numpy as np
        from cortex_sal.securemem import SecureTensorBuffer
        from cortex_sal.securemem.arena import arena
        with SecureTensorBuffer((64, 128), np.float32) as buf:  # 32 KiB: dedicated
            buf.fill_from(np.full((64, 128), 1.0))
            view = buf.array[::2]
            address = buf._address()
        assert any(r.contains(address) for r in arena().regions()), "region released under a view"
        assert not view.any()
        with SecureTensorBuffer((64, 128), np.float32) as other:
            other.fill_from(np.full((64, 128), 2.0))
            assert not view.any()
        with SecureTensorBuffer((64, 128), np.float32) as buf:  # no view kept: released
            buf.fill_from(np.full((64, 128), 1.0))
            address = buf._address()
        assert not any(r.contains(address) for r in arena().regions())
        print("ok")
        """
    )
    assert result.returncode == 0, (result.returncode, result.stderr)
    assert result.stdout.strip() == "ok"


def test_tensor_repr_has_no_samples():
    with SecureTensorBuffer(4, np.float64) as buf:
        buf.fill_from(np.array([123456.75, 2.5, 3.25, 987.125]))
        text = repr(buf)
        assert "123456" not in text and "987" not in text
        assert "(4,)" in text


def test_tensor_not_copyable():
    with SecureTensorBuffer(4) as buf:
        for leak in (bytes, pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(NotCopyableError):
                leak(buf)


# -- status() against the kernel --------------------------------------------------------


def test_status_matches_smaps():
    keep = [SecureKeyBuffer(), SecureBuffer(20000)]  # at least one shared and one dedicated region
    try:
        s = status()
        regions = arena().regions()
        assert s.regions
        assert {(r.start, r.size) for r in s.regions} == {(r.data, r.size) for r in regions}
        assert any(r.dedicated for r in s.regions) and any(not r.dedicated for r in s.regions)
        maps = parse_smaps()
        for r in s.regions:
            lo, hi = r.start, r.start + r.size
            assert lo % PAGE == 0 and r.size % PAGE == 0
            covering = maps_overlapping(maps, lo, hi)
            assert covering
            assert sum(min(m["end"], hi) - max(m["start"], lo) for m in covering) == r.size  # type: ignore[operator]
            for m in covering:
                assert {"lo", "dd", "wf"} <= m["flags"], (hex(m["start"]), m["flags"])  # type: ignore[operator]
                assert m["perms"] == "rw-p"
            assert sum(m["locked_kb"] for m in covering) * 1024 >= r.size  # type: ignore[misc]
            before = maps_overlapping(maps, lo - PAGE, lo)
            after = maps_overlapping(maps, hi, hi + PAGE)
            assert len(before) == 1 and len(after) == 1
            assert before[0]["perms"] == "---p" and after[0]["perms"] == "---p"
            assert before[0]["start"] <= lo - PAGE and after[0]["end"] >= hi + PAGE  # type: ignore[operator]
            # status() says what the kernel says
            assert r.locked and r.dump_excluded and r.wipe_on_fork
            assert r.backend == BACKEND_MMAP
            assert r.problems == ()
        assert s.locked and s.dump_excluded and s.wipe_on_fork and not s.degraded
        assert s.backend == BACKEND_MMAP and s.lock_policy == arena().lock_policy
        assert vm_lck_kb() >= sum(r.size for r in s.regions) // 1024
        assert s.vm_lck_kb >= sum(r.size for r in s.regions) // 1024
        assert s.slots_live == arena().live_slots()[0]
    finally:
        for b in keep:
            b.secure_purge()


def test_status_notices_a_munlocked_region():
    """status() reads the kernel, not the arena's bookkeeping: unlock a page behind its back."""
    buf = SecureBuffer(20000)
    try:
        region = next(r for r in arena().regions() if r.contains(buf._address()))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        assert libc.munlock(region.data, PAGE) == 0
        s = status()
        row = next(r for r in s.regions if r.start == region.data)
        assert not row.locked
        assert not s.locked and s.degraded
        maps = maps_overlapping(parse_smaps(), region.data, region.data + PAGE)
        assert all("lo" not in m["flags"] for m in maps)  # type: ignore[operator]
    finally:
        buf.secure_purge()
    assert status().locked


def test_status_creates_first_region_in_fresh_process():
    result = run_child(
        """
        import json
        from cortex_sal.securemem import status
        s = status()
        print(json.dumps([len(s.regions), s.regions[0].size, s.locked, s.slots_live]))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [1, 64 * 1024, True, 0]


# -- fork -------------------------------------------------------------------------------


def _child_after_fork(key: SecureKeyBuffer, address: int) -> int:
    """Runs in the forked child; returns the exit code (0: all checks passed)."""
    if peek(address, 32) != bytes(32):
        return 10  # MADV_WIPEONFORK did not wipe
    if peek(address, span_of(32)) != bytes(span_of(32)):
        return 11
    for use in (
        lambda: key.constant_time_compare(KEY),
        lambda: key.export_bytearray().__enter__(),
        lambda: key._address(),
        lambda: hmac_sha256(key, b"m"),
        lambda: key.write(b"x"),
    ):
        try:
            use()
        except ForkedBufferError:
            pass
        except BaseException:
            return 12
        else:
            return 13
    if arena().live_slots() != (0, 0) or arena().regions():
        return 14
    fresh = SecureKeyBuffer(KEY)
    if not fresh.constant_time_compare(KEY) or export(fresh) != KEY:
        return 15
    if hmac_sha256(fresh, b"m") != PARENT_TAG:
        return 16
    if not status().locked or not status().wipe_on_fork:
        return 17
    fresh.secure_purge()
    key.secure_purge()  # dropping an inherited buffer is quiet
    if not key.is_purged:
        return 18
    return 0


PARENT_TAG = b""


def test_fork_wipes_child_copy():
    global PARENT_TAG
    if threading.active_count() != 1:
        pytest.skip("threads are running: fork() would be unsafe")
    key = SecureKeyBuffer(KEY)
    PARENT_TAG = hmac_sha256(key, b"m")
    address = key._address()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 99
        try:
            code = _child_after_fork(key, address)
        finally:
            os._exit(code)
    _, wait_status = os.waitpid(pid, 0)
    assert os.WIFEXITED(wait_status), wait_status
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert peek(address, 32) == KEY
    assert export(key) == KEY
    assert hmac_sha256(key, b"m") == PARENT_TAG
    key.secure_purge()


def test_fork_buffer_error_is_purged_error():
    assert issubclass(ForkedBufferError, PurgedBufferError)
    assert issubclass(PurgedBufferError, SecureMemoryError)
    assert issubclass(CanaryCorruptedError, SecureMemoryError)
    assert issubclass(MemoryLockError, SecureMemoryError)


def _fork_and_wait(child: Callable[[], int]) -> int:
    """Run ``child`` in a forked child; return its exit code (99: it raised)."""
    if threading.active_count() != 1:
        pytest.skip("threads are running: fork() would be unsafe")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 99
        try:
            code = child()
        finally:
            os._exit(code)
    _, wait_status = os.waitpid(pid, 0)
    assert os.WIFEXITED(wait_status), wait_status
    return os.waitstatus_to_exitcode(wait_status)


def test_fork_parent_keys_still_work_after_the_child_scribbled():
    """The child sees zeros where the parent's key and a dedicated buffer are, and its writes
    there (its own fresh pages) never reach the parent: an AEAD round trip still checks out
    against the ``cryptography`` oracle afterwards."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    samples = bytes(range(256)) * 80  # 20 KiB: a dedicated region
    key = SecureKeyBuffer(KEY)
    big = SecureBuffer.from_bytes(samples)
    key_addr, big_addr = key._address(), big._address()

    def child() -> int:
        if peek(key_addr, 32) != bytes(32) or peek(big_addr, len(samples)) != bytes(len(samples)):
            return 10
        poke(key_addr, b"\xff" * 32)  # the child's own wiped copy: the parent must not see this
        poke(big_addr, b"\xee" * len(samples))
        return 0

    assert _fork_and_wait(child) == 0
    assert peek(key_addr, 32) == KEY and export(big) == samples
    nonce, aad, message = os.urandom(12), b"header", b"samples after fork"
    sealed = aead_encrypt(key, nonce, message, aad)
    assert sealed == ChaCha20Poly1305(KEY).encrypt(nonce, message, aad)
    with aead_decrypt(key, nonce, sealed, aad) as opened:
        assert export(opened) == message
    key.secure_purge()
    big.secure_purge()


def _child_bookkeeping(parent_key: SecureKeyBuffer, parent_regions: set[int]) -> int:
    """In the forked child: allocate, free, reuse, fork again; status() must follow every step."""
    a = arena()
    if a.live_slots() != (0, 0) or a.regions():
        return 20
    sizes = [32, 20, 1000, 20000]
    bufs = [SecureBuffer.random(s) for s in sizes]
    s = status()
    if (s.slots_live, s.bytes_live) != (4, sum(sizes)):
        return 21
    if {(r.start, r.size) for r in s.regions} != {(r.data, r.size) for r in a.regions()}:
        return 22
    if {r.start for r in s.regions} & parent_regions:
        return 23  # an inherited (wiped) region was taken for the child's own
    if not (s.locked and s.dump_excluded and s.wipe_on_fork) or s.degraded:
        return 24
    dedicated = next(r for r in a.regions() if r.dedicated)
    freed_addr = bufs[1]._address()
    bufs[1].secure_purge()
    bufs[3].secure_purge()
    if a.live_slots() != (2, 1032) or (status().slots_live, status().bytes_live) != (2, 1032):
        return 25
    lo, hi = dedicated.base, dedicated.base + dedicated.total
    if dedicated in a.regions() or arena_mappings_over(lo, hi):
        return 26  # a dedicated region is unmapped when its slot is freed
    again = SecureBuffer(20)
    if again._address() != freed_addr or peek(freed_addr, 20) != bytes(20):
        return 27  # the free list survived the fork coherent
    parent_key.secure_purge()  # an inherited buffer: dropping it changes none of the child's counts
    if a.live_slots() != (3, 1052):
        return 28
    kept = export(bufs[0])
    child_addr = bufs[0]._address()

    def grandchild() -> int:
        if peek(child_addr, 32) != bytes(32) or arena().live_slots() != (0, 0) or arena().regions():
            return 30
        with SecureKeyBuffer(KEY) as k:
            if export(k) != KEY or status().slots_live != 1:
                return 31
        return 0

    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - grandchild
        code = 99
        try:
            code = grandchild()
        finally:
            os._exit(code)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        return code
    if export(bufs[0]) != kept:
        return 32
    for b in (bufs[0], bufs[2], again):
        b.secure_purge()
    if a.live_slots() != (0, 0) or (status().slots_live, status().bytes_live) != (0, 0):
        return 33
    return 0


def test_fork_child_bookkeeping_stays_coherent():
    key = SecureKeyBuffer(KEY)
    parent_regions = {r.data for r in arena().regions()}
    assert _fork_and_wait(lambda: _child_bookkeeping(key, parent_regions)) == 0
    assert export(key) == KEY  # the child's purge of its inherited copy did not reach us
    key.secure_purge()


# -- configure ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lock_policy": "paranoid"},
        {"lock_policy": "STRICT"},
        {"lock_policy": 1},
        {"lock_policy": ""},
        {"backend": "memfd"},
        {"backend": "MMAP"},
        {"backend": 0},
        {"lock_policy": "strict", "backend": "bogus"},
        {"lock_policy": "bogus", "backend": "memfd_secret"},
    ],
)
def test_configure_rejects_invalid(kwargs):
    a = arena()
    before = (a.lock_policy, a.backend)
    with pytest.raises(InvalidArgumentError):
        configure(**kwargs)
    assert (a.lock_policy, a.backend) == before  # a refused call changes nothing


def test_configure_roundtrip():
    a = arena()
    before = (a.lock_policy, a.backend)
    try:
        configure(lock_policy="strict")
        assert a.lock_policy == "strict"
        configure(backend="mmap", lock_policy="best-effort")
        assert (a.lock_policy, a.backend) == ("best-effort", "mmap")
    finally:
        configure(lock_policy=before[0], backend=before[1])
