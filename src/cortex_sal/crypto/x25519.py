"""X25519 (RFC 7748) with private keys and shared secrets in locked memory.

Public keys are plain ``bytes``. A peer key that is a low-order point (the shared
secret would be all zeros) is refused with :class:`~cortex_sal.errors.LowOrderPointError`:
libsodium reports it, and we never continue with the all-zero result.
"""

from __future__ import annotations

import ctypes
from typing import Any

from ..checks import public_bytes
from ..errors import CryptoError, InvalidArgumentError, LowOrderPointError, WrongLengthError
from ..securemem import SecureBuffer, SecureKeyBuffer
from . import _backend
from ._buffers import address, secret
from .aead import SCRUB

KEY_SIZE = 32

_X25519 = _backend.function("x25519")  # the binding is _backend's decision
_X25519_BASE = _backend.function("x25519_base")
_X25519_BASE_RAW = _backend.raw("x25519_base")  # the compiled function, None when ctypes was chosen
_PTR = _backend.PTR


def x25519_public_key(private_key: SecureKeyBuffer) -> bytes:
    """The public key ``X25519(k, 9)`` of a private scalar held in locked memory."""
    private = secret(private_key, "X25519 private key", KEY_SIZE)
    if _X25519_BASE_RAW is not None:
        public = _backend.FFI.new("unsigned char[]", KEY_SIZE)  # public output
        failed = _X25519_BASE_RAW(public, _PTR[address(private)])
        SCRUB()  # after every libsodium call that read a secret: registers and dead stack
        if failed:
            raise CryptoError("X25519 base-point multiplication failed")
        return _backend.FFI.buffer(public)[:]
    out = ctypes.create_string_buffer(KEY_SIZE)
    failed = _X25519_BASE(out, address(private))
    SCRUB()
    if failed:
        raise CryptoError("X25519 base-point multiplication failed")
    return out.raw


def x25519_shared_secret(private_key: SecureKeyBuffer, peer_public_key: bytes) -> SecureKeyBuffer:
    """The raw shared secret ``X25519(k, u)``, straight into a new locked buffer.

    Feed it to HKDF, then purge it: it is not a key by itself.
    """
    private = secret(private_key, "X25519 private key", KEY_SIZE)
    peer = public_bytes(peer_public_key, "X25519 peer public key", KEY_SIZE)
    shared = SecureKeyBuffer.allocate()
    failed = _X25519(address(shared), address(private), peer)
    SCRUB()
    if failed:
        shared.secure_purge()
        raise LowOrderPointError("X25519 peer public key is a low-order point (shared secret would be all zeros)")
    return shared


def x25519_shared_secret_into(
    private_key: SecureKeyBuffer, peer_public_key: bytes, out: SecureBuffer, offset: int = 0
) -> None:
    """The raw shared secret ``X25519(k, u)`` written into ``out[offset : offset + 32]`` (no new slot).

    A low-order peer key raises :class:`~cortex_sal.errors.LowOrderPointError`; the target
    region then holds zeros (libsodium's all-zero result), never a secret. The caller zeroes
    the region after its last use (``out.zero(offset, 32)``).
    """
    private = secret(private_key, "X25519 private key", KEY_SIZE)
    peer = public_bytes(peer_public_key, "X25519 peer public key", KEY_SIZE)
    target = secret(out, "X25519 output buffer")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise InvalidArgumentError(f"offset must be a non-negative int, got {offset!r}")
    if offset + KEY_SIZE > len(target):
        raise WrongLengthError(
            f"a {KEY_SIZE}-byte shared secret at offset {offset} overruns a {len(target)}-byte buffer"
        )
    scalarmult_into(address(target) + offset, private, peer)


def scalarmult_into(out_address: int, private_key: SecureBuffer, peer_public_key: bytes) -> None:
    """X25519 into ``out_address``, for this package's callers whose arguments are checked
    (a live 32-byte private key, 32 bytes of public key, 32 writable locked bytes)."""
    failed = _X25519(out_address, address(private_key), peer_public_key)
    SCRUB()
    if failed:
        raise LowOrderPointError("X25519 peer public key is a low-order point (shared secret would be all zeros)")


class X25519PrivateKey:
    """An X25519 private key that lives in a :class:`SecureKeyBuffer`.

    ``generate()`` draws the scalar inside locked memory; ``from_buffer()`` takes
    ownership of an existing buffer. ``purge()`` (or leaving the ``with`` block) zeroes it.
    The public key is computed once and kept (it is public; a static key is asked for it on
    every handshake): do not rewrite :attr:`key_buffer` in place.
    """

    __slots__ = ("_key", "_public")

    def __init__(self, key: SecureKeyBuffer) -> None:
        self._key = secret(key, "X25519 private key", KEY_SIZE)
        self._public: bytes | None = None

    @classmethod
    def generate(cls) -> X25519PrivateKey:
        return cls(SecureKeyBuffer())

    @classmethod
    def from_buffer(cls, key: SecureKeyBuffer) -> X25519PrivateKey:
        return cls(key)

    @property
    def key_buffer(self) -> SecureKeyBuffer:
        return self._key

    def public_bytes(self) -> bytes:
        public = self._public
        if public is None or self._key.is_purged:  # a purged key has no public key any more
            public = self._public = x25519_public_key(self._key)
        return public

    def exchange(self, peer_public_key: bytes) -> SecureKeyBuffer:
        return x25519_shared_secret(self._key, peer_public_key)

    def purge(self) -> None:
        self._key.secure_purge()

    @property
    def is_purged(self) -> bool:
        return self._key.is_purged

    def __enter__(self) -> X25519PrivateKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.purge()

    def __repr__(self) -> str:
        return f"<X25519PrivateKey {'purged' if self.is_purged else 'live'}>"

    def __reduce_ex__(self, protocol: object) -> Any:
        return self._key.__reduce_ex__(protocol)
