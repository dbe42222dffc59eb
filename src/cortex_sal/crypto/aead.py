"""ChaCha20-Poly1305 IETF (RFC 8439) keyed by a secure buffer.

The key is read in place by libsodium; a decrypted plaintext that is secret goes
straight into a secure buffer (:func:`aead_decrypt_into`). A bad tag raises
:class:`~cortex_sal.errors.DecryptionError` and writes nothing.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

from ..errors import DecryptionError, WrongLengthError
from ..securemem import SecureBuffer, SecureKeyBuffer
from ._buffers import Input, Readable, public_bytes, secret
from ._sodium import sodium

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
MAX_MESSAGE = 2**38 - 64  # RFC 8439 limit per (key, nonce)

_encrypt = sodium.crypto_aead_chacha20poly1305_ietf_encrypt
_decrypt = sodium.crypto_aead_chacha20poly1305_ietf_decrypt
_encrypt_bytes = sodium.bind(
    "crypto_aead_chacha20poly1305_ietf_encrypt",
    [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p,
     ctypes.c_ulonglong, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p],
    ctypes.c_int,
)  # fmt: skip


_scratch = threading.local()
_SCRATCH_MIN = 8192 + TAG_SIZE


def _output(size: int) -> Any:
    """This thread's ciphertext buffer, at least ``size`` bytes. Only public data passes here."""
    try:
        out = _scratch.out
        if len(out) >= size:
            return out
    except AttributeError:
        pass
    out = _scratch.out = ctypes.create_string_buffer(max(size, _SCRATCH_MIN))
    return out


def aead_encrypt(key: SecureKeyBuffer, nonce: bytes, plaintext: Readable, aad: bytes = b"") -> bytes:
    """``ciphertext || tag`` (public). ``plaintext`` may be a secure buffer, read in place."""
    if (
        type(key) is not SecureKeyBuffer
        or type(nonce) is not bytes
        or type(plaintext) is not bytes
        or type(aad) is not bytes
        or len(nonce) != NONCE_SIZE
    ):
        return _encrypt_checked(key, nonce, plaintext, aad)
    size = len(plaintext) + TAG_SIZE
    out = _output(size)
    _encrypt_bytes(out, None, plaintext, len(plaintext), aad, len(aad), None, nonce, key._pointer())
    return out[:size]  # type: ignore[no-any-return]


def _encrypt_checked(key: object, nonce: object, plaintext: object, aad: object) -> bytes:
    key = secret(key, "AEAD key", KEY_SIZE)
    nonce_b = public_bytes(nonce, "AEAD nonce", NONCE_SIZE)
    aad_b = public_bytes(aad, "AEAD associated data")
    pt = Input(plaintext, "AEAD plaintext")
    if pt.length > MAX_MESSAGE:
        raise WrongLengthError(f"AEAD plaintext of {pt.length} bytes exceeds the RFC 8439 limit")
    size = pt.length + TAG_SIZE
    out = _output(size)
    _encrypt(out, None, pt.pointer, pt.length, aad_b, len(aad_b), None, nonce_b, key._address())
    return out[:size]  # type: ignore[no-any-return]


def aead_decrypt_into(
    key: SecureKeyBuffer, nonce: bytes, ciphertext: bytes, aad: bytes, out: SecureBuffer, offset: int = 0
) -> int:
    """Verify and decrypt ``ciphertext || tag`` into ``out`` at ``offset``; return the length.

    No plaintext is written when the tag does not verify.
    """
    key = secret(key, "AEAD key", KEY_SIZE)
    out = secret(out, "AEAD output buffer")
    nonce_b = public_bytes(nonce, "AEAD nonce", NONCE_SIZE)
    aad_b = public_bytes(aad, "AEAD associated data")
    ct = public_bytes(ciphertext, "AEAD ciphertext")
    if len(ct) < TAG_SIZE:
        raise WrongLengthError(f"AEAD ciphertext must hold at least the {TAG_SIZE}-byte tag, got {len(ct)} bytes")
    n = len(ct) - TAG_SIZE
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or offset + n > len(out):
        raise WrongLengthError(f"a {n}-byte plaintext at offset {offset!r} does not fit a {len(out)}-byte buffer")
    mlen = ctypes.c_ulonglong(0)
    rc = _decrypt(out._address() + offset, ctypes.byref(mlen), None, ct, len(ct), aad_b, len(aad_b), nonce_b,
                  key._address())  # fmt: skip
    if rc != 0:
        raise DecryptionError("AEAD tag did not verify (wrong key, nonce or associated data, or tampered ciphertext)")
    return int(mlen.value)


_decrypt_bytes = sodium.bind(
    "crypto_aead_chacha20poly1305_ietf_decrypt",
    [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p,
     ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_void_p],
    ctypes.c_int,
)  # fmt: skip


def decrypt_unchecked(key_address: int, nonce: bytes, ciphertext: bytes, aad: bytes, out_address: int) -> bool:
    """The bare libsodium decrypt, for this package's hot paths whose arguments are already
    checked (live buffers' addresses, ``bytes`` of exact sizes). True if the tag verified."""
    return _decrypt_bytes(out_address, None, None, ciphertext, len(ciphertext), aad, len(aad), nonce, key_address) == 0  # type: ignore[no-any-return]


def aead_decrypt(key: SecureKeyBuffer, nonce: bytes, ciphertext: bytes, aad: bytes = b"") -> SecureBuffer:
    """Verify and decrypt into a new secure buffer of exactly the plaintext's length.

    A secure buffer cannot be empty, so an empty plaintext is refused here; authenticate
    those with :func:`aead_decrypt_into`.
    """
    ct = public_bytes(ciphertext, "AEAD ciphertext")
    if len(ct) <= TAG_SIZE:
        raise WrongLengthError(
            f"aead_decrypt needs a non-empty plaintext (ciphertext longer than {TAG_SIZE} bytes), got {len(ct)}"
        )
    out = SecureBuffer(len(ct) - TAG_SIZE)
    try:
        aead_decrypt_into(key, nonce, ct, aad, out)
    except BaseException:
        out.secure_purge()
        raise
    return out
