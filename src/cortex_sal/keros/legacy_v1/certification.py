"""``SensorCertificationAuthority``: the seed's API, with the session key in locked memory.

This is the fix of the seed's ``[OI-ECDH-persistence]``: the key derived by the X25519
handshake lives in a :class:`SecureKeyBuffer` from the instant HKDF writes it, the ACK's
HMAC runs on that buffer in place, and the caller purges it (``with``/``secure_purge()``/
``SecureBusSession.close()``) when the session ends.

UNAUTHENTICATED (see ``v1``): the sensor id is self-declared.
"""

from __future__ import annotations

import os
from typing import Any

from ...checks import public_bytes
from ...crypto import X25519PrivateKey
from ...errors import CortexError, InvalidArgumentError, WrongLengthError, WrongTypeError
from ...securemem import SecureKeyBuffer
from ..registry import SensorModel, SensorRegistry, sensor_id_hash
from . import keys as v1
from .messages import CHALLENGE_SIZE, PUBLIC_KEY_SIZE, SENSOR_ACK_SIZE


class SensorCertificationAuthority:
    """Admits certified sensors and runs the v1 key agreement (the seed's API)."""

    def __init__(self, registry: SensorRegistry | None = None) -> None:
        if registry is not None and not isinstance(registry, SensorRegistry):
            raise WrongTypeError(f"registry must be a SensorRegistry, got {type(registry).__name__}")
        self.registry = registry or SensorRegistry.default()

    def issue_challenge(self) -> bytes:
        """32 fresh random bytes (public)."""
        return os.urandom(CHALLENGE_SIZE)

    def new_ephemeral_key(self) -> X25519PrivateKey:
        """An X25519 private key drawn inside locked memory (``public_bytes()`` to send)."""
        return X25519PrivateKey.generate()

    def admit(self, sensor_id: str, snr_db: float | None = None, bits: int | None = None) -> SensorModel:
        return self.registry.admit(sensor_id, snr_db=snr_db, bits=bits)

    def perform_ecdh_handshake(
        self, sensor_id: str, sensor_ephemeral_pub: bytes, tee_private_key: X25519PrivateKey, challenge: bytes
    ) -> SecureKeyBuffer:
        """Admit the sensor and derive the session key straight into locked memory.

        Raises :class:`SensorNotCertifiedError` (unknown or below minimum),
        :class:`LowOrderPointError`, or a ``WrongTypeError``/``WrongLengthError``.
        """
        _check_ephemeral(tee_private_key)
        peer = public_bytes(sensor_ephemeral_pub, "sensor_ephemeral_pub", PUBLIC_KEY_SIZE)
        salt = public_bytes(challenge, "challenge", CHALLENGE_SIZE)
        self.registry.admit(sensor_id)
        return v1.derive_session_key(tee_private_key.key_buffer, peer, salt)

    def verify_sensor_ack(self, session_key: SecureKeyBuffer, challenge: bytes, sensor_ack: bytes) -> bool:
        """Constant-time check that ``sensor_ack`` is HMAC-SHA256(session_key, challenge)."""
        if not isinstance(session_key, SecureKeyBuffer):
            raise WrongTypeError(f"session_key must be a SecureKeyBuffer, got {type(session_key).__name__}")
        salt = public_bytes(challenge, "challenge", CHALLENGE_SIZE)
        ack = public_bytes(sensor_ack, "sensor_ack", SENSOR_ACK_SIZE)
        return v1.ack_is_valid(session_key, salt, ack)

    def full_handshake(
        self,
        sensor_id: str,
        sensor_ephemeral_pub: bytes,
        sensor_ack: bytes,
        tee_private_key: X25519PrivateKey,
        challenge: bytes,
    ) -> dict[str, Any]:
        """Admit, derive, verify the ACK.

        ``{"session_key": SecureKeyBuffer, "status": "ok", "session_id": bytes}`` on success
        (the caller owns the key and purges it when the session ends), or
        ``{"session_key": None, "status": "refused", "reason": str}`` - no key left behind.
        Malformed argument types raise a specific ``CortexError``.
        """
        if not isinstance(sensor_id, str) or not sensor_id:
            raise WrongTypeError(f"sensor_id must be a non-empty str, got {type(sensor_id).__name__}")
        if not isinstance(sensor_ack, bytes | bytearray | memoryview):
            raise WrongTypeError(f"sensor_ack must be bytes, got {type(sensor_ack).__name__}")
        id_hash = sensor_id_hash(sensor_id)  # refuses an id that is not valid Unicode before any key exists
        _check_ephemeral(tee_private_key)
        try:
            key = self.perform_ecdh_handshake(sensor_id, sensor_ephemeral_pub, tee_private_key, challenge)
        except (WrongTypeError, InvalidArgumentError) as exc:
            if isinstance(exc, WrongLengthError):
                return _refused(str(exc))
            raise
        except CortexError as exc:
            return _refused(str(exc))
        try:
            if len(bytes(sensor_ack)) != SENSOR_ACK_SIZE or not self.verify_sensor_ack(key, challenge, sensor_ack):
                key.secure_purge()
                return _refused("sensor ACK does not prove the session key")
        except BaseException:
            key.secure_purge()
            raise
        sid = v1.session_id(id_hash, bytes(sensor_ephemeral_pub), tee_private_key.public_bytes(), bytes(challenge))
        return {"session_key": key, "status": "ok", "session_id": sid}


def _check_ephemeral(key: object) -> None:
    if not isinstance(key, X25519PrivateKey):
        raise WrongTypeError(
            f"tee_private_key must be an X25519PrivateKey from new_ephemeral_key(), got {type(key).__name__}"
        )


def _refused(reason: str) -> dict[str, Any]:
    return {"session_key": None, "status": "refused", "reason": reason}


__all__ = ["SensorCertificationAuthority"]
