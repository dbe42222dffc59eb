"""KEROS certification: the seed's API (``SensorCertificationAuthority``), the sensor
registry, and the purge of the session key when a session ends.

Expected keys come from ``cryptography`` + ``hmac`` + ``hashlib`` (the oracle), never from
the code under test. Secrets are compared inside their secure buffers
(``constant_time_compare``).
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.errors import (
    CortexError,
    InvalidArgumentError,
    PurgedBufferError,
    SensorNotCertifiedError,
    SessionExpiredError,
    WrongTypeError,
)
from cortex_sal.keros import (
    Role,
    SecureBusSession,
    SensorCertificationAuthority,
    SensorModel,
    SensorRegistry,
    sensor_id_hash,
)
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer, status
from cortex_sal.securemem.arena import arena
from cortex_sal.store.keros import load_sensor_registry
from hypothesis_profiles import examples

SENSOR = "eeg_fp1_certified_v1"
INFO = b"cortex-sensor-ecdh-handshake-v1"

# -- the oracle -------------------------------------------------------------------------


def oracle_session_key(private: c_x25519.X25519PrivateKey, peer_public: bytes, challenge: bytes) -> bytes:
    shared = private.exchange(c_x25519.X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(hashes.SHA256(), 32, challenge, INFO).derive(shared)


def oracle_ack(session_key: bytes, challenge: bytes) -> bytes:
    return hmac.digest(session_key, challenge, "sha256")


def oracle_session_id(sensor_id: str, sensor_pub: bytes, gateway_pub: bytes, challenge: bytes) -> bytes:
    id_hash = hashlib.sha256(sensor_id.encode()).digest()
    return hashlib.sha256(b"cortex-sensor-session-v1" + id_hash + sensor_pub + gateway_pub + challenge).digest()


def c_public(private: c_x25519.X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes_raw()


def live_slots() -> int:
    gc.collect()
    return arena().live_slots()[0]


class Allocations:
    """Records (and keeps alive) every secure buffer created inside the ``with`` block.

    Holding a reference means a buffer can be purged only explicitly, never by ``__del__``.
    """

    def __enter__(self) -> list[SecureBuffer]:
        self.buffers: list[SecureBuffer] = []
        self._mp = pytest.MonkeyPatch()
        for cls in (SecureBuffer, SecureKeyBuffer):
            real = cls.__init__

            def spy(obj: SecureBuffer, *args: Any, _real: Any = real, **kwargs: Any) -> None:
                _real(obj, *args, **kwargs)
                self.buffers.append(obj)

            self._mp.setattr(cls, "__init__", spy)
        return self.buffers

    def __exit__(self, *exc: object) -> None:
        self._mp.undo()


# the X25519 points of small order (and their non-canonical / top-bit-set encodings)
_P = 2**255 - 19
_SMALL_ORDER = {
    "0": 0,
    "1": 1,
    "e0eb7a7c-order8": int.from_bytes(
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), "little"
    ),
    "5f9c95bc-order8": int.from_bytes(
        bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"), "little"
    ),
    "p-1": _P - 1,
    "p": _P,
    "p+1": _P + 1,
}
LOW_ORDER: dict[str, bytes] = {}
for _name, _u in _SMALL_ORDER.items():
    _enc = _u.to_bytes(32, "little")
    LOW_ORDER[_name] = _enc
    LOW_ORDER[_name + "-topbit"] = _enc[:31] + bytes([_enc[31] | 0x80])


def test_low_order_list_is_refused_by_the_oracle_too() -> None:
    # guards the parametrised test below from using points that are not low order
    assert len(set(LOW_ORDER.values())) == 14
    c_priv = c_x25519.X25519PrivateKey.generate()
    for enc in LOW_ORDER.values():
        with pytest.raises(ValueError):
            c_priv.exchange(c_x25519.X25519PublicKey.from_public_bytes(enc))


@pytest.fixture
def ca() -> SensorCertificationAuthority:
    return SensorCertificationAuthority()


@pytest.fixture
def tee(ca: SensorCertificationAuthority) -> Iterator[X25519PrivateKey]:
    with ca.new_ephemeral_key() as key:
        yield key


class Sensor:
    """An oracle sensor: a cryptography X25519 key and what it computes for a challenge."""

    def __init__(self, tee: X25519PrivateKey, challenge: bytes) -> None:
        self.private = c_x25519.X25519PrivateKey.generate()
        self.public = c_public(self.private)
        self.key = oracle_session_key(self.private, tee.public_bytes(), challenge)
        self.ack = oracle_ack(self.key, challenge)


# -- full_handshake: the success path -------------------------------------------------------


def test_full_handshake_returns_a_secure_key_equal_to_the_oracle(
    ca: SensorCertificationAuthority, tee: X25519PrivateKey
) -> None:
    challenge = ca.issue_challenge()
    sensor = Sensor(tee, challenge)
    result = ca.full_handshake(SENSOR, sensor.public, sensor.ack, tee, challenge)
    assert result["status"] == "ok"
    key = result["session_key"]
    assert type(key) is SecureKeyBuffer
    with key:
        assert key.constant_time_compare(sensor.key)
        assert not key.constant_time_compare(bytes(32))
        assert result["session_id"] == oracle_session_id(SENSOR, sensor.public, tee.public_bytes(), challenge)
    assert key.is_purged
    with pytest.raises(PurgedBufferError):
        key.constant_time_compare(sensor.key)


def test_full_handshake_key_depends_on_the_challenge(ca: SensorCertificationAuthority, tee: X25519PrivateKey) -> None:
    c1, c2 = ca.issue_challenge(), ca.issue_challenge()
    assert c1 != c2 and len(c1) == len(c2) == 32
    s = Sensor(tee, c1)
    expected_2 = oracle_session_key(s.private, tee.public_bytes(), c2)
    r = ca.full_handshake(SENSOR, s.public, oracle_ack(expected_2, c2), tee, c2)
    with r["session_key"] as key:
        assert key.constant_time_compare(expected_2)
        assert not key.constant_time_compare(s.key)


def test_full_handshake_accepts_a_model_serial_id(ca: SensorCertificationAuthority, tee: X25519PrivateKey) -> None:
    challenge = ca.issue_challenge()
    s = Sensor(tee, challenge)
    sid = SENSOR + "/SN-0042"
    r = ca.full_handshake(sid, bytearray(s.public), memoryview(s.ack), tee, challenge)
    assert r["status"] == "ok"
    assert r["session_id"] == oracle_session_id(sid, s.public, tee.public_bytes(), challenge)
    r["session_key"].secure_purge()


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(challenge=st.binary(min_size=32, max_size=32), sensor_priv=st.binary(min_size=32, max_size=32))
def test_full_handshake_matches_oracle_for_any_challenge(challenge: bytes, sensor_priv: bytes) -> None:
    ca = SensorCertificationAuthority()
    with ca.new_ephemeral_key() as tee:
        priv = c_x25519.X25519PrivateKey.from_private_bytes(sensor_priv)
        expected = oracle_session_key(priv, tee.public_bytes(), challenge)
        r = ca.full_handshake(SENSOR, c_public(priv), oracle_ack(expected, challenge), tee, challenge)
        assert r["status"] == "ok"
        with r["session_key"] as key:
            assert key.constant_time_compare(expected)


def test_perform_ecdh_handshake_both_sides_agree(ca: SensorCertificationAuthority, tee: X25519PrivateKey) -> None:
    challenge = ca.issue_challenge()
    s = Sensor(tee, challenge)
    with ca.perform_ecdh_handshake(SENSOR, s.public, tee, challenge) as key:
        assert key.constant_time_compare(s.key)
        assert ca.verify_sensor_ack(key, challenge, s.ack) is True


def test_perform_ecdh_handshake_raises_where_full_handshake_refuses(
    ca: SensorCertificationAuthority, tee: X25519PrivateKey
) -> None:
    challenge = ca.issue_challenge()
    with pytest.raises(SensorNotCertifiedError):
        ca.perform_ecdh_handshake("eeg_unknown_v9", c_public(c_x25519.X25519PrivateKey.generate()), tee, challenge)


# -- full_handshake: refusals, and no key left behind -----------------------------------------


def _refusal_cases(ca: SensorCertificationAuthority, tee: X25519PrivateKey) -> dict[str, tuple[Any, ...]]:
    challenge = ca.issue_challenge()
    s = Sensor(tee, challenge)
    flipped = bytes([s.ack[0] ^ 1]) + s.ack[1:]
    other_challenge_ack = oracle_ack(s.key, bytes(32))
    cases: dict[str, tuple[Any, ...]] = {
        "wrong ACK (zeros)": (SENSOR, s.public, bytes(32), challenge, s.key),
        "wrong ACK (one bit)": (SENSOR, s.public, flipped, challenge, s.key),
        "ACK for another challenge": (SENSOR, s.public, other_challenge_ack, challenge, s.key),
        "ACK from another key": (SENSOR, s.public, oracle_ack(bytes(32), challenge), challenge, s.key),
        "ACK too short": (SENSOR, s.public, s.ack[:31], challenge, s.key),
        "ACK too long": (SENSOR, s.public, s.ack + b"\x00", challenge, s.key),
        "unknown sensor": ("eeg_unknown_v9", s.public, s.ack, challenge, s.key),
        "unknown sensor with a known serial form": ("eeg_unknown_v9/SN1", s.public, s.ack, challenge, s.key),
        "pubkey 31 bytes": (SENSOR, s.public[:31], s.ack, challenge, s.key),
        "pubkey 33 bytes": (SENSOR, s.public + b"\x00", s.ack, challenge, s.key),
        "pubkey empty": (SENSOR, b"", s.ack, challenge, s.key),
        "challenge 31 bytes": (SENSOR, s.public, s.ack, challenge[:31], s.key),
    }
    for name, point in LOW_ORDER.items():
        cases[f"low-order {name}"] = (SENSOR, point, s.ack, challenge, s.key)
    return cases


_CASE_NAMES = [
    "wrong ACK (zeros)",
    "wrong ACK (one bit)",
    "ACK for another challenge",
    "ACK from another key",
    "ACK too short",
    "ACK too long",
    "unknown sensor",
    "unknown sensor with a known serial form",
    "pubkey 31 bytes",
    "pubkey 33 bytes",
    "pubkey empty",
    "challenge 31 bytes",
] + [f"low-order {name}" for name in LOW_ORDER]


def _forbidden(secret: bytes) -> list[str]:
    return [secret.hex(), secret.hex().upper(), repr(secret)[2:-1], secret[:8].hex()]


@pytest.mark.parametrize("case", _CASE_NAMES)
def test_refusal_returns_refused_and_leaves_no_key(
    case: str, ca: SensorCertificationAuthority, tee: X25519PrivateKey
) -> None:
    sid, pub, ack, challenge, secret_key = _refusal_cases(ca, tee)[case]
    before = live_slots()
    with Allocations() as allocated:
        result = ca.full_handshake(sid, pub, ack, tee, challenge)
    assert all(buf.is_purged for buf in allocated), f"{case}: a buffer was left to the finaliser"
    del allocated
    after = live_slots()
    assert result["status"] == "refused"
    assert result["session_key"] is None
    assert isinstance(result["reason"], str) and result["reason"].strip()
    for spelling in _forbidden(secret_key):
        assert spelling not in result["reason"]
    assert after == before, f"{case}: {after - before} secure slot(s) left behind"
    assert not tee.is_purged  # the caller's ephemeral key is the caller's to purge


def test_refusal_purges_every_buffer_it_allocated(ca: SensorCertificationAuthority, tee: X25519PrivateKey) -> None:
    """The wrong-ACK path derives a key before it can refuse; holding a reference to every
    buffer allocated shows each was purged explicitly, not left to a finaliser."""
    challenge = ca.issue_challenge()
    s = Sensor(tee, challenge)
    with Allocations() as allocated:
        result = ca.full_handshake(SENSOR, s.public, bytes(32), tee, challenge)
    assert result["status"] == "refused"
    assert allocated, "the wrong-ACK path derives a key before it can refuse"
    assert all(buf.is_purged for buf in allocated)


@pytest.fixture
def weak_registry(tmp_path: Path) -> SensorRegistry:
    path = tmp_path / "models.json"
    path.write_text(
        json.dumps(
            {
                "models": [
                    {"model_id": "eeg_noisy_v1", "manufacturer": "LowCost", "snr_db": 25.0, "bits": 16},
                    {"model_id": "eeg_coarse_v1", "manufacturer": "LowCost", "snr_db": 40.0, "bits": 10},
                    {"model_id": "eeg_good_v1", "manufacturer": "Fine", "snr_db": 31.0, "bits": 12},
                ]
            }
        )
    )
    return load_sensor_registry(path, extend=SensorRegistry.default())


@pytest.mark.parametrize(("model", "word"), [("eeg_noisy_v1", "SNR"), ("eeg_coarse_v1", "bits")])
def test_below_minimum_model_from_a_user_registry_is_refused(
    weak_registry: SensorRegistry, model: str, word: str
) -> None:
    ca = SensorCertificationAuthority(weak_registry)
    with ca.new_ephemeral_key() as tee:
        challenge = ca.issue_challenge()
        s = Sensor(tee, challenge)
        before = live_slots()
        result = ca.full_handshake(model, s.public, s.ack, tee, challenge)
        assert live_slots() == before
    assert result["status"] == "refused" and result["session_key"] is None
    assert word in result["reason"] and model in result["reason"]


def test_user_registry_model_meeting_the_minima_is_admitted(weak_registry: SensorRegistry) -> None:
    # guards the test above: the user registry *is* used, it is the minima that refuse
    ca = SensorCertificationAuthority(weak_registry)
    with ca.new_ephemeral_key() as tee:
        challenge = ca.issue_challenge()
        s = Sensor(tee, challenge)
        result = ca.full_handshake("eeg_good_v1", s.public, s.ack, tee, challenge)
        assert result["status"] == "ok"
        with result["session_key"] as key:
            assert key.constant_time_compare(s.key)


def test_revoked_sensor_is_refused_by_full_handshake(ca: SensorCertificationAuthority, tee: X25519PrivateKey) -> None:
    ca.registry.revoke(SENSOR + "/SN-7")
    challenge = ca.issue_challenge()
    s = Sensor(tee, challenge)
    refused = ca.full_handshake(SENSOR + "/SN-7", s.public, s.ack, tee, challenge)
    assert refused["status"] == "refused" and "revoked" in refused["reason"]
    ok = ca.full_handshake(SENSOR + "/SN-8", s.public, s.ack, tee, challenge)
    assert ok["status"] == "ok"
    ok["session_key"].secure_purge()


def test_purged_tee_key_is_refused_not_crashed(ca: SensorCertificationAuthority) -> None:
    tee = ca.new_ephemeral_key()
    challenge = ca.issue_challenge()
    s = Sensor(tee, challenge)
    tee.purge()
    before = live_slots()
    result = ca.full_handshake(SENSOR, s.public, s.ack, tee, challenge)
    assert result["status"] == "refused" and result["session_key"] is None
    assert live_slots() == before


# -- wrong argument types ---------------------------------------------------------------------


def _wrong_types(tee: X25519PrivateKey, pub: bytes, ack: bytes, challenge: bytes) -> dict[str, Callable[[Any], Any]]:
    return {
        "sensor_id int": lambda ca: ca.full_handshake(42, pub, ack, tee, challenge),
        "sensor_id bytes": lambda ca: ca.full_handshake(SENSOR.encode(), pub, ack, tee, challenge),
        "sensor_id empty": lambda ca: ca.full_handshake("", pub, ack, tee, challenge),
        "sensor_id None": lambda ca: ca.full_handshake(None, pub, ack, tee, challenge),
        "pub str": lambda ca: ca.full_handshake(SENSOR, pub.hex(), ack, tee, challenge),
        "pub None": lambda ca: ca.full_handshake(SENSOR, None, ack, tee, challenge),
        "pub list": lambda ca: ca.full_handshake(SENSOR, list(pub), ack, tee, challenge),
        "ack str": lambda ca: ca.full_handshake(SENSOR, pub, ack.hex(), tee, challenge),
        "ack None": lambda ca: ca.full_handshake(SENSOR, pub, None, tee, challenge),
        "tee bytes": lambda ca: ca.full_handshake(SENSOR, pub, ack, bytes(32), challenge),
        "tee SecureKeyBuffer": lambda ca: ca.full_handshake(SENSOR, pub, ack, tee.key_buffer, challenge),
        "tee cryptography key": lambda ca: ca.full_handshake(
            SENSOR, pub, ack, c_x25519.X25519PrivateKey.generate(), challenge
        ),
        "challenge str": lambda ca: ca.full_handshake(SENSOR, pub, ack, tee, "c" * 32),
        "challenge None": lambda ca: ca.full_handshake(SENSOR, pub, ack, tee, None),
        "verify key bytes": lambda ca: ca.verify_sensor_ack(bytes(32), challenge, ack),
        "verify ack str": lambda ca: ca.verify_sensor_ack(SecureKeyBuffer(), challenge, "x" * 32),
        "perform tee bytes": lambda ca: ca.perform_ecdh_handshake(SENSOR, pub, bytes(32), challenge),
        "registry dict": lambda ca: SensorCertificationAuthority({"models": []}),
    }


_WRONG_TYPE_NAMES = list(_wrong_types(None, b"", b"", b"").keys())  # type: ignore[arg-type]


@pytest.mark.parametrize("case", _WRONG_TYPE_NAMES)
def test_wrong_argument_types_raise_wrong_type_error(
    case: str, ca: SensorCertificationAuthority, tee: X25519PrivateKey
) -> None:
    challenge = ca.issue_challenge()
    s = Sensor(tee, challenge)
    before = live_slots()
    with pytest.raises(CortexError) as info:
        _wrong_types(tee, s.public, s.ack, challenge)[case](ca)
    assert type(info.value) is WrongTypeError, f"{case}: {type(info.value).__name__}: {info.value}"
    assert str(info.value)
    assert live_slots() <= before + (1 if case == "verify ack str" else 0)


# -- verify_sensor_ack ------------------------------------------------------------------------


def test_verify_sensor_ack_true_and_false(ca: SensorCertificationAuthority) -> None:
    raw = bytes(range(32))
    challenge = bytes(range(100, 132))
    good = oracle_ack(raw, challenge)
    with SecureKeyBuffer(raw) as key:
        assert ca.verify_sensor_ack(key, challenge, good) is True
        assert ca.verify_sensor_ack(key, challenge, bytearray(good)) is True
        for i in range(32):
            bad = bytearray(good)
            bad[i] ^= 0x80
            assert ca.verify_sensor_ack(key, challenge, bytes(bad)) is False
        assert ca.verify_sensor_ack(key, bytes(32), good) is False
    with SecureKeyBuffer(bytes(32)) as other:
        assert ca.verify_sensor_ack(other, challenge, good) is False


def test_verify_sensor_ack_refuses_a_purged_key(ca: SensorCertificationAuthority) -> None:
    key = SecureKeyBuffer()
    key.secure_purge()
    with pytest.raises(PurgedBufferError):
        ca.verify_sensor_ack(key, bytes(32), bytes(32))


# -- new_ephemeral_key / issue_challenge ------------------------------------------------------


def test_new_ephemeral_key_is_locked_and_matches_cryptography(ca: SensorCertificationAuthority) -> None:
    with ca.new_ephemeral_key() as key, ca.new_ephemeral_key() as other:
        assert type(key) is X25519PrivateKey
        buf = key.key_buffer
        assert type(buf) is SecureKeyBuffer and not buf.is_purged
        # the scalar lives inside an arena region, and that region is locked (or says why not)
        address = buf._address()
        regions = [r for r in status().regions if r.start <= address < r.start + r.size]
        assert len(regions) == 1
        assert regions[0].locked or regions[0].problems
        with buf.export_bytearray() as scalar:
            expected = c_public(c_x25519.X25519PrivateKey.from_private_bytes(bytes(scalar)))
        assert key.public_bytes() == expected
        assert other.public_bytes() != expected
        with other.key_buffer.export_bytearray() as scalar2:
            assert other.public_bytes() == c_public(c_x25519.X25519PrivateKey.from_private_bytes(bytes(scalar2)))
    assert key.is_purged and other.is_purged


def test_issue_challenge_is_fresh_random(ca: SensorCertificationAuthority) -> None:
    seen = {ca.issue_challenge() for _ in range(64)}
    assert len(seen) == 64
    assert all(type(c) is bytes and len(c) == 32 for c in seen)


# -- the registry -----------------------------------------------------------------------------


def test_default_registry_has_the_two_design_models() -> None:
    reg = SensorRegistry.default()
    models = {m.model_id: m for m in reg.models()}
    design = {
        k: (m.manufacturer, m.snr_db, m.bits, m.channels, m.labels) for k, m in models.items() if k.startswith("eeg_")
    }
    assert design == {  # admitted exactly as before multi-channel, now with their one electrode named
        "eeg_fp1_certified_v1": ("NeuroStandard", 35.0, 16, 1, ("Fp1",)),
        "eeg_occipital_certified_v1": ("NeuroStandard", 32.0, 14, 1, ("O1",)),
    }
    assert reg.min_snr_db == 30.0 and reg.min_bits == 12
    for model_id, model in models.items():
        assert reg.admit(model_id) == model
        assert model.source  # every admitted model cites where its SNR and bits come from


def test_from_file_extends_the_default(tmp_path: Path) -> None:
    path = tmp_path / "extra.json"
    path.write_text(
        json.dumps({"models": [{"model_id": "ppg_wrist_v2", "manufacturer": "Pulse", "snr_db": 33.5, "bits": 18}]})
    )
    default = SensorRegistry.default()
    merged = load_sensor_registry(path, extend=default)
    ids = {m.model_id for m in merged.models()}
    assert ids == {m.model_id for m in default.models()} | {"ppg_wrist_v2"}
    assert {"eeg_fp1_certified_v1", "eeg_occipital_certified_v1"} < ids
    assert merged.admit("ppg_wrist_v2/SN9") == SensorModel("ppg_wrist_v2", "Pulse", 33.5, 18)
    # the default registry itself is not changed
    with pytest.raises(SensorNotCertifiedError):
        default.admit("ppg_wrist_v2")
    # without extend: only the file's models
    alone = load_sensor_registry(str(path))
    assert [m.model_id for m in alone.models()] == ["ppg_wrist_v2"]
    with pytest.raises(SensorNotCertifiedError):
        alone.admit(SENSOR)


def test_extend_keeps_the_minima_and_the_revocations(tmp_path: Path) -> None:
    path = tmp_path / "lax.json"
    path.write_text(
        json.dumps(
            {
                "minimums": {"snr_db": 10.0, "bits": 4},
                "models": [{"model_id": "eeg_noisy_v1", "manufacturer": "LowCost", "snr_db": 25.0, "bits": 16}],
            }
        )
    )
    default = SensorRegistry.default()
    default.revoke(SENSOR + "/SN-bad")
    merged = load_sensor_registry(path, extend=default)
    assert merged.min_snr_db == 30.0 and merged.min_bits == 12
    with pytest.raises(SensorNotCertifiedError, match="SNR"):
        merged.admit("eeg_noisy_v1")
    with pytest.raises(SensorNotCertifiedError, match="revoked"):
        merged.admit(SENSOR + "/SN-bad")


def _model(**over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"model_id": "m1", "manufacturer": "x", "snr_db": 35.0, "bits": 16}
    entry.update(over)
    return {k: v for k, v in entry.items() if v is not _DROP}


_DROP = object()

MALFORMED: dict[str, str | bytes] = {
    "not json": "{models: [",
    "empty file": "",
    "a list": "[]",
    "null": "null",
    "no models": json.dumps({"format": "x"}),
    "models not a list": json.dumps({"models": {"m1": {}}}),
    "model not an object": json.dumps({"models": ["eeg_fp1_certified_v1"]}),
    "model null": json.dumps({"models": [None]}),
    "missing model_id": json.dumps({"models": [_model(model_id=_DROP)]}),
    "missing manufacturer": json.dumps({"models": [_model(manufacturer=_DROP)]}),
    "missing snr": json.dumps({"models": [_model(snr_db=_DROP)]}),
    "missing bits": json.dumps({"models": [_model(bits=_DROP)]}),
    "snr not a number": json.dumps({"models": [_model(snr_db="loud")]}),
    "snr null": json.dumps({"models": [_model(snr_db=None)]}),
    "snr NaN": '{"models": [{"model_id": "m1", "manufacturer": "x", "snr_db": NaN, "bits": 16}]}',
    "snr Infinity": '{"models": [{"model_id": "m1", "manufacturer": "x", "snr_db": Infinity, "bits": 16}]}',
    "bits not a number": json.dumps({"models": [_model(bits="many")]}),
    "bits list": json.dumps({"models": [_model(bits=[16])]}),
    "empty model id": json.dumps({"models": [_model(model_id="")]}),
    "model id with slash": json.dumps({"models": [_model(model_id="m1/SN1")]}),
    "minimums not an object": json.dumps({"minimums": 30, "models": [_model()]}),
    "minimums list": json.dumps({"minimums": [30, 12], "models": [_model()]}),
    "minimum snr not a number": json.dumps({"minimums": {"snr_db": "high"}, "models": [_model()]}),
    "minimum bits null": json.dumps({"minimums": {"bits": None}, "models": [_model()]}),
    "minimum snr NaN": '{"minimums": {"snr_db": NaN}, "models": []}',
    "not UTF-8": b'{"models": [], "x": "\xff\xfe"}',
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_registry_file_raises_invalid_argument(case: str, tmp_path: Path) -> None:
    path = tmp_path / "reg.json"
    content = MALFORMED[case]
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    for extend in (None, SensorRegistry.default()):
        with pytest.raises(CortexError) as info:
            load_sensor_registry(path, extend=extend)
        assert isinstance(info.value, InvalidArgumentError), f"{case}: {type(info.value).__name__}: {info.value}"
        assert str(path) in str(info.value)


def test_missing_registry_file_raises_invalid_argument(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"nope\.json does not exist"):
        load_sensor_registry(tmp_path / "nope.json")
    with pytest.raises(InvalidArgumentError, match="is not a regular file"):
        load_sensor_registry(tmp_path)  # a directory


def test_well_formed_registry_file_is_accepted(tmp_path: Path) -> None:
    # guards the malformed cases: the same helper makes a file that loads
    path = tmp_path / "reg.json"
    path.write_text(json.dumps({"minimums": {"snr_db": 30.0, "bits": 12}, "models": [_model()]}))
    reg = load_sensor_registry(path)
    assert reg.admit("m1") == SensorModel("m1", "x", 35.0, 16)


def test_revoked_id_is_refused_and_other_serials_are_not() -> None:
    reg = SensorRegistry.default()
    reg.revoke(SENSOR + "/SN-13")
    with pytest.raises(SensorNotCertifiedError, match="revoked"):
        reg.admit(SENSOR + "/SN-13")
    assert reg.admit(SENSOR + "/SN-14").model_id == SENSOR
    reg.revoke("eeg_occipital_certified_v1")
    with pytest.raises(SensorNotCertifiedError, match="revoked"):
        reg.admit("eeg_occipital_certified_v1")


@pytest.mark.parametrize(
    ("snr_db", "bits", "word"),
    [(29.9, None, "SNR"), (None, 11, "bits"), (29.999, 16, "SNR"), (35.0, 11, "bits"), (-1.0, None, "SNR")],
)
def test_admit_refuses_reported_values_below_the_minima(snr_db: float | None, bits: int | None, word: str) -> None:
    reg = SensorRegistry.default()
    with pytest.raises(SensorNotCertifiedError) as info:
        reg.admit(SENSOR, snr_db=snr_db, bits=bits)
    assert word in str(info.value)


def test_admit_at_exactly_the_minima_is_accepted() -> None:
    reg = SensorRegistry.default()
    assert reg.admit(SENSOR, snr_db=30.0, bits=12).model_id == SENSOR
    assert reg.admit(SENSOR, snr_db=50.0, bits=24).model_id == SENSOR  # the certified values cap a boast


def test_admit_checks_the_certified_values_too(weak_registry: SensorRegistry) -> None:
    # a 25 dB model cannot talk its way in by reporting 40 dB
    with pytest.raises(SensorNotCertifiedError, match="SNR"):
        weak_registry.admit("eeg_noisy_v1", snr_db=40.0)
    with pytest.raises(SensorNotCertifiedError, match="bits"):
        weak_registry.admit("eeg_coarse_v1", bits=16)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"snr_db": "35"}, WrongTypeError),
        ({"snr_db": True}, WrongTypeError),
        ({"snr_db": math.nan}, InvalidArgumentError),
        ({"snr_db": math.inf}, InvalidArgumentError),
        ({"bits": 16.0}, WrongTypeError),
        ({"bits": True}, WrongTypeError),
    ],
)
def test_admit_refuses_bad_reported_values(kwargs: dict[str, Any], exc: type[CortexError]) -> None:
    with pytest.raises(CortexError) as info:
        SensorRegistry.default().admit(SENSOR, **kwargs)
    assert type(info.value) is exc


def test_model_serial_ids_map_to_their_model() -> None:
    reg = SensorRegistry.default()
    assert reg.admit("eeg_occipital_certified_v1/SN-1").model_id == "eeg_occipital_certified_v1"
    assert reg.admit("eeg_fp1_certified_v1/a/b").model_id == "eeg_fp1_certified_v1"
    with pytest.raises(SensorNotCertifiedError):
        reg.admit("eeg_fp1_certified_v2/SN-1")
    with pytest.raises(SensorNotCertifiedError):
        reg.admit("/eeg_fp1_certified_v1")
    with pytest.raises(WrongTypeError):
        reg.admit("")


def test_sensor_id_hash_is_sha256_of_utf8() -> None:
    assert sensor_id_hash(SENSOR) == hashlib.sha256(SENSOR.encode()).digest()
    assert sensor_id_hash("capteur-é") == hashlib.sha256("capteur-é".encode()).digest()
    reg = SensorRegistry.default()
    assert reg.find_by_hash(hashlib.sha256(b"x/1").digest(), ["a", "x/1"]) == "x/1"
    assert reg.find_by_hash(hashlib.sha256(b"x/2").digest(), ["a", "x/1"]) is None


# -- the key is purged when the session ends ---------------------------------------------------


def _established(ca: SensorCertificationAuthority) -> tuple[SecureBusSession, bytes, bytes, bytes]:
    """A gateway session from full_handshake, plus the oracle's key and frame keys."""
    with ca.new_ephemeral_key() as tee:
        challenge = ca.issue_challenge()
        s = Sensor(tee, challenge)
        r = ca.full_handshake(SENSOR, s.public, s.ack, tee, challenge)
    assert r["status"] == "ok"
    session = SecureBusSession(r["session_key"], r["session_id"], Role.GATEWAY)
    s2g = HKDFExpand(hashes.SHA256(), 32, b"cortex-sensor-frames-v1 sensor->gateway").derive(s.key)
    g2s = HKDFExpand(hashes.SHA256(), 32, b"cortex-sensor-frames-v1 gateway->sensor").derive(s.key)
    return session, s.key, s2g, g2s


def _read(address: int, n: int = 32) -> bytes:
    return bytes((ctypes.c_ubyte * n).from_address(address))


def _use_all(key: SecureKeyBuffer, expected: bytes) -> None:
    for use in (
        lambda: key.constant_time_compare(expected),
        lambda: key._address(),
        lambda: len(key),
        lambda: key.export_bytearray().__enter__(),
        lambda: key.write(bytes(32)),
        lambda: key.__enter__(),
    ):
        with pytest.raises(PurgedBufferError):
            use()


@pytest.mark.parametrize("ending", ["close", "with"])
def test_session_end_zeroes_the_session_key(ending: str, ca: SensorCertificationAuthority) -> None:
    session, raw_key, _, _ = _established(ca)
    key = session.session_key
    address = key._address()
    assert _read(address) == raw_key  # the address really is the key's
    if ending == "close":
        session.close()
    else:
        with session as entered:
            assert entered is session
            assert key.constant_time_compare(raw_key)
    assert key.is_purged
    assert _read(address) == bytes(32)
    _use_all(key, raw_key)
    with pytest.raises(SessionExpiredError):
        session.encrypt_frame(b"after the end")


def test_session_end_zeroes_the_frame_keys(ca: SensorCertificationAuthority) -> None:
    session, _, s2g, g2s = _established(ca)
    send, recv = session._send_key, session._recv_key
    addresses = {send._address(): g2s, recv._address(): s2g}  # the gateway sends g2s, receives s2g
    for address, raw in addresses.items():
        assert _read(address) == raw
    session.close()
    for address in addresses:
        assert _read(address) == bytes(32)
    assert send.is_purged and recv.is_purged


@pytest.mark.parametrize("ending", ["close", "with", "exception in with"])
def test_session_end_runs_secure_purge_on_all_three_keys(
    ending: str, ca: SensorCertificationAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _, _, _ = _established(ca)
    keys = {id(session.session_key): "session", id(session._send_key): "send", id(session._recv_key): "recv"}
    purged: list[str] = []
    real = SecureKeyBuffer.secure_purge

    def spy(self: SecureKeyBuffer) -> None:
        purged.append(keys.get(id(self), "other"))
        real(self)

    monkeypatch.setattr(SecureKeyBuffer, "secure_purge", spy)
    before = live_slots()
    if ending == "close":
        session.close()
        session.close()  # idempotent
    elif ending == "with":
        with session:
            pass
    else:
        with pytest.raises(RuntimeError), session:
            raise RuntimeError("caller failed mid-session")
    monkeypatch.undo()
    assert sorted(p for p in purged if p != "other") == ["recv", "send", "session"]
    assert live_slots() == before - 3
    assert session.session_key.is_purged


def test_session_key_purged_through_its_own_exit(
    ca: SensorCertificationAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's contract: the buffer's ``__exit__`` zeroes it (``with result['session_key']``)."""
    with ca.new_ephemeral_key() as tee:
        challenge = ca.issue_challenge()
        s = Sensor(tee, challenge)
        r = ca.full_handshake(SENSOR, s.public, s.ack, tee, challenge)
    key = r["session_key"]
    address = key._address()
    exits: list[int] = []
    real_exit = SecureKeyBuffer.__exit__

    def spy_exit(self: SecureKeyBuffer, *exc: object) -> None:
        exits.append(id(self))
        real_exit(self, *exc)

    monkeypatch.setattr(SecureKeyBuffer, "__exit__", spy_exit)
    with key:
        assert _read(address) == s.key
    assert exits == [id(key)]
    assert key.is_purged and _read(address) == bytes(32)


def test_revoking_a_model_refuses_every_serial_of_it() -> None:
    registry = SensorRegistry.default()
    registry.revoke("eeg_fp1_certified_v1")
    for sensor_id in ("eeg_fp1_certified_v1", "eeg_fp1_certified_v1/0007"):
        with pytest.raises(SensorNotCertifiedError, match="revoked"):
            registry.admit(sensor_id)
    registry.admit("eeg_occipital_certified_v1/0001")
