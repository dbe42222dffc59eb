"""Fuzzing the SAL (issue #6, item 8): the telemetry router's payloads (single and batch), the
41-byte research payload, the shield's three ingestion paths and the clinical channel.

Each property feeds 10,000 hypothesis plans to a target of ``fuzz/fuzzlib/sal.py``: payload
mappings with keys dropped, added or given odd values (huge ints and Fractions, NaN,
infinities, longdouble beyond float64, numpy scalars, arrays of every dtype and shape, masked
arrays, strings, bytes, objects); frames mutated field by field; raw samples of every dtype,
shape and special value, ragged lists; clinical messages mutated field by field. The oracle
accepts only the documented exceptions, checks that a refused input changes nothing (the
router's replay state, the shield's frame counters and log, the arena's live slots) and that
the entry point still takes the next valid input.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import fuzzlib
import numpy as np
import pytest
from fuzzlib import Mutation, Plan
from hypothesis import event, example, given, settings

from cortex_sal.clock import ManualClock
from cortex_sal.errors import InvalidArgumentError, SchemaError, WrongTypeError
from cortex_sal.sal.frame import RawBiometricFrame
from cortex_sal.sal.results import Registered
from cortex_sal.sal.router import LABELS, TelemetryRouter, research_payload
from cortex_sal.sal.shield import CognitiveShield
from hypothesis_profiles import examples

FUZZ = settings(max_examples=examples(10_000), deadline=None)
SENSOR = "eeg_fp1_certified_v1"

target = fuzzlib.TargetCache()


@pytest.fixture(scope="module", autouse=True)
def _close_targets() -> Iterator[None]:
    yield
    target.close()


# -- the router --------------------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 0, (Mutation("flip", 1, 7),)))  # coherency = 10**400
@example(plan=Plan("mutate", 0, (Mutation("flip", 3, 9),)))  # timestamp = Fraction(10**400, 3)
@example(plan=Plan("mutate", 0, (Mutation("flip", 6, 30),)))  # spectral bins: longdouble 1e4000
def test_fuzz_router_ingest_from_bridge(plan: Plan) -> None:
    event(target("router")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 0, (Mutation("flip", 2, 3),)))  # polyvagal_states = 0 (no len())
@example(plan=Plan("mutate", 0, (Mutation("flip", 5, 23),)))  # sensor_id_hashes = "0.25" (a str)
def test_fuzz_router_ingest_batch(plan: Plan) -> None:
    event(target("router_batch")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_parse_research_payload(plan: Plan) -> None:
    event(target("research_payload")(plan))


# -- the shield -----------------------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_shield_ingest_frame(plan: Plan) -> None:
    event(target("shield_frame")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 0, (Mutation("flip", 0, 1),)))  # +inf in the samples
@example(plan=Plan("mutate", 0, (Mutation("flip", 0, 5),)))  # 1e300: beyond float32
@example(plan=Plan("mutate", 0, (Mutation("overwrite", 0, 1),)))  # a ragged list
def test_fuzz_shield_ingest_raw_data(plan: Plan) -> None:
    event(target("shield_raw")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 1, (Mutation("flip", 0, 5),)))  # 1e300: beyond float32
@example(plan=Plan("mutate", 1, (Mutation("truncate", 0, 8),)))  # complex samples
def test_fuzz_shield_ingest_batch(plan: Plan) -> None:
    event(target("shield_batch")(plan))


# -- the clinical channel ------------------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_clinical_open(plan: Plan) -> None:
    event(target("clinical")(plan))


# -- regressions: what the fuzzers found -------------------------------------------------------------------


def _payload(clock: ManualClock, **overrides: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "features": np.array([0.4, 0.1, 0.35, 0.45, 0.6]),
        "coherency": 0.25,
        "polyvagal_state": LABELS[0],
        "timestamp": clock.time(),
        "frame_seq": 1,
        "sensor_id_hash": "3f2a9c0d11e4b7a8",
    }
    p.update(overrides)
    return p


@pytest.mark.parametrize(
    "overrides",
    [
        {"coherency": 10**400},
        {"coherency": -Fraction(10**400, 3)},
        {"timestamp": 10**400},
        {"spectral_bins": np.full(8, np.longdouble("1e4000"))},
        {"features": np.full(5, np.longdouble("-1e4000"))},
    ],
    ids=["coherency 10**400", "coherency -10**400/3", "timestamp 10**400", "bins longdouble", "features longdouble"],
)
def test_router_refuses_numbers_beyond_float_range(overrides: dict[str, Any]) -> None:
    """Found by fuzzing: ``float(10**400)`` raised OverflowError, and a longdouble beyond
    float64 raised a RuntimeWarning (an exception under ``-W error``)."""
    clock = ManualClock()
    router = TelemetryRouter(clock=clock)
    with pytest.raises(SchemaError):
        router.ingest_from_bridge(_payload(clock, **overrides))
    assert len(router) == 0
    assert router.ingest_from_bridge(_payload(clock))["status"] == "routed"


def test_router_tolerance_and_research_payload_refuse_huge_ints() -> None:
    with pytest.raises(InvalidArgumentError):
        TelemetryRouter(timestamp_tolerance_s=10**400)
    with pytest.raises(InvalidArgumentError):
        research_payload(1, None, 10**400, 0)


@pytest.mark.parametrize("column", [2, 4, 5])
@pytest.mark.parametrize("bad", [0, None, 1.5, "abc", b"abc", np.float32(1.0)])
def test_router_batch_refuses_columns_that_are_not_sequences(column: int, bad: object) -> None:
    """Found by fuzzing: ``len()`` of a scalar column raised TypeError; a str column was
    taken as a sequence of one-character items."""
    clock = ManualClock()
    router = TelemetryRouter(clock=clock)
    cols: list[Any] = [
        np.tile(np.array([0.4, 0.1, 0.35, 0.45, 0.6]), (3, 1)),
        np.full(3, 0.25),
        [LABELS[0]] * 3,
        clock.time(),
        [1, 2, 3],
        ["a", "b", "c"],
        np.zeros((3, 8)),
    ]
    cols[column] = bad
    with pytest.raises(SchemaError):
        router.ingest_batch(*cols)
    assert len(router) == 0


@pytest.fixture
def shield() -> Iterator[CognitiveShield]:
    with CognitiveShield(clock=ManualClock()) as s:
        assert isinstance(s.register_sensor(SENSOR, 35.0, 16), Registered)
        yield s


def _ragged() -> list[Any]:
    return [[1.0, 2.0], 3.0] + [0.0] * 254


@pytest.mark.parametrize(
    "raw",
    [_ragged(), np.full(256, 1e300), np.full(256, -1e39), np.full(256, np.longdouble("1e4000")), "x" * 256],
    ids=["ragged list", "1e300", "-1e39", "longdouble 1e4000", "str"],
)
def test_ingest_raw_data_refuses_ragged_and_out_of_range_samples(shield: CognitiveShield, raw: object) -> None:
    """Found by fuzzing: ``np.asarray`` of a ragged list raised ValueError; a value beyond
    float32 raised RuntimeWarning (an exception under ``-W error``) in the cast."""
    slots = fuzzlib.live_slots()
    with pytest.raises(InvalidArgumentError) as info:
        shield.ingest_raw_data(SENSOR, raw)  # type: ignore[arg-type]
    assert "1e" not in str(info.value) and "x" * 8 not in str(info.value)  # no sample value echoed
    assert shield._sensors[SENSOR].frame_seq == 0
    assert fuzzlib.live_slots() == slots


@pytest.mark.parametrize(
    "raw",
    [
        [_ragged()],
        np.full((1, 256), 1e300),
        np.full((1, 256), 1 + 1j),
        np.full((1, 256), "a"),
        np.ones((1, 256), dtype=bool),
        np.full((1, 256), None),
    ],
    ids=["ragged", "1e300", "complex", "str", "bool", "object"],
)
def test_ingest_batch_refuses_what_the_single_path_refuses(shield: CognitiveShield, raw: object) -> None:
    """Found by fuzzing: ragged input and strings raised ValueError, complex input a
    ComplexWarning, 1e300 a RuntimeWarning; bool and object arrays were accepted by the
    batch although the single path refuses them."""
    single = raw[0]  # type: ignore[index]
    with pytest.raises(InvalidArgumentError):
        shield.ingest_raw_data(SENSOR, single)
    with pytest.raises(InvalidArgumentError):
        shield.ingest_batch([SENSOR], raw)  # type: ignore[arg-type]
    assert shield._sensors[SENSOR].frame_seq == 0


@pytest.mark.parametrize("ids", [5, None, 1.5])
def test_ingest_batch_refuses_sensor_ids_that_are_not_a_sequence(shield: CognitiveShield, ids: object) -> None:
    with pytest.raises(WrongTypeError):
        shield.ingest_batch(ids, np.zeros((1, 256)))  # type: ignore[arg-type]


def test_raw_frame_from_samples_refuses_out_of_range_and_ragged() -> None:
    with pytest.raises(InvalidArgumentError):
        RawBiometricFrame.from_samples(np.full(4, 3.5e38))
    with pytest.raises(InvalidArgumentError):
        RawBiometricFrame.from_samples([[1.0], 2.0])
    with RawBiometricFrame.from_samples(np.full(4, 3.4e38)) as frame:  # float32's max still fits
        assert math.isfinite(float(frame.samples[0]))
