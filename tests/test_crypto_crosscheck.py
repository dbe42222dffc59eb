"""Property tests: the crypto layer agrees with ``cryptography`` (the test oracle) on random input."""

from __future__ import annotations

import hashlib
import hmac as std_hmac

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.asymmetric import ed25519 as c_ed25519
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cortex_sal.crypto import (
    Ed25519SigningKey,
    X25519PrivateKey,
    aead_decrypt,
    aead_decrypt_into,
    aead_encrypt,
    ed25519_verify,
    hkdf_expand_into,
    hkdf_extract,
    hkdf_sha256,
    hmac_sha256,
    hmac_sha256_into,
    hmac_sha256_many,
    hmac_sha256_verify,
    x25519_public_key,
    x25519_shared_secret,
)
from cortex_sal.errors import (
    DecryptionError,
    InvalidSignatureError,
    LowOrderPointError,
    PurgedBufferError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer
from hypothesis_profiles import examples

SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])

key32 = st.binary(min_size=32, max_size=32)
nonce12 = st.binary(min_size=12, max_size=12)


def _c_hmac(key: bytes, msg: bytes) -> bytes:
    h = c_hmac.HMAC(key, hashes.SHA256())
    h.update(msg)
    return h.finalize()


# -- X25519 -----------------------------------------------------------------------------


@SETTINGS
@given(priv=key32)
def test_x25519_public_key_matches(priv: bytes) -> None:
    expected = c_x25519.X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes_raw()
    with SecureKeyBuffer(priv) as k:
        assert x25519_public_key(k) == expected
        with X25519PrivateKey.from_buffer(SecureKeyBuffer(priv)) as wrapped:
            assert wrapped.public_bytes() == expected


@SETTINGS
@given(priv=key32, peer_priv=key32)
def test_x25519_shared_secret_matches(priv: bytes, peer_priv: bytes) -> None:
    peer_pub = c_x25519.X25519PrivateKey.from_private_bytes(peer_priv).public_key().public_bytes_raw()
    expected = c_x25519.X25519PrivateKey.from_private_bytes(priv).exchange(
        c_x25519.X25519PublicKey.from_public_bytes(peer_pub)
    )
    with SecureKeyBuffer(priv) as k, x25519_shared_secret(k, peer_pub) as shared:
        assert shared.constant_time_compare(expected)
    # and both sides of the exchange agree through the wrapper class
    with X25519PrivateKey(SecureKeyBuffer(priv)) as a, X25519PrivateKey(SecureKeyBuffer(peer_priv)) as b:
        with a.exchange(b.public_bytes()) as s1, b.exchange(a.public_bytes()) as s2:
            assert s1.constant_time_compare(s2)
            assert s1.constant_time_compare(expected)


@SETTINGS
@given(priv=key32, peer=key32)
def test_x25519_arbitrary_peer_bytes_match(priv: bytes, peer: bytes) -> None:
    """Any 32 bytes as a peer key (hypothesis tries all-zero and other edge values)."""
    try:
        expected: bytes | None = c_x25519.X25519PrivateKey.from_private_bytes(priv).exchange(
            c_x25519.X25519PublicKey.from_public_bytes(peer)
        )
    except ValueError:  # cryptography refuses an all-zero shared secret
        expected = None
    with SecureKeyBuffer(priv) as k:
        if expected is None:
            with pytest.raises(LowOrderPointError):
                x25519_shared_secret(k, peer)
        else:
            with x25519_shared_secret(k, peer) as shared:
                assert shared.constant_time_compare(expected)


# -- HKDF-SHA256 ----------------------------------------------------------------------------


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ikm=st.binary(min_size=1, max_size=100),
    salt=st.one_of(st.none(), st.binary(min_size=0, max_size=100)),
    info=st.binary(min_size=0, max_size=100),
    length=st.one_of(st.integers(1, 255 * 32), st.sampled_from([1, 31, 32, 33, 64, 255 * 32 - 1, 255 * 32])),
)
def test_hkdf_matches(ikm: bytes, salt: bytes | None, info: bytes, length: int) -> None:
    expected = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)
    expected_prk = std_hmac.digest(salt or bytes(32), ikm, hashlib.sha256)
    with SecureBuffer.from_bytes(ikm) as ikm_buf:
        with hkdf_sha256(ikm_buf, salt=salt, info=info, length=length) as okm:
            assert len(okm) == length
            assert isinstance(okm, SecureKeyBuffer) == (length == 32)
            assert okm.constant_time_compare(expected)
        with hkdf_extract(salt, ikm_buf) as prk:
            assert prk.constant_time_compare(expected_prk)
            okm2 = SecureBuffer(length)
            hkdf_expand_into(prk, info, okm2)
            assert okm2.constant_time_compare(
                HKDFExpand(algorithm=hashes.SHA256(), length=length, info=info).derive(expected_prk)
            )
            okm2.secure_purge()


# -- HMAC-SHA256 ----------------------------------------------------------------------------

part_kind = st.sampled_from(["bytes", "bytearray", "memoryview", "readonly-memoryview", "secure"])


def _as_part(data: bytes, kind: str) -> object:
    if kind == "bytearray":
        return bytearray(data)
    if kind == "memoryview":
        return memoryview(bytearray(data))
    if kind == "readonly-memoryview":
        return memoryview(data)
    if kind == "secure" and data:  # a secure buffer cannot be empty
        return SecureBuffer.from_bytes(data)
    return data


@SETTINGS
@given(
    key=st.binary(min_size=1, max_size=200),
    parts=st.lists(st.tuples(st.binary(max_size=300), part_kind), max_size=6),
)
def test_hmac_matches(key: bytes, parts: list[tuple[bytes, str]]) -> None:
    message = b"".join(p for p, _ in parts)
    expected = _c_hmac(key, message)
    wrapped = [_as_part(p, kind) for p, kind in parts]
    key_buf = SecureKeyBuffer(key) if len(key) == 32 else SecureBuffer.from_bytes(key)
    with key_buf:
        assert hmac_sha256(key_buf, *wrapped) == expected
        assert hmac_sha256(key_buf, message) == expected  # parts concatenated == one message
        with SecureKeyBuffer.allocate() as out:
            hmac_sha256_into(key_buf, out, *wrapped)
            assert out.constant_time_compare(expected)
        assert hmac_sha256_verify(key_buf, expected, *wrapped) is True
        bad = bytes([expected[0] ^ 1]) + expected[1:]
        assert hmac_sha256_verify(key_buf, bad, *wrapped) is False
        assert hmac_sha256_verify(key_buf, expected[:31], *wrapped) is False
    # hmac_sha256_into also takes a public key (HKDF-Extract keys HMAC with a salt)
    with SecureKeyBuffer.allocate() as out:
        hmac_sha256_into(key, out, *wrapped)
        assert out.constant_time_compare(expected)
    for w in wrapped:
        if isinstance(w, SecureBuffer):
            w.secure_purge()


@SETTINGS
@given(key=key32, message=st.binary(max_size=500))
def test_hmac_fast_path_matches(key: bytes, message: bytes) -> None:
    """A 32-byte key and a single ``bytes`` message take libsodium's one-shot path."""
    expected = _c_hmac(key, message)
    with SecureKeyBuffer(key) as k:
        assert hmac_sha256(k, message) == expected
        assert hmac_sha256(k, message) == expected  # the per-thread tag buffer is reused safely
    with SecureBuffer.from_bytes(key) as k2:  # a 32-byte SecureBuffer (not a key buffer)
        assert hmac_sha256(k2, message) == expected


@SETTINGS
@given(key=key32, size=st.integers(1, 200), count=st.integers(0, 40), data=st.data())
def test_hmac_many_matches_one_tag_per_message(key: bytes, size: int, count: int, data: st.DataObject) -> None:
    """The batch path: ``count`` messages of ``size`` bytes end to end, one tag each, in order."""
    blob = data.draw(st.binary(min_size=size * count, max_size=size * count))
    with SecureKeyBuffer(key) as k:
        tags = hmac_sha256_many(k, blob, size)
    assert tags == b"".join(_c_hmac(key, blob[i : i + size]) for i in range(0, size * count, size))


def test_hmac_many_refuses_bad_input_before_any_tag() -> None:
    with SecureKeyBuffer(bytes(range(32))) as k:
        with pytest.raises(WrongLengthError, match="not a whole number of 4-byte messages"):
            hmac_sha256_many(k, b"12345", 4)
        with pytest.raises(WrongLengthError, match="0-byte"):
            hmac_sha256_many(k, b"1234", 0)
        with pytest.raises(WrongTypeError, match="size must be an int"):
            hmac_sha256_many(k, b"1234", True)
        with pytest.raises(WrongTypeError, match="HMAC messages"):
            hmac_sha256_many(k, "1234", 4)  # type: ignore[arg-type]
        with pytest.raises(WrongTypeError, match="HMAC messages"):
            hmac_sha256_many(k, SecureBuffer(4), 4)  # type: ignore[arg-type]  # a secret is never a message blob
    with pytest.raises(WrongTypeError, match="never travel as bytes"):
        hmac_sha256_many(bytes(32), b"1234", 4)  # type: ignore[arg-type]
    dead = SecureKeyBuffer()
    dead.secure_purge()
    with pytest.raises(PurgedBufferError):
        hmac_sha256_many(dead, b"1234", 4)
    with SecureBuffer(16) as short:  # a 16-byte secure buffer is not a 32-byte key
        with pytest.raises(WrongLengthError, match="exactly 32 bytes"):
            hmac_sha256_many(short, b"1234", 4)  # type: ignore[arg-type]


def test_hmac_tags_are_independent_objects() -> None:
    """Tags returned from the fast path must not alias a shared scratch buffer."""
    with SecureKeyBuffer(bytes(range(32))) as k:
        t1 = hmac_sha256(k, b"one")
        t2 = hmac_sha256(k, b"two")
    assert t1 == _c_hmac(bytes(range(32)), b"one")
    assert t2 == _c_hmac(bytes(range(32)), b"two")
    assert t1 != t2


# -- ChaCha20-Poly1305 ----------------------------------------------------------------------


@SETTINGS
@given(
    key=key32,
    nonce=nonce12,
    plaintext=st.binary(max_size=600),
    aad=st.binary(max_size=100),
    offset=st.integers(0, 40),
    tail=st.integers(0, 40),
)
def test_aead_matches(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes, offset: int, tail: int) -> None:
    expected = ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)
    with SecureKeyBuffer(key) as k:
        sealed = aead_encrypt(k, nonce, plaintext, aad)
        assert sealed == expected
        assert aead_encrypt(k, bytearray(nonce), bytearray(plaintext), bytearray(aad)) == expected
        if plaintext:
            with SecureBuffer.from_bytes(plaintext) as secret_pt:
                assert aead_encrypt(k, nonce, secret_pt, aad) == expected
            with aead_decrypt(k, nonce, sealed, aad) as pt:
                assert len(pt) == len(plaintext)
                assert pt.constant_time_compare(plaintext)
        # decrypt into the middle of a larger buffer: the bytes around it are untouched
        before = bytes((0xA5 + i) & 0xFF for i in range(offset))
        after = bytes((0x3C + i) & 0xFF for i in range(tail + 1))
        with SecureBuffer.from_bytes(before + bytes(len(plaintext)) + after) as out:
            n = aead_decrypt_into(k, nonce, sealed, aad, out, offset=offset)
            assert n == len(plaintext)
            with out.export_bytearray() as ba:
                assert ba == before + plaintext + after
    # and cryptography opens what we seal
    assert ChaCha20Poly1305(key).decrypt(nonce, sealed, aad) == plaintext


@SETTINGS
@given(key=key32, other=key32, nonce=nonce12, plaintext=st.binary(min_size=1, max_size=200))
def test_aead_wrong_key_fails(key: bytes, other: bytes, nonce: bytes, plaintext: bytes) -> None:
    sealed = ChaCha20Poly1305(key).encrypt(nonce, plaintext, b"")
    with SecureKeyBuffer(other) as k:
        if other == key:
            with aead_decrypt(k, nonce, sealed) as pt:
                assert pt.constant_time_compare(plaintext)
        else:
            with pytest.raises(DecryptionError):
                aead_decrypt(k, nonce, sealed)


# -- Ed25519 ----------------------------------------------------------------------------------


@SETTINGS
@given(seed=key32, message=st.binary(max_size=600), kind=part_kind)
def test_ed25519_matches(seed: bytes, message: bytes, kind: str) -> None:
    c_key = c_ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    c_pub = c_key.public_key().public_bytes_raw()
    expected_sig = c_key.sign(message)  # Ed25519 is deterministic
    msg = _as_part(message, kind)
    with SecureKeyBuffer(seed) as s, Ed25519SigningKey(s) as sk:
        assert sk.public_key() == c_pub
        sig = sk.sign(msg)
        assert sig == expected_sig
    ed25519_verify(c_pub, msg, sig)
    c_key.public_key().verify(sig, message)
    if message:
        with pytest.raises(InvalidSignatureError):
            ed25519_verify(c_pub, message[:-1], sig)
    if isinstance(msg, SecureBuffer):
        msg.secure_purge()


@SETTINGS
@given(seed=key32, message=st.binary(max_size=200), flip=st.integers(0, 64 * 8 - 1))
def test_ed25519_tampered_signature_agrees_with_oracle(seed: bytes, message: bytes, flip: int) -> None:
    c_key = c_ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    sig = bytearray(c_key.sign(message))
    sig[flip // 8] ^= 1 << (flip % 8)
    pub = c_key.public_key()
    with pytest.raises(InvalidSignature):  # the oracle refuses it ...
        pub.verify(bytes(sig), message)
    with pytest.raises(InvalidSignatureError):  # ... and so do we
        ed25519_verify(pub.public_bytes_raw(), message, bytes(sig))
