"""The v1 handshake messages: fixed sizes, parsed size-first, immutable. A peer's message that
cannot be parsed raises ``HandshakeMessageError`` (a ``RemoteProtocolError``).

``SensorHello`` = sensor_id_hash(32) || ephemeral X25519 pub(32) || timestamp ms (u64 BE)
``TEEHello``    = gateway_id_hash(32) || ephemeral pub(32) || challenge(32)
``SensorAck``   = HMAC-SHA256(session_key, challenge)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ...errors import HandshakeError, HandshakeMessageError

HASH_SIZE = 32
PUBLIC_KEY_SIZE = 32
CHALLENGE_SIZE = 32
SENSOR_HELLO_SIZE = 72
TEE_HELLO_SIZE = 96
SENSOR_ACK_SIZE = 32


def _exact(data: object, size: int, name: str, error: type[HandshakeError] = HandshakeError) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise error(f"{name} must be bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) != size:
        raise error(f"{name} must be exactly {size} bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class SensorHello:
    sensor_id_hash: bytes
    ephemeral_public: bytes
    timestamp_ms: int

    def __post_init__(self) -> None:
        _exact(self.sensor_id_hash, HASH_SIZE, "SensorHello.sensor_id_hash")
        _exact(self.ephemeral_public, PUBLIC_KEY_SIZE, "SensorHello.ephemeral_public")
        if not isinstance(self.timestamp_ms, int) or not 0 <= self.timestamp_ms < 2**64:
            raise HandshakeError("SensorHello.timestamp_ms must be an unsigned 64-bit int")

    def to_bytes(self) -> bytes:
        return self.sensor_id_hash + self.ephemeral_public + struct.pack(">Q", self.timestamp_ms)

    @classmethod
    def parse(cls, data: bytes) -> SensorHello:
        raw = _exact(data, SENSOR_HELLO_SIZE, "SensorHello", HandshakeMessageError)
        (ts,) = struct.unpack(">Q", raw[64:72])
        return cls(raw[0:32], raw[32:64], ts)


@dataclass(frozen=True)
class TEEHello:
    gateway_id_hash: bytes
    ephemeral_public: bytes
    challenge: bytes

    def __post_init__(self) -> None:
        _exact(self.gateway_id_hash, HASH_SIZE, "TEEHello.gateway_id_hash")
        _exact(self.ephemeral_public, PUBLIC_KEY_SIZE, "TEEHello.ephemeral_public")
        _exact(self.challenge, CHALLENGE_SIZE, "TEEHello.challenge")

    def to_bytes(self) -> bytes:
        return self.gateway_id_hash + self.ephemeral_public + self.challenge

    @classmethod
    def parse(cls, data: bytes) -> TEEHello:
        raw = _exact(data, TEE_HELLO_SIZE, "TEEHello", HandshakeMessageError)
        return cls(raw[0:32], raw[32:64], raw[64:96])


@dataclass(frozen=True)
class SensorAck:
    tag: bytes

    def __post_init__(self) -> None:
        _exact(self.tag, SENSOR_ACK_SIZE, "SensorAck.tag")

    def to_bytes(self) -> bytes:
        return self.tag

    @classmethod
    def parse(cls, data: bytes) -> SensorAck:
        return cls(_exact(data, SENSOR_ACK_SIZE, "SensorAck", HandshakeMessageError))
