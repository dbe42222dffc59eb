"""The v1 key schedule, shared by the seed's API and the sans-IO handshakes.

UNAUTHENTICATED: v1 proves only that *someone* did the Diffie-Hellman. Anyone can run it
and a man in the middle can talk to both ends. It is kept for compatibility with the
seed's design; the authenticated channel (Noise XX with certified keys) replaces it.

* ``session_key = HKDF-SHA256(ikm = X25519(e_s, e_g), salt = challenge,
  info = "cortex-sensor-ecdh-handshake-v1", L = 32)`` (SYSTEM.md, exactly);
* ``SensorAck = HMAC-SHA256(session_key, challenge)``;
* ``session_id = SHA-256("cortex-sensor-session-v1" || sensor_id_hash || e_s.pub ||
  e_g.pub || challenge)`` - public; its first 4 bytes end every frame nonce;
* frame keys, one per direction so that the two directions never share a (key, nonce):
  ``HKDF-Expand(PRK = session_key, info = "cortex-sensor-frames-v1 " + direction, 32)``.
"""

from __future__ import annotations

import hashlib

from ...crypto import hkdf_expand_into, hkdf_sha256, hmac_sha256, hmac_sha256_verify, x25519_shared_secret
from ...securemem import SecureKeyBuffer

HANDSHAKE_INFO = b"cortex-sensor-ecdh-handshake-v1"
SESSION_ID_LABEL = b"cortex-sensor-session-v1"
SENSOR_TO_GATEWAY = b"cortex-sensor-frames-v1 sensor->gateway"
GATEWAY_TO_SENSOR = b"cortex-sensor-frames-v1 gateway->sensor"


def derive_session_key(private_key: SecureKeyBuffer, peer_public: bytes, challenge: bytes) -> SecureKeyBuffer:
    """X25519 then HKDF; the shared secret is purged the line after its last use."""
    with x25519_shared_secret(private_key, peer_public) as shared:
        key: SecureKeyBuffer = hkdf_sha256(shared, salt=challenge, info=HANDSHAKE_INFO)  # type: ignore[assignment]  # 32 bytes: a key buffer
    return key


def compute_ack(session_key: SecureKeyBuffer, challenge: bytes) -> bytes:
    return hmac_sha256(session_key, challenge)


def ack_is_valid(session_key: SecureKeyBuffer, challenge: bytes, ack: bytes) -> bool:
    return hmac_sha256_verify(session_key, ack, challenge)


def session_id(sensor_id_hash: bytes, sensor_public: bytes, gateway_public: bytes, challenge: bytes) -> bytes:
    return hashlib.sha256(SESSION_ID_LABEL + sensor_id_hash + sensor_public + gateway_public + challenge).digest()


def frame_key(session_key: SecureKeyBuffer, direction: bytes) -> SecureKeyBuffer:
    key = SecureKeyBuffer.allocate()
    try:
        hkdf_expand_into(session_key, direction, key)
    except BaseException:
        key.secure_purge()
        raise
    return key
