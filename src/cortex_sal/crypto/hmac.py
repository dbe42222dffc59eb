"""HMAC-SHA256 keyed by a secure buffer; no key, pad or midstate in unlocked memory.

Every call is followed by :data:`~cortex_sal.crypto.aead.SCRUB` (the wipe of :mod:`._scrub`):
libsodium wipes its SHA-256 stack state, but its last ``memcpy`` of a state leaves the midstate
in a vector register (the ``keros_v1_gateway`` row found 16 bytes of one in the stack, saved
there later, before the wipe was added; the harness looks for midstates, kind ``midstate``).

Two libsodium paths, one guarantee:

* a public tag from a 32-byte key over one message (:func:`hmac_sha256`):
  ``crypto_auth_hmacsha256``, whose state lives in libsodium's own stack frame for the
  call and is wiped by libsodium (``sodium_memzero`` of the pads in ``_init``, of both
  SHA-256 states in ``_final``) before it returns - one foreign call, faster than
  ``hmac.digest`` through cffi's ABI mode (``bench/custody.py``);
* the same one-shot call for many messages of one size under one key
  (:func:`hmac_sha256_many`, the shield's batch path): the arguments checked once, then one
  foreign call per message into one (public) tag buffer;
* everything else, and always when the output is itself a key (:func:`hmac_sha256_into`,
  hence all of HKDF): ``_init/_update/_final`` on a per-thread state slot in the arena,
  zeroed after every use.

``nacl._sodium``'s compiled ``lib`` has no ``crypto_auth_hmacsha256*``. Measured for the
one-shot tag (64-byte message, 32-byte key; ``bench/custody.py``): cffi ABI mode on the same
libsodium file about 0.85x ``hmac.digest``; SHA-256 twice from the compiled ``lib`` with the
pads in a secure buffer about 0.8x for the two hashes alone, before the per-call pad XOR and
message copy into locked memory (which cannot be done in place from Python without a copy),
so slower in all; ctypes about 1.5x. :mod:`cortex_sal.crypto._backend` therefore binds these
symbols in ABI mode (ctypes where cffi is not available or forced).

The residue tests scan the process for the key, both pads and their encodings after
both paths.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

from ..checks import public_bytes
from ..errors import CryptoError, WrongLengthError, WrongTypeError
from ..securemem import SecureBuffer, SecureKeyBuffer
from . import _backend
from ._backend import PTR, to_cdata
from ._buffers import Input, Readable, address, pointer, secret
from ._sodium import sodium
from .aead import SCRUB

MAC_SIZE = 32

_scratch = threading.local()


def _forget_scratch_after_fork() -> None:
    # the inherited state slot was wiped by the kernel (MADV_WIPEONFORK) and belongs to
    # the parent's arena bookkeeping: the child draws its own on first use
    global _scratch
    _scratch = threading.local()


os.register_at_fork(after_in_child=_forget_scratch_after_fork)
# the bindings are _backend's decision: converting callables for the checked paths, the bare
# cffi functions (None when ctypes was chosen) for the hot ones
_oneshot = _backend.function("hmac_sha256")
_ONESHOT = _backend.raw("hmac_sha256")
_INIT, _UPDATE, _FINAL = (_backend.raw(f"hmac_sha256_{step}") for step in ("init", "update", "final"))
_init = _backend.function("hmac_sha256_init")
_update = _backend.function("hmac_sha256_update")
_final = _backend.function("hmac_sha256_final")
_zero = _backend.function("memzero")
_ZERO = _backend.raw("memzero")
_memcmp = _backend.function("memcmp")
_STATE_BYTES = sodium.hmac_state_bytes
# the same symbol typed for bytes in, tag out: ctypes converts these fastest
_oneshot_bytes = sodium.bind(
    "crypto_auth_hmacsha256", [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong, ctypes.c_void_p], ctypes.c_int
)


def _state() -> SecureBuffer:
    """This thread's HMAC state slot (allocated once, zeroed after each use): two states, the
    second for :func:`noise_hkdf_cdata`'s keyed midstate (:func:`hmac_raw` uses the first)."""
    state: SecureBuffer | None = getattr(_scratch, "state", None)
    if state is None or state.is_purged:
        state = SecureBuffer(2 * _STATE_BYTES)
        _scratch.state = state
    return state


def _hmac(key: object, parts: tuple[Readable, ...], out: object, *, locked_state: bool) -> None:
    """HMAC-SHA256(key, concat(parts)) into the 32 bytes at ``out``."""
    k = Input(key, "HMAC key")
    if not locked_state and k.length == SecureKeyBuffer._fixed_size and len(parts) == 1:
        m = Input(parts[0], "HMAC message")
        failed = _oneshot(out, m.pointer, m.length, k.pointer)
        SCRUB()  # after every libsodium call that read a secret: registers and dead stack
        if failed:
            raise CryptoError("crypto_auth_hmacsha256 failed")
        return
    inputs = [Input(p, "HMAC message part") for p in parts]
    hmac_raw(k.pointer, k.length, [(item.pointer, item.length) for item in inputs], out)


def hmac_raw(key: object, key_length: int, parts: list[tuple[object, int]], out: object) -> None:
    """HMAC-SHA256 over (pointer, length) parts into ``out``, state in the arena.

    For this package's own callers (HKDF) whose arguments are already checked pointers
    into live secure buffers or public ``bytes``.
    """
    st = address(_state())
    if _INIT is not None and _UPDATE is not None and _FINAL is not None and _ZERO is not None:
        state = PTR[st]
        try:
            if _INIT(state, to_cdata(key), key_length) != 0:
                raise CryptoError("crypto_auth_hmacsha256_init failed")
            for part, length in parts:
                if length:
                    _UPDATE(state, to_cdata(part), length)
            _FINAL(state, to_cdata(out))
        finally:
            _ZERO(state, _STATE_BYTES)
            SCRUB()
        return
    try:
        if _init(st, key, key_length) != 0:
            raise CryptoError("crypto_auth_hmacsha256_init failed")
        for part, length in parts:
            if length:
                _update(st, part, length)
        _final(st, out)
    finally:
        _zero(st, _STATE_BYTES)
        SCRUB()


_ONE, _TWO, _THREE = b"\x01", b"\x02", b"\x03"


def noise_hkdf_cdata(ck: Any, ikm: Any, ikm_length: int, temp_key: Any, out1: Any, out2: Any, out3: Any = None) -> None:
    """Noise's ``HKDF(ck, ikm, 2 or 3)`` (spec section 4.3) on cdata pointers, for
    :class:`~cortex_sal.crypto.chaining.ChainingKey` (its arguments are already checked: live
    locked memory, or public ``bytes`` / None for ``ikm``). Only while the compiled cffi
    bindings are in use (:data:`NOISE_HKDF_CDATA`); the same HMACs as :func:`hmac_raw`, their
    states in this thread's state slot in the arena. The outputs share the key ``temp_key``: it
    is keyed once (``_init``: its inner and outer pad blocks hashed) and that keyed state copied,
    inside the slot, for each further output. The slot (with ``temp_key``) is zeroed once at the
    end: libsodium's ``_final`` already leaves a state zeroed after each tag (its SHA-256 finals
    wipe both halves)."""
    state = PTR[address(_state())]
    keyed = state + _STATE_BYTES  # HMAC(temp_key, .) after _init, before any message
    init, update, final, copy = _INIT, _UPDATE, _FINAL, _COPY
    try:
        if init(state, ck, HASHLEN_) != 0:
            raise CryptoError("crypto_auth_hmacsha256_init failed")
        if ikm_length:
            update(state, ikm, ikm_length)
        final(state, temp_key)  # temp_key = HMAC(ck, ikm)
        if init(keyed, temp_key, HASHLEN_) != 0:
            raise CryptoError("crypto_auth_hmacsha256_init failed")
        copy(state, keyed, _STATE_BYTES)
        update(keyed, _ONE, 1)
        final(keyed, out1)  # output1 = HMAC(temp_key, 0x01)
        if out3 is not None:
            copy(keyed, state, _STATE_BYTES)
        update(state, out1, HASHLEN_)
        update(state, _TWO, 1)
        final(state, out2)  # output2 = HMAC(temp_key, output1 || 0x02)
        if out3 is not None:
            update(keyed, out2, HASHLEN_)
            update(keyed, _THREE, 1)
            final(keyed, out3)  # output3 = HMAC(temp_key, output2 || 0x03)
    finally:
        _ZERO(state, 2 * _STATE_BYTES)
        _ZERO(temp_key, HASHLEN_)  # the temp key, the line after its last use
        SCRUB()


HASHLEN_ = MAC_SIZE
_COPY: Any = _backend.FFI.memmove if _backend.FFI is not None else None  # cffi's memmove: locked -> locked
NOISE_HKDF_CDATA = _INIT is not None and _UPDATE is not None and _FINAL is not None and _ZERO is not None


def _tag_buffer() -> tuple[Any, Any]:
    """This thread's (public) tag buffer for the compiled one-shot: (cdata, its buffer view)."""
    out = _backend.FFI.new("unsigned char[]", MAC_SIZE)
    entry = _scratch.ctag = (out, _backend.FFI.buffer(out))
    return entry


def hmac_sha256(key: SecureBuffer, *parts: Readable) -> bytes:
    """The tag HMAC-SHA256(key, parts...) as ``bytes``: for tags that are public.

    ``parts`` may be bytes-like or secure buffers (read in place).
    """
    if type(key) is SecureKeyBuffer and len(parts) == 1 and type(parts[0]) is bytes:
        # the common case, kept to one foreign call into a per-thread (public) tag buffer
        message = parts[0]
        if _ONESHOT is not None:
            try:
                ctag, view = _scratch.ctag
            except AttributeError:
                ctag, view = _tag_buffer()
            failed = _ONESHOT(ctag, message, len(message), PTR[address(key)])
            SCRUB()
            if failed:
                raise CryptoError("crypto_auth_hmacsha256 failed")
            return view[:]
        try:
            tag = _scratch.tag
        except AttributeError:
            tag = _scratch.tag = ctypes.create_string_buffer(MAC_SIZE)
        failed = _oneshot_bytes(tag, message, len(message), pointer(key))
        SCRUB()
        if failed:
            raise CryptoError("crypto_auth_hmacsha256 failed")
        return tag.raw
    secret(key, "HMAC key")
    tag = ctypes.create_string_buffer(MAC_SIZE)
    _hmac(key, parts, tag, locked_state=False)
    return tag.raw


def hmac_sha256_many(key: SecureKeyBuffer, messages: bytes, size: int) -> bytes:
    """The public tags of ``n = len(messages) // size`` messages of ``size`` bytes each, laid end to
    end in ``messages``, under one key: ``tag_0 || ... || tag_{n-1}`` (``32 n`` bytes), each equal to
    :func:`hmac_sha256` of its message. For the batch paths (Phase B, liveness): the key and every
    argument are checked once, then one foreign call per message, the key read in place each time.
    """
    key = secret(key, "HMAC key", SecureKeyBuffer._fixed_size)
    blob = public_bytes(messages, "HMAC messages")
    if isinstance(size, bool) or not isinstance(size, int):
        raise WrongTypeError(f"HMAC message size must be an int, got {type(size).__name__}")
    if size <= 0 or len(blob) % size:
        raise WrongLengthError(f"{len(blob)} bytes of messages are not a whole number of {size!r}-byte messages")
    n = len(blob) // size
    if _ONESHOT is not None:
        out = _backend.FFI.new("unsigned char[]", max(MAC_SIZE * n, 1))
        src = _backend.FFI.from_buffer("unsigned char[]", blob)
        k = PTR[address(key)]
        one = _ONESHOT
        failed = 0
        for i in range(n):
            failed |= one(out + MAC_SIZE * i, src + size * i, size, k)
        SCRUB()  # once after the batch: the last call's registers, every call's dead stack
        if failed:
            raise CryptoError("crypto_auth_hmacsha256 failed")
        return _backend.FFI.buffer(out, MAC_SIZE * n)[:]
    tag = ctypes.create_string_buffer(MAC_SIZE)
    tags = []
    failed = 0
    for i in range(0, n * size, size):
        failed |= _oneshot_bytes(tag, blob[i : i + size], size, pointer(key))
        tags.append(tag.raw)
    SCRUB()
    if failed:
        raise CryptoError("crypto_auth_hmacsha256 failed")
    return b"".join(tags)


def hmac_sha256_into(key: SecureBuffer | bytes, out: SecureBuffer, *parts: Readable) -> None:
    """HMAC-SHA256(key, parts...) written into the 32-byte secure buffer ``out``.

    The key may be public ``bytes`` here (HKDF-Extract keys HMAC with a public salt);
    the output never leaves locked memory.
    """
    out = secret(out, "HMAC output", MAC_SIZE)
    _hmac(key, parts, address(out), locked_state=True)


def hmac_sha256_verify(key: SecureBuffer, tag: bytes, *parts: Readable) -> bool:
    """Constant-time check that ``tag`` is HMAC-SHA256(key, parts...)."""
    expected = public_bytes(tag, "HMAC tag")
    computed = hmac_sha256(key, *parts)
    if len(expected) != MAC_SIZE:
        return False
    return bool(_memcmp(computed, expected, MAC_SIZE) == 0)
