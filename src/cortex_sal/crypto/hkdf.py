"""HKDF-SHA256 (RFC 5869) on secure buffers, named as the RFC names things.

Extract: ``PRK = HMAC-Hash(salt, IKM)``. Expand: ``T(i) = HMAC-Hash(PRK, T(i-1) | info | i)``,
``OKM`` = the first ``L`` bytes of ``T(1) | T(2) | ...``. ``IKM``, ``PRK``, every ``T(i)``
and ``OKM`` stay in locked memory, and the HMAC state runs in the arena as well.
"""

from __future__ import annotations

from ..checks import int_in_range, public_bytes
from ..errors import WrongLengthError
from ..securemem import SecureBuffer, SecureKeyBuffer
from ._buffers import address, secret
from .hmac import MAC_SIZE, hmac_raw, hmac_sha256_into

HASH_LEN = MAC_SIZE
MAX_OKM = 255 * HASH_LEN


def hkdf_extract(salt: bytes | SecureBuffer | None, ikm: SecureBuffer) -> SecureKeyBuffer:
    """PRK = HMAC-SHA256(salt, IKM); an absent or empty salt is HashLen zeros (RFC 5869 2.2)."""
    ikm = secret(ikm, "HKDF input keying material")
    if salt is None or (not isinstance(salt, SecureBuffer) and len(public_bytes(salt, "HKDF salt")) == 0):
        salt = bytes(HASH_LEN)
    elif not isinstance(salt, SecureBuffer):
        salt = public_bytes(salt, "HKDF salt")
    prk = SecureKeyBuffer.allocate()
    try:
        hmac_sha256_into(salt, prk, ikm)
    except BaseException:
        prk.secure_purge()
        raise
    return prk


def hkdf_expand_into(prk: SecureBuffer, info: bytes, okm: SecureBuffer) -> None:
    """Fill ``okm`` (L = its length, at most 255*HashLen) with HKDF-Expand(PRK, info, L).

    Each full block T(i) is written straight into ``okm``; T(i-1) is read from there.
    Only a partial last block passes through a temporary locked buffer.
    """
    prk = secret(prk, "HKDF PRK")
    okm = secret(okm, "HKDF output")
    info_b = public_bytes(info, "HKDF info")
    length = int_in_range(len(okm), "HKDF output length", 1, MAX_OKM)
    if len(prk) < HASH_LEN:
        raise WrongLengthError(f"HKDF PRK must be at least {HASH_LEN} bytes, got {len(prk)}")
    key, key_length, base = address(prk), len(prk), address(okm)
    full, rest = divmod(length, HASH_LEN)
    previous: list[tuple[object, int]] = []
    for i in range(full):
        out = base + i * HASH_LEN
        hmac_raw(key, key_length, [*previous, (info_b + bytes((i + 1,)), len(info_b) + 1)], out)
        previous = [(out, HASH_LEN)]
    if rest:
        with SecureKeyBuffer.allocate() as last:
            hmac_raw(key, key_length, [*previous, (info_b + bytes((full + 1,)), len(info_b) + 1)], address(last))
            okm.write(last, offset=full * HASH_LEN, length=rest)


def hkdf_sha256(ikm: SecureBuffer, *, salt: bytes | None, info: bytes, length: int = 32) -> SecureBuffer:
    """HKDF-SHA256 in one call: a :class:`SecureKeyBuffer` when ``length`` is 32."""
    int_in_range(length, "HKDF output length", 1, MAX_OKM)
    okm: SecureBuffer = SecureKeyBuffer.allocate() if length == HASH_LEN else SecureBuffer(length)
    try:
        with hkdf_extract(salt, ikm) as prk:
            hkdf_expand_into(prk, info, okm)
    except BaseException:
        okm.secure_purge()
        raise
    return okm
