"""The multi-channel shield (issue #15, items 3 and 4; docs/sal.md "Multi-channel").

A frame carries the sensor model's C channels ((C, 256) float32 microvolts, channel-major; C x 1024
bytes on the wire). Every expected value here is computed independently: Phase A and the band
powers with scipy/numpy written in this file, Phase B with hmac/struct from key bytes the test put
into the shield, the bad-sample rules from their definitions. The single-channel path must not
move: the seed's vectors and the existing tests are unchanged, and the checks below tie channel 0
of a multi-channel frame to the single-channel result bit for bit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import scipy.fft
import scipy.signal

from cortex_sal.clock import ManualClock
from cortex_sal.errors import (
    ChannelCountError,
    FrameFormatError,
    InvalidArgumentError,
    RateMismatchError,
    SensorNotCertifiedError,
    WrongTypeError,
)
from cortex_sal.gateway.connection import Admitted, Ended, FrameHandled, GatewayConnection, Send, SensorConnection
from cortex_sal.gateway.metrics import GatewayMetrics
from cortex_sal.gateway.server import GatewayLimits
from cortex_sal.governance import DEFAULT_THRESHOLDS as T
from cortex_sal.keros.registry import SensorModel, SensorRegistry
from cortex_sal.keros.v2 import establish_v2_in_process
from cortex_sal.sal.features import LABELS, phase_a, phase_a_channels, spectral_bins
from cortex_sal.sal.frame import SAMPLE_DTYPE, RawBiometricFrame
from cortex_sal.sal.obfuscation import channel_suffix, obfuscate, obfuscate_channels
from cortex_sal.sal.quality import channel_faults, fault_detail
from cortex_sal.sal.results import RefusalReason, Refused, Released
from cortex_sal.sal.shield import CognitiveShield
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer, SecureTensorBuffer
from cortex_sal.sources import synthetic_eeg
from v2_world import DAY, NOW, World

KEY = bytes(range(32))
BELOW_ONE = 1.0 - 2.0**-53
CYTON = "openbci_cyton_v1"
SYNTH = "brainflow_synthetic_v1"
FP1 = "eeg_fp1_certified_v1"


# -- independent references -----------------------------------------------------------------------


def frame(channels: int, seed: int = 11) -> np.ndarray[Any, Any]:
    """A C-contiguous (C, 256) float32 frame of calm synthetic EEG, a different stream per channel."""
    rows = [next(iter(synthetic_eeg(1, seed=seed + c).frames)) for c in range(channels)]
    return np.ascontiguousarray(np.stack(rows), dtype=SAMPLE_DTYPE)


def ref_features(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """docs/sal.md Phase A, written here: clip, scipy's hilbert, numpy's statistics."""
    env = np.abs(scipy.signal.hilbert(np.clip((x.astype(np.float64) + 50.0) / 100.0, 0.0, 1.0)))
    return np.array([env.mean(), env.std(), np.percentile(env, 25), np.percentile(env, 75), env.max()])


def ref_bins(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Relative power in 8 equal bands of the one-sided spectrum without DC (16 bins each for 256)."""
    p = np.abs(scipy.fft.rfft(np.clip((x.astype(np.float64) + 50.0) / 100.0, 0.0, 1.0))) ** 2
    bands = p[1:].reshape(8, -1).sum(axis=1)
    return bands / bands.sum()


def ref_phase_b(features: np.ndarray[Any, Any], sensor_hash: bytes, channel: int) -> list[float]:
    """Phase B of one channel from scratch (hmac, struct): channel 0 unsuffixed, else ``_ch || u16be``."""
    f = [float(v) for v in features]
    m = struct.pack(">5d", *f) + sensor_hash
    tag = b"" if channel == 0 else b"_ch" + struct.pack(">H", channel)
    d1 = hmac.new(KEY, m + b"_primary" + tag, hashlib.sha256).digest()
    d2 = hmac.new(KEY, m + b"_secondary" + tag, hashlib.sha256).digest()
    u = struct.unpack(">5Q", (d1 + d2)[:40])
    return [x * min(v / 2**64, BELOW_ONE) for x, v in zip(f, u, strict=True)]


def ref_label(c: float) -> str:
    return LABELS[0] if c < T.calm_below else LABELS[1] if c < T.focused_below else LABELS[2]


def known_salt(shield: CognitiveShield) -> None:
    """Give the shield a Phase B key whose bytes the test knows (the oracle's)."""
    shield._salt.secure_purge()
    shield._salt = SecureKeyBuffer(KEY)


@pytest.fixture
def shield() -> Iterator[CognitiveShield]:
    with CognitiveShield(clock=ManualClock(float(NOW))) as s:
        yield s


def registered(shield: CognitiveShield, model: str, serial: str = "SN-1") -> str:
    sensor_id = f"{model}/{serial}"
    m = shield.registry.admit(sensor_id)
    assert not isinstance(shield.register_sensor(sensor_id, m.snr_db, m.bits), Refused)
    return sensor_id


# -- the registry -----------------------------------------------------------------------------------


def test_the_boards_of_the_issue_are_in_the_registry_with_their_shape() -> None:
    reg = SensorRegistry.default()
    shapes = {m.model_id: (m.channels, m.native_rate_hz, m.bits) for m in reg.models()}
    assert shapes[CYTON] == (8, 250.0, 24)
    assert shapes["openbci_ganglion_v1"] == (4, 200.0, 24)
    assert shapes[SYNTH] == (16, 250.0, 24)
    assert shapes[FP1] == (1, 128.0, 16) and shapes["eeg_occipital_certified_v1"] == (1, 128.0, 14)
    synthetic = reg.admit(SYNTH)
    assert synthetic.synthetic and "SYNTHETIC" in synthetic.source
    assert all(m.snr_db >= 30.0 and m.bits >= 12 and m.source for m in reg.models())
    assert "ADS1299" in reg.admit(CYTON).source and "MCP3912" in reg.admit("openbci_ganglion_v1").source
    # boards whose datasheets give no SNR are described, and refused with the reason
    for model in ("muse_2_v1", "muse_s_v1", "neurosity_crown_v1", "lab_amplifier_32ch_v1"):
        with pytest.raises(SensorNotCertifiedError, match="known but not certified"):
            reg.admit(f"{model}/SN1")
    with pytest.raises(SensorNotCertifiedError, match="not in the certified registry"):
        reg.admit("no_such_board/SN1")


def test_the_packaged_json_states_snr_only_with_a_source() -> None:
    from importlib import resources

    doc = json.loads(resources.files("cortex_sal.keros").joinpath("data/sensor_models.json").read_text("utf-8"))
    assert all(m["source"] for m in doc["models"])
    assert all("snr_db" not in m and "bits" not in m and m["why"] for m in doc["uncited"])


def test_a_model_below_the_minima_is_still_refused() -> None:
    weak = SensorModel("weak8", "X", 25.0, 24, channels=8)
    coarse = SensorModel("coarse8", "X", 40.0, 10, channels=8)
    reg = SensorRegistry([weak, coarse])
    for model in ("weak8", "coarse8"):
        with pytest.raises(SensorNotCertifiedError, match="below the minimum"):
            reg.admit(model)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channels": 0}, InvalidArgumentError),
        ({"channels": 33}, InvalidArgumentError),
        ({"channels": 2.0}, WrongTypeError),
        ({"channels": True}, WrongTypeError),
        ({"channels": 2, "labels": ("a",)}, InvalidArgumentError),
        ({"channels": 2, "labels": ("a", "a")}, InvalidArgumentError),
        ({"channels": 1, "labels": ("",)}, InvalidArgumentError),
        ({"channels": 1, "labels": "Fp1"}, WrongTypeError),
        ({"native_rate_hz": 0.0}, InvalidArgumentError),
        ({"native_rate_hz": float("nan")}, InvalidArgumentError),
        ({"source": 3}, WrongTypeError),
    ],
)
def test_a_malformed_model_is_refused(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        SensorModel("m", "X", 40.0, 16, **kwargs)


def test_a_registry_file_declares_channels_labels_and_rate() -> None:
    entry = {"model_id": "cap4", "manufacturer": "Lab", "snr_db": 40.0, "bits": 24, "channels": 4}
    doc = {"models": [{**entry, "labels": ["Fz", "Cz", "Pz", "Oz"], "native_rate_hz": 500, "source": "datasheet"}]}
    model = SensorRegistry.from_json(json.dumps(doc), "test").admit("cap4/1")
    assert (model.channels, model.labels, model.native_rate_hz) == (4, ("Fz", "Cz", "Pz", "Oz"), 500.0)
    bad = {"models": [{**doc["models"][0], "labels": ["Fz"]}]}  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="malformed"):
        SensorRegistry.from_json(json.dumps(bad), "test")


def test_a_source_of_another_shape_is_refused_by_the_model() -> None:
    cyton = SensorRegistry.default().admit(CYTON)
    cyton.check_stream(8, 250.0)
    with pytest.raises(ChannelCountError, match="8 channels, the source 4"):
        cyton.check_stream(4, 250.0)
    with pytest.raises(RateMismatchError, match="250 Hz, the source at 256 Hz"):
        cyton.check_stream(8, 256.0)


# -- Phase A per channel ------------------------------------------------------------------------------


def test_per_channel_features_and_bins_match_an_independent_computation() -> None:
    x = frame(8)
    with SecureTensorBuffer(x.shape, np.float64) as work:
        features, bins = phase_a_channels(x, work.array)
        assert not work.array.any()  # the normalised signal is wiped on return
    for c in range(8):
        np.testing.assert_allclose(features[c], ref_features(x[c]), rtol=0, atol=1e-12)
        np.testing.assert_allclose(bins[c], ref_bins(x[c]), rtol=0, atol=1e-12)
        # and bit for bit what the single-channel functions give (Phase B hashes the exact bytes)
        assert features[c].tobytes() == phase_a(x[c]).tobytes()
        assert bins[c].tobytes() == spectral_bins(x[c]).tobytes()


def test_rows_left_out_are_never_read() -> None:
    x = frame(3)
    x[1] = np.nan
    with SecureTensorBuffer(x.shape, np.float64) as work:
        with pytest.raises(InvalidArgumentError, match="finite"):
            phase_a_channels(x, work.array)
        assert not work.array.any()
        features, _ = phase_a_channels(x, work.array, np.array([True, False, True]))
    for c in (0, 2):
        np.testing.assert_allclose(features[c], ref_features(x[c]), rtol=0, atol=1e-12)


# -- Phase B per channel -------------------------------------------------------------------------------


def test_phase_b_keys_every_channel_apart_and_channel_0_is_the_single_channel_result() -> None:
    rng = np.random.default_rng(3)
    features = rng.uniform(0.1, 0.8, (16, 5))
    h = hashlib.sha256(b"openbci_cyton_v1/SN-1").digest()
    with SecureKeyBuffer(KEY) as key:
        out = obfuscate_channels(features, h, key)
        assert out[0].tobytes() == obfuscate(features[0], h, key).tobytes()
        for c in range(16):
            assert out[c].tolist() == ref_phase_b(features[c], h, c)
        # the same features on two channels give two different tensors (the keys differ)
        same = obfuscate_channels(np.tile(features[0], (16, 1)), h, key)
        assert len({row.tobytes() for row in same}) == 16
        picked = obfuscate_channels(features[[2, 5]], h, key, [2, 5])
        assert picked.tobytes() == out[[2, 5]].tobytes()
        with pytest.raises(InvalidArgumentError):
            obfuscate_channels(features[:2], h, key, [1, 1])
        with pytest.raises(InvalidArgumentError):
            obfuscate_channels(features[0], h, key)


# -- the shield: one bad channel, the bad-sample rules ---------------------------------------------


def test_an_eight_channel_frame_is_released_per_channel(shield: CognitiveShield) -> None:
    known_salt(shield)
    sensor = registered(shield, CYTON)
    x = frame(8)
    r = shield.ingest_raw_data(sensor, x)
    assert isinstance(r, Released)
    labels = tuple(f"ch{i}" for i in range(1, 9))
    assert r.channels == labels and r.tensor.shape == (8, 5) and dict(r.refused_channels) == {}
    ref = [ref_features(x[c]) for c in range(8)]
    coh = [f[1] / f[0] for f in ref]
    np.testing.assert_allclose(r.channel_coherency, coh, rtol=0, atol=1e-12)
    assert r.channel_states == tuple(ref_label(c) for c in r.channel_coherency)
    assert r.coherency_index == pytest.approx(sum(coh) / 8, abs=1e-12)
    assert r.state_label == ref_label(r.coherency_index)
    h = hashlib.sha256(sensor.encode()).digest()
    exact = phase_a_channels(x, np.zeros(x.shape))[0]
    for c in range(8):
        assert r.tensor[c].tolist() == ref_phase_b(exact[c], h, c)
    assert r.tensor_norm == pytest.approx(float(np.sqrt((r.tensor**2).sum())))
    assert r.research_payload is not None and len(r.research_payload) == 41 and r.liveness_proven


def test_one_bad_channel_among_eight_is_named_and_the_rest_released(shield: CognitiveShield) -> None:
    known_salt(shield)
    sensor = registered(shield, CYTON)
    x = frame(8)
    good = shield.ingest_raw_data(sensor, x)
    x[3] = 12.5  # a disconnected electrode: a flat line
    r = shield.ingest_raw_data(sensor, x)
    assert isinstance(good, Released) and isinstance(r, Released)
    assert dict(r.refused_channels) == {"ch4": RefusalReason.FLAT_LINE}
    assert r.channels == ("ch1", "ch2", "ch3", "ch5", "ch6", "ch7", "ch8") and r.tensor.shape == (7, 5)
    # the rows of the channels that passed are the ones they had in the full frame (same keys)
    kept = [0, 1, 2, 4, 5, 6, 7]
    h = hashlib.sha256(sensor.encode()).digest()
    exact = phase_a_channels(x, np.zeros(x.shape))[0]
    assert [row.tolist() for row in r.tensor] == [ref_phase_b(exact[c], h, c) for c in kept]
    assert r.channel_coherency == tuple(good.channel_coherency[c] for c in kept)


def bad(kind: str, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Channel values of one bad-sample kind (applied to a copy of a good channel)."""
    y = x.copy()
    if kind == "nan":
        y[100] = np.nan
    elif kind == "inf":
        y[7] = -np.inf
    elif kind == "range":
        y[50] = 10_000.5
    elif kind == "flat":
        y[:] = -3.25
    elif kind == "saturated":
        y[40:56] = y.max() + 300.0  # a plateau of 16 samples at the maximum
    return y


RULES = [
    ("nan", RefusalReason.NON_FINITE),
    ("inf", RefusalReason.NON_FINITE),
    ("range", RefusalReason.OUT_OF_RANGE),
    ("flat", RefusalReason.FLAT_LINE),
    ("saturated", RefusalReason.SATURATED),
]


@pytest.mark.parametrize(("kind", "reason"), RULES)
def test_every_bad_sample_rule_refuses_its_channel(shield: CognitiveShield, kind: str, reason: RefusalReason) -> None:
    sensor = registered(shield, CYTON)
    x = frame(8)
    x[5] = bad(kind, x[5])
    if kind in ("nan", "inf"):  # the caller's own array: raised, as a one-channel NaN frame is
        with pytest.raises(InvalidArgumentError, match="finite"):
            shield.ingest_raw_data(sensor, x)
        return
    seq = shield._sensors[sensor].frame_seq
    r = shield.ingest_raw_data(sensor, x)
    assert isinstance(r, Released) and dict(r.refused_channels) == {"ch6": reason} and len(r.channels) == 7
    assert shield._sensors[sensor].frame_seq == seq + 1


@pytest.mark.parametrize(("kind", "reason"), RULES)
def test_every_bad_sample_rule_refuses_a_one_channel_frame(
    shield: CognitiveShield, kind: str, reason: RefusalReason
) -> None:
    x = bad(kind, frame(1)[0])
    if kind in ("nan", "inf"):
        sensor = registered(shield, FP1)
        with pytest.raises(InvalidArgumentError):
            shield.ingest_raw_data(sensor, x)
        return
    sensor = registered(shield, FP1)
    r = shield.ingest_raw_data(sensor, x)
    assert isinstance(r, Refused) and r.reason is reason and dict(r.refused_channels) == {"Fp1": reason}
    assert "uV" in r.detail or "samples" in r.detail
    assert shield._sensors[sensor].frame_seq == 1  # counted as a frame that reached the pipeline
    assert shield.session_log[-1]["event"] == "refused"


def test_the_rules_edges_from_their_definitions() -> None:
    base = frame(1)[0].astype(np.float64)
    rows = {
        "at 10 mV": np.where(np.arange(256) == 9, 10_000.0, base),
        "past 10 mV": np.where(np.arange(256) == 9, 10_000.001, base),
        "below -10 mV": np.where(np.arange(256) == 9, -10_000.001, base),
        "ptp 2**-7": np.where(np.arange(256) % 2 == 0, 4.0, 4.0 + 2**-7),  # exact in float32: 0.0078 uV
        "ptp 2**-6": np.where(np.arange(256) % 2 == 0, 4.0, 4.0 + 2**-6),  # 0.0156 uV
        "run 15 at max": np.where((np.arange(256) >= 40) & (np.arange(256) < 55), 90.0, base),
        "run 16 at max": np.where((np.arange(256) >= 40) & (np.arange(256) < 56), 90.0, base),
        "run 16 at min": np.where((np.arange(256) >= 40) & (np.arange(256) < 56), -90.0, base),
        "square +-150": np.where(np.arange(256) % 2, 150.0, -150.0),
        "zeros": np.zeros(256),
    }
    expected = {
        "at 10 mV": None,
        "past 10 mV": RefusalReason.OUT_OF_RANGE,
        "below -10 mV": RefusalReason.OUT_OF_RANGE,
        "ptp 2**-7": RefusalReason.FLAT_LINE,
        "ptp 2**-6": None,
        "run 15 at max": None,
        "run 16 at max": RefusalReason.SATURATED,
        "run 16 at min": RefusalReason.SATURATED,
        "square +-150": None,  # two values alternating: the bridge's to refuse, not a rail
        "zeros": RefusalReason.FLAT_LINE,
    }
    x = np.stack(list(rows.values())).astype(np.float32)
    assert dict(zip(rows, channel_faults(x), strict=True)) == expected


def test_no_channel_passing_refuses_the_frame_and_names_every_channel(shield: CognitiveShield) -> None:
    sensor = registered(shield, "openbci_ganglion_v1")
    x = frame(4)
    x[0] = 0.0
    x[1, :20] = 20_000.0
    x[2] = 1.0
    x[3] = np.where(np.arange(256) % 2, 150.0, -150.0)  # past the bridge
    r = shield.ingest_raw_data(sensor, x)
    assert isinstance(r, Refused) and r.reason is RefusalReason.OUT_OF_RANGE  # the first reason in precedence
    assert dict(r.refused_channels) == {
        "ch1": RefusalReason.FLAT_LINE,
        "ch2": RefusalReason.OUT_OF_RANGE,
        "ch3": RefusalReason.FLAT_LINE,
        "ch4": RefusalReason.BRIDGE_BOUNDS,
    }
    assert r.detail.startswith("no channel passed: ") and "ch4 bridge (" in r.detail


# -- wrong channel count, wrong rate -------------------------------------------------------------------


def test_a_frame_of_another_channel_count_is_refused(shield: CognitiveShield) -> None:
    cyton = registered(shield, CYTON)
    fp1 = registered(shield, FP1)
    for sensor, x, want in ((cyton, frame(4), 8), (cyton, frame(1)[0], 8), (fp1, frame(2), 1)):
        r = shield.ingest_raw_data(sensor, x)
        assert isinstance(r, Refused) and r.reason is RefusalReason.CHANNEL_COUNT and f"has {want} channel" in r.detail
    assert shield._sensors[cyton].frame_seq == 2 and shield._sensors[fp1].frame_seq == 1
    r = shield.ingest_raw_data(cyton, frame(8), rate_hz=250.0)
    assert isinstance(r, Refused) and r.reason is RefusalReason.RATE_MISMATCH and "resample" in r.detail
    assert isinstance(shield.ingest_raw_data(cyton, frame(8), rate_hz=128), Released)
    for wrong in (np.zeros((8, 255)), np.zeros((33, 256)), np.zeros((2, 2, 256)), np.zeros((0, 256))):
        with pytest.raises(InvalidArgumentError):
            shield.ingest_raw_data(cyton, wrong)
    with pytest.raises(WrongTypeError):
        shield.ingest_raw_data(cyton, frame(8), rate_hz="128")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        shield.ingest_raw_data(cyton, frame(8), rate_hz=float("inf"))


def test_the_one_channel_result_is_as_before(shield: CognitiveShield) -> None:
    known_salt(shield)
    sensor = registered(shield, FP1)
    x = frame(1)[0]
    r = shield.ingest_raw_data(sensor, x)
    assert isinstance(r, Released) and r.tensor.shape == (5,)
    h = hashlib.sha256(sensor.encode()).digest()
    assert r.tensor.tolist() == ref_phase_b(phase_a(x), h, 0)
    assert r.channels == ("Fp1",) and r.channel_coherency == (r.coherency_index,)
    assert r.channel_states == (r.state_label,) and dict(r.refused_channels) == {}
    again = shield.ingest_raw_data(sensor, x[None, :])  # a (1, 256) frame is the same frame
    assert isinstance(again, Released) and again.tensor.tobytes() == r.tensor.tobytes()


# -- through a real v2 channel -------------------------------------------------------------------------


def seal(channel: Any, payload: bytes) -> bytes:
    with SecureBuffer.from_bytes(payload) as buf:
        return channel.seal(buf)  # type: ignore[no-any-return]


def cert_for(world: World, model: str, registry: SensorRegistry | None = None) -> bytes:
    return world.manufacturer.issue_sensor(world.sensor_key.public_bytes(), model_id=model, serial="SN-0001",
                                           not_before=NOW - DAY, not_after=NOW + DAY, registry=registry)  # fmt: skip


@pytest.mark.parametrize("model", [CYTON, SYNTH])
def test_eight_and_sixteen_channel_frames_through_a_v2_channel(world: World, model: str) -> None:
    gateway = world.gateway()
    up, down = establish_v2_in_process(world.sensor(cert=cert_for(world, model)), gateway)
    channels = SensorRegistry.default().admit(model).channels
    data = [frame(channels, seed=20 + 7 * i) for i in range(4)]
    with CognitiveShield(clock=world.clock) as shield:
        attached = shield.attach_sensor(down, gateway.peer)  # type: ignore[arg-type]
        assert not isinstance(attached, Refused)
        over_v2 = [shield.ingest_frame(f"{model}/SN-0001", seal(up, x.tobytes())) for x in data]
        one_channel_size = shield.ingest_frame(f"{model}/SN-0001", seal(up, data[0][0].tobytes()))
    with CognitiveShield(clock=world.clock) as shield:
        sensor = registered(shield, model, "SN-0001")
        raw = [shield.ingest_raw_data(sensor, x) for x in data]
    assert all(isinstance(r, Released) and r.tensor.shape == (channels, 5) for r in over_v2 + raw)
    assert [(r.channel_coherency, r.channel_states) for r in over_v2] == [
        (r.channel_coherency, r.channel_states) for r in raw
    ]
    assert isinstance(one_channel_size, Refused) and one_channel_size.reason is RefusalReason.FRAME_FORMAT
    assert f"{channels} channels x 256 samples" in one_channel_size.detail
    up.close()


def test_a_v2_frame_with_a_dead_channel_names_it(world: World) -> None:
    gateway = world.gateway()
    up, down = establish_v2_in_process(world.sensor(cert=cert_for(world, CYTON)), gateway)
    x = frame(8)
    x[7, 3] = np.nan  # bytes off a wire: refused per channel, never raised
    with CognitiveShield(clock=world.clock) as shield:
        shield.attach_sensor(down, gateway.peer)  # type: ignore[arg-type]
        r = shield.ingest_frame(f"{CYTON}/SN-0001", seal(up, x.tobytes()))
        assert isinstance(r, Released) and dict(r.refused_channels) == {"ch8": RefusalReason.NON_FINITE}
        x[:, 0] = np.inf  # no channel finite: refused before the pipeline, as a one-channel NaN frame
        dead = shield.ingest_frame(f"{CYTON}/SN-0001", seal(up, x.tobytes()))
        assert isinstance(dead, Refused) and dead.reason is RefusalReason.NON_FINITE
        assert set(dead.refused_channels) == {f"ch{i}" for i in range(1, 9)}
    up.close()


def test_a_32_channel_frame_passes_the_gateway_connection_and_handshakes_stay_bounded(world: World) -> None:
    lab = SensorModel("lab32_test", "Lab", 40.0, 24, channels=32, native_rate_hz=1000.0, source="a test model")
    registry = SensorRegistry([*SensorRegistry.default().models(), lab])
    cert = cert_for(world, "lab32_test", registry)
    limits = GatewayLimits()
    with CognitiveShield(clock=world.clock, registry=registry) as shield:
        gw = GatewayConnection(static_key=world.gateway_key, certificate=world.gateway_cert, trust=world.trust,
                               shield=shield, clock=world.clock, max_record=limits.max_record)  # fmt: skip
        sensor = SensorConnection(static_key=world.sensor_key, certificate=cert, trust=world.trust, clock=world.clock)
        assert gw.read_size == 4 * 4096  # before admission a read brings at most 4 handshake records
        events = gw.receive_data(sensor.start())
        reply = [e.data for e in events if isinstance(e, Send)]
        finish = [e.data for e in sensor.receive_data(b"".join(reply)) if isinstance(e, Send)]
        admitted = gw.receive_data(b"".join(finish))
        assert any(isinstance(e, Admitted) for e in admitted) and gw.read_size == 4 * limits.max_record
        x = frame(32)
        with SecureBuffer.from_bytes(x.tobytes()) as payload:
            record = sensor.frame(payload)
        assert len(record) == 3 + 32 * 1024 + 16
        handled = [e for e in gw.receive_data(record) if isinstance(e, FrameHandled)]
        assert len(handled) == 1 and isinstance(handled[0].result, Released)
        assert handled[0].result.tensor.shape == (32, 5)
        sensor.close()
        gw.close()
    # a handshake record above 4096 bytes is refused on its header, whatever max_record allows
    with CognitiveShield(clock=world.clock) as shield:
        gw = GatewayConnection(static_key=world.gateway_key, certificate=world.gateway_cert, trust=world.trust,
                               shield=shield, clock=world.clock, max_record=limits.max_record)  # fmt: skip
        ended = [e for e in gw.receive_data(b"\x01" + struct.pack(">H", 4097)) if isinstance(e, Ended)]
        assert ended and ended[0].reason == "record" and "at most 4096" in ended[0].detail


def test_over_v1_a_frame_holds_at_most_eight_channels(shield: CognitiveShield) -> None:
    sensor = registered(shield, CYTON)
    endpoint = shield.sensor_endpoint(sensor)
    r = shield.ingest_frame(sensor, endpoint.encrypt_frame(frame(8).tobytes()))  # 8 x 1024 = the v1 maximum
    assert isinstance(r, Released) and r.tensor.shape == (8, 5)
    synth = registered(shield, SYNTH)
    with pytest.raises(FrameFormatError, match="8192"):
        shield.sensor_endpoint(synth).encrypt_frame(frame(16).tobytes())


# -- the batch, the counters ---------------------------------------------------------------------------


def test_the_batch_takes_one_channel_sensors_and_applies_the_same_rules(shield: CognitiveShield) -> None:
    cyton = registered(shield, CYTON)
    with pytest.raises(InvalidArgumentError, match="one-channel sensors"):
        shield.ingest_batch([cyton], frame(8)[:1])
    ids = [registered(shield, FP1, f"B{i}") for i in range(3)]
    x = frame(3, seed=40)
    x[1] = 7.0
    batch = shield.ingest_batch(ids, x)
    with CognitiveShield(clock=ManualClock(float(NOW))) as single:
        for s in ids:
            registered(single, FP1, s.split("/")[1])
        one = [single.ingest_raw_data(s, row) for s, row in zip(ids, x, strict=True)]
    assert isinstance(batch[1], Refused) and batch[1].reason is RefusalReason.FLAT_LINE
    assert [type(r) for r in batch] == [type(r) for r in one] == [Released, Refused, Released]
    assert [getattr(r, "reason", None) for r in batch] == [getattr(r, "reason", None) for r in one]
    assert [getattr(r, "coherency_index", None) for r in batch] == [getattr(r, "coherency_index", None) for r in one]
    assert dict(batch[1].refused_channels) == {"Fp1": RefusalReason.FLAT_LINE}


def test_the_new_reasons_are_counted_like_the_others() -> None:
    metrics = GatewayMetrics()
    new = ("out_of_range", "flat_line", "saturated", "channel_count", "rate_mismatch")
    assert {r.value for r in RefusalReason} >= set(new)
    for value in new:
        metrics.frame(value, None)
    text = metrics.registry.get_sample_value
    assert all(text("cortex_sal_frames_total", {"outcome": v}) == 1.0 for v in new)


def test_the_new_entry_points_refuse_bad_arguments() -> None:
    with pytest.raises(WrongTypeError):
        channel_faults([[1.0] * 256])  # type: ignore[arg-type]
    for wrong in (np.zeros(256), np.zeros((0, 256)), np.zeros((2, 256), dtype=complex)):
        with pytest.raises(InvalidArgumentError):
            channel_faults(wrong)
    with pytest.raises(InvalidArgumentError):
        fault_detail(RefusalReason.REPLAY)
    for channels in (0, 33):
        with pytest.raises(InvalidArgumentError):
            RawBiometricFrame(channels=channels)
    with pytest.raises(WrongTypeError):
        RawBiometricFrame(channels=True)
    with pytest.raises(WrongTypeError):
        channel_suffix(1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        channel_suffix(65536)
    assert channel_suffix(0) == b"" and channel_suffix(258) == b"_ch\x01\x02"


def test_a_raw_frame_of_c_channels_is_one_locked_buffer() -> None:
    x = frame(4)
    with RawBiometricFrame.from_samples(x) as raw:
        assert raw.samples.shape == (4, 256) and np.array_equal(raw.channels_view, x)
    with RawBiometricFrame.from_samples(x[:1]) as one:
        assert one.samples.shape == (256,) and one.channels_view.shape == (1, 256)
