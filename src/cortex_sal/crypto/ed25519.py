"""Ed25519 (RFC 8032) with the signing key in locked memory.

libsodium's secret key is ``seed || public key`` (64 bytes); both halves stay in one
secure buffer. Verification failures raise :class:`~cortex_sal.errors.InvalidSignatureError`.
"""

from __future__ import annotations

import ctypes
from typing import Any

from ..checks import public_bytes
from ..errors import CryptoError, InvalidSignatureError
from ..securemem import SecureBuffer, SecureKeyBuffer
from . import _backend
from ._buffers import Input, Readable, address, secret
from .aead import SCRUB

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SECRET_KEY_SIZE = 64
SIGNATURE_SIZE = 64

_SEED_KEYPAIR = _backend.function("ed25519_seed_keypair")  # the binding is _backend's decision
_SIGN = _backend.function("ed25519_sign")
_VERIFY = _backend.function("ed25519_verify")
# Verification reads only public data, so the fastest correct binding is the one to use. Measured
# on this project's reference machine (AMD EPYC, 200-byte message): libsodium's
# crypto_sign_ed25519_verify_detached through cffi's ABI mode ~40 us, the compiled
# crypto_sign_open of nacl._sodium (signature || message copied in, an output buffer) the same
# within noise, cryptography's Ed25519PublicKey.verify (OpenSSL) ~66 us. So: libsodium's detached
# verify, as the bare function _backend chose (None when ctypes was chosen).
_VERIFY_RAW = _backend.raw("ed25519_verify")


class Ed25519SigningKey:
    """An Ed25519 signing key in locked memory; ``purge()`` or ``with`` zeroes it."""

    __slots__ = ("_public", "_secret")

    def __init__(self, seed: SecureKeyBuffer) -> None:
        """Derive the key pair from a 32-byte seed held in locked memory (the seed is not consumed)."""
        seed_buf = secret(seed, "Ed25519 seed", SEED_SIZE)
        sk = SecureBuffer(SECRET_KEY_SIZE)
        public = ctypes.create_string_buffer(PUBLIC_KEY_SIZE)
        failed = _SEED_KEYPAIR(public, address(sk), address(seed_buf))
        SCRUB()  # after every libsodium call that read a secret: registers and dead stack
        if failed:
            sk.secure_purge()
            raise CryptoError("Ed25519 key derivation failed")
        self._secret = sk
        self._public = public.raw

    @classmethod
    def generate(cls) -> Ed25519SigningKey:
        with SecureKeyBuffer() as seed:
            return cls(seed)

    def public_key(self) -> bytes:
        self._secret.ensure_live()  # refuses after purge
        return self._public

    def sign(self, message: Readable) -> bytes:
        """A 64-byte detached signature over ``message``."""
        msg = Input(message, "message to sign")
        sig = ctypes.create_string_buffer(SIGNATURE_SIZE)
        failed = _SIGN(sig, None, msg.pointer, msg.length, address(self._secret))
        SCRUB()
        if failed:
            raise CryptoError("Ed25519 signing failed")
        return sig.raw

    def purge(self) -> None:
        self._secret.secure_purge()

    @property
    def is_purged(self) -> bool:
        return self._secret.is_purged

    def __enter__(self) -> Ed25519SigningKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.purge()

    def __repr__(self) -> str:
        return f"<Ed25519SigningKey {'purged' if self.is_purged else 'live'}>"

    def __reduce_ex__(self, protocol: object) -> Any:
        return self._secret.__reduce_ex__(protocol)


def ed25519_verify(public_key: bytes, message: Readable, signature: bytes) -> None:
    """Return if ``signature`` is valid for ``message`` under ``public_key``; raise otherwise."""
    if (
        _VERIFY_RAW is not None and type(message) is bytes and type(signature) is bytes
        and type(public_key) is bytes and len(signature) == SIGNATURE_SIZE and len(public_key) == PUBLIC_KEY_SIZE
    ):  # fmt: skip
        # the common case (certificate checks): public bytes of the right lengths, one foreign call
        if _VERIFY_RAW(signature, message, len(message), public_key) != 0:
            raise InvalidSignatureError("Ed25519 signature does not verify for this public key and message")
        return
    pk = public_bytes(public_key, "Ed25519 public key", PUBLIC_KEY_SIZE)
    sig = public_bytes(signature, "Ed25519 signature", SIGNATURE_SIZE)
    msg = Input(message, "signed message")
    if _VERIFY(sig, msg.pointer, msg.length, pk) != 0:
        raise InvalidSignatureError("Ed25519 signature does not verify for this public key and message")
