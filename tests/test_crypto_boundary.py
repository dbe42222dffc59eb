"""The crypto boundary's public surface: CipherKey, ChainingKey, x25519_shared_secret_into,
backend_info, checks.public_bytes and the securemem helpers the other layers call instead of
taking addresses (ensure_live, zero, purge_probe). Known answers come from ``cryptography``."""

from __future__ import annotations

import os
import pickle

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from cortex_sal.checks import public_bytes
from cortex_sal.crypto import (
    ChainingKey,
    CipherKey,
    backend_info,
    rekey,
    x25519_public_key,
    x25519_shared_secret_into,
)
from cortex_sal.crypto.cipher import MAX_NONCE, TAG_SIZE
from cortex_sal.errors import (
    HandshakeError,
    InvalidArgumentError,
    LowOrderPointError,
    NotCopyableError,
    PurgedBufferError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer


def nonce(n: int) -> bytes:
    return b"\x00" * 4 + n.to_bytes(8, "little")


def test_cipher_key_matches_the_oracle_on_every_path() -> None:
    raw = os.urandom(32)
    oracle = ChaCha20Poly1305(raw)
    key = CipherKey(SecureKeyBuffer(raw))
    for n, size in ((0, 0), (1, 1), (7, 1024), (2**40, 5000)):
        msg, ad = os.urandom(size), os.urandom(n % 40)
        want = oracle.encrypt(nonce(n), msg, ad)
        assert key.encrypt(n, ad, msg) == want
        fast = key.encrypt_fast(n, ad, msg)
        assert fast == want  # key.encrypt above grew the scratch to this size
        assert key.encrypt_with_counter(n, ad, msg) == n.to_bytes(8, "big") + want
        assert key.decrypt(n, ad, want) == msg
        assert key.decrypt_fast(n, ad, want) == msg
        out = SecureBuffer(size + 3)
        assert key.decrypt_into(n, ad, want, out, 3) == size
        assert key.decrypt_into_fast(n, ad, want, out, 3) == size
        if size:
            with out.export_bytearray() as got:
                assert bytes(got[3:]) == msg
        out.secure_purge()
    with SecureBuffer(4) as secret_plaintext:
        secret_plaintext.write(b"abcd")
        assert key.encrypt(9, b"", secret_plaintext) == oracle.encrypt(nonce(9), b"abcd", b"")
    key.purge()
    assert key.is_purged


def test_cipher_key_refuses_a_bad_tag_without_raising() -> None:
    key = CipherKey(SecureKeyBuffer())
    sealed = bytearray(key.encrypt(3, b"ad", b"secret sample"))
    sealed[-1] ^= 1
    assert key.decrypt(3, b"ad", bytes(sealed)) is None
    assert key.decrypt_fast(3, b"ad", bytes(sealed)) is None
    with SecureBuffer(32) as out:
        assert key.decrypt_into(3, b"ad", bytes(sealed), out) == -1
        assert key.decrypt_into_fast(3, b"ad", bytes(sealed), out, 0) == -1
    key.purge()


def test_cipher_key_refusals() -> None:
    key = CipherKey(SecureKeyBuffer())
    with pytest.raises(WrongTypeError):
        CipherKey(bytes(32))  # type: ignore[arg-type]  # the refusal under test
    for bad in (-1, MAX_NONCE, 1.5):
        with pytest.raises((InvalidArgumentError, WrongTypeError)):
            key.encrypt(bad, b"", b"x")  # type: ignore[arg-type]  # the refusal under test
        assert key.encrypt_fast(bad, b"", b"x") is None  # type: ignore[arg-type]  # the refusal under test
    with pytest.raises(WrongTypeError):
        key.encrypt(0, "ad", b"x")  # type: ignore[arg-type]  # the refusal under test
    with pytest.raises(WrongLengthError):
        key.encrypt(0, b"", bytes(65520))
    with pytest.raises(WrongLengthError):
        key.decrypt(0, b"", bytes(TAG_SIZE - 1))
    with pytest.raises(WrongLengthError):
        key.decrypt_into(0, b"", bytes(TAG_SIZE + 8), SecureBuffer(4))
    with pytest.raises(WrongTypeError):
        key.decrypt_into(0, b"", bytes(TAG_SIZE + 8), bytearray(8))  # type: ignore[arg-type]  # under test
    assert key.decrypt_into_fast(0, b"", bytes(TAG_SIZE + 8), SecureBuffer(4), 0) == -1
    with pytest.raises(NotCopyableError):
        pickle.dumps(key)
    key.purge()
    with pytest.raises(PurgedBufferError):
        key.encrypt(0, b"", b"x")
    with pytest.raises(PurgedBufferError):
        key.ensure_live()


def test_rekey_is_the_spec_rekey() -> None:
    raw = os.urandom(32)
    want = ChaCha20Poly1305(raw).encrypt(b"\x00" * 4 + b"\xff" * 8, bytes(32), b"")[:32]
    with SecureKeyBuffer(raw) as k, rekey(k) as new:
        assert new.constant_time_compare(want)
        assert not k.is_purged  # left to the caller
    key = CipherKey(SecureKeyBuffer(raw))
    derived = key.rekeyed()
    assert derived.key_buffer.constant_time_compare(want) and not key.is_purged
    key.purge()
    derived.purge()


def test_x25519_shared_secret_into_writes_at_the_offset() -> None:
    peer = c_x25519.X25519PrivateKey.generate()
    peer_pub = peer.public_key().public_bytes_raw()
    with SecureKeyBuffer() as mine, SecureBuffer(40) as out:
        with mine.export_bytearray() as raw:
            want = c_x25519.X25519PrivateKey.from_private_bytes(bytes(raw)).exchange(
                c_x25519.X25519PublicKey.from_public_bytes(peer_pub)
            )
        x25519_shared_secret_into(mine, peer_pub, out, 8)
        with out.export_bytearray() as got:
            assert bytes(got[8:]) == want and bytes(got[:8]) == bytes(8)
        with pytest.raises(WrongLengthError):
            x25519_shared_secret_into(mine, peer_pub, out, 9)
        with pytest.raises(InvalidArgumentError):
            x25519_shared_secret_into(mine, peer_pub, out, -1)
        with pytest.raises(WrongLengthError):
            x25519_shared_secret_into(mine, peer_pub[:31], out)
        with pytest.raises(LowOrderPointError):
            x25519_shared_secret_into(mine, bytes(32), out)
        with pytest.raises(WrongTypeError):
            x25519_shared_secret_into(mine, peer_pub, bytearray(32))  # type: ignore[arg-type]  # under test


def test_chaining_key_split_purges_and_refuses_afterwards() -> None:
    ck = ChainingKey(bytes(32))
    with SecureKeyBuffer() as e:
        k = CipherKey.allocate()
        ck.mix_key_dh(e, x25519_public_key(SecureKeyBuffer()), k)
        with pytest.raises(LowOrderPointError):
            ck.mix_key_dh(e, bytes(32), k)
        with pytest.raises(WrongLengthError):
            ck.mix_key_dh(e, bytes(31), k)
    k1, k2 = CipherKey.allocate(), CipherKey.allocate()
    ck.split(k1, k2)
    assert ck.is_purged and ck.workspace_buffer is None
    assert not k1.key_buffer.constant_time_compare(k2.key_buffer)
    with pytest.raises(HandshakeError):
        ck.mix_key(b"e", k)
    for key in (k, k1, k2):
        key.purge()
    with pytest.raises(WrongLengthError):
        ChainingKey(bytes(31))


def test_backend_info_names_the_loaded_library() -> None:
    info = backend_info()
    assert info.name == "libsodium" and info.version.startswith("1.0.") and os.path.exists(info.path)


def test_public_bytes_is_the_one_bytes_checker() -> None:
    assert public_bytes(b"ab", "x") == b"ab"
    assert public_bytes(bytearray(b"ab"), "x", 2) == b"ab"
    assert public_bytes(memoryview(b"abcd")[::2], "x") == b"ac"
    with pytest.raises(WrongLengthError, match="x must be exactly 3 bytes"):
        public_bytes(b"ab", "x", 3)
    with pytest.raises(WrongTypeError, match="public data"):
        public_bytes(SecureBuffer(2), "x")
    with pytest.raises(WrongTypeError):
        public_bytes("ab", "x")


def test_securemem_liveness_zero_and_purge_probe() -> None:
    buf = SecureBuffer.from_bytes(b"\x01" * 16)
    buf.ensure_live()
    buf.zero(4, 4)
    with buf.export_bytearray() as got:
        assert bytes(got) == b"\x01" * 4 + bytes(4) + b"\x01" * 8
    for bad in ((17, None), (0, 17), (-1, None), (True, None)):
        with pytest.raises(InvalidArgumentError):
            buf.zero(*bad)  # type: ignore[arg-type]  # the refusals under test
    probe = buf.purge_probe()
    assert not probe.reads_zero()
    buf.secure_purge()
    assert probe.reads_zero()
    with pytest.raises(PurgedBufferError):
        buf.ensure_live()
    with pytest.raises(PurgedBufferError):
        buf.purge_probe()
    with SecureKeyBuffer.allocate() as key:  # classmethods return the subclass (typed with Self)
        assert type(key) is SecureKeyBuffer
