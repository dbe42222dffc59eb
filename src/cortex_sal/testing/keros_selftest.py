"""The channel self-test behind the seed's ``python -m src.keros.sensor_channel``.

Each check can fail: crypto checks use RFC known answers (never our own output), the
protocol checks drive both roles and the attacks. Prints one line per check and the
closing ``N passed, M failed``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..clock import ManualClock
from ..crypto import hkdf_sha256, hmac_sha256, x25519_public_key, x25519_shared_secret
from ..errors import (
    FrameAuthError,
    PurgedBufferError,
    ReplayAttackError,
    SessionExpiredError,
    TPMUnavailableError,
)
from ..keros.legacy_v1 import keys as v1
from ..keros.legacy_v1.certification import SensorCertificationAuthority
from ..keros.legacy_v1.handshake import establish_in_process
from ..keros.legacy_v1.session import MAX_SEQ, SecureBusSession
from ..keros.seal import KerosSeal
from ..keros.states import State
from ..securemem import SecureBuffer, SecureKeyBuffer
from .selfcheck import expect, raises, run

SENSOR = "eeg_fp1_certified_v1"


def _pair(clock: ManualClock | None = None, max_seq: int = MAX_SEQ) -> tuple[SecureBusSession, SecureBusSession]:
    return establish_in_process(SENSOR, "selftest-gateway", clock=clock or ManualClock(), max_seq=max_seq)


def check_rfc7748_x25519() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    expected = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    with SecureKeyBuffer(alice) as priv:
        expect(
            x25519_public_key(priv).hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            "RFC 7748 6.1 Alice public key",
        )
        with x25519_shared_secret(priv, bob_public) as shared:
            expect(shared.constant_time_compare(expected), "RFC 7748 6.1 shared secret")


def check_rfc5869_hkdf() -> None:
    okm = bytes.fromhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    with SecureBuffer.from_bytes(b"\x0b" * 22) as ikm:
        with hkdf_sha256(ikm, salt=bytes(range(13)), info=bytes(range(0xF0, 0xFA)), length=42) as out:
            expect(out.constant_time_compare(okm), "RFC 5869 test case 1 OKM")


def check_rfc4231_hmac() -> None:
    with SecureBuffer.from_bytes(b"Jefe") as key:
        tag = hmac_sha256(key, b"what do ya want for nothing?")
    expect(tag.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "RFC 4231 test case 2")


def check_full_handshake_returns_secure_key() -> None:
    ca = SensorCertificationAuthority()
    with ca.new_ephemeral_key() as sensor, ca.new_ephemeral_key() as tee:
        challenge = ca.issue_challenge()
        with v1.derive_session_key(sensor.key_buffer, tee.public_bytes(), challenge) as sensor_side:
            ack = hmac_sha256(sensor_side, challenge)
            result = ca.full_handshake(SENSOR, sensor.public_bytes(), ack, tee, challenge)
            key = result["session_key"]
            expect(result["status"] == "ok" and isinstance(key, SecureKeyBuffer), "session_key is a SecureKeyBuffer")
            expect(key.constant_time_compare(sensor_side), "both sides derive the same key")
            key.secure_purge()
            expect(key.is_purged, "the caller can purge it")


def check_refusals_leave_no_key() -> None:
    ca = SensorCertificationAuthority()
    with ca.new_ephemeral_key() as sensor, ca.new_ephemeral_key() as tee:
        challenge = ca.issue_challenge()
        good_pub = sensor.public_bytes()
        cases = {
            "wrong ACK": (SENSOR, good_pub, bytes(32)),
            "unknown sensor": ("eeg_unknown_v9", good_pub, bytes(32)),
            "low-order key": (SENSOR, bytes(32), bytes(32)),
            "malformed key": (SENSOR, good_pub[:31], bytes(32)),
        }
        for name, (sid, pub, ack) in cases.items():
            result = ca.full_handshake(sid, pub, ack, tee, challenge)
            expect(result["status"] == "refused" and result["session_key"] is None and result["reason"], name)


def check_frames_both_ways() -> None:
    sensor, gateway = _pair()
    with sensor, gateway:
        for i in range(100):
            payload = i.to_bytes(4, "big") * 64
            with gateway.decrypt_frame(sensor.encrypt_frame(payload)) as got:
                expect(got.constant_time_compare(payload), f"sensor->gateway frame {i}")
            with sensor.decrypt_frame(gateway.encrypt_frame(payload)) as got:
                expect(got.constant_time_compare(payload), f"gateway->sensor frame {i}")


def check_replay_refused_before_decryption() -> None:
    sensor, gateway = _pair()
    with sensor, gateway:
        frame = sensor.encrypt_frame(b"sample")
        gateway.decrypt_frame(frame).secure_purge()
        raises(ReplayAttackError, lambda: gateway.decrypt_frame(frame))
        expect(gateway.state is State.ESTABLISHED, "a replay does not need the key: session stays up")


def check_tampered_frame_compromises() -> None:
    sensor, gateway = _pair()
    frame = bytearray(sensor.encrypt_frame(b"sample"))
    frame[-1] ^= 1
    raises(FrameAuthError, lambda: gateway.decrypt_frame(bytes(frame)))
    expect(gateway.state is State.FAILED, "state FAILED after a bad tag")
    expect(gateway.session_key.is_purged, "key purged on compromise")
    sensor.close()


def check_close_zeroes_key() -> None:
    sensor, gateway = _pair()
    key = gateway.session_key
    probe = key.purge_probe()
    gateway.close()
    sensor.close()
    expect(key.is_purged, "purged after close")
    expect(probe.reads_zero(), "slot reads zero")
    raises(PurgedBufferError, lambda: key.constant_time_compare(bytes(32)))


def check_lifetime_and_exhaustion() -> None:
    clock = ManualClock()
    sensor, gateway = _pair(clock)
    clock.advance(4 * 3600 + 1)
    raises(SessionExpiredError, lambda: sensor.encrypt_frame(b"late"))
    expect(sensor.session_key.is_purged, "expired session purged its key")
    gateway.close()
    sensor, gateway = _pair(max_seq=3)
    with sensor, gateway:
        sensor.encrypt_frame(b"1")
        sensor.encrypt_frame(b"2")
        raises(SessionExpiredError, lambda: sensor.encrypt_frame(b"3"))


def check_seal_fails_closed() -> None:
    import numpy as np

    raises(TPMUnavailableError, lambda: KerosSeal().seal(np.zeros(5)))


CHECKS: list[Callable[[], None]] = [
    check_rfc7748_x25519,
    check_rfc5869_hkdf,
    check_rfc4231_hmac,
    check_full_handshake_returns_secure_key,
    check_refusals_leave_no_key,
    check_frames_both_ways,
    check_replay_refused_before_decryption,
    check_tampered_frame_compromises,
    check_close_zeroes_key,
    check_lifetime_and_exhaustion,
    check_seal_fails_closed,
]


def main() -> int:
    return run((check.__name__.removeprefix("check_"), check) for check in CHECKS)
