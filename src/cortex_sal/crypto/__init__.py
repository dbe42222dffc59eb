"""crypto: the only code that calls a crypto library (libsodium, through ctypes).

Every secret goes in and comes out as a secure buffer; only public values (public keys,
tags, ciphertexts, signatures) are ``bytes``. ``cryptography`` is a test oracle only.
"""

from ..securemem import SecureBuffer, SecureKeyBuffer
from .aead import aead_decrypt, aead_decrypt_into, aead_encrypt
from .ed25519 import Ed25519SigningKey, ed25519_verify
from .hkdf import hkdf_expand_into, hkdf_extract, hkdf_sha256
from .hmac import hmac_sha256, hmac_sha256_into, hmac_sha256_verify
from .x25519 import X25519PrivateKey, x25519_public_key, x25519_shared_secret


def random_key() -> SecureKeyBuffer:
    """32 random bytes drawn by the kernel straight into locked memory."""
    return SecureKeyBuffer()


def random_buffer(size: int) -> SecureBuffer:
    """``size`` random bytes drawn straight into locked memory."""
    buf: SecureBuffer = SecureBuffer.random(size)
    return buf


__all__ = [
    "Ed25519SigningKey",
    "X25519PrivateKey",
    "aead_decrypt",
    "aead_decrypt_into",
    "aead_encrypt",
    "ed25519_verify",
    "hkdf_expand_into",
    "hkdf_extract",
    "hkdf_sha256",
    "hmac_sha256",
    "hmac_sha256_into",
    "hmac_sha256_verify",
    "random_buffer",
    "random_key",
    "x25519_public_key",
    "x25519_shared_secret",
]
