"""ChaCha20-Poly1305 IETF (RFC 8439) keyed by a secure buffer.

The key is read in place by libsodium; a decrypted plaintext that is secret goes
straight into a secure buffer (:func:`aead_decrypt_into`). A bad tag raises
:class:`~cortex_sal.errors.DecryptionError` and writes nothing.

Stack scrub. After a ChaCha20-Poly1305 call has returned, the vector registers still hold
16-byte pieces of the last plaintext and keystream blocks (lazy binding or a signal then saves
them to the stack: the residue rows ``aead`` and ``noise_transport`` caught them), and
libsodium's vectorised ChaCha20 leaves the key's words in its spill slots in the dead stack
below the caller - an encryption as much as a decryption (the ``aead`` row encrypts last, the
``noise_transport`` row scans after an encryption, a decryption of a public plaintext and a
REKEY). Every call keyed by a secret is therefore followed, from the same Python function (so
at the same interpreter C stack pointer), by the wipe of :mod:`cortex_sal.crypto._scrub`:
registers to zero, then 8 KiB of the stack below the wipe's entry, which lies above the
ChaCha20 frame of either binding (measurements in that module). Where the wipe is
unavailable (``_scrub.UNAVAILABLE``) the scrub is :func:`scrub_fallback`: a decrypt, through
the same binding, of a public dummy message of the same shape (512 + n mod 512 bytes, or n
below 512) under a public dummy key: the same code path writes the same registers and spill
slots with public values.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from ..checks import public_bytes
from ..errors import DecryptionError, WrongLengthError
from ..securemem import SecureBuffer, SecureKeyBuffer
from . import _backend
from ._backend import NULL, PTR
from ._buffers import Input, Readable, address, pointer, secret, span
from ._scrub import WIPE
from ._sodium import sodium

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
MAX_MESSAGE = 2**38 - 64  # RFC 8439 limit per (key, nonce)

# The binding of each primitive is decided in _backend (one place); the checked paths call
# through its ctypes-convention callables, the hot paths through the bare compiled function
# (``_ENC``/``_DEC``, None when the primitive uses ctypes: then the ctypes bindings below).
_encrypt = _backend.function("aead_encrypt")
_decrypt = _backend.function("aead_decrypt")
_ENC = _backend.raw("aead_encrypt")
_DEC = _backend.raw("aead_decrypt")
_encrypt_bytes = sodium.bind(
    "crypto_aead_chacha20poly1305_ietf_encrypt",
    [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p,
     ctypes.c_ulonglong, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p],
    ctypes.c_int,
)  # fmt: skip


_decrypt_bytes = sodium.bind(
    "crypto_aead_chacha20poly1305_ietf_decrypt",
    [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_char_p,
     ctypes.c_ulonglong, ctypes.c_char_p, ctypes.c_void_p],
    ctypes.c_int,
)  # fmt: skip

_DUMMY_KEY = ctypes.create_string_buffer(KEY_SIZE)  # public: all zeros
_DUMMY_KEY_C = PTR[ctypes.addressof(_DUMMY_KEY)] if _ENC is not None or _DEC is not None else None
_DUMMY_NONCE = bytes(NONCE_SIZE)
_SCRUB_BLOCK = 512  # libsodium's widest ChaCha20 loop
_scrub_cache: dict[tuple[int, bool], tuple[bytes, bytes, Any]] = {}  # by shape and binding


def _scrub_message(length: int, compiled: bool) -> tuple[bytes, bytes, Any]:
    """A public dummy plaintext and its ciphertext under the dummy key, whose encryption or
    decryption takes the same code path as one of ``length`` plaintext bytes, and an output buffer
    for either (a cdata one for the compiled binding, else a ctypes one)."""
    shape = length if length < _SCRUB_BLOCK else _SCRUB_BLOCK + length % _SCRUB_BLOCK
    entry = _scrub_cache.get((shape, compiled))
    if entry is None:
        sealed = ctypes.create_string_buffer(shape + TAG_SIZE)
        _encrypt_bytes(sealed, None, bytes(shape), shape, b"", 0, None, _DUMMY_NONCE, _DUMMY_KEY)
        room = shape + TAG_SIZE
        target = _backend.FFI.new("unsigned char[]", room) if compiled else ctypes.create_string_buffer(room)
        entry = _scrub_cache[(shape, compiled)] = (bytes(shape), sealed.raw, target)
    return entry


def scrub_fallback(length: int, *, compiled: bool, encrypt: bool) -> None:
    """The scrub where :data:`~cortex_sal.crypto._scrub.WIPE` is unavailable: the call that used the
    secret key (``encrypt`` or decrypt, of ``length`` plaintext bytes, through the binding it took:
    ``compiled``, the cffi function, else ctypes) made again on a public dummy of the same shape
    under a public key. The same code path writes the same registers and spill slots with public
    values. Call it from the function that made that call: a Python-to-Python call runs in the same
    interpreter C frame (CPython 3.11+), so the dummy runs at the same C stack pointer."""
    plain, sealed, target = _scrub_message(length, compiled)
    if compiled:
        if encrypt:
            _ENC(target, NULL, plain, len(plain), b"", 0, NULL, _DUMMY_NONCE, _DUMMY_KEY_C)
        else:
            _DEC(target, NULL, NULL, sealed, len(sealed), b"", 0, _DUMMY_NONCE, _DUMMY_KEY_C)
    elif encrypt:
        _encrypt_bytes(target, None, plain, len(plain), b"", 0, None, _DUMMY_NONCE, _DUMMY_KEY)
    else:
        _decrypt_bytes(target, None, None, sealed, len(sealed), b"", 0, _DUMMY_NONCE, _DUMMY_KEY)


def _scrub_registers_fallback() -> None:
    """The fallback after a libsodium call other than ChaCha20 that read a secret (HMAC-SHA256,
    X25519, Ed25519: libsodium wipes their stack frames itself, their last values stay in the
    vector registers): a decrypt of a public 1 KiB dummy, whose vectorised ChaCha20 rewrites the
    vector registers it can name with public values."""
    scrub_fallback(1024, compiled=_DEC is not None, encrypt=False)


SCRUB: Callable[[], None] = WIPE if WIPE is not None else _scrub_registers_fallback
"""The scrub after a libsodium call that read a secret, other than ChaCha20 (which takes
:func:`scrub_fallback` of its own shape where there is no wipe): call it from the function that
made the call, right after it (or after the last of a sequence of calls on one secret)."""


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


def _output_c(size: int) -> tuple[Any, Any]:
    """This thread's ciphertext buffer for the compiled binding: (cdata, its buffer view)."""
    cap = max(size, _SCRATCH_MIN)
    out = _backend.FFI.new("unsigned char[]", cap)
    entry = _scratch.c = (cap, out, _backend.FFI.buffer(out))
    return entry[1], entry[2]


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
    if _ENC is not None:  # the compiled call: key read in place through a cdata pointer
        try:
            cap, out, view = _scratch.c
            if cap < size:
                out, view = _output_c(size)
        except AttributeError:
            out, view = _output_c(size)
        _ENC(out, NULL, plaintext, size - TAG_SIZE, aad, len(aad), NULL, nonce, PTR[address(key)])
        if WIPE is not None:  # the scrub after every use of a secret key, from this same function
            WIPE()
        else:
            scrub_fallback(size - TAG_SIZE, compiled=True, encrypt=True)
        return view[:size]
    out = _output(size)
    _encrypt_bytes(out, None, plaintext, len(plaintext), aad, len(aad), None, nonce, pointer(key))
    if WIPE is not None:
        WIPE()
    else:
        scrub_fallback(size - TAG_SIZE, compiled=False, encrypt=True)
    return out[:size]


def _encrypt_checked(key: object, nonce: object, plaintext: object, aad: object) -> bytes:
    key = secret(key, "AEAD key", KEY_SIZE)
    nonce_b = public_bytes(nonce, "AEAD nonce", NONCE_SIZE)
    aad_b = public_bytes(aad, "AEAD associated data")
    pt = Input(plaintext, "AEAD plaintext")
    if pt.length > MAX_MESSAGE:
        raise WrongLengthError(f"AEAD plaintext of {pt.length} bytes exceeds the RFC 8439 limit")
    size = pt.length + TAG_SIZE
    out = _output(size)
    _encrypt(out, None, pt.pointer, pt.length, aad_b, len(aad_b), None, nonce_b, address(key))
    if WIPE is not None:
        WIPE()
    else:
        scrub_fallback(pt.length, compiled=_ENC is not None, encrypt=True)
    return out[:size]


def aead_decrypt_into(
    key: SecureKeyBuffer, nonce: bytes, ciphertext: bytes, aad: bytes, out: SecureBuffer, offset: int = 0
) -> int:
    """Verify and decrypt ``ciphertext || tag`` into ``out`` at ``offset``; return the length.

    No plaintext is written when the tag does not verify.
    """
    k = secret(key, "AEAD key", KEY_SIZE)
    out = secret(out, "AEAD output buffer")
    nonce_b = public_bytes(nonce, "AEAD nonce", NONCE_SIZE)
    aad_b = public_bytes(aad, "AEAD associated data")
    ct = public_bytes(ciphertext, "AEAD ciphertext")
    if len(ct) < TAG_SIZE:
        raise WrongLengthError(f"AEAD ciphertext must hold at least the {TAG_SIZE}-byte tag, got {len(ct)} bytes")
    n = len(ct) - TAG_SIZE
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or offset + n > len(out):
        raise WrongLengthError(f"a {n}-byte plaintext at offset {offset!r} does not fit a {len(out)}-byte buffer")
    failed = _decrypt(address(out) + offset, None, None, ct, len(ct), aad_b, len(aad_b), nonce_b, address(k))
    if WIPE is not None:  # the scrub, from this same function (the same C stack pointer), whatever the tag
        WIPE()
    else:
        scrub_fallback(n, compiled=_DEC is not None, encrypt=False)
    if failed:
        raise DecryptionError("AEAD tag did not verify (wrong key, nonce or associated data, or tampered ciphertext)")
    return n


def decrypt_unchecked(
    key: SecureKeyBuffer, nonce: bytes, ciphertext: bytes, aad: bytes, out: SecureBuffer, offset: int = 0
) -> bool:
    """The bare libsodium decrypt of ``ciphertext || tag`` into ``out`` at ``offset``, for hot paths
    (the v1 frame channel) whose public arguments are already checked: ``bytes`` of exact sizes, a
    12-byte nonce. True if the tag verified, False if not (libsodium has zeroed the target region);
    the scrub of the module doc runs either way. A dead key or buffer raises, and a plaintext
    that would not fit ``out`` at ``offset`` raises ``WrongLengthError`` before any C call."""
    size = len(ciphertext) - TAG_SIZE
    base, room = span(out)
    if not 0 <= offset <= room - size or size < 0:
        raise WrongLengthError(f"a {size}-byte plaintext at offset {offset!r} does not fit a {room}-byte buffer")
    if _DEC is not None:  # the compiled call, and the scrub from this same function
        target = PTR[base] + offset if offset else PTR[base]
        failed = _DEC(target, NULL, NULL, ciphertext, size + TAG_SIZE, aad, len(aad), nonce, PTR[address(key)])
        if WIPE is not None:  # whatever the tag: the Poly1305 key came from the secret key
            WIPE()
        else:
            scrub_fallback(size, compiled=True, encrypt=False)
        return not failed
    failed = _decrypt_bytes(base + offset, None, None, ciphertext, len(ciphertext), aad, len(aad), nonce,
                            address(key))  # fmt: skip
    if WIPE is not None:
        WIPE()
    else:
        scrub_fallback(size, compiled=False, encrypt=False)
    return not failed


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
