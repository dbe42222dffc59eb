"""Fuzzing the crypto layer's public inputs (issue #6, item 8): peer X25519 keys, Ed25519
public keys / messages / signatures, AEAD nonces / ciphertexts / associated data, HMAC tags.

These are the bytes every parser above ends up handing to the crypto layer. Each property
feeds 10,000 hypothesis plans to a target of ``fuzz/fuzzlib/crypto.py`` whose oracle allows only the
documented refusals (``WrongTypeError``, ``WrongLengthError``, ``LowOrderPointError``,
``InvalidSignatureError``, ``DecryptionError``), compares every acceptance with
``cryptography`` (the same shared secret; only the original signature, ciphertext or tag
passes) and leaves nothing in locked memory after a refusal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fuzzlib
import pytest
from fuzzlib import Mutation, Plan
from hypothesis import event, example, given, settings

from cortex_sal.crypto import Ed25519SigningKey, aead_encrypt, ed25519_verify, hmac_sha256
from cortex_sal.errors import WrongTypeError
from cortex_sal.securemem import SecureKeyBuffer
from hypothesis_profiles import examples

FUZZ = settings(max_examples=examples(10_000), deadline=None)

target = fuzzlib.TargetCache()


@pytest.fixture(scope="module", autouse=True)
def _close_targets() -> Iterator[None]:
    yield
    target.close()


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 5, (Mutation("flip", 0),)))  # a low-order point (alternate)
@example(plan=Plan("mutate", 0, (Mutation("flip", 255),)))  # bit 255: masked, the same point
def test_fuzz_x25519_peer_public_key(plan: Plan) -> None:
    event(target("x25519_peer")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("object", 1 + 3 * 6))  # a strided, writable memoryview as the message
def test_fuzz_ed25519_verify(plan: Plan) -> None:
    event(target("ed25519_verify")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_aead_decrypt(plan: Plan) -> None:
    event(target("aead_decrypt")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_hmac_verify(plan: Plan) -> None:
    event(target("hmac_verify")(plan))


def _strided() -> memoryview:
    return memoryview(bytearray(64))[::2]


def test_strided_writable_memoryview_is_refused_everywhere_a_message_is_read() -> None:
    """Found by fuzzing: a writable memoryview that is not contiguous raised a bare TypeError
    (``memoryview.cast``) wherever the crypto layer reads a message in place."""
    with SecureKeyBuffer(bytes(range(32))) as key, Ed25519SigningKey(SecureKeyBuffer(bytes(32))) as signer:
        pk, sig = signer.public_key(), signer.sign(b"m")
        calls = {
            "ed25519_verify": lambda: ed25519_verify(pk, _strided(), sig),
            "sign": lambda: signer.sign(_strided()),
            "hmac_sha256": lambda: hmac_sha256(key, _strided()),
            "aead_encrypt": lambda: aead_encrypt(key, bytes(12), _strided()),
        }
        for name, call in calls.items():
            with pytest.raises(WrongTypeError, match="contiguous"):
                call()
            assert name
        # read-only strided views are public data: they are copied, as before
        ed25519_verify(pk, memoryview(b"mm")[::2], sig)


def test_a_libsodium_that_is_missing_or_lacks_symbols_is_refused(tmp_path: Path) -> None:
    """What ``CORTEX_SAL_LIBSODIUM`` may point at: a missing file, or a library without the
    declared symbols, is a ``CryptoBackendError`` naming what is wrong."""
    import ctypes.util

    from cortex_sal.crypto._sodium import Sodium
    from cortex_sal.errors import CryptoBackendError

    with pytest.raises(CryptoBackendError, match="cannot load"):
        Sodium(tmp_path / "libsodium.so")
    libc = ctypes.util.find_library("c")
    assert libc is not None
    with pytest.raises(CryptoBackendError, match="lacks required symbol"):
        Sodium(libc)
