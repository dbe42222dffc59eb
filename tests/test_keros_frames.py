"""``SecureBusSession`` frames under attack: replay, reorder, bit flips in every byte,
truncation, oversize, wrong key, expiry, sequence exhaustion - and proof that whatever the
header can answer is answered *before* the AEAD runs.

The frame format is checked byte-for-byte against an independent encoder
(``IndependentV1Sensor``, written with ``cryptography`` only).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

import cortex_sal.keros.legacy_v1.session as session_mod
from cortex_sal.errors import (
    FrameAuthError,
    FrameFormatError,
    InvalidArgumentError,
    PurgedBufferError,
    ReplayAttackError,
    SensorBusError,
    SessionExpiredError,
    WrongTypeError,
)
from cortex_sal.keros import GatewayHandshake, ManualClock, Role, SecureBusSession, SensorHandshake, State
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer, SecureTensorBuffer
from cortex_sal.testing.scenarios import IndependentV1Sensor

SENSOR = "eeg_fp1_certified_v1"
T0 = 1_800_000_000.0
OVERHEAD = 8 + 12 + 16


def handshake(clock: ManualClock | None = None, **options: Any) -> tuple[SecureBusSession, SecureBusSession]:
    clock = clock or ManualClock(T0)
    sensor = SensorHandshake(SENSOR, clock=clock)
    gateway = GatewayHandshake("gw-frames", clock=clock)
    gateway.receive_sensor_ack(sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start())))
    return sensor.session(**options), gateway.session(**options)


@pytest.fixture
def pair() -> Iterator[tuple[SecureBusSession, SecureBusSession]]:
    s, g = handshake()
    yield s, g
    s.close()
    g.close()


@pytest.fixture
def lenient() -> Iterator[tuple[SecureBusSession, SecureBusSession]]:
    s, g = handshake(compromise_on_auth_failure=False)
    yield s, g
    s.close()
    g.close()


class DecryptSpy:
    """Counts calls of the AEAD decryption the session module uses (and runs the real one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._real = session_mod.decrypt_unchecked
        monkeypatch.setattr(session_mod, "decrypt_unchecked", self)

    def __call__(self, *args: Any, **kwargs: Any) -> bool:
        self.calls += 1
        return bool(self._real(*args, **kwargs))


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> DecryptSpy:
    return DecryptSpy(monkeypatch)


def opened(session: SecureBusSession, frame: bytes, expected: bytes) -> None:
    with session.decrypt_frame(frame) as got:
        assert got.constant_time_compare(expected)


def keys_of(session: SecureBusSession) -> list[SecureKeyBuffer]:
    return [session.session_key, session._send_key, session._recv_key]


# -- baseline ---------------------------------------------------------------------------------


def test_frames_round_trip_and_the_spy_sees_every_decryption(
    pair: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy
) -> None:
    s, g = pair
    for n in (1, 2, 255, 4096, 8192):
        payload = bytes((i * 7 + n) % 256 for i in range(n))
        frame = s.encrypt_frame(payload)
        assert len(frame) == OVERHEAD + n
        opened(g, frame, payload)
    assert spy.calls == 5
    with SecureBuffer.from_bytes(b"secret samples") as secret_payload:
        opened(g, s.encrypt_frame(secret_payload), b"secret samples")  # read in place
    assert g.last_accepted_seq == 6 == s.sent_seq


def test_the_two_directions_use_different_keys(pair: tuple[SecureBusSession, SecureBusSession]) -> None:
    s, g = pair
    up = s.encrypt_frame(b"same payload")
    down = g.encrypt_frame(b"same payload")
    assert up[:20] == down[:20]  # same seq, same nonce ...
    assert up[20:] != down[20:]  # ... so a shared key would have repeated the keystream
    with pytest.raises(FrameAuthError):
        s.decrypt_frame(up)  # a sensor's own frame reflected back to it


# -- replay and reorder ---------------------------------------------------------------------------


def test_replay_refused_before_decryption_and_session_stays_established(
    pair: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy
) -> None:
    s, g = pair
    frame = s.encrypt_frame(b"sample one")
    opened(g, frame, b"sample one")
    assert spy.calls == 1
    for _ in range(3):
        with pytest.raises(ReplayAttackError) as info:
            g.decrypt_frame(frame)
        assert "1" in str(info.value)
    assert spy.calls == 1
    assert g.state is State.ESTABLISHED and not g.session_key.is_purged
    opened(g, s.encrypt_frame(b"sample two"), b"sample two")


def test_reorder_refused(pair: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy) -> None:
    s, g = pair
    f1, f2, f3 = (s.encrypt_frame(bytes([i]) * 10) for i in (1, 2, 3))
    opened(g, f2, bytes([2]) * 10)
    with pytest.raises(ReplayAttackError):
        g.decrypt_frame(f1)
    assert spy.calls == 1
    assert g.state is State.ESTABLISHED
    opened(g, f3, bytes([3]) * 10)
    assert g.last_accepted_seq == 3


def test_gaps_are_accepted(pair: tuple[SecureBusSession, SecureBusSession]) -> None:
    s, g = pair
    frames = [s.encrypt_frame(bytes([i]) * 3) for i in range(1, 6)]
    opened(g, frames[0], b"\x01" * 3)
    opened(g, frames[4], b"\x05" * 3)  # frames 2-4 lost on the bus
    assert g.last_accepted_seq == 5


# -- a bit flipped everywhere ---------------------------------------------------------------------


def test_bit_flip_in_every_position(lenient: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy) -> None:
    s, g = lenient
    for i in range(1, 5):  # last accepted = 4, so some seq flips land at or below it
        opened(g, s.encrypt_frame(bytes([i])), bytes([i]))
    payload = b"EEG!"
    frame = s.encrypt_frame(payload)
    assert struct.unpack(">I", frame[:4]) == (5,) and len(frame) == OVERHEAD + 4
    calls = spy.calls
    seen: dict[type, int] = {}
    for pos in range(len(frame)):
        for bit in range(8):
            bad = bytearray(frame)
            bad[pos] ^= 1 << bit
            if pos < 4:
                new_seq = struct.unpack(">I", bad[:4])[0]
                expected: type = ReplayAttackError if new_seq <= 4 else FrameAuthError
                decrypts = False
            elif pos < 8:
                expected, decrypts = FrameFormatError, False
            elif pos < 20:
                expected, decrypts = FrameAuthError, False
            else:
                expected, decrypts = FrameAuthError, True
            with pytest.raises(SensorBusError) as info:
                g.decrypt_frame(bytes(bad))
            assert type(info.value) is expected, f"byte {pos} bit {bit}: {type(info.value).__name__}: {info.value}"
            assert spy.calls == calls + decrypts, f"byte {pos} bit {bit}: decryption ran={not decrypts}"
            calls = spy.calls
            seen[expected] = seen.get(expected, 0) + 1
            assert g.state is State.ESTABLISHED
    assert seen[ReplayAttackError] == 2  # seq 5 -> 4 and 5 -> 1
    assert seen[FrameAuthError] == 30 + 96 + 8 * 20
    assert seen[FrameFormatError] == 32
    # the session survived the whole loop and the untouched frame still opens
    assert g.last_accepted_seq == 4
    opened(g, frame, payload)


def test_default_policy_compromises_and_purges_on_auth_failure(
    pair: tuple[SecureBusSession, SecureBusSession],
) -> None:
    s, g = pair
    frame = bytearray(s.encrypt_frame(b"sample"))
    frame[25] ^= 0x10
    keys = keys_of(g)
    with pytest.raises(FrameAuthError):
        g.decrypt_frame(bytes(frame))
    assert g.state is State.FAILED
    assert all(k.is_purged for k in keys)
    with pytest.raises(PurgedBufferError):
        g.session_key.constant_time_compare(bytes(32))
    frame[25] ^= 0x10  # even the genuine frame is refused now
    with pytest.raises(SessionExpiredError, match="FAILED"):
        g.decrypt_frame(bytes(frame))
    with pytest.raises(SessionExpiredError):
        g.encrypt_frame(b"x")


def test_default_policy_compromises_on_a_bad_nonce(
    pair: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy
) -> None:
    s, g = pair
    frame = bytearray(s.encrypt_frame(b"sample"))
    frame[19] ^= 1  # the session-id part of the nonce
    with pytest.raises(FrameAuthError, match="nonce"):
        g.decrypt_frame(bytes(frame))
    assert spy.calls == 0
    assert g.state is State.FAILED and g.session_key.is_purged


def test_lenient_policy_keeps_keys_after_auth_failure(lenient: tuple[SecureBusSession, SecureBusSession]) -> None:
    s, g = lenient
    frame = bytearray(s.encrypt_frame(b"sample"))
    frame[-1] ^= 1
    with pytest.raises(FrameAuthError):
        g.decrypt_frame(bytes(frame))
    assert g.state is State.ESTABLISHED and not any(k.is_purged for k in keys_of(g))
    assert g.last_accepted_seq == 0  # a failed frame does not move the window
    frame[-1] ^= 1
    opened(g, bytes(frame), b"sample")


# -- format errors --------------------------------------------------------------------------------


def _with_length(frame: bytes, length: int) -> bytes:
    return frame[:4] + struct.pack(">I", length) + frame[8:]


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda f: f[:-1], id="drop last byte"),
        pytest.param(lambda f: f[:8], id="header only"),
        pytest.param(lambda f: f[:20], id="header and nonce"),
        pytest.param(lambda f: f[:OVERHEAD], id="no ciphertext"),
        pytest.param(lambda f: b"", id="empty"),
        pytest.param(lambda f: f + b"\x00", id="extra byte"),
        pytest.param(lambda f: _with_length(f, 9), id="length one short"),
        pytest.param(lambda f: _with_length(f, 11), id="length one long"),
        pytest.param(lambda f: _with_length(f, 0), id="length zero"),
        pytest.param(lambda f: _with_length(f, 8193), id="length above max"),
        pytest.param(lambda f: _with_length(f, 0xFFFFFFFF), id="length u32 max"),
    ],
)
def test_format_errors_refused_before_decryption(
    mangle: Any, pair: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy
) -> None:
    s, g = pair
    frame = s.encrypt_frame(b"0123456789")
    bad = mangle(frame)
    with pytest.raises(FrameFormatError):
        g.decrypt_frame(bad)
    assert spy.calls == 0
    assert g.state is State.ESTABLISHED  # a malformed frame proves nothing about the key
    opened(g, frame, b"0123456789")


def test_length_and_size_agreeing_on_a_shorter_frame_fails_auth(
    lenient: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy
) -> None:
    s, g = lenient
    frame = s.encrypt_frame(b"0123456789")
    # an attacker cuts a byte and fixes up the length field: the header is in the AAD
    with pytest.raises(FrameAuthError):
        g.decrypt_frame(_with_length(frame, 9)[:-1])
    assert spy.calls == 1


def test_oversize_payload_refused_at_encrypt(pair: tuple[SecureBusSession, SecureBusSession]) -> None:
    s, g = pair
    with pytest.raises(FrameFormatError, match="8192"):
        s.encrypt_frame(bytes(8193))
    with pytest.raises(FrameFormatError):
        s.encrypt_frame(b"")
    with SecureBuffer(8193) as big, pytest.raises(FrameFormatError):
        s.encrypt_frame(big)
    assert s.sent_seq == 0 and s.state is State.ESTABLISHED
    opened(g, s.encrypt_frame(bytes(8192)), bytes(8192))  # the maximum itself is fine
    with pytest.raises(WrongTypeError):
        s.encrypt_frame("text")  # type: ignore[arg-type]


def test_frame_announcing_more_than_the_maximum_refused(
    pair: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy
) -> None:
    _s, g = pair
    # a consistent frame (size matches the length field) of 8193 payload bytes
    forged = struct.pack(">II", 1, 8193) + struct.pack(">Q", 1) + g.session_id[:4] + bytes(8193 + 16)
    with pytest.raises(FrameFormatError, match="maximum"):
        g.decrypt_frame(forged)
    assert spy.calls == 0 and g.state is State.ESTABLISHED


def test_non_bytes_frames_refused(pair: tuple[SecureBusSession, SecureBusSession]) -> None:
    _, g = pair
    for bad in ("frame", None, 42, [1, 2, 3]):
        with pytest.raises(WrongTypeError):
            g.decrypt_frame(bad)  # type: ignore[arg-type]


# -- wrong key ---------------------------------------------------------------------------------------


def test_frame_from_another_handshake_refused(lenient: tuple[SecureBusSession, SecureBusSession]) -> None:
    s, g = lenient
    other_s, other_g = handshake()
    with other_s, other_g:
        with pytest.raises(FrameAuthError):
            g.decrypt_frame(other_s.encrypt_frame(b"not yours"))
    opened(g, s.encrypt_frame(b"yours"), b"yours")


def test_wrong_key_same_session_id_fails_in_the_aead(
    pair: tuple[SecureBusSession, SecureBusSession], spy: DecryptSpy
) -> None:
    s, g = pair
    # same session id (so the nonce check passes), a different key: only the tag can tell
    with SecureBusSession(SecureKeyBuffer(), g.session_id, Role.GATEWAY) as impostor:
        with pytest.raises(FrameAuthError):
            impostor.decrypt_frame(s.encrypt_frame(b"sample"))
        assert spy.calls == 1
        assert impostor.state is State.FAILED


# -- decrypt into the caller's buffer -------------------------------------------------------------------


def test_decrypt_into_a_secure_buffer_at_an_offset(pair: tuple[SecureBusSession, SecureBusSession]) -> None:
    s, g = pair
    payload = b"sixteen byte msg"
    with SecureBuffer(64) as out:
        returned = g.decrypt_frame(s.encrypt_frame(payload), out=out, offset=10)
        assert returned is out
        with out.export_bytearray() as raw:
            assert bytes(raw) == bytes(10) + payload + bytes(38)
        g.decrypt_frame(s.encrypt_frame(b"\xff\xff"), out=out, offset=62)
        with out.export_bytearray() as raw:
            assert bytes(raw[62:]) == b"\xff\xff" and bytes(raw[10:26]) == payload


def test_decrypt_into_a_tensor_buffer(pair: tuple[SecureBusSession, SecureBusSession]) -> None:
    s, g = pair
    samples = np.array([1.5, -2.25, 3.0e-6], dtype=np.float64)
    with SecureTensorBuffer((8,), np.float64) as tensor:
        g.decrypt_frame(s.encrypt_frame(samples.tobytes()), out=tensor, offset=2 * 8)
        arr = tensor.array
        assert np.array_equal(arr[2:5], samples)
        assert not arr[:2].any() and not arr[5:].any()
        del arr


def test_decrypt_into_a_too_small_buffer_does_not_consume_the_seq(
    pair: tuple[SecureBusSession, SecureBusSession],
) -> None:
    s, g = pair
    frame = s.encrypt_frame(b"0123456789")
    with SecureBuffer(12) as out:
        with pytest.raises(InvalidArgumentError):
            g.decrypt_frame(frame, out=out, offset=3)
        with pytest.raises(WrongTypeError):
            g.decrypt_frame(frame, out=bytearray(16))  # type: ignore[arg-type]
        assert g.last_accepted_seq == 0 and g.state is State.ESTABLISHED
        g.decrypt_frame(frame, out=out, offset=2)
        with out.export_bytearray() as raw:
            assert bytes(raw) == b"\x00\x00" + b"0123456789"


# -- lifetime and exhaustion --------------------------------------------------------------------------


def test_session_expires_after_four_hours(spy: DecryptSpy) -> None:
    clock = ManualClock(T0)
    s, g = handshake(clock)
    frame = s.encrypt_frame(b"early")
    clock.advance(4 * 3600 - 1)
    opened(g, s.encrypt_frame(b"late but in time"), b"late but in time")
    calls = spy.calls
    clock.advance(1)
    keys = keys_of(g) + keys_of(s)
    with pytest.raises(SessionExpiredError, match="lifetime"):
        g.decrypt_frame(frame)
    with pytest.raises(SessionExpiredError, match="lifetime"):
        s.encrypt_frame(b"too late")
    assert spy.calls == calls
    assert g.state is s.state is State.EXPIRED
    assert all(k.is_purged for k in keys)
    with pytest.raises(SessionExpiredError):
        g.encrypt_frame(b"x")


def test_custom_lifetime() -> None:
    clock = ManualClock(T0)
    s, g = handshake(clock, lifetime_s=10.0)
    clock.advance(10)
    with pytest.raises(SessionExpiredError):
        s.encrypt_frame(b"x")
    g.close()


def test_sequence_exhaustion_on_the_send_side() -> None:
    s, g = handshake(max_seq=3)
    with g:
        opened(g, s.encrypt_frame(b"1"), b"1")
        opened(g, s.encrypt_frame(b"2"), b"2")
        keys = keys_of(s)
        with pytest.raises(SessionExpiredError, match="exhausted"):
            s.encrypt_frame(b"3")
        assert s.state is State.EXPIRED and all(k.is_purged for k in keys)
        assert s.sent_seq == 2


def test_sequence_exhaustion_on_the_receive_side(spy: DecryptSpy) -> None:
    clock = ManualClock(T0)
    sensor = SensorHandshake(SENSOR, clock=clock)
    gateway = GatewayHandshake("gw", clock=clock)
    gateway.receive_sensor_ack(sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start())))
    s = sensor.session()  # the sender may go on ...
    g = gateway.session(max_seq=3)  # ... the receiver stops at 3
    with s:
        frames = [s.encrypt_frame(bytes([i])) for i in (1, 2, 3)]
        opened(g, frames[0], b"\x01")
        opened(g, frames[1], b"\x02")
        keys = keys_of(g)
        calls = spy.calls
        with pytest.raises(SessionExpiredError):
            g.decrypt_frame(frames[2])
        assert spy.calls == calls
        assert g.state is State.EXPIRED and all(k.is_purged for k in keys)


def test_max_seq_is_validated() -> None:
    for bad in (0, 1, 2**32, -5, 2.5):
        with pytest.raises(InvalidArgumentError):
            handshake(max_seq=bad)


# -- decryption is not even attempted when the header already tells ----------------------------------------


def test_no_decryption_for_header_answerable_refusals(spy: DecryptSpy) -> None:
    clock = ManualClock(T0)
    s, g = handshake(clock, compromise_on_auth_failure=False)
    f1 = s.encrypt_frame(b"one")
    f2 = s.encrypt_frame(b"two")
    opened(g, f2, b"two")
    assert spy.calls == 1
    for attempt in (
        lambda: g.decrypt_frame(f2),  # replay
        lambda: g.decrypt_frame(f1),  # reorder
        lambda: g.decrypt_frame(f2[:-1]),  # truncated
        lambda: g.decrypt_frame(_with_length(s.encrypt_frame(b"three"), 4)),  # length mismatch
    ):
        with pytest.raises(SensorBusError):
            attempt()
    assert spy.calls == 1
    tampered = bytearray(s.encrypt_frame(b"four"))
    tampered[22] ^= 1
    with pytest.raises(FrameAuthError):
        g.decrypt_frame(bytes(tampered))
    assert spy.calls == 2  # the ciphertext needs the AEAD to tell
    fresh = s.encrypt_frame(b"five")  # a genuine frame, sent just before the lifetime ends
    clock.advance(4 * 3600)
    with pytest.raises(SessionExpiredError):
        g.decrypt_frame(fresh)
    assert spy.calls == 2
    s.close()


# -- the wire format against an independent encoder -----------------------------------------------------


def _oracle_pair() -> tuple[IndependentV1Sensor, SecureBusSession]:
    clock = ManualClock(T0)
    indep = IndependentV1Sensor(SENSOR)
    gateway = GatewayHandshake("gw", clock=clock)
    gateway.receive_sensor_ack(indep.receive_tee_hello(gateway.receive_sensor_hello(indep.hello(now=clock.time()))))
    return indep, gateway.session()


def test_frame_format_matches_an_independent_encoder_byte_for_byte() -> None:
    indep, gateway = _oracle_pair()
    # our encoder in the sensor role, keyed with the oracle's session key and id
    ours = SecureBusSession(SecureKeyBuffer(indep.session_key), indep.session_id, Role.SENSOR)
    with ours, gateway:
        for n in (1, 7, 64, 8192):
            payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
            mine, theirs = ours.encrypt_frame(payload), indep.frame(payload)
            assert mine == theirs
            seq, length = struct.unpack(">II", mine[:8])
            assert (seq, length) == (indep.seq, n)
            assert mine[8:20] == struct.pack(">Q", seq) + indep.session_id[:4]
            assert len(mine) == 8 + 12 + n + 16
            opened(gateway, theirs, payload)


def test_gateway_frames_match_the_oracle_aead() -> None:
    indep, gateway = _oracle_pair()
    with gateway:
        for seq in range(1, 4):
            payload = f"reply {seq}".encode()
            frame = gateway.encrypt_frame(payload)
            header = struct.pack(">II", seq, len(payload))
            nonce = struct.pack(">Q", seq) + indep.session_id[:4]
            assert frame == header + nonce + ChaCha20Poly1305(indep.g2s).encrypt(nonce, payload, header)
            assert indep.open(frame) == payload


def test_header_is_authenticated_as_associated_data() -> None:
    indep, gateway = _oracle_pair()
    with gateway:
        # an oracle frame whose AEAD was computed without the header as AAD must fail
        payload = b"sample"
        header = struct.pack(">II", 1, len(payload))
        nonce = struct.pack(">Q", 1) + indep.session_id[:4]
        no_aad = header + nonce + ChaCha20Poly1305(indep.s2g).encrypt(nonce, payload, None)
        with pytest.raises(FrameAuthError):
            gateway.decrypt_frame(no_aad)


def test_a_forged_header_beyond_the_limit_does_not_end_the_session(spy: DecryptSpy) -> None:
    s, g = handshake(max_seq=5)
    with s, g:
        opened(g, s.encrypt_frame(b"1"), b"1")
        forged = struct.pack(">II", 7, 1) + struct.pack(">Q", 7) + g.session_id[:4] + bytes(17)
        calls = spy.calls
        with pytest.raises(SessionExpiredError, match="beyond the sequence limit"):
            g.decrypt_frame(forged)
        assert spy.calls == calls
        assert g.state is State.ESTABLISHED
        opened(g, s.encrypt_frame(b"2"), b"2")
