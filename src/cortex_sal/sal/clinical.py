"""The clinical channel: one direction of an encrypted stream to a clinician's endpoint.

``ClinicalChannel.establish(peer_public, role)`` draws an ephemeral X25519 key in locked
memory, computes the shared secret with the peer's public key, and purges the private key
and the shared secret at once. The channel key is::

    HKDF-SHA256(ikm  = X25519 shared secret,
                salt = SHA-256(min(pub_a, pub_b) || max(pub_a, pub_b)),
                info = b"cortex-clinical-stream-v1", L = 32)

held in a :class:`~cortex_sal.securemem.SecureKeyBuffer` and never turned into ``bytes``.
A message is::

    counter (u64 BE, 1, 2, ...) || ChaCha20-Poly1305(key, nonce = 4 zero bytes || counter,
                                                     aad = counter || aad)

A channel is either a ``"sender"`` (it may only ``seal``) or a ``"receiver"`` (it may only
``open``), so the two ends never use the same (key, nonce) pair. A peer that follows these
lines with any RFC 7748 / 5869 / 8439 library interoperates (the tests use
``cryptography``).

Choices where docs/sal.md is silent (what a demanding user expects):

* ``peer_public`` must be exactly 32 bytes (``WrongLengthError``, a ``ValueError``); a
  low-order point is refused with ``LowOrderPointError`` (the shared secret would be all
  zeros). Both are argument errors raised by ``establish``; ``ClinicalChannelError`` is kept
  for a channel that is closed, expired, used in the wrong role, or fed a bad message.
  Nothing stays in locked memory when ``establish`` fails.
* ``open`` checks the counter *before* it decrypts and moves the last accepted counter only
  once the tag verified; gaps are allowed (lost messages), going back or repeating is not.
  A message that fails authentication is refused and the channel stays usable: one forged
  message must not let an on-path attacker tear the stream down (genuine later messages
  still open).
* An empty plaintext is refused by ``seal`` (``InvalidArgumentError``) and an empty-plaintext
  message by ``open``: ``open`` returns a secure buffer, which cannot be empty.
* The channel expires when ``clock.monotonic()`` reaches ``established + lifetime_s`` (the
  boundary itself is expired, as in the KEROS session); the key is purged at that moment.
  ``public_key`` stays readable after close (it is public); ``seal``/``open`` raise.
* The counter is a u64: a sender that would pass 2**64 - 1 closes and raises (unreachable in
  practice, but never wraps). ``seal`` and ``open`` are serialised by a lock, so two threads
  never draw the same counter.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
from typing import Any

from ..checks import public_bytes
from ..clock import SYSTEM_CLOCK, Clock
from ..crypto import X25519PrivateKey, aead_decrypt, aead_encrypt, hkdf_sha256
from ..errors import (
    ClinicalChannelError,
    DecryptionError,
    InvalidArgumentError,
    NotCopyableError,
    WrongTypeError,
)
from ..securemem import SecureBuffer, SecureKeyBuffer

INFO = b"cortex-clinical-stream-v1"
LIFETIME_S = 4 * 3600.0
PUBLIC_KEY_SIZE = 32
COUNTER_SIZE = 8
TAG_SIZE = 16
NONCE_PREFIX = bytes(4)
MAX_COUNTER = 2**64 - 1
ROLES = ("sender", "receiver")

_COUNTER = struct.Struct(">Q")


def channel_salt(public_a: bytes, public_b: bytes) -> bytes:
    """``SHA-256(min(pubs) || max(pubs))``: both ends compute the same salt."""
    low, high = sorted((public_a, public_b))
    return hashlib.sha256(low + high).digest()


class ClinicalChannel:
    """One direction of the clinical stream. Build it with :meth:`establish`."""

    __slots__ = ("_clock", "_closed_why", "_counter", "_expires_at", "_key", "_lock", "peer_public_key", "public_key",
                 "role")  # fmt: skip
    # set by establish() on an instance made with object.__new__ (the constructor refuses)
    _key: SecureKeyBuffer
    _clock: Clock
    _expires_at: float
    _counter: int  # sender: last sealed; receiver: last accepted
    _lock: threading.Lock
    _closed_why: str
    public_key: bytes
    peer_public_key: bytes
    role: str

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise ClinicalChannelError("use ClinicalChannel.establish(peer_public, role) to build a channel")

    @classmethod
    def establish(
        cls,
        peer_public: bytes,
        role: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        lifetime_s: float = LIFETIME_S,
    ) -> ClinicalChannel:
        """Run the X25519 exchange with ``peer_public`` and derive the channel key.

        ``role`` is ``"sender"`` or ``"receiver"``. Our ephemeral private key and the shared
        secret are purged before this returns; only the channel key remains, in locked memory.
        """
        if not isinstance(role, str):
            raise WrongTypeError(f"role must be a str, got {type(role).__name__}")
        if role not in ROLES:
            raise InvalidArgumentError(f"role must be one of {ROLES}, got {role!r}")
        if isinstance(lifetime_s, bool) or not isinstance(lifetime_s, int | float):
            raise WrongTypeError(f"lifetime_s must be a number, got {type(lifetime_s).__name__}")
        if not (math.isfinite(lifetime_s) and lifetime_s > 0):
            raise InvalidArgumentError(f"lifetime_s must be a positive finite number, got {lifetime_s!r}")
        peer = public_bytes(peer_public, "clinical peer public key", PUBLIC_KEY_SIZE)
        with X25519PrivateKey.generate() as ephemeral:
            ours = ephemeral.public_bytes()
            with ephemeral.exchange(peer) as shared:  # LowOrderPointError for a low-order point
                key = hkdf_sha256(shared, salt=channel_salt(ours, peer), info=INFO, length=32)
        if not isinstance(key, SecureKeyBuffer):  # pragma: no cover - hkdf_sha256 contract
            key.secure_purge()
            raise ClinicalChannelError("key derivation did not yield a 32-byte key buffer")
        channel = object.__new__(cls)
        channel._key = key
        channel._clock = clock
        channel._expires_at = clock.monotonic() + float(lifetime_s)
        channel._counter = 0  # sender: last sealed; receiver: last accepted
        channel._lock = threading.Lock()
        channel._closed_why = ""
        channel.public_key = ours
        channel.peer_public_key = peer
        channel.role = role
        return channel

    # -- lifecycle -------------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        return self._key.is_purged

    @property
    def counter(self) -> int:
        """Sender: the last counter sealed. Receiver: the last counter accepted. 0 before any."""
        return self._counter

    def close(self) -> None:
        """Zero the channel key. Idempotent."""
        with self._lock:
            self._end("closed")

    def _end(self, why: str) -> None:
        if not self._key.is_purged:
            self._closed_why = why
            self._key.secure_purge()

    def __enter__(self) -> ClinicalChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_usable(self, role: str) -> None:
        """Raise unless the channel is live, in its lifetime, and ``role`` is ours. Holds the lock."""
        if self._key.is_purged:
            raise ClinicalChannelError(f"clinical channel is {self._closed_why}; establish a new one")
        if self._clock.monotonic() >= self._expires_at:
            self._end("expired (key lifetime reached)")
            raise ClinicalChannelError("clinical channel key lifetime reached; establish a new one")
        if self.role != role:
            verb = "seal" if role == "sender" else "open"
            raise ClinicalChannelError(f"a {self.role} channel may not {verb} (one direction per channel)")

    # -- messages --------------------------------------------------------------------

    def seal(self, plaintext: bytes | SecureBuffer, aad: bytes = b"") -> bytes:
        """``counter || ciphertext || tag`` for a non-empty plaintext (a secure buffer is read in place)."""
        if isinstance(plaintext, SecureBuffer):
            length = len(plaintext)
        elif isinstance(plaintext, bytes | bytearray | memoryview):
            length = memoryview(plaintext).nbytes
        else:
            raise WrongTypeError(f"plaintext must be bytes or a SecureBuffer, got {type(plaintext).__name__}")
        aad_b = public_bytes(aad, "clinical associated data")
        if length == 0:
            raise InvalidArgumentError("an empty plaintext cannot be sealed on the clinical channel")
        with self._lock:
            self._check_usable("sender")
            if self._counter >= MAX_COUNTER:
                self._end("exhausted (message counter reached 2**64 - 1)")
                raise ClinicalChannelError("clinical channel counter exhausted; establish a new one")
            counter = self._counter + 1
            header = _COUNTER.pack(counter)
            sealed = aead_encrypt(self._key, NONCE_PREFIX + header, plaintext, header + aad_b)
            self._counter = counter
        return header + sealed

    def open(self, message: bytes, aad: bytes = b"") -> SecureBuffer:
        """Verify and decrypt one message into a new secure buffer (the caller purges it).

        Refused with :class:`~cortex_sal.errors.ClinicalChannelError`: a counter not above the
        last accepted one (replay, reorder), a message too short to hold a plaintext, a tag
        that does not verify (tampering, wrong key or AAD).
        """
        if not isinstance(message, bytes | bytearray | memoryview):
            raise WrongTypeError(f"message must be bytes, got {type(message).__name__}")
        msg = bytes(message)
        aad_b = public_bytes(aad, "clinical associated data")
        with self._lock:
            self._check_usable("receiver")
            if len(msg) < COUNTER_SIZE + TAG_SIZE + 1:
                raise ClinicalChannelError(
                    f"clinical message of {len(msg)} bytes is too short (minimum {COUNTER_SIZE + TAG_SIZE + 1})"
                )
            header = msg[:COUNTER_SIZE]
            (counter,) = _COUNTER.unpack(header)
            if counter <= self._counter:
                raise ClinicalChannelError(
                    f"clinical message counter {counter} is not above the last accepted {self._counter} (replay)"
                )
            try:
                plaintext = aead_decrypt(self._key, NONCE_PREFIX + header, msg[COUNTER_SIZE:], header + aad_b)
            except DecryptionError:
                raise ClinicalChannelError(f"clinical message {counter} failed authentication") from None
            self._counter = counter
        return plaintext

    # -- refusals ----------------------------------------------------------------------

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError("a ClinicalChannel holds a key and cannot be pickled")

    def __copy__(self) -> Any:
        raise NotCopyableError("a ClinicalChannel holds a key and cannot be copied")

    def __deepcopy__(self, memo: object) -> Any:
        raise NotCopyableError("a ClinicalChannel holds a key and cannot be copied")

    def __repr__(self) -> str:
        state = f"closed ({self._closed_why})" if self.is_closed else "live"
        return f"<ClinicalChannel {self.role} {state} counter={self._counter}>"


__all__ = ["INFO", "LIFETIME_S", "ClinicalChannel", "channel_salt"]
