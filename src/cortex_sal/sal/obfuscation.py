"""Phase B: keyed noise multiplied into the five features (docs/sal.md, SYSTEM.md step 6).

For features ``f`` (five float64), a sensor hash ``h`` and the Phase B key ``K``::

    m  = f as 5 x float64 big-endian (40 bytes) || h
    d1 = HMAC-SHA256(K, m || b"_primary")
    d2 = HMAC-SHA256(K, m || b"_secondary")
    u  = the first five u64 big-endian values of d1 || d2   (four from d1, one from d2)
    factors = u / 2**64                                     (in [0, 1), see below)
    result  = f * factors

The key is a :class:`~cortex_sal.securemem.SecureKeyBuffer` and never becomes bytes: every
HMAC goes through :func:`cortex_sal.crypto.hmac_sha256`, which reads the key in place.

Choices the design leaves open (what a demanding caller expects):

* ``sensor_hash`` must be exactly 32 bytes (a SHA-256 digest, as the shield passes). A fixed
  length keeps the HMAC input injective: with variable-length hashes ``h1 || b"_primary"``
  could equal ``h2 || b"_secondary"`` and two sensors would share a digest.
* ``u / 2**64`` is the correctly rounded float64 quotient (``float(u) * 2**-64``), which is
  what an independent ``struct`` + ``/ 2**64`` computation gives. A ``u`` within 2**10 of
  2**64 rounds to exactly 1.0 (probability about 2**-54 per factor); such a factor is
  clamped to the largest double below 1 (``1 - 2**-53``) so every factor is in ``[0, 1)``
  as the design intends. Every other value is the plain quotient.
* Features must be real (integer or floating dtype; bool, complex, object and strings are a
  ``WrongTypeError``), of shape ``(5,)`` (``(n, 5)`` for the batch) and finite; they are
  converted to float64 first. ``-0.0`` and ``0.0`` encode differently and give different
  digests (the encoding is the IEEE bytes, as specified).
* A wrong key type is a ``WrongTypeError``; a purged key a ``PurgedBufferError``, checked
  before any work.

Multi-channel (docs/sal.md "Multi-channel"): ``obfuscate_channels`` keys the rows of one frame's
``(C, 5)`` features per channel. Channel 0 is exactly ``obfuscate`` (the single-channel bytes);
channel ``c >= 1`` appends ``b"_ch" || c as u16 big-endian`` to *both* messages::

    d1_c = HMAC-SHA256(K, m_c || b"_primary"   || b"_ch" || u16be(c))
    d2_c = HMAC-SHA256(K, m_c || b"_secondary" || b"_ch" || u16be(c))

The four message families (primary or secondary, channel 0 or not) have four distinct lengths
(80, 82, 85, 87 bytes with a 32-byte hash), and within one family the suffix differs, so no
two channels (and no channel and the single-channel path) ever share an HMAC input.

``obfuscate_batch`` computes row ``i`` exactly (bit for bit) as ``obfuscate`` would. The
only per-row Python work is the unavoidable pair of HMAC calls on two prebuilt ``bytes``
messages; encoding, message assembly, u64 decoding, scaling and the product are vectorised.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..crypto import hmac_sha256, hmac_sha256_many
from ..errors import InvalidArgumentError, PurgedBufferError, WrongLengthError, WrongTypeError
from ..securemem import SecureKeyBuffer

N_FEATURES = 5
SENSOR_HASH_SIZE = 32
PRIMARY = b"_primary"
SECONDARY = b"_secondary"
CHANNEL_TAG = b"_ch"
_PACK_U16 = struct.Struct(">H").pack

_SCALE = 2.0**-64  # exact: multiplying by it equals dividing by 2**64
_BELOW_ONE = float(np.nextafter(1.0, 0.0))  # 1 - 2**-53
_PACK5 = struct.Struct(">5d").pack
_UNPACK5F = struct.Struct(">5d").unpack
_UNPACK5 = struct.Struct(">5Q").unpack
_F64 = np.dtype(np.float64)
_SHAPE = (N_FEATURES,)
_REAL_KINDS = frozenset("iuf")
_FEATURE_BYTES = 8 * N_FEATURES
_LEN_PRIMARY = _FEATURE_BYTES + SENSOR_HASH_SIZE + len(PRIMARY)
_LEN_SECONDARY = _FEATURE_BYTES + SENSOR_HASH_SIZE + len(SECONDARY)


# -- input checks shared with liveness.py ---------------------------------------------


def as_features(features: object, what: str = "features") -> np.ndarray[Any, np.dtype[np.float64]]:
    """``features`` as a finite float64 array of shape (5,), or a specific error."""
    arr = np.asarray(features)
    if arr.dtype.kind not in _REAL_KINDS:
        raise WrongTypeError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if arr.shape != (N_FEATURES,):
        raise InvalidArgumentError(f"{what} must have shape ({N_FEATURES},), got {arr.shape}")
    out: np.ndarray[Any, np.dtype[np.float64]] = arr.astype(np.float64, copy=False)
    return out


def features_be(features: object, what: str = "features") -> bytes:
    """The five features as 5 x float64 big-endian (40 bytes); refuses non-finite values."""
    if type(features) is np.ndarray and features.dtype == _F64 and features.shape == _SHAPE:
        values = features.tolist()  # the common case (a row of Phase A), checked in full below
    else:
        values = as_features(features, what).tolist()
    if not all(map(math.isfinite, values)):
        raise InvalidArgumentError(f"{what} must be finite (NaN or infinity found)")
    return _PACK5(*values)


def as_feature_rows(features: object, what: str = "features") -> np.ndarray[Any, np.dtype[np.float64]]:
    """``n`` feature vectors as float64 of shape (n, 5), all finite; else a specific error."""
    arr = np.asarray(features)
    if arr.dtype.kind not in _REAL_KINDS:
        raise WrongTypeError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != N_FEATURES:
        raise InvalidArgumentError(f"{what} must have shape (n, {N_FEATURES}), got {arr.shape}")
    f64: np.ndarray[Any, np.dtype[np.float64]] = arr.astype(np.float64, copy=False)
    if not np.isfinite(f64).all():
        raise InvalidArgumentError(f"{what} must be finite (NaN or infinity found)")
    return f64


def _check_key(key: object) -> SecureKeyBuffer:
    if not isinstance(key, SecureKeyBuffer):
        raise WrongTypeError(f"the Phase B key must be a SecureKeyBuffer, got {type(key).__name__}")
    if key.is_purged:
        raise PurgedBufferError("the Phase B key was purged; it cannot be used again")
    return key


def _check_hash(sensor_hash: object, what: str = "sensor_hash") -> bytes:
    if type(sensor_hash) is bytes and len(sensor_hash) == SENSOR_HASH_SIZE:
        return sensor_hash
    if not isinstance(sensor_hash, bytes | bytearray | memoryview):
        raise WrongTypeError(f"{what} must be bytes, got {type(sensor_hash).__name__}")
    h = bytes(sensor_hash)  # public: a hash of the sensor id
    if len(h) != SENSOR_HASH_SIZE:
        raise WrongLengthError(f"{what} must be {SENSOR_HASH_SIZE} bytes (a SHA-256 digest), got {len(h)}")
    return h


def _factors(u: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """u64 values -> float64 factors in [0, 1): correctly rounded u / 2**64, clamped below 1."""
    factors: np.ndarray[Any, np.dtype[np.float64]] = u.astype(np.float64) * _SCALE
    np.minimum(factors, _BELOW_ONE, out=factors)
    return factors


# -- the API --------------------------------------------------------------------------


def obfuscate(features: npt.ArrayLike, sensor_hash: bytes, key: SecureKeyBuffer) -> np.ndarray[Any, Any]:
    """Phase B for one feature vector: ``features * factors`` (shape (5,), float64).

    ``sensor_hash`` is the 32-byte SHA-256 of the sensor id; ``key`` the Phase B key
    (a live ``SecureKeyBuffer``). Deterministic for a given key, hash and features.
    """
    key = _check_key(key)
    h = _check_hash(sensor_hash)
    return _obfuscate_fb(features_be(features), h, key, b"")


def _obfuscate_fb(fb: bytes, h: bytes, key: SecureKeyBuffer, suffix: bytes) -> np.ndarray[Any, Any]:
    """Phase B of one row whose features are already encoded (``fb``); ``suffix`` is the channel's."""
    message = fb + h
    d1 = hmac_sha256(key, message + PRIMARY + suffix)
    d2 = hmac_sha256(key, message + SECONDARY + suffix)
    # plain Python floats: float(int) is the correctly rounded conversion numpy's cast also
    # makes, and scaling by 2**-64 is exact, so this equals the batch's vectorised path bit
    # for bit (the tests check both against an independent oracle)
    u = _UNPACK5(d1 + d2[:8])
    return np.array([x * min(v * _SCALE, _BELOW_ONE) for x, v in zip(_UNPACK5F(fb), u, strict=True)])


def channel_suffix(channel: int) -> bytes:
    """The HMAC suffix of channel ``channel`` (public): empty for 0, ``b"_ch" || u16be(c)`` otherwise."""
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise WrongTypeError(f"channel must be an int, got {type(channel).__name__}")
    if not 0 <= channel <= 0xFFFF:
        raise InvalidArgumentError(f"channel must be within 0..65535, got {channel}")
    return b"" if channel == 0 else CHANNEL_TAG + _PACK_U16(channel)


def obfuscate_channels(
    features: npt.ArrayLike,
    sensor_hash: bytes,
    key: SecureKeyBuffer,
    channels: Sequence[int] | None = None,
) -> np.ndarray[Any, Any]:
    """Phase B of one frame's channels: row ``i`` of ``features`` (R, 5) keyed as channel
    ``channels[i]`` (default ``range(R)``); float64 (R, 5). A row keyed as channel 0 is exactly
    ``obfuscate`` of it. Every row is checked before any HMAC."""
    key = _check_key(key)
    h = _check_hash(sensor_hash)
    arr = np.asarray(features)
    if arr.dtype.kind not in _REAL_KINDS:
        raise WrongTypeError(f"features must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != N_FEATURES:
        raise InvalidArgumentError(f"features must have shape (channels, {N_FEATURES}), got {arr.shape}")
    index = list(range(arr.shape[0])) if channels is None else list(channels)
    if len(index) != arr.shape[0] or len(set(index)) != len(index):
        raise InvalidArgumentError(f"{arr.shape[0]} feature rows need as many distinct channel numbers")
    suffixes = [channel_suffix(c) for c in index]
    encoded = [features_be(row) for row in arr.astype(np.float64, copy=False)]
    out = np.empty((len(index), N_FEATURES), dtype=np.float64)
    for i, (fb, suffix) in enumerate(zip(encoded, suffixes, strict=True)):
        out[i] = _obfuscate_fb(fb, h, key, suffix)
    return out


def obfuscate_batch(
    features: npt.ArrayLike,
    sensor_hashes: Sequence[bytes] | np.ndarray[Any, Any],
    key: SecureKeyBuffer,
) -> np.ndarray[Any, Any]:
    """Phase B for ``n`` rows at once: row ``i`` equals ``obfuscate(features[i], sensor_hashes[i], key)``.

    ``features`` has shape ``(n, 5)``; ``sensor_hashes`` is a sequence of ``n`` 32-byte
    hashes (or a uint8 array of shape ``(n, 32)``). Returns float64 of shape ``(n, 5)``.
    The whole batch is checked before any HMAC is computed; one bad row refuses the batch.
    """
    key = _check_key(key)
    f64 = as_feature_rows(features)
    n = f64.shape[0]
    hashes = _hash_matrix(sensor_hashes, n)
    if n == 0:
        return np.empty((0, N_FEATURES), dtype=np.float64)

    # both messages of every row, assembled in two arrays and turned into bytes once
    head = np.empty((n, _FEATURE_BYTES + SENSOR_HASH_SIZE), dtype=np.uint8)
    head[:, :_FEATURE_BYTES] = np.ascontiguousarray(f64, dtype=">f8").view(np.uint8).reshape(n, _FEATURE_BYTES)
    head[:, _FEATURE_BYTES:] = hashes
    m1 = np.empty((n, _LEN_PRIMARY), dtype=np.uint8)
    m1[:, : head.shape[1]] = head
    m1[:, head.shape[1] :] = np.frombuffer(PRIMARY, dtype=np.uint8)
    m2 = np.empty((n, _LEN_SECONDARY), dtype=np.uint8)
    m2[:, : head.shape[1]] = head
    m2[:, head.shape[1] :] = np.frombuffer(SECONDARY, dtype=np.uint8)
    blob1 = m1.tobytes()
    blob2 = m2.tobytes()

    # the unavoidable part: two HMACs per row, each one foreign call, the batch's in one loop each
    d1 = hmac_sha256_many(key, blob1, _LEN_PRIMARY)
    d2 = hmac_sha256_many(key, blob2, _LEN_SECONDARY)

    u = np.empty((n, N_FEATURES), dtype=np.uint64)
    u[:, :4] = np.frombuffer(d1, dtype=">u8").reshape(n, 4)
    u[:, 4] = np.frombuffer(d2, dtype=">u8").reshape(n, 4)[:, 0]
    result: np.ndarray[Any, Any] = f64 * _factors(u)
    return result


def _hash_matrix(sensor_hashes: object, n: int) -> np.ndarray[Any, Any]:
    """The ``n`` sensor hashes as a uint8 array of shape (n, 32), or a specific error."""
    if isinstance(sensor_hashes, np.ndarray):
        if sensor_hashes.dtype != np.uint8:
            raise WrongTypeError(f"sensor_hashes as an array must be uint8, got dtype {sensor_hashes.dtype}")
        if sensor_hashes.shape != (n, SENSOR_HASH_SIZE):
            raise InvalidArgumentError(
                f"sensor_hashes must have shape ({n}, {SENSOR_HASH_SIZE}), got {sensor_hashes.shape}"
            )
        return sensor_hashes
    if isinstance(sensor_hashes, bytes | bytearray | memoryview | str):
        raise WrongTypeError("sensor_hashes must be a sequence of 32-byte hashes, not a single bytes or str")
    try:
        items = list(sensor_hashes)  # type: ignore[call-overload]  # any object: a non-iterable is refused below
    except TypeError:
        raise WrongTypeError(f"sensor_hashes must be a sequence, got {type(sensor_hashes).__name__}") from None
    if len(items) != n:
        raise InvalidArgumentError(f"{n} feature rows need {n} sensor hashes, got {len(items)}")
    if not all(type(h) is bytes and len(h) == SENSOR_HASH_SIZE for h in items):
        items = [_check_hash(h, f"sensor_hashes[{i}]") for i, h in enumerate(items)]
    return np.frombuffer(b"".join(items), dtype=np.uint8).reshape(n, SENSOR_HASH_SIZE)


__all__ = [
    "CHANNEL_TAG",
    "N_FEATURES",
    "PRIMARY",
    "SECONDARY",
    "SENSOR_HASH_SIZE",
    "channel_suffix",
    "obfuscate",
    "obfuscate_batch",
    "obfuscate_channels",
]
