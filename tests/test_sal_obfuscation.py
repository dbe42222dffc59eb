"""Phase B obfuscation: every expected value is computed here with hmac/hashlib/struct from
the key bytes the test itself put into the SecureKeyBuffer (the test is the oracle)."""

from __future__ import annotations

import hashlib
import hmac
import inspect
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.errors import (
    InvalidArgumentError,
    PurgedBufferError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.sal import obfuscation
from cortex_sal.sal.obfuscation import PRIMARY, SECONDARY, obfuscate, obfuscate_batch
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer
from hypothesis_profiles import examples

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
H = hashlib.sha256(b"eeg_fp1_certified_v1").digest()
FEATURES = np.array([0.42, 0.11, 0.33, 0.51, 0.68])
BELOW_ONE = 1.0 - 2.0**-53

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
feature_vectors = st.lists(finite, min_size=5, max_size=5)
hashes = st.binary(min_size=32, max_size=32)


def oracle(features: object, sensor_hash: bytes, key: bytes) -> list[float]:
    """docs/sal.md Phase B, from scratch: struct for the encoding, hmac for the digests."""
    f = [float(x) for x in features]  # type: ignore[attr-defined]
    fb = struct.pack(">5d", *f)
    d1 = hmac.new(key, fb + sensor_hash + b"_primary", hashlib.sha256).digest()
    d2 = hmac.new(key, fb + sensor_hash + b"_secondary", hashlib.sha256).digest()
    u = struct.unpack(">5Q", (d1 + d2)[:40])
    factors = [min(v / 2**64, BELOW_ONE) for v in u]  # correctly rounded quotient, kept below 1
    return [x * y for x, y in zip(f, factors, strict=True)]


@pytest.fixture
def key():  # type: ignore[no-untyped-def]
    with SecureKeyBuffer(KEY) as k:
        yield k


# -- the value -------------------------------------------------------------------------------


def test_equals_independent_hmac_struct_computation(key: SecureKeyBuffer) -> None:
    out = obfuscate(FEATURES, H, key)
    assert out.dtype == np.float64 and out.shape == (5,)
    assert out.tolist() == oracle(FEATURES, H, KEY)  # bit for bit


def test_known_digest_layout(key: SecureKeyBuffer) -> None:
    """Four factors come from d1, the fifth from the first 8 bytes of d2."""
    ones = np.ones(5)
    factors = obfuscate(ones, H, key)
    fb = struct.pack(">5d", *[1.0] * 5)
    d1 = hmac.new(KEY, fb + H + b"_primary", hashlib.sha256).digest()
    d2 = hmac.new(KEY, fb + H + b"_secondary", hashlib.sha256).digest()
    for i in range(4):
        assert factors[i] == int.from_bytes(d1[8 * i : 8 * i + 8], "big") / 2**64
    assert factors[4] == int.from_bytes(d2[:8], "big") / 2**64


@settings(max_examples=examples(60), deadline=None)
@given(features=feature_vectors, sensor_hash=hashes, key_bytes=st.binary(min_size=32, max_size=32))
def test_equals_oracle_for_any_input(features: list[float], sensor_hash: bytes, key_bytes: bytes) -> None:
    with SecureKeyBuffer(key_bytes) as k:
        assert obfuscate(np.array(features), sensor_hash, k).tolist() == oracle(features, sensor_hash, key_bytes)


def test_deterministic_per_key(key: SecureKeyBuffer) -> None:
    a = obfuscate(FEATURES, H, key)
    b = obfuscate(FEATURES, H, key)
    with SecureKeyBuffer(KEY) as same:
        c = obfuscate(FEATURES, H, same)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_changes_with_key(key: SecureKeyBuffer) -> None:
    with SecureKeyBuffer(OTHER_KEY) as other:
        b = obfuscate(FEATURES, H, other)
    a = obfuscate(FEATURES, H, key)
    assert not np.any(a == b)
    assert b.tolist() == oracle(FEATURES, H, OTHER_KEY)


def test_changes_with_sensor_hash(key: SecureKeyBuffer) -> None:
    other = hashlib.sha256(b"eeg_fp2_certified_v1").digest()
    flipped = bytes([H[0] ^ 1]) + H[1:]
    a = obfuscate(FEATURES, H, key)
    for h in (other, flipped):
        b = obfuscate(FEATURES, h, key)
        assert not np.any(a == b)
        assert b.tolist() == oracle(FEATURES, h, KEY)


@pytest.mark.parametrize("index", range(5))
def test_changes_with_every_feature(key: SecureKeyBuffer, index: int) -> None:
    g = FEATURES.copy()
    g[index] = np.nextafter(g[index], 1.0)  # the smallest possible change
    a, b = obfuscate(FEATURES, H, key), obfuscate(g, H, key)
    others = [i for i in range(5) if i != index]
    assert not np.any(a[others] == b[others])  # new digests: the other factors change too
    assert b.tolist() == oracle(g, H, KEY)


def test_signed_zero_is_part_of_the_encoding(key: SecureKeyBuffer) -> None:
    z, nz = np.zeros(5), -np.zeros(5)
    assert obfuscate(z, H, key).tolist() == oracle(z, H, KEY)
    assert obfuscate(nz, H, key).tolist() == oracle(nz, H, KEY)
    assert np.signbit(obfuscate(nz, H, key)).all()


def test_factors_in_unit_interval(key: SecureKeyBuffer) -> None:
    ones = np.ones(5)
    for i in range(200):
        h = hashlib.sha256(i.to_bytes(4, "big")).digest()
        f = obfuscate(ones, h, key)
        assert ((f >= 0.0) & (f < 1.0)).all()
    big = np.array([1e6, -1e6, 3.0, -0.5, 0.0])
    out = obfuscate(big, H, key)
    assert (np.abs(out) <= np.abs(big)).all() and (np.sign(out) * np.sign(big) >= 0).all()


def test_factor_edge_rounding_is_clamped_below_one() -> None:
    """u near 2**64 rounds to 1.0 in float64; the factor is kept at the largest double below 1."""
    u = np.array([2**64 - 1, 2**64 - 2**10, 2**64 - 2**10 - 1, 2**64 - 2**11, 0, 1], dtype=np.uint64)
    assert (2**64 - 1) / 2**64 == 1.0  # the plain quotient would leave [0, 1)
    got = obfuscation._factors(u)
    assert got.tolist() == [BELOW_ONE, BELOW_ONE, BELOW_ONE, BELOW_ONE, 0.0, 2.0**-64]
    # every other value is the correctly rounded quotient
    rng = np.random.default_rng(3)
    v = rng.integers(0, 2**64 - 2**11, size=1000, dtype=np.uint64, endpoint=True)
    assert obfuscation._factors(v).tolist() == [int(x) / 2**64 for x in v]


def test_input_is_not_modified_and_other_dtypes_convert(key: SecureKeyBuffer) -> None:
    f = FEATURES.copy()
    obfuscate(f, H, key)
    assert np.array_equal(f, FEATURES)
    as32 = FEATURES.astype(np.float32)
    assert obfuscate(as32, H, key).tolist() == oracle(as32.astype(np.float64), H, KEY)
    ints = [1, 2, 3, 4, 5]
    assert obfuscate(ints, H, key).tolist() == oracle(ints, H, KEY)
    assert obfuscate(tuple(FEATURES.tolist()), H, key).tolist() == oracle(FEATURES, H, KEY)
    assert obfuscate(FEATURES, bytearray(H), key).tolist() == oracle(FEATURES, H, KEY)


# -- batch -----------------------------------------------------------------------------------


@settings(max_examples=examples(60), deadline=None)
@given(rows=st.lists(st.tuples(feature_vectors, hashes), min_size=0, max_size=12))
def test_batch_equals_single(rows: list[tuple[list[float], bytes]]) -> None:
    with SecureKeyBuffer(KEY) as k:
        features = np.array([r[0] for r in rows], dtype=np.float64).reshape(len(rows), 5)
        hs = [r[1] for r in rows]
        out = obfuscate_batch(features, hs, k)
        assert out.shape == (len(rows), 5) and out.dtype == np.float64
        for i, (f, h) in enumerate(rows):
            single = obfuscate(np.array(f), h, k)
            assert out[i].tolist() == single.tolist()
            assert out[i].tolist() == oracle(f, h, KEY)


def test_batch_hash_matrix_form_and_views(key: SecureKeyBuffer) -> None:
    rng = np.random.default_rng(7)
    features = rng.random((40, 5))
    hs = [hashlib.sha256(bytes([i])).digest() for i in range(40)]
    by_list = obfuscate_batch(features, hs, key)
    matrix = np.frombuffer(b"".join(hs), dtype=np.uint8).reshape(40, 32)
    assert np.array_equal(obfuscate_batch(features, matrix, key), by_list)
    assert np.array_equal(obfuscate_batch(features.tolist(), tuple(hs), key), by_list)
    # a non-contiguous, big-endian view of the same values gives the same result
    wide = np.zeros((40, 10), dtype=">f8")
    wide[:, ::2] = features
    assert np.array_equal(obfuscate_batch(wide[:, ::2], hs, key), by_list)
    # float32 rows equal float32 singles
    f32 = features.astype(np.float32)
    out32 = obfuscate_batch(f32, hs, key)
    for i in range(40):
        assert out32[i].tolist() == obfuscate(f32[i], hs[i], key).tolist()


def test_batch_empty(key: SecureKeyBuffer) -> None:
    out = obfuscate_batch(np.empty((0, 5)), [], key)
    assert out.shape == (0, 5) and out.dtype == np.float64


def test_batch_is_one_hmac_pair_per_row(key: SecureKeyBuffer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    real = obfuscation.hmac_sha256_many

    def counting(k: SecureKeyBuffer, messages: bytes, size: int) -> bytes:
        calls.append((len(messages) // size, size))
        assert k is key  # the key object itself goes to the crypto layer, never its bytes
        return real(k, messages, size)

    monkeypatch.setattr(obfuscation, "hmac_sha256_many", counting)
    obfuscate_batch(np.ones((17, 5)), [H] * 17, key)
    # two passes (primary, secondary), 17 messages each: one HMAC per row per pass
    assert calls == [(17, 40 + 32 + len(PRIMARY)), (17, 40 + 32 + len(SECONDARY))]


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "error"),
    [
        (np.ones(4), InvalidArgumentError),
        (np.ones(6), InvalidArgumentError),
        (np.ones((5, 1)), InvalidArgumentError),
        (np.ones((1, 5)), InvalidArgumentError),
        (np.float64(1.0), InvalidArgumentError),
        (np.array([1.0, 2.0, np.nan, 3.0, 4.0]), InvalidArgumentError),
        (np.array([1.0, 2.0, np.inf, 3.0, 4.0]), InvalidArgumentError),
        (np.array([1.0, 2.0, -np.inf, 3.0, 4.0]), InvalidArgumentError),
        (np.ones(5, dtype=np.complex128), WrongTypeError),
        (np.ones(5, dtype=bool), WrongTypeError),
        (np.array(["a"] * 5), WrongTypeError),
        (np.array([object()] * 5), WrongTypeError),
    ],
)
def test_bad_features_refused(key: SecureKeyBuffer, features: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        obfuscate(features, H, key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sensor_hash", "error"),
    [
        (H[:31], WrongLengthError),
        (H + b"\x00", WrongLengthError),
        (b"", WrongLengthError),
        (H.hex(), WrongTypeError),
        (None, WrongTypeError),
        (list(H), WrongTypeError),
    ],
)
def test_bad_sensor_hash_refused(key: SecureKeyBuffer, sensor_hash: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        obfuscate(FEATURES, sensor_hash, key)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad_key", [KEY, bytearray(KEY), None, "k" * 32, np.frombuffer(KEY, dtype=np.uint8)])
def test_wrong_key_type(bad_key: object) -> None:
    with pytest.raises(WrongTypeError):
        obfuscate(FEATURES, H, bad_key)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        obfuscate_batch(np.ones((2, 5)), [H, H], bad_key)  # type: ignore[arg-type]


def test_plain_secure_buffer_is_not_a_key() -> None:
    with SecureBuffer.from_bytes(KEY) as buf, pytest.raises(WrongTypeError):
        obfuscate(FEATURES, H, buf)  # type: ignore[arg-type]


def test_purged_key() -> None:
    k = SecureKeyBuffer(KEY)
    k.secure_purge()
    with pytest.raises(PurgedBufferError):
        obfuscate(FEATURES, H, k)
    with pytest.raises(PurgedBufferError):
        obfuscate_batch(np.ones((2, 5)), [H, H], k)


@pytest.mark.parametrize(
    ("features", "hashes_", "error"),
    [
        (np.ones((3, 4)), [H] * 3, InvalidArgumentError),
        (np.ones(5), [H], InvalidArgumentError),
        (np.ones((1, 1, 5)), [H], InvalidArgumentError),
        (np.ones((3, 5)), [H] * 2, InvalidArgumentError),
        (np.ones((3, 5)), [H] * 4, InvalidArgumentError),
        (np.array([[1.0] * 5, [1.0, np.nan, 1.0, 1.0, 1.0]]), [H] * 2, InvalidArgumentError),
        (np.ones((2, 5), dtype=np.complex64), [H] * 2, WrongTypeError),
        (np.ones((2, 5)), [H, H[:31]], WrongLengthError),
        (np.ones((2, 5)), [H, H.hex()], WrongTypeError),
        (np.ones((1, 5)), H, WrongTypeError),
        (np.ones((2, 5)), 42, WrongTypeError),
        (np.ones((2, 5)), np.zeros((2, 31), dtype=np.uint8), InvalidArgumentError),
        (np.ones((2, 5)), np.zeros((2, 32), dtype=np.int64), WrongTypeError),
    ],
)
def test_batch_refusals(key: SecureKeyBuffer, features: object, hashes_: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        obfuscate_batch(features, hashes_, key)  # type: ignore[arg-type]


def test_module_never_turns_the_key_into_bytes() -> None:
    src = inspect.getsource(obfuscation)
    for forbidden in ("export_bytearray", "bytes(key", "key.tobytes", "_view(", "_address("):
        assert forbidden not in src
