"""CognitiveShield end to end: registration runs a real handshake, frames flow through the
pipeline, only obfuscated features leave, and destroy_session purges every key."""

from __future__ import annotations

import ctypes
import hashlib
import json

import numpy as np
import pytest

from cortex_sal.clock import ManualClock
from cortex_sal.errors import InvalidArgumentError, ShieldError, WrongTypeError
from cortex_sal.sal.features import LABELS, phase_a
from cortex_sal.sal.frame import SAMPLE_DTYPE
from cortex_sal.sal.obfuscation import obfuscate
from cortex_sal.sal.results import RefusalReason, Refused, Registered, Released
from cortex_sal.sal.shield import CognitiveShield
from cortex_sal.securemem import SecureKeyBuffer
from cortex_sal.sources import synthetic_eeg

SENSOR = "eeg_fp1_certified_v1"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def shield(clock: ManualClock):  # type: ignore[no-untyped-def]
    with CognitiveShield(clock=clock) as s:
        yield s


def eeg(n: int, seed: int = 5) -> list[np.ndarray]:
    return list(synthetic_eeg(n, seed=seed).frames)


def test_register_runs_a_real_handshake(shield: CognitiveShield) -> None:
    r = shield.register_sensor(SENSOR, 35.0, 16)
    assert isinstance(r, Registered) and r.sensor_id == SENSOR and len(r.log_id) == 16
    endpoint = shield.sensor_endpoint(SENSOR)
    gateway = shield._sensors[SENSOR].gateway
    assert endpoint.session_id == gateway.session_id
    assert gateway.session_key.constant_time_compare(endpoint.session_key)
    assert shield.custody_report().sessions_opened == 1


@pytest.mark.parametrize(
    ("sensor_id", "snr", "bits", "why"),
    [
        ("eeg_unknown_v9", 35.0, 16, "not in the certified registry"),
        (SENSOR, 29.9, 16, "SNR"),
        (SENSOR, 35.0, 11, "bits"),
    ],
)
def test_register_refusals_say_why(shield: CognitiveShield, sensor_id: str, snr: float, bits: int, why: str) -> None:
    r = shield.register_sensor(sensor_id, snr, bits)
    assert isinstance(r, Refused) and r.reason is RefusalReason.NOT_CERTIFIED and why in r.detail
    assert shield.custody_report().sessions_opened == 0


def test_register_twice_is_refused(shield: CognitiveShield) -> None:
    assert isinstance(shield.register_sensor(SENSOR, 35.0, 16), Registered)
    twice = shield.register_sensor(SENSOR, 35.0, 16)
    assert isinstance(twice, Refused) and twice.reason is RefusalReason.ALREADY_REGISTERED


def test_encrypted_frames_flow_and_only_obfuscated_features_leave(shield: CognitiveShield, clock: ManualClock) -> None:
    shield.register_sensor(SENSOR, 35.0, 16)
    endpoint = shield.sensor_endpoint(SENSOR)
    for x in eeg(10):
        r = shield.ingest_frame(SENSOR, endpoint.encrypt_frame(np.asarray(x, SAMPLE_DTYPE).tobytes()))
        assert isinstance(r, Released), r
        assert r.state_label in LABELS and r.liveness_proven and r.consent_active
        features = phase_a(np.asarray(x, SAMPLE_DTYPE))
        assert r.tensor.shape == (5,)
        assert not np.allclose(r.tensor, features)  # obfuscated, not the features themselves
        assert np.all(r.tensor <= features + 1e-12) and np.all(r.tensor >= 0)
        assert r.tensor_norm == pytest.approx(float(np.linalg.norm(r.tensor)))
        assert r.research_payload is not None and len(r.research_payload) == 41
        clock.advance(2.0)


def test_raw_path_equals_frame_path(clock: ManualClock) -> None:
    data = eeg(5)
    results = []
    for use_frames in (False, True):
        with CognitiveShield(clock=ManualClock()) as s:
            s.register_sensor(SENSOR, 35.0, 16)
            out = []
            for x in data:
                if use_frames:
                    payload = np.asarray(x, SAMPLE_DTYPE).tobytes()
                    out.append(s.ingest_frame(SENSOR, s.sensor_endpoint(SENSOR).encrypt_frame(payload)))
                else:
                    out.append(s.ingest_raw_data(SENSOR, x))
            assert all(isinstance(r, Released) for r in out)
            results.append([(r.coherency_index, r.state_label) for r in out if isinstance(r, Released)])
    assert results[0] == results[1]


def test_tampered_or_replayed_frames_are_refused_with_the_reason(shield: CognitiveShield) -> None:
    shield.register_sensor(SENSOR, 35.0, 16)
    endpoint = shield.sensor_endpoint(SENSOR)
    frame = endpoint.encrypt_frame(np.asarray(eeg(1)[0], SAMPLE_DTYPE).tobytes())
    assert isinstance(shield.ingest_frame(SENSOR, frame), Released)
    replay = shield.ingest_frame(SENSOR, frame)
    assert isinstance(replay, Refused) and replay.reason is RefusalReason.REPLAY
    assert "ReplayAttackError" in replay.detail
    short = endpoint.encrypt_frame(b"\x00" * 100)
    refused = shield.ingest_frame(SENSOR, short)
    assert isinstance(refused, Refused) and refused.reason is RefusalReason.FRAME_FORMAT
    assert "FrameFormatError" in refused.detail


def test_a_frame_that_is_not_bytes_is_a_programming_error(shield: CognitiveShield) -> None:
    """A caller's wrong type raises; only bytes off the wire are judged (and refused)."""
    shield.register_sensor(SENSOR, 35.0, 16)
    frame = shield.sensor_endpoint(SENSOR).encrypt_frame(np.asarray(eeg(1)[0], SAMPLE_DTYPE).tobytes())
    log_before = len(shield.session_log)
    for wrong in (bytearray(frame), memoryview(frame), "frame", None):
        with pytest.raises(WrongTypeError, match="frame must be bytes"):
            shield.ingest_frame(SENSOR, wrong)  # type: ignore[arg-type]
    assert len(shield.session_log) == log_before and shield._sensors[SENSOR].frame_seq == 0
    assert isinstance(shield.ingest_frame(SENSOR, frame), Released)  # the channel was not touched


def test_gate_refusals_carry_their_reason(shield: CognitiveShield) -> None:
    shield.register_sensor(SENSOR, 35.0, 16)
    square = np.where(np.arange(256) % 2, 150.0, -150.0)  # clipped to 0/1: huge spread
    bridge = shield.ingest_raw_data(SENSOR, square)
    assert isinstance(bridge, Refused) and bridge.reason is RefusalReason.BRIDGE_BOUNDS
    assert bridge.detail.startswith("bridge: ") and " > " in bridge.detail and bridge.consent_active
    shield._sensors[SENSOR].blocked = True
    blocked = shield.ingest_raw_data(SENSOR, eeg(1)[0])
    assert isinstance(blocked, Refused) and blocked.reason is RefusalReason.DRIFT_BLOCKED


def test_bad_input(shield: CognitiveShield) -> None:
    with pytest.raises(ShieldError):
        shield.ingest_raw_data("never-registered", np.zeros(256))
    shield.register_sensor(SENSOR, 35.0, 16)
    with pytest.raises(InvalidArgumentError):
        shield.ingest_raw_data(SENSOR, np.zeros(255))
    with pytest.raises(InvalidArgumentError):
        shield.ingest_raw_data(SENSOR, np.full(256, np.nan))
    with pytest.raises(WrongTypeError):
        shield.register_sensor(42, 35.0, 16)  # type: ignore[arg-type]


def test_session_log_holds_no_raw_identifier_or_sample(shield: CognitiveShield) -> None:
    sensor_id = SENSOR + "/serial-XYZ-123"
    shield.register_sensor(sensor_id, 35.0, 16)
    x = eeg(1)[0]
    shield.ingest_raw_data(sensor_id, x)
    text = json.dumps(shield.session_log)
    assert "serial-XYZ-123" not in text and SENSOR not in text
    for value in np.asarray(x, SAMPLE_DTYPE)[:20]:
        assert repr(float(value)) not in text
    assert all(len(entry["sensor"]) == 16 for entry in shield.session_log)


def test_destroy_session_purges_every_session_key(shield: CognitiveShield, monkeypatch: pytest.MonkeyPatch) -> None:
    for serial in ("a", "b"):
        shield.register_sensor(f"{SENSOR}/{serial}", 35.0, 16)
    keys = list(shield._issued_keys)
    purged: list[int] = []
    zero_after_purge: list[bool] = []
    real = SecureKeyBuffer.secure_purge

    def spy(self: SecureKeyBuffer) -> None:
        address = None if self.is_purged else self._address()
        purged.append(id(self))
        real(self)
        if address is not None:  # read the slot before anything can reuse it
            zero_after_purge.append(bytes((ctypes.c_ubyte * 32).from_address(address)) == bytes(32))

    monkeypatch.setattr(SecureKeyBuffer, "secure_purge", spy)
    report = shield.destroy_session()
    assert report.keys_total == len(keys) == 12  # 2 sensors x 2 sides x (session key + 2 frame keys)
    assert report.keys_purged == 12 and report.sessions_closed == 2
    assert {id(k) for k in keys} <= set(purged)
    assert all(k.is_purged for k in keys)
    assert len(zero_after_purge) >= len(keys) and all(zero_after_purge)
    assert shield.session_log == []
    with pytest.raises(ShieldError):
        shield.ingest_raw_data(f"{SENSOR}/a", np.zeros(256))


def test_destroy_rotates_the_salt(shield: CognitiveShield) -> None:
    shield.register_sensor(SENSOR, 35.0, 16)
    x = eeg(1)[0]
    first = shield.ingest_raw_data(SENSOR, x)
    assert isinstance(first, Released)
    before = first.tensor
    shield.destroy_session()
    shield.register_sensor(SENSOR, 35.0, 16)
    second = shield.ingest_raw_data(SENSOR, x)
    assert isinstance(second, Released)
    after = second.tensor
    assert not np.allclose(before, after)


def test_batch_equals_single(clock: ManualClock) -> None:
    ids = [f"{SENSOR}/{i}" for i in range(6)]
    data = np.stack(eeg(6, seed=11))
    outcomes = []
    for batch in (False, True):
        with CognitiveShield(clock=ManualClock()) as s:
            for i in ids:
                s.register_sensor(i, 35.0, 16)
            if batch:
                results = s.ingest_batch(ids, data)
            else:
                results = [s.ingest_raw_data(i, row) for i, row in zip(ids, data, strict=True)]
            # each shield draws its own Phase B key: check each tensor against that key
            for sensor_id, row, r in zip(ids, data, results, strict=True):
                id_hash = hashlib.sha256(sensor_id.encode()).digest()
                expected = obfuscate(phase_a(np.asarray(row, SAMPLE_DTYPE)), id_hash, s._salt)
                assert isinstance(r, Released)
                assert np.allclose(r.tensor, expected, rtol=1e-9, atol=1e-12)
            outcomes.append(results)
    for single, batched in zip(*outcomes, strict=True):
        assert isinstance(single, Released) and isinstance(batched, Released)
        assert single.state_label == batched.state_label
        assert single.coherency_index == pytest.approx(batched.coherency_index, abs=1e-9)


def test_batch_bad_input(shield: CognitiveShield) -> None:
    shield.register_sensor(SENSOR, 35.0, 16)
    with pytest.raises(InvalidArgumentError):
        shield.ingest_batch([SENSOR], np.zeros((2, 256)))
    with pytest.raises(InvalidArgumentError):
        shield.ingest_batch([SENSOR, SENSOR], np.zeros((2, 256)))
