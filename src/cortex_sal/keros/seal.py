"""The KEROS seal: attest an anonymised tensor (hash + nonce + timestamp, signed).

``signature = Sign(attestation_key, SHA-256(tensor) || nonce(16) || timestamp (f64 BE))``.
Sealing fails closed with :class:`TPMUnavailableError` when no attestation key is present:
there is no silent software fallback. The key sits behind :class:`AttestationKey`, so a
TPM backend can plug in; :class:`Ed25519AttestationKey` (signing key in locked memory) is
the explicit software key for development and tests.

Verification checks the hash, the signature and freshness (5 s), and consumes the nonce
only after every check passed; the nonce store forgets entries older than the window
(older seals are refused as stale anyway).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..clock import SYSTEM_CLOCK, Clock
from ..crypto import Ed25519SigningKey, ed25519_verify
from ..errors import InvalidArgumentError, InvalidSignatureError, SealError, TPMUnavailableError, WrongTypeError

NONCE_SIZE = 16
FRESHNESS_S = 5.0
_TS = struct.Struct(">d")


class AttestationKey(Protocol):
    """What the seal needs from an attestation key (a TPM backend implements this)."""

    def public_key(self) -> bytes: ...

    def sign(self, message: bytes) -> bytes: ...


class Ed25519AttestationKey:
    """A software attestation key: Ed25519, the signing key in locked memory."""

    def __init__(self, signing_key: Ed25519SigningKey | None = None) -> None:
        self._key = signing_key or Ed25519SigningKey.generate()

    def public_key(self) -> bytes:
        return self._key.public_key()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def purge(self) -> None:
        self._key.purge()


def tpm_attestation_key() -> AttestationKey:
    """The platform TPM's attestation key. No TPM backend exists yet: fails closed."""
    raise TPMUnavailableError("no TPM attestation backend is available on this platform")


@dataclass(frozen=True)
class Seal:
    tensor_hash: bytes
    nonce: bytes
    timestamp: float
    signature: bytes

    def signed_message(self) -> bytes:
        return self.tensor_hash + self.nonce + _TS.pack(self.timestamp)


def tensor_hash(tensor: Any) -> bytes:
    """SHA-256 over the tensor's bytes (C order), without copying a contiguous array."""
    if not isinstance(tensor, np.ndarray):
        raise WrongTypeError(f"tensor must be a numpy array, got {type(tensor).__name__}")
    arr = np.ascontiguousarray(tensor)
    return hashlib.sha256(memoryview(arr).cast("B")).digest()  # type: ignore[arg-type]  # numpy arrays export the buffer protocol; numpy's stubs do not declare Buffer


class KerosSeal:
    """Seals with an attestation key; verifies against its (or a given) public key."""

    def __init__(
        self,
        attestation_key: AttestationKey | None = None,
        *,
        verify_key: bytes | None = None,
        clock: Clock = SYSTEM_CLOCK,
        freshness_s: float = FRESHNESS_S,
    ) -> None:
        self._key = attestation_key
        self._verify_key = verify_key
        self._clock = clock
        self._freshness_s = float(freshness_s)
        self._seen: dict[bytes, float] = {}

    def seal(self, tensor: Any) -> Seal:
        if self._key is None:
            raise TPMUnavailableError("no attestation key is present: refusing to seal (fail closed)")
        digest = tensor_hash(tensor)
        nonce = os.urandom(NONCE_SIZE)
        timestamp = self._clock.time()
        unsigned = Seal(digest, nonce, timestamp, b"")
        return Seal(digest, nonce, timestamp, self._key.sign(unsigned.signed_message()))

    def verify(self, tensor: Any, seal: Seal) -> None:
        """Return if the seal is valid, fresh and unused; raise :class:`SealError` otherwise."""
        if not isinstance(seal, Seal):
            raise WrongTypeError(f"seal must be a Seal, got {type(seal).__name__}")
        public = self._verify_key if self._verify_key is not None else (self._key.public_key() if self._key else None)
        if public is None:
            raise TPMUnavailableError("no attestation public key to verify against")
        now = self._clock.time()
        self._prune(now)
        if tensor_hash(tensor) != seal.tensor_hash:
            raise SealError("tensor does not match the sealed hash")
        if not isinstance(seal.nonce, bytes) or len(seal.nonce) != NONCE_SIZE:
            raise SealError(f"seal nonce must be {NONCE_SIZE} bytes")
        ts = seal.timestamp
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise SealError("seal timestamp must be a finite number")
        try:
            ed25519_verify(public, seal.signed_message(), seal.signature)
        except InvalidSignatureError:
            raise SealError("seal signature does not verify") from None
        except (WrongTypeError, InvalidArgumentError) as exc:
            raise SealError(f"seal is malformed: {exc}") from None
        if abs(now - seal.timestamp) > self._freshness_s:
            raise SealError(f"seal is stale: {abs(now - seal.timestamp):.1f} s old (window {self._freshness_s:.0f} s)")
        if seal.nonce in self._seen:
            raise SealError("seal nonce was already used (replayed seal)")
        self._seen[seal.nonce] = seal.timestamp

    def _prune(self, now: float) -> None:
        horizon = now - self._freshness_s
        for nonce in [n for n, ts in self._seen.items() if ts < horizon]:
            del self._seen[nonce]

    @property
    def nonces_held(self) -> int:
        return len(self._seen)
