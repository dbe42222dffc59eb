"""crypto: the only code that calls a crypto library (libsodium: compiled cffi calls, ctypes fallback).

Every secret goes in and comes out as a secure buffer; only public values (public keys,
tags, ciphertexts, signatures) are ``bytes``. ``cryptography`` is a test oracle only.
Nothing outside this package binds a libsodium symbol or takes the address of a secure buffer
(the one accessor is :mod:`cortex_sal.crypto._buffers`, for this package's own use).

The hot paths of the channels: :class:`CipherKey` (ChaCha20-Poly1305 as Noise uses it, with
the stack scrub built in, and REKEY) and :class:`ChainingKey` (Noise's ``ck`` and its HKDF, DH
outputs written into locked memory). :func:`backend_info` says which libsodium is loaded and
which binding each primitive uses (decided in one place, :mod:`cortex_sal.crypto._backend`).
"""

from ..securemem import SecureBuffer, SecureKeyBuffer
from ._backend import CryptoBackend, backend_info
from .aead import aead_decrypt, aead_decrypt_into, aead_encrypt
from .chaining import ChainingKey
from .cipher import CipherKey, rekey
from .ed25519 import Ed25519SigningKey, ed25519_verify
from .hkdf import hkdf_expand_into, hkdf_extract, hkdf_sha256
from .hmac import hmac_sha256, hmac_sha256_into, hmac_sha256_many, hmac_sha256_verify
from .x25519 import X25519PrivateKey, x25519_public_key, x25519_shared_secret, x25519_shared_secret_into


def random_key() -> SecureKeyBuffer:
    """32 random bytes drawn by the kernel straight into locked memory."""
    return SecureKeyBuffer()


def random_buffer(size: int) -> SecureBuffer:
    """``size`` random bytes drawn straight into locked memory."""
    return SecureBuffer.random(size)


__all__ = [
    "ChainingKey",
    "CipherKey",
    "CryptoBackend",
    "Ed25519SigningKey",
    "X25519PrivateKey",
    "aead_decrypt",
    "aead_decrypt_into",
    "aead_encrypt",
    "backend_info",
    "ed25519_verify",
    "hkdf_expand_into",
    "hkdf_extract",
    "hkdf_sha256",
    "hmac_sha256",
    "hmac_sha256_into",
    "hmac_sha256_many",
    "hmac_sha256_verify",
    "random_buffer",
    "random_key",
    "rekey",
    "x25519_public_key",
    "x25519_shared_secret",
    "x25519_shared_secret_into",
]
