"""ChaCha20-Poly1305 IETF as Noise uses it, keyed in locked memory: the transports' hot path.

:class:`CipherKey` is the AEAD key object of Noise's ``CipherState`` and of the KEROS v2
transport: ``ENCRYPT(k, n, ad, plaintext)`` / ``DECRYPT(k, n, ad, ciphertext)`` of the Noise
spec (revision 34) section 5.1 for the ``ChaChaPoly`` cipher, whose 96-bit nonce is 32 zero
bits followed by the 64-bit counter ``n`` little-endian (section 12.3), and ``REKEY(k)`` of
section 4.2: the first 32 bytes of ``ENCRYPT(k, 2^64-1, empty, 32 zero bytes)`` (:func:`rekey`,
:meth:`CipherKey.rekeyed`). ``n = 2^64-1`` is reserved for REKEY: the other operations refuse it.

* The key is read in place by libsodium; a secret plaintext is read in place from a secure
  buffer (:meth:`CipherKey.encrypt`) or decrypted straight into one at an offset
  (:meth:`CipherKey.decrypt_into`). Ciphertexts and public plaintexts pass through the key
  object's own scratch buffer (public data only) and come back as ``bytes``.
* A bad tag is an answer, not an exception: ``decrypt`` returns ``None`` and ``decrypt_into``
  returns ``-1`` (libsodium has then zeroed the target region); the caller decides what a
  failed message means (a Noise handshake fails, a transport may try the next epoch's key).
* Scrub (see :mod:`cortex_sal.crypto.aead` and :mod:`cortex_sal.crypto._scrub` for the
  measurements): every call that uses the key (encrypt, decrypt, REKEY: ChaCha20 spills the
  key's words whatever the direction) is followed, from the same Python function (so at the
  same C stack pointer), by the wipe of the vector registers and of the C stack below it;
  where the wipe is unavailable, by :func:`~cortex_sal.crypto.aead.scrub_fallback`: a decrypt
  through the same binding of a public dummy message of the same shape under a public dummy
  key (the same code path then writes the same registers and spill slots with public data).
* Fast paths: for ``bytes`` arguments and an ``int`` nonce each operation is one foreign call:
  the compiled cffi function of ``nacl._sodium`` when :mod:`cortex_sal.crypto._backend` chose it
  for the primitive (the key passed as a cdata pointer to its slot), else an unconverted ``PyDLL``
  binding (:meth:`~cortex_sal.crypto._sodium.Sodium.bind_unconverted`) with ready-made length
  objects; anything else takes a checked path that converts or refuses (``WrongTypeError``,
  ``WrongLengthError``, ``InvalidArgumentError``) before any C call.

Limits: a message (tag included) is at most 65535 bytes, Noise's limit (section 3).
Not thread-safe: one key object is used by one thread at a time (its scratch is shared by the
keys :meth:`CipherKey.rekeyed` derives from it).
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from ..checks import int_in_range, public_bytes
from ..errors import CryptoError, InvalidArgumentError, NotCopyableError, WrongLengthError, WrongTypeError
from ..securemem import SecureBuffer, SecureKeyBuffer
from . import _backend
from ._backend import NULL, PTR
from ._buffers import address, pointer, span
from ._scrub import WIPE
from ._sodium import sodium
from .aead import scrub_fallback

KEY_SIZE = 32
TAG_SIZE = 16
NONCE_SIZE = 12
COUNTER_SIZE = 8  # an explicit nonce on the wire: n as u64 big-endian (encrypt_with_counter)
MAX_MESSAGE = 65535  # a Noise message, tag included
MAX_PLAINTEXT = MAX_MESSAGE - TAG_SIZE
MAX_NONCE = 2**64 - 1  # reserved for REKEY

_V = ctypes.c_void_p
_ULL = ctypes.c_ulonglong
# The binding is _backend's decision. The compiled cffi functions (None when the primitive uses
# ctypes) serve the fast paths and, with a converting wrapper, the checked paths.
_ENC = _backend.raw("aead_encrypt")
_DEC = _backend.raw("aead_decrypt")
_COMPILED = _ENC is not None and _DEC is not None
# the checked paths: every argument converted (ints, bytes, None, ctypes objects)
if _COMPILED:
    _ENCRYPT = _backend.function("aead_encrypt")
    _DECRYPT = _backend.function("aead_decrypt")
else:
    _ENCRYPT = sodium.bind(
        "crypto_aead_chacha20poly1305_ietf_encrypt", [_V, _V, _V, _ULL, _V, _ULL, _V, _V, _V], ctypes.c_int
    )
    _DECRYPT = sodium.bind(
        "crypto_aead_chacha20poly1305_ietf_decrypt", [_V, _V, _V, _V, _ULL, _V, _ULL, _V, _V], ctypes.c_int
    )
# the ctypes fast paths: nothing converted (ctypes objects, bytes or None only: see bind_unconverted)
_ENCRYPT_FAST = sodium.bind_unconverted("crypto_aead_chacha20poly1305_ietf_encrypt")
_DECRYPT_FAST = sodium.bind_unconverted("crypto_aead_chacha20poly1305_ietf_decrypt")


class _Lengths(dict[int, ctypes.c_ulonglong]):
    """Immutable ``unsigned long long`` length arguments, kept once per length used up to a
    Noise message's size (so at most 65552 of them); longer ones are made per call."""

    def __missing__(self, n: int) -> ctypes.c_ulonglong:
        u = ctypes.c_ulonglong(n)
        if n <= MAX_MESSAGE + TAG_SIZE:
            self[n] = u
        return u


_LENS = _Lengths()

_nonce = struct.Struct("<4xQ").pack  # Noise's ChaChaPoly nonce: 32 zero bits || n little-endian
_pack_counter = struct.Struct(">Q").pack_into
_REKEY_NONCE = _nonce(MAX_NONCE)
_ZEROS32 = bytes(KEY_SIZE)


def rekey(key: SecureKeyBuffer) -> SecureKeyBuffer:
    """REKEY(k) of Noise section 4.2 into a new :class:`SecureKeyBuffer`; ``key`` is left to the caller.

    The 48-byte ENCRYPT output is written into a locked scratch slot, the new key copied from
    there, and the scratch purged.
    """
    if not isinstance(key, SecureKeyBuffer):
        raise WrongTypeError(f"REKEY needs a SecureKeyBuffer, got {type(key).__name__}")
    scratch = SecureBuffer(KEY_SIZE + TAG_SIZE)
    try:
        k = address(key)
        failed = _ENCRYPT(address(scratch), None, _ZEROS32, KEY_SIZE, b"", 0, None, _REKEY_NONCE, k)
        if WIPE is not None:  # the scrub after every use of a secret key, from this same function
            WIPE()
        else:
            scrub_fallback(KEY_SIZE, compiled=_COMPILED, encrypt=True)
        if failed:
            raise CryptoError("ChaCha20-Poly1305 encryption failed during REKEY")
        new = SecureKeyBuffer.allocate()
        new.write(scratch, 0, KEY_SIZE)
    finally:
        scratch.secure_purge()
    return new


class _Scratch:
    """A key object's output buffer for public data (ciphertexts, public plaintexts): ``target``
    and ``body`` (after an explicit counter) for the C call, ``buf`` to slice and pack."""

    __slots__ = ("body", "buf", "cap", "target")

    def __init__(self, size: int) -> None:
        self.cap = size
        if _COMPILED:
            self.target: Any = _backend.FFI.new("unsigned char[]", size + COUNTER_SIZE)
            self.buf: Any = _backend.FFI.buffer(self.target)  # slicing gives bytes; pack_into writes
            self.body: Any = self.target + COUNTER_SIZE
        else:
            self.buf = self.target = ctypes.create_string_buffer(size + COUNTER_SIZE)
            self.body = ctypes.c_void_p(ctypes.addressof(self.buf) + COUNTER_SIZE)


_FIRST_SCRATCH = 2048  # a new key's scratch: handshake messages and small transport messages fit it


class CipherKey:
    """A ChaCha20-Poly1305 key in a :class:`SecureKeyBuffer` this object owns (see the module doc).

    ``CipherKey(key)`` takes ``key`` over: :meth:`purge` purges it. :meth:`allocate` gives a
    zeroed key slot for a key derived in place (Noise's HKDF writes it: see
    :class:`cortex_sal.crypto.chaining.ChainingKey`).
    """

    __slots__ = ("_key", "_out")

    def __init__(self, key: SecureKeyBuffer) -> None:
        if not isinstance(key, SecureKeyBuffer):
            raise WrongTypeError(f"a CipherKey is made from a SecureKeyBuffer, got {type(key).__name__}")
        key.ensure_live()  # a purged or fork-inherited key is refused now
        self._key = key
        self._out = _Scratch(_FIRST_SCRATCH)

    @classmethod
    def allocate(cls) -> CipherKey:
        """A key object on a zeroed slot, to be written in place by a key derivation."""
        new = cls.__new__(cls)
        new._key = SecureKeyBuffer.allocate()
        new._out = _Scratch(_FIRST_SCRATCH)
        return new

    # -- state ------------------------------------------------------------------------------

    @property
    def key_buffer(self) -> SecureKeyBuffer:
        """The locked buffer holding the key (custody checks: it must end purged)."""
        return self._key

    @property
    def is_purged(self) -> bool:
        return self._key.is_purged

    def ensure_live(self) -> None:
        """Raise ``PurgedBufferError`` / ``ForkedBufferError`` if the key can no longer be used."""
        self._key.ensure_live()

    def purge(self) -> None:
        """Zero the key. Idempotent; every later operation raises ``PurgedBufferError``."""
        self._key.secure_purge()

    def rekeyed(self) -> CipherKey:
        """A new key object holding REKEY(k); this one is unchanged (purge it when done)."""
        new = CipherKey.__new__(CipherKey)
        new._key = rekey(self._key)
        new._out = self._out
        return new

    def _scratch(self, size: int) -> _Scratch:
        out = self._out
        if size > out.cap:
            out = self._out = _Scratch(min(max(size, 2 * out.cap), MAX_MESSAGE))
        return out

    # -- the hot paths: the simple case in one foreign call, or None ------------------------------
    #
    # For bytes arguments, an int nonce below 2^64-1 and a message that fits this key's scratch
    # (or, for decrypt_into_fast, the target buffer). Anything else returns None / -1 without
    # touching anything: the caller takes its own checked path (or the checked methods below),
    # which converts or refuses the arguments with a specific error.

    def encrypt_fast(self, n: int, ad: bytes, plaintext: bytes) -> bytes | None:
        """ENCRYPT(k, n, ad, plaintext) as ``ciphertext || tag``, or None if not the simple case."""
        if type(plaintext) is bytes and type(ad) is bytes:
            size = len(plaintext)
            out = self._out
            if size + TAG_SIZE <= out.cap:
                buf = out.buf
                try:
                    nonce = _nonce(n)
                except struct.error:  # not an int, or negative
                    return None
                if n == MAX_NONCE:  # reserved for REKEY
                    return None
                _ENCRYPT_FAST(buf, None, plaintext, _LENS[size], ad, _LENS[len(ad)], None, nonce, pointer(self._key))
                if WIPE is not None:  # the scrub after every use of a secret key, from this same function
                    WIPE()
                else:
                    scrub_fallback(size, compiled=False, encrypt=True)
                return buf[: size + TAG_SIZE]
        return None

    def encrypt_with_counter_fast(self, n: int, ad: bytes, plaintext: bytes) -> bytes | None:
        """``n`` as u64 big-endian || ENCRYPT(k, n, ad, plaintext), or None if not the simple case."""
        if type(plaintext) is bytes and type(ad) is bytes:
            size = len(plaintext)
            out = self._out
            if size + TAG_SIZE <= out.cap:
                buf = out.buf
                try:
                    nonce = _nonce(n)
                except struct.error:  # not an int, or negative
                    return None
                if n == MAX_NONCE:  # reserved for REKEY
                    return None
                _pack_counter(buf, 0, n)
                _ENCRYPT_FAST(
                    out.body, None, plaintext, _LENS[size], ad, _LENS[len(ad)], None, nonce, pointer(self._key)
                )
                if WIPE is not None:  # the scrub after every use of a secret key, from this same function
                    WIPE()
                else:
                    scrub_fallback(size, compiled=False, encrypt=True)
                return buf[: COUNTER_SIZE + size + TAG_SIZE]
        return None

    def decrypt_fast(self, n: int, ad: bytes, ciphertext: bytes) -> bytes | None:
        """DECRYPT(k, n, ad, ciphertext) for a public plaintext; None for a bad tag OR if not the
        simple case (then :meth:`decrypt` tells which)."""
        if type(ciphertext) is bytes and type(ad) is bytes:
            size = len(ciphertext)
            out = self._out
            if TAG_SIZE <= size <= out.cap:
                buf = out.buf
                try:
                    nonce = _nonce(n)
                except struct.error:  # not an int, or negative
                    return None
                if n == MAX_NONCE:  # reserved for REKEY
                    return None
                failed = _DECRYPT_FAST(
                    buf, None, None, ciphertext, _LENS[size], ad, _LENS[len(ad)], nonce, pointer(self._key)
                )
                if WIPE is not None:  # the scrub after every use of a secret key, from this same function
                    WIPE()
                else:
                    scrub_fallback(size - TAG_SIZE, compiled=False, encrypt=False)
                return None if failed else buf[: size - TAG_SIZE]
        return None

    def decrypt_into_fast(self, n: int, ad: bytes, ciphertext: bytes, out: SecureBuffer, offset: int) -> int:
        """DECRYPT(k, n, ad, ciphertext) straight into ``out`` at ``offset``, then the scrub:
        the plaintext length; -1 for a bad tag OR if not the simple case (then :meth:`decrypt_into`
        tells which). On a bad tag libsodium has zeroed the target region."""
        if type(ciphertext) is bytes and type(ad) is bytes and type(offset) is int:
            plain = len(ciphertext) - TAG_SIZE
            if 0 <= plain <= MAX_PLAINTEXT and offset >= 0 and isinstance(out, SecureBuffer):
                base, room = span(out)
                if offset + plain <= room:
                    try:
                        nonce = _nonce(n)
                    except struct.error:  # not an int, or negative
                        return -1
                    if n == MAX_NONCE:  # reserved for REKEY
                        return -1
                    failed = _DECRYPT_FAST(
                        ctypes.c_void_p(base + offset), None, None, ciphertext, _LENS[plain + TAG_SIZE], ad,
                        _LENS[len(ad)], nonce, pointer(self._key),
                    )  # fmt: skip
                    if WIPE is not None:  # the scrub after every use of a secret key, from this same function
                        WIPE()
                    else:
                        scrub_fallback(plain, compiled=False, encrypt=False)
                    return -1 if failed else plain
        return -1

    if _COMPILED:  # the same four fast paths through the compiled cffi functions

        def encrypt_fast(self, n: int, ad: bytes, plaintext: bytes) -> bytes | None:
            """ENCRYPT(k, n, ad, plaintext) as ``ciphertext || tag``, or None if not the simple case."""
            if type(plaintext) is bytes and type(ad) is bytes:
                size = len(plaintext)
                out = self._out
                if size + TAG_SIZE <= out.cap:
                    try:
                        nonce = _nonce(n)
                    except struct.error:  # not an int, or negative
                        return None
                    if n == MAX_NONCE:  # reserved for REKEY
                        return None
                    _ENC(out.target, NULL, plaintext, size, ad, len(ad), NULL, nonce, PTR[address(self._key)])
                    if WIPE is not None:  # the scrub after every use of a secret key, from this same function
                        WIPE()
                    else:
                        scrub_fallback(size, compiled=True, encrypt=True)
                    return out.buf[: size + TAG_SIZE]
            return None

        def encrypt_with_counter_fast(self, n: int, ad: bytes, plaintext: bytes) -> bytes | None:
            """``n`` as u64 big-endian || ENCRYPT(k, n, ad, plaintext), or None if not the simple case."""
            if type(plaintext) is bytes and type(ad) is bytes:
                size = len(plaintext)
                out = self._out
                if size + TAG_SIZE <= out.cap:
                    try:
                        nonce = _nonce(n)
                    except struct.error:  # not an int, or negative
                        return None
                    if n == MAX_NONCE:  # reserved for REKEY
                        return None
                    buf = out.buf
                    _pack_counter(buf, 0, n)
                    _ENC(out.body, NULL, plaintext, size, ad, len(ad), NULL, nonce, PTR[address(self._key)])
                    if WIPE is not None:  # the scrub after every use of a secret key, from this same function
                        WIPE()
                    else:
                        scrub_fallback(size, compiled=True, encrypt=True)
                    return buf[: COUNTER_SIZE + size + TAG_SIZE]
            return None

        def decrypt_fast(self, n: int, ad: bytes, ciphertext: bytes) -> bytes | None:
            """DECRYPT(k, n, ad, ciphertext) for a public plaintext; None for a bad tag OR if not the
            simple case (then :meth:`decrypt` tells which)."""
            if type(ciphertext) is bytes and type(ad) is bytes:
                size = len(ciphertext)
                out = self._out
                if TAG_SIZE <= size <= out.cap:
                    try:
                        nonce = _nonce(n)
                    except struct.error:  # not an int, or negative
                        return None
                    if n == MAX_NONCE:  # reserved for REKEY
                        return None
                    failed = _DEC(out.target, NULL, NULL, ciphertext, size, ad, len(ad), nonce, PTR[address(self._key)])
                    if WIPE is not None:  # the scrub after every use of a secret key, from this same function
                        WIPE()
                    else:
                        scrub_fallback(size - TAG_SIZE, compiled=True, encrypt=False)
                    return None if failed else out.buf[: size - TAG_SIZE]
            return None

        def decrypt_into_fast(self, n: int, ad: bytes, ciphertext: bytes, out: SecureBuffer, offset: int) -> int:
            """DECRYPT(k, n, ad, ciphertext) straight into ``out`` at ``offset``, then the scrub:
            the plaintext length; -1 for a bad tag OR if not the simple case (then :meth:`decrypt_into`
            tells which). On a bad tag libsodium has zeroed the target region."""
            if type(ciphertext) is bytes and type(ad) is bytes and type(offset) is int:
                plain = len(ciphertext) - TAG_SIZE
                if 0 <= plain <= MAX_PLAINTEXT and offset >= 0 and isinstance(out, SecureBuffer):
                    base, room = span(out)
                    if offset + plain <= room:
                        try:
                            nonce = _nonce(n)
                        except struct.error:  # not an int, or negative
                            return -1
                        if n == MAX_NONCE:  # reserved for REKEY
                            return -1
                        target = PTR[base] + offset if offset else PTR[base]
                        failed = _DEC(target, NULL, NULL, ciphertext, plain + TAG_SIZE, ad, len(ad), nonce,
                                      PTR[address(self._key)])  # fmt: skip
                        if WIPE is not None:  # the scrub after every use of a secret key, from this same function
                            WIPE()
                        else:
                            scrub_fallback(plain, compiled=True, encrypt=False)
                        return -1 if failed else plain
            return -1

    # -- the checked paths -------------------------------------------------------------------------

    def encrypt(self, n: int, ad: bytes, plaintext: bytes | SecureBuffer) -> bytes:
        """ENCRYPT(k, n, ad, plaintext): ``ciphertext || tag``. A secure buffer is read in place."""
        return self._encrypt(n, ad, plaintext, False)

    def encrypt_with_counter(self, n: int, ad: bytes, plaintext: bytes | SecureBuffer) -> bytes:
        """``n`` as u64 big-endian, then ENCRYPT(k, n, ad, plaintext): a message that carries its nonce."""
        return self._encrypt(n, ad, plaintext, True)

    def _encrypt(self, n: object, ad: object, plaintext: object, counter: bool) -> bytes:
        nonce = int_in_range(n, "nonce", 0, MAX_NONCE - 1)
        ad_b = public_bytes(ad, "associated data")
        if isinstance(plaintext, SecureBuffer):
            size = len(plaintext)
        elif isinstance(plaintext, bytes | bytearray | memoryview):
            plaintext = bytes(plaintext)
            size = len(plaintext)
        else:
            raise WrongTypeError(f"plaintext must be bytes or a SecureBuffer, got {type(plaintext).__name__}")
        if size > MAX_PLAINTEXT:
            raise WrongLengthError(f"a {size}-byte plaintext exceeds {MAX_PLAINTEXT} bytes (a 65535-byte message)")
        out = self._scratch(size + TAG_SIZE)
        key = address(self._key)
        source = address(plaintext) if isinstance(plaintext, SecureBuffer) else plaintext  # read in place
        head = COUNTER_SIZE if counter else 0
        if counter:
            _pack_counter(out.buf, 0, nonce)
        target = out.body if counter else out.target
        failed = _ENCRYPT(target, None, source, size, ad_b, len(ad_b), None, _nonce(nonce), key)
        if WIPE is not None:  # the scrub after every use of a secret key, from this same function
            WIPE()
        else:
            scrub_fallback(size, compiled=_COMPILED, encrypt=True)
        if failed:
            raise CryptoError("ChaCha20-Poly1305 encryption failed")
        return out.buf[: head + size + TAG_SIZE]

    def decrypt(self, n: int, ad: bytes, ciphertext: bytes) -> bytes | None:
        """DECRYPT(k, n, ad, ciphertext) for a public plaintext: the plaintext, or None for a bad tag."""
        nonce = int_in_range(n, "nonce", 0, MAX_NONCE - 1)
        ad_b = public_bytes(ad, "associated data")
        ct = public_bytes(ciphertext, "ciphertext")
        size = _message_size(len(ct))
        out = self._scratch(size)
        failed = _DECRYPT(out.target, None, None, ct, size, ad_b, len(ad_b), _nonce(nonce), address(self._key))
        if WIPE is not None:  # the scrub after every use of a secret key, from this same function
            WIPE()
        else:
            scrub_fallback(size - TAG_SIZE, compiled=_COMPILED, encrypt=False)
        return None if failed else out.buf[: size - TAG_SIZE]

    def decrypt_into(self, n: int, ad: bytes, ciphertext: bytes, out: SecureBuffer, offset: int = 0) -> int:
        """DECRYPT(k, n, ad, ciphertext) straight into ``out`` at ``offset``: the plaintext length,
        or -1 for a bad tag (libsodium has zeroed the target region). Followed by the scrub."""
        nonce = int_in_range(n, "nonce", 0, MAX_NONCE - 1)
        ad_b = public_bytes(ad, "associated data")
        ct = public_bytes(ciphertext, "ciphertext")
        size = _message_size(len(ct))
        if not isinstance(out, SecureBuffer):
            raise WrongTypeError(f"out must be a SecureBuffer, got {type(out).__name__}")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise InvalidArgumentError(f"offset must be a non-negative int, got {offset!r}")
        plain = size - TAG_SIZE
        if offset + plain > len(out):
            raise WrongLengthError(f"a {plain}-byte plaintext at offset {offset} does not fit a {len(out)}-byte buffer")
        key = address(self._key)
        target = address(out) + offset
        failed = _DECRYPT(target, None, None, ct, size, ad_b, len(ad_b), _nonce(nonce), key)
        if WIPE is not None:  # the scrub after every use of a secret key, from this same function
            WIPE()
        else:
            scrub_fallback(plain, compiled=_COMPILED, encrypt=False)
        return -1 if failed else plain

    # -- refusals -------------------------------------------------------------------------------

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError("a CipherKey holds a key: it cannot be pickled or copied")

    def __repr__(self) -> str:
        return f"<CipherKey {'purged' if self.is_purged else 'live'}>"


def _message_size(size: int) -> int:
    if size < TAG_SIZE:
        raise WrongLengthError(f"a {size}-byte ciphertext cannot hold the {TAG_SIZE}-byte tag")
    if size > MAX_MESSAGE:
        raise WrongLengthError(f"a {size}-byte message exceeds the {MAX_MESSAGE}-byte maximum")
    return size


__all__ = ["COUNTER_SIZE", "KEY_SIZE", "MAX_MESSAGE", "MAX_NONCE", "MAX_PLAINTEXT", "TAG_SIZE", "CipherKey", "rekey"]
