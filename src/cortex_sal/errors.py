"""The one exception hierarchy of Cortex SAL.

Every public function refuses bad input with a subclass of :class:`CortexError`.
Messages say what was wrong (type, size, state) and never carry secret material.
Where a Python built-in meaning applies, the class also derives from it
(``TypeError``/``ValueError``) so ordinary ``except`` clauses keep working.
"""

from __future__ import annotations

from enum import StrEnum


class CortexError(Exception):
    """Base class of every error raised by Cortex SAL."""


# --- bad arguments -------------------------------------------------------


class InvalidArgumentError(CortexError, ValueError):
    """An argument has an acceptable type but an unacceptable value."""


class WrongTypeError(CortexError, TypeError):
    """An argument has the wrong type."""


class WrongLengthError(InvalidArgumentError):
    """A bytes-like argument has the wrong length."""


class NotCopyableError(CortexError, TypeError):
    """A secret-holding object was asked to be pickled or copied."""


# --- secure memory -------------------------------------------------------


class SecureMemoryError(CortexError):
    """Locked memory could not be obtained, protected, or released safely."""


class MemoryLockError(SecureMemoryError):
    """The lock policy is ``strict`` and the kernel refused a protection."""


class SecureMemoryExhaustedError(SecureMemoryError, MemoryError):
    """The kernel had no memory for a secure region of a size within :data:`MAX_ALLOCATION`.

    Raised when ``mmap`` fails (``ENOMEM``, an address-space limit): nothing is mapped and no
    slot exists. A size above the maximum is an :class:`InvalidArgumentError` instead, refused
    before the kernel is asked.
    """


class CanaryCorruptedError(SecureMemoryError):
    """A slot's canary was overwritten: something wrote past a secret's end.

    The slot has been wiped all the same before this is raised.
    """


class PurgedBufferError(SecureMemoryError):
    """A secure buffer was used after it was purged (it never reads as zeros)."""


class ForkedBufferError(PurgedBufferError):
    """A secure buffer inherited across ``fork()``: the kernel wiped it in the child."""


class ProcessHardeningError(SecureMemoryError):
    """``harden_process()`` could not make the process non-dumpable or set its core limit to 0."""


# --- cryptography --------------------------------------------------------


class CryptoError(CortexError):
    """A cryptographic operation failed."""


class CryptoBackendError(CryptoError):
    """The crypto backend (libsodium) is missing, of the wrong version, or lacks a symbol."""


class LowOrderPointError(CryptoError):
    """An X25519 public key is a low-order point: the shared secret would be all zeros."""


class DecryptionError(CryptoError):
    """An AEAD ciphertext failed authentication (wrong key, nonce, AAD, or tampering)."""


class InvalidSignatureError(CryptoError):
    """An Ed25519 signature does not verify for this key and message."""


# --- KEROS: sensor certification, channel, seal --------------------------------


class SensorNotCertifiedError(CortexError):
    """A sensor is unknown to the registry, revoked, or below the capability minima."""


class ChannelCountError(InvalidArgumentError):
    """A source or frame carries another number of channels than its sensor model declares."""


class RateMismatchError(InvalidArgumentError):
    """A source samples at another rate than its sensor model's native rate (or frames are not 128 Hz)."""


class CertificateReason(StrEnum):
    """Why a certificate (or a revocation list) was refused: stable, machine-readable values."""

    MALFORMED = "malformed"
    UNKNOWN_ISSUER = "unknown_issuer"
    BAD_SIGNATURE = "bad_signature"
    WRONG_KIND = "wrong_kind"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    WRONG_KEY = "wrong_key"
    REVOKED = "revoked"
    MODEL_UNKNOWN = "model_unknown"
    MODEL_BELOW_MINIMUM = "model_below_minimum"
    MODEL_REVOKED = "model_revoked"
    STALE = "stale"


class CertificateError(SensorNotCertifiedError):
    """A certificate or revocation list is refused; ``reason`` (a :class:`CertificateReason`) says why."""

    def __init__(self, reason: CertificateReason, message: str) -> None:
        self.reason = CertificateReason(reason)
        self.message = message
        super().__init__(f"{message} (reason: {self.reason.value})")

    def __reduce__(self) -> tuple[type[CertificateError], tuple[CertificateReason, str]]:
        return (type(self), (self.reason, self.message))


class SensorBusError(CortexError):
    """Base of every sensor-channel failure (handshake, frames, session)."""


class HandshakeError(SensorBusError):
    """A handshake message was malformed, out of order, stale, or did not verify."""


class ReplayAttackError(SensorBusError):
    """A frame's sequence number is not greater than the last accepted one."""


class FrameAuthError(SensorBusError):
    """A frame failed authentication (tampered, wrong key, wrong nonce)."""


class FrameFormatError(SensorBusError):
    """A frame is truncated, oversize, or its length field disagrees with its size."""


class ProtocolError(SensorBusError):
    """A protocol's rules were broken (the record layer ``keros.framing``, the handshakes); see
    the two subclasses: who broke them, the peer or this side."""


class RemoteProtocolError(ProtocolError):
    """The peer sent what the protocol forbids (an unknown record type, an oversize or truncated
    record, bytes after CLOSE). The connection cannot continue: close it, with CLOSE if you can."""


class LocalProtocolError(ProtocolError):
    """This side asked for what the protocol forbids (an oversize body, a record after CLOSE,
    data fed after EOF or without draining). Nothing was sent or buffered: a caller's bug."""


class HandshakeMessageError(HandshakeError, RemoteProtocolError):
    """The peer's handshake message is malformed, stale, of the wrong protocol, or does not prove
    what it must (a wrong ACK). The machine is FAILED and its secrets purged."""


class HandshakeStateError(HandshakeError, LocalProtocolError):
    """A handshake call out of turn (the event has no transition from the current state), or any
    call after close or failure. Once the handshake has started, or after close, the machine is
    FAILED and its secrets purged; in START or after the hand-over nothing changes."""


class SessionExpiredError(SensorBusError):
    """The session is past its lifetime, out of sequence numbers, closed or compromised."""


class CAFileError(InvalidArgumentError):
    """A CA, identity or trust file is missing, unreadable, garbled or in the way; or a ``ca`` argument is bad."""


class SealError(CortexError):
    """A KEROS seal does not verify (hash, signature, freshness or nonce)."""


class TPMUnavailableError(SealError):
    """No attestation key is present: sealing fails closed, there is no software fallback."""


# --- SAL: the shield pipeline ----------------------------------------------------


class SchemaError(CortexError, ValueError):
    """A telemetry payload does not match the router's schema."""


class LivenessError(CortexError):
    """A liveness proof is malformed, expired, already used, or does not verify."""


class ConsentError(CortexError):
    """Consent is missing, expired, revoked, or does not cover the scope."""


class ReceiptError(ConsentError):
    """A consent receipt is malformed, altered, or its signature does not verify (or not under the expected key)."""


class ShieldError(CortexError):
    """The shield refused an operation (unknown sensor, destroyed session, ...)."""


class ClinicalChannelError(CortexError):
    """The clinical channel is closed, expired, or a message failed authentication."""


# --- governance ------------------------------------------------------------------


class ImmutablePolicyError(CortexError, AttributeError):
    """An attempt to change a threshold at run time."""


class AuditError(CortexError):
    """The audit trail refused an entry, could not be read, or was given a malformed argument."""


class GovernanceError(CortexError):
    """Base of every governance failure (nodes, proposals, quorum, bundles)."""


class ProposalError(GovernanceError):
    """A proposal is malformed, lacks a citation, is expired or was already enacted."""


class QuorumError(GovernanceError):
    """The signatures do not make a quorum (unknown, deactivated or duplicate signer, bad signature, too few)."""


class BundleError(GovernanceError):
    """An enacted bundle is malformed or cannot be applied."""


class CliInputError(GovernanceError):
    """Bad input to a governance command (a file missing or malformed, a bad argument)."""


# --- state at rest (the store) ---------------------------------------------------


class StoreError(CortexError):
    """The store (data directory, database) cannot be opened, read or written; the message says why."""


class StoreLockedError(StoreError):
    """Another process holds the data directory's lock (a second gateway on the same directory)."""


class StoreSchemaError(StoreError):
    """The database's schema is unknown or newer than this version of cortex-sal (never altered)."""


class StoreCorruptError(StoreError):
    """The database file, its WAL or its contents fail an integrity check."""


class PolicyVerificationError(StoreError):
    """The policy stored as in force does not verify against its stored registry and time of enactment."""


# --- the network service (the gateway) ---------------------------------------------


class GatewayError(CortexError):
    """The gateway or the sensor client cannot serve: a refusal for good, an unreachable gateway."""


# --- the applications' API (docs/api.md) -------------------------------------------


class ApiError(GatewayError):
    """An error answer of the applications' API; ``code`` and ``name`` are those of docs/api.md."""

    def __init__(
        self, message: str, *, code: int = 0, name: str = "api_error", sensor: str | None = None,
        stream: str | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.message, self.code, self.name = message, code, name
        self.sensor, self.stream = sensor, stream  # the subscription it ends, when it ends one


class NotAuthorizedError(ApiError):
    """No valid token on this connection: not authorised, expired, revoked, or another app's."""


class AccessDeniedError(ApiError):
    """The wearer's consent does not cover what was asked (sensor not visible, scope not granted)."""


class SubscriptionClosedError(ApiError):
    """The gateway ended a subscription: consent revoked or expired, capacity NONE, app revoked, stopping."""


class RateLimitedError(ApiError):
    """Too many requests, or a request too large: slow down."""


# --- sample sources (devices, files, streams) --------------------------------------


class SourceError(InvalidArgumentError):
    """A sample source cannot be opened or read: a file, a device, a stream, a rate that cannot be
    resampled to 128 Hz. The message says what was wrong; it never carries a sample value."""


class SourceSpecError(SourceError):
    """A ``--source`` spec (``cortex_sal.sources.open_spec``) is malformed: an unknown kind, option or
    board, a bad value; the message lists what is valid."""


class SourceDependencyError(SourceError):
    """The optional package a source needs is not installed; the message names the extra to install."""


class UnsupportedRateError(SourceError):
    """A native sampling rate whose ratio to 128 Hz is not p/q with p, q <= 1000 (or not a positive
    finite number): it cannot be resampled exactly."""
