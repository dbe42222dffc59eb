"""``TelemetryRouter``: the schema table, the ±5 s window, anti-replay per sensor, and the
41-byte research payload checked against an independent ``struct.pack`` layout."""

from __future__ import annotations

import math
import struct
import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.clock import ManualClock
from cortex_sal.errors import InvalidArgumentError, SchemaError, WrongLengthError, WrongTypeError
from cortex_sal.sal.router import LABELS, TelemetryRouter, parse_research_payload, research_payload
from hypothesis_profiles import examples

T0 = 1_800_000_000.0
SENSOR = "3f2a9c0d11e4b7a8"
BINS = np.array([0.30, 0.20, 0.15, 0.10, 0.10, 0.06, 0.05, 0.04], dtype=np.float64)
REQUIRED = ("features", "coherency", "polyvagal_state", "timestamp", "frame_seq", "sensor_id_hash")


def independent_layout(seq: int, bins: Any, cv: float, bucket: int) -> bytes:
    """The layout written out by hand: u32 BE || 8 f32 BE || f32 BE || u8 (41 bytes)."""
    out = seq.to_bytes(4, "big")
    for b in bins:
        out += struct.pack(">f", float(b))
    out += struct.pack(">f", float(cv))
    out += bytes([bucket])
    return out


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def router(clock: ManualClock) -> TelemetryRouter:
    return TelemetryRouter(clock=clock)


def payload(clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "features": np.array([0.4, 0.1, 0.35, 0.45, 0.6]),
        "coherency": 0.25,
        "polyvagal_state": LABELS[0],
        "timestamp": clock.time(),
        "frame_seq": 1,
        "sensor_id_hash": SENSOR,
        "spectral_bins": BINS.copy(),
    }
    p.update(overrides)
    return p


def test_labels_are_the_three_of_the_design() -> None:
    assert LABELS == ("ventral_vagal (calm)", "sympathetic (focused)", "dorsal_vagal (rest_needed)")


def test_routed_payload_is_the_independent_layout(router: TelemetryRouter, clock: ManualClock) -> None:
    result = router.ingest_from_bridge(payload(clock, frame_seq=7, coherency=0.55, polyvagal_state=LABELS[1]))
    assert set(result) == {"status", "research_payload"}
    assert result["status"] == "routed"
    out = result["research_payload"]
    assert isinstance(out, bytes)
    assert len(out) == 41
    assert out == struct.pack(">I8ffB", 7, *BINS, 0.55, 1)
    assert out == independent_layout(7, BINS, 0.55, 1)
    assert out[:4] == b"\x00\x00\x00\x07"
    assert out[-1] == 1
    assert router.last_seq(SENSOR) == 7


def test_payload_carries_no_identifier_and_no_timestamp(router: TelemetryRouter, clock: ManualClock) -> None:
    sensor = "sensor-identifier-hash-abcdef"
    ts = clock.time() + 1.25
    out = router.ingest_from_bridge(payload(clock, sensor_id_hash=sensor, timestamp=ts))["research_payload"]
    forbidden = [
        sensor.encode(),
        sensor.encode()[:4],
        struct.pack(">d", ts),
        struct.pack("<d", ts),
        struct.pack(">f", ts),
        struct.pack("<f", ts),
        struct.pack(">I", int(ts)),
        struct.pack("<I", int(ts)),
        str(int(ts)).encode(),
    ]
    for needle in forbidden:
        assert needle not in out
    # every byte is accounted for by seq, bins, cv and bucket: nothing else fits in 41 bytes
    assert out == independent_layout(1, BINS, 0.25, 0)


def test_research_payload_function_matches_struct() -> None:
    bins = np.linspace(0.0, 0.35, 8)
    assert research_payload(0xFFFFFFFF, bins, -1.5, 2) == struct.pack(">I8ffB", 0xFFFFFFFF, *bins, -1.5, 2)
    assert research_payload(0, bins, 0.0, 0) == independent_layout(0, bins, 0.0, 0)


def test_parse_round_trip(router: TelemetryRouter, clock: ManualClock) -> None:
    out = router.ingest_from_bridge(payload(clock, frame_seq=12, coherency=0.9, polyvagal_state=LABELS[2]))[
        "research_payload"
    ]
    parsed = parse_research_payload(out)
    assert parsed["frame_seq"] == 12
    assert parsed["bucket"] == 2
    assert parsed["polyvagal_state"] == LABELS[2]
    assert parsed["cv"] == float(np.float32(0.9))
    assert parsed["spectral_bins"].dtype == np.float32
    np.testing.assert_array_equal(parsed["spectral_bins"], BINS.astype(np.float32))
    again = research_payload(parsed["frame_seq"], parsed["spectral_bins"], parsed["cv"], parsed["bucket"])
    assert again == out


@settings(max_examples=examples(200), deadline=None)
@given(
    seq=st.integers(0, 0xFFFFFFFF),
    bins=st.lists(st.floats(0.0, 1.0, width=32), min_size=8, max_size=8),
    cv=st.floats(-1e6, 1e6, width=32),
    bucket=st.integers(0, 2),
)
def test_round_trip_property(seq: int, bins: list[float], cv: float, bucket: int) -> None:
    out = research_payload(seq, np.array(bins), cv, bucket)
    assert out == independent_layout(seq, bins, cv, bucket)
    parsed = parse_research_payload(out)
    assert parsed["frame_seq"] == seq
    assert parsed["cv"] == cv
    assert parsed["bucket"] == bucket
    assert parsed["spectral_bins"].tolist() == bins
    assert research_payload(seq, parsed["spectral_bins"], parsed["cv"], parsed["bucket"]) == out


def test_absent_spectral_bins_are_nan_not_zero(router: TelemetryRouter, clock: ManualClock) -> None:
    p = payload(clock)
    del p["spectral_bins"]
    out = router.ingest_from_bridge(p)["research_payload"]
    assert len(out) == 41
    bins = struct.unpack(">8f", out[4:36])
    assert all(math.isnan(b) for b in bins)
    assert parse_research_payload(out)["spectral_bins"] is None
    assert research_payload(1, None, 0.25, 0) == out
    # None counts as absent as well
    out2 = router.ingest_from_bridge(payload(clock, frame_seq=2, spectral_bins=None))["research_payload"]
    assert parse_research_payload(out2)["spectral_bins"] is None
    # all-zero bins (no power) are distinct from absent
    zero = router.ingest_from_bridge(payload(clock, frame_seq=3, spectral_bins=np.zeros(8)))["research_payload"]
    np.testing.assert_array_equal(parse_research_payload(zero)["spectral_bins"], np.zeros(8, np.float32))


# -- schema table ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", REQUIRED)
def test_each_required_key_missing(router: TelemetryRouter, clock: ManualClock, key: str) -> None:
    p = payload(clock)
    del p[key]
    with pytest.raises(SchemaError, match=key):
        router.ingest_from_bridge(p)
    assert len(router) == 0


def test_schema_error_is_a_value_error(router: TelemetryRouter, clock: ManualClock) -> None:
    with pytest.raises(ValueError):
        router.ingest_from_bridge(payload(clock, polyvagal_state="happy"))


BAD_VALUES: list[tuple[str, Any]] = [
    # features: type, shape, dtype, finiteness
    ("features", [0.1, 0.2, 0.3, 0.4, 0.5]),
    ("features", (0.1, 0.2, 0.3, 0.4, 0.5)),
    ("features", None),
    ("features", np.zeros(4)),
    ("features", np.zeros((5, 1))),
    ("features", np.zeros((1, 5))),
    ("features", np.zeros(6)),
    ("features", np.zeros(0)),
    ("features", np.array([0.1, np.nan, 0.3, 0.4, 0.5])),
    ("features", np.array([0.1, np.inf, 0.3, 0.4, 0.5])),
    ("features", np.array([0.1, -np.inf, 0.3, 0.4, 0.5])),
    ("features", np.zeros(5, dtype=bool)),
    ("features", np.zeros(5, dtype=complex)),
    ("features", np.array(["a"] * 5)),
    ("features", np.array([0.1] * 5, dtype=object)),
    # coherency
    ("coherency", "0.25"),
    ("coherency", None),
    ("coherency", True),
    ("coherency", np.bool_(True)),
    ("coherency", 0.25 + 0j),
    ("coherency", math.nan),
    ("coherency", math.inf),
    ("coherency", -math.inf),
    ("coherency", 1e39),  # does not fit the f32 field
    ("coherency", np.array([0.25])),
    # polyvagal_state
    ("polyvagal_state", "calm"),
    ("polyvagal_state", "ventral_vagal"),
    ("polyvagal_state", LABELS[0].upper()),
    ("polyvagal_state", ""),
    ("polyvagal_state", 0),
    ("polyvagal_state", None),
    ("polyvagal_state", LABELS[0].encode()),
    # timestamp
    ("timestamp", str(T0)),
    ("timestamp", None),
    ("timestamp", True),
    ("timestamp", math.nan),
    ("timestamp", math.inf),
    ("timestamp", 0.0),
    # frame_seq
    ("frame_seq", 1.0),
    ("frame_seq", "1"),
    ("frame_seq", None),
    ("frame_seq", True),
    ("frame_seq", -1),
    ("frame_seq", 2**32),
    # sensor_id_hash
    ("sensor_id_hash", ""),
    ("sensor_id_hash", None),
    ("sensor_id_hash", b"3f2a9c0d"),
    ("sensor_id_hash", 12345),
    # spectral_bins
    ("spectral_bins", np.zeros(7)),
    ("spectral_bins", np.zeros((8, 1))),
    ("spectral_bins", list(BINS)),
    ("spectral_bins", np.array([np.nan] * 8)),
    ("spectral_bins", np.array([0.1] * 7 + [np.inf])),
    ("spectral_bins", np.array([1e39] * 8)),
    ("spectral_bins", np.zeros(8, dtype=complex)),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BAD_VALUES)])
def test_wrong_values_raise_schema_error(router: TelemetryRouter, clock: ManualClock, key: str, value: Any) -> None:
    with pytest.raises(SchemaError):
        router.ingest_from_bridge(payload(clock, **{key: value}))
    assert router.last_seq(SENSOR) is None
    assert len(router) == 0
    # the router is untouched: the same frame, well-formed, still routes
    assert router.ingest_from_bridge(payload(clock))["status"] == "routed"


def test_accepted_number_types(router: TelemetryRouter, clock: ManualClock) -> None:
    p = payload(
        clock,
        features=np.array([1, 2, 3, 4, 5], dtype=np.int32),
        coherency=np.float32(0.5),
        timestamp=int(T0),
        frame_seq=np.uint32(3),
        spectral_bins=BINS.astype(np.float32),
    )
    out = router.ingest_from_bridge(p)
    assert out["status"] == "routed"
    assert router.last_seq(SENSOR) == 3
    assert type(router.last_seq(SENSOR)) is int


def test_unknown_key_and_non_mapping_refused(router: TelemetryRouter, clock: ManualClock) -> None:
    with pytest.raises(SchemaError, match="unknown"):
        router.ingest_from_bridge(payload(clock, spectral_bin=BINS))
    with pytest.raises(SchemaError, match="unknown"):
        router.ingest_from_bridge(payload(clock, raw_samples=np.zeros(256)))
    for bad in (None, [("features", 1)], "payload"):
        with pytest.raises(SchemaError):
            router.ingest_from_bridge(bad)  # type: ignore[arg-type]


def test_frame_seq_bounds_accepted(router: TelemetryRouter, clock: ManualClock) -> None:
    assert router.ingest_from_bridge(payload(clock, frame_seq=0))["status"] == "routed"
    out = router.ingest_from_bridge(payload(clock, frame_seq=0xFFFFFFFF))
    assert out["research_payload"][:4] == b"\xff\xff\xff\xff"


# -- timestamp window ------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [5.0, -5.0, 0.0, 4.999])
def test_timestamp_at_the_edge_accepted(router: TelemetryRouter, clock: ManualClock, offset: float) -> None:
    assert router.ingest_from_bridge(payload(clock, timestamp=clock.time() + offset))["status"] == "routed"


@pytest.mark.parametrize("offset", [5.001, -5.001, 60.0, -3600.0])
def test_timestamp_past_the_edge_refused(router: TelemetryRouter, clock: ManualClock, offset: float) -> None:
    with pytest.raises(SchemaError, match="timestamp"):
        router.ingest_from_bridge(payload(clock, timestamp=clock.time() + offset))
    assert router.last_seq(SENSOR) is None


def test_timestamp_window_follows_the_clock(router: TelemetryRouter, clock: ManualClock) -> None:
    ts = clock.time()
    clock.advance(5.0)
    assert router.ingest_from_bridge(payload(clock, timestamp=ts, frame_seq=1))["status"] == "routed"
    clock.advance(0.001)
    with pytest.raises(SchemaError):
        router.ingest_from_bridge(payload(clock, timestamp=ts, frame_seq=2))
    assert router.last_seq(SENSOR) == 1


# -- anti-replay -------------------------------------------------------------------------------


@pytest.mark.parametrize("again", [5, 4, 0])
def test_replay_equal_or_lower_refused_state_unchanged(router: TelemetryRouter, clock: ManualClock, again: int) -> None:
    assert router.ingest_from_bridge(payload(clock, frame_seq=5))["status"] == "routed"
    result = router.ingest_from_bridge(payload(clock, frame_seq=again))
    assert result["status"] == "replay_attack"
    assert "research_payload" not in result
    assert result["last_frame_seq"] == 5
    assert SENSOR not in repr(result)
    assert router.last_seq(SENSOR) == 5
    assert len(router) == 1
    # still refused: the replay did not lower the mark
    assert router.ingest_from_bridge(payload(clock, frame_seq=5))["status"] == "replay_attack"
    assert router.ingest_from_bridge(payload(clock, frame_seq=6))["status"] == "routed"
    assert router.last_seq(SENSOR) == 6


def test_higher_routed_gaps_allowed(router: TelemetryRouter, clock: ManualClock) -> None:
    for seq in (1, 2, 10, 11, 1000):
        assert router.ingest_from_bridge(payload(clock, frame_seq=seq))["status"] == "routed"
    assert router.last_seq(SENSOR) == 1000
    assert router.ingest_from_bridge(payload(clock, frame_seq=999))["status"] == "replay_attack"


def test_schema_error_after_routing_leaves_mark(router: TelemetryRouter, clock: ManualClock) -> None:
    router.ingest_from_bridge(payload(clock, frame_seq=3))
    with pytest.raises(SchemaError):
        router.ingest_from_bridge(payload(clock, frame_seq=9, polyvagal_state="nope"))
    assert router.last_seq(SENSOR) == 3
    assert router.ingest_from_bridge(payload(clock, frame_seq=4))["status"] == "routed"


def test_per_sensor_independence(router: TelemetryRouter, clock: ManualClock) -> None:
    assert router.ingest_from_bridge(payload(clock, sensor_id_hash="a", frame_seq=10))["status"] == "routed"
    # another sensor starts low: its own sequence
    assert router.ingest_from_bridge(payload(clock, sensor_id_hash="b", frame_seq=1))["status"] == "routed"
    assert router.ingest_from_bridge(payload(clock, sensor_id_hash="b", frame_seq=2))["status"] == "routed"
    assert router.ingest_from_bridge(payload(clock, sensor_id_hash="a", frame_seq=10))["status"] == "replay_attack"
    assert router.ingest_from_bridge(payload(clock, sensor_id_hash="b", frame_seq=2))["status"] == "replay_attack"
    assert router.last_seq("a") == 10
    assert router.last_seq("b") == 2
    assert router.last_seq("c") is None
    assert len(router) == 2


def test_forget_and_clear(router: TelemetryRouter, clock: ManualClock) -> None:
    for name in ("a", "b", "c"):
        router.ingest_from_bridge(payload(clock, sensor_id_hash=name, frame_seq=5))
    assert len(router) == 3
    assert router.forget("a") is True
    assert router.forget("a") is False
    assert router.forget("never-seen") is False
    assert len(router) == 2
    assert router.last_seq("a") is None
    assert router.ingest_from_bridge(payload(clock, sensor_id_hash="a", frame_seq=1))["status"] == "routed"
    assert router.ingest_from_bridge(payload(clock, sensor_id_hash="b", frame_seq=1))["status"] == "replay_attack"
    router.clear()
    assert len(router) == 0
    assert router.ingest_from_bridge(payload(clock, sensor_id_hash="b", frame_seq=1))["status"] == "routed"
    assert "1 sensor" in repr(router)


def test_concurrent_same_seq_routed_once(clock: ManualClock) -> None:
    router = TelemetryRouter(clock=clock)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(router.ingest_from_bridge(payload(clock, frame_seq=42))["status"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["replay_attack"] * 7 + ["routed"]


def test_payload_not_mutated(router: TelemetryRouter, clock: ManualClock) -> None:
    p = payload(clock)
    snapshot = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in p.items()}
    router.ingest_from_bridge(p)
    assert p.keys() == snapshot.keys()
    for k, v in snapshot.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(p[k], v)
        else:
            assert p[k] == v


def test_tolerance_argument(clock: ManualClock) -> None:
    strict = TelemetryRouter(clock=clock, timestamp_tolerance_s=1.0)
    with pytest.raises(SchemaError):
        strict.ingest_from_bridge(payload(clock, timestamp=clock.time() + 1.5))
    for bad in (-1.0, math.nan, "5"):
        with pytest.raises((InvalidArgumentError, WrongTypeError)):
            TelemetryRouter(clock=clock, timestamp_tolerance_s=bad)  # type: ignore[arg-type]


# -- research_payload / parse_research_payload refusals -------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((-1, BINS, 0.1, 0), InvalidArgumentError),
        ((2**32, BINS, 0.1, 0), InvalidArgumentError),
        ((1.0, BINS, 0.1, 0), WrongTypeError),
        ((1, list(BINS), 0.1, 0), WrongTypeError),
        ((1, np.zeros(7), 0.1, 0), InvalidArgumentError),
        ((1, np.full(8, np.nan), 0.1, 0), InvalidArgumentError),
        ((1, BINS, math.nan, 0), InvalidArgumentError),
        ((1, BINS, 1e39, 0), InvalidArgumentError),
        ((1, BINS, "0.1", 0), WrongTypeError),
        ((1, BINS, 0.1, 3), InvalidArgumentError),
        ((1, BINS, 0.1, -1), InvalidArgumentError),
        ((1, BINS, 0.1, True), WrongTypeError),
    ],
)
def test_research_payload_refuses(args: tuple[Any, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        research_payload(*args)


def test_parse_refuses_malformed() -> None:
    good = research_payload(1, BINS, 0.5, 1)
    assert parse_research_payload(bytearray(good))["frame_seq"] == 1
    for size in (0, 40, 42):
        with pytest.raises(WrongLengthError):
            parse_research_payload(bytes(size))
    with pytest.raises(InvalidArgumentError, match="bucket"):
        parse_research_payload(good[:-1] + b"\x03")
    with pytest.raises(InvalidArgumentError, match="cv"):
        parse_research_payload(good[:36] + struct.pack(">f", math.inf) + good[40:])
    with pytest.raises(InvalidArgumentError, match="spectral"):
        parse_research_payload(good[:4] + struct.pack(">f", math.nan) + good[8:])
    with pytest.raises(WrongTypeError):
        parse_research_payload("not bytes")  # type: ignore[arg-type]
