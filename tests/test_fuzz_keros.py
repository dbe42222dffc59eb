"""Fuzzing KEROS (issue #6, item 8): the v1 messages, both handshake machines, frames, the
sensor registry file and the seed's certification API.

Each property feeds 10,000 hypothesis plans (mutations of valid inputs that know the fields -
bit flips, truncations, extensions, field swaps, interesting integers, low-order points - as
well as random bytes and non-bytes objects) to a target of ``fuzz/fuzzlib/keros.py``, whose oracle
fails on any undocumented exception, on any acceptance the format's model refuses (or the
reverse), on any state change after a refused input beyond the documented ones, and on any
secure buffer left behind. The same targets run under atheris (``fuzz/README.md``).

Documented state changes these tests hold the code to:

* a v1 handshake machine that refuses an input is terminal (FAILED, every key purged,
  every later event refused); the registry it shares is untouched and a fresh machine on it
  completes a handshake;
* a frame refused by its header (format, replay, sequence limit) changes nothing; a frame whose
  tag or nonce fails compromises the session and purges its keys when
  ``compromise_on_auth_failure`` is on (the default), and changes nothing when it is off. In
  both cases ``last_accepted`` never moves for a refused frame.

Certificates, the v2 (Noise XX) handshake messages and the Noise transport have their
properties at the end (targets ``certificate``, ``noise_handshake``, ``noise_transport``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import fuzzlib
import pytest
from fuzzlib import Mutation, Plan
from hypothesis import event, example, given, settings

from cortex_sal.errors import HandshakeError, InvalidArgumentError
from cortex_sal.keros import GatewayHandshake, ManualClock, SensorCertificationAuthority, SensorHandshake
from cortex_sal.keros.registry import sensor_id_hash
from cortex_sal.store.keros import load_sensor_registry
from hypothesis_profiles import examples

FUZZ = settings(max_examples=examples(10_000), deadline=None)

target = fuzzlib.TargetCache()


@pytest.fixture(scope="module", autouse=True)
def _close_targets() -> Iterator[None]:
    yield
    target.close()


# -- the v1 messages -------------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_sensor_hello_parse(plan: Plan) -> None:
    event(target("v1_hello")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_tee_hello_parse(plan: Plan) -> None:
    event(target("v1_tee_hello")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_sensor_ack_parse(plan: Plan) -> None:
    event(target("v1_ack")(plan))


# -- the handshake machines -------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 0, (Mutation("alt_field", 1, 0),)))  # the all-zero point
@example(plan=Plan("mutate", 0, (Mutation("int_field", 0, 5),)))  # one ms past the freshness window
@example(plan=Plan("mutate", 0, (Mutation("alt_field", 0, 2),)))  # an unknown sensor's hash
def test_fuzz_gateway_receive_sensor_hello(plan: Plan) -> None:
    event(target("gateway_hello")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_gateway_receive_sensor_ack(plan: Plan) -> None:
    event(target("gateway_ack")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 0, (Mutation("alt_field", 0, 4),)))  # p - 1, a non-canonical low-order point
def test_fuzz_sensor_receive_tee_hello(plan: Plan) -> None:
    event(target("sensor_tee_hello")(plan))


# -- frames ---------------------------------------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 1, (Mutation("int_field", 0, 6),)))  # seq = max_seq: refused, session lives
@example(plan=Plan("mutate", 1, (Mutation("int_field", 0, 2),)))  # seq = last accepted: a replay
@example(plan=Plan("mutate", 0, (Mutation("flip", 8 * 30),)))  # one ciphertext bit
def test_fuzz_decrypt_frame_lenient_session(plan: Plan) -> None:
    """compromise_on_auth_failure=False: no refused frame changes anything."""
    event(target("frames_lenient")(plan))


# found by atheris: an authentic frame of an earlier input (the same key), replayed with a fresh seq
AUTHENTIC = bytes.fromhex("00000005000000030000000000000005661633f7b78985cd6edc073d3a5ba2ebc3e7103c9f8a9b")


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 3, (Mutation("flip", 8 * 30),)))  # a tag bit: FAILED, keys purged
@example(plan=Plan("mutate", 3, (Mutation("alt_field", 0, 0),)))  # another session's nonce suffix
@example(plan=Plan("mutate", 3, (Mutation("int_field", 1, 8),)))  # length field = frame size
@example(plan=Plan("raw", raw=AUTHENTIC))  # accepted: it is authentic (the oracle learnt that from atheris)
def test_fuzz_decrypt_frame_default_policy(plan: Plan) -> None:
    """The default policy: header refusals change nothing, a failed tag compromises."""
    event(target("frames_strict")(plan))


# -- the sensor registry file and the seed's API -----------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
@example(plan=Plan("mutate", 1, (Mutation("flip", 0, 25),)))  # a document nested 100,000 deep
def test_fuzz_sensor_registry_file(plan: Plan) -> None:
    event(target("sensor_registry")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_certification_full_handshake(plan: Plan) -> None:
    event(target("certification")(plan))


# -- regressions: what the fuzzers found -----------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        '{"models": [{"model_id": "m", "manufacturer": "x", "snr_db": 40, "bits": 1e999}]}',
        '{"models": [], "minimums": {"bits": 1e999}}',
        '{"models": [{"model_id": "m", "manufacturer": "x", "snr_db": 1e999, "bits": 16}]}',
        '{"models": ' + "[" * 100_000,
    ],
    ids=["bits 1e999", "minimum bits 1e999", "snr 1e999", "nested 100000 deep"],
)
def test_registry_file_refuses_overflow_and_deep_nesting(tmp_path: Path, document: str) -> None:
    """Found by fuzzing: ``int(1e999)`` raised OverflowError and deep nesting RecursionError."""
    path = tmp_path / "registry.json"
    path.write_text(document)
    with pytest.raises(InvalidArgumentError) as info:
        load_sensor_registry(path)
    assert type(info.value) is InvalidArgumentError


def test_registry_path_with_a_nul_byte_is_refused() -> None:
    """Found by fuzzing: ``Path.read_text`` raised a bare ValueError."""
    with pytest.raises(InvalidArgumentError):
        load_sensor_registry("registry\x00.json")


@pytest.mark.parametrize("sensor_id", ["\ud800", "eeg_fp1_certified_v1/\udfff"])
def test_sensor_id_with_a_lone_surrogate_is_refused(sensor_id: str) -> None:
    """Found by fuzzing: the UTF-8 encoding of the id raised UnicodeEncodeError everywhere it is hashed."""
    with pytest.raises(InvalidArgumentError):
        sensor_id_hash(sensor_id)
    with pytest.raises(InvalidArgumentError):
        SensorHandshake(sensor_id)
    clock = ManualClock()
    gateway = GatewayHandshake("gw", sensor_ids=[sensor_id], clock=clock)
    with pytest.raises(HandshakeError):
        gateway.receive_sensor_hello(SensorHandshake("eeg_fp1_certified_v1", clock=clock).start())


def test_certification_refuses_a_lone_surrogate_id_before_any_key_exists() -> None:
    """Found by fuzzing: the id was hashed only after the session key was derived, and its
    UnicodeEncodeError left that key to the garbage collector."""
    ca = SensorCertificationAuthority()
    slots = fuzzlib.live_slots()
    tee = ca.new_ephemeral_key()
    with pytest.raises(InvalidArgumentError):
        ca.full_handshake("eeg_fp1_certified_v1/\ud800", fuzzlib.c_public(bytes(range(1, 33))), bytes(32), tee,
                          bytes(32))  # fmt: skip
    tee.purge()
    assert fuzzlib.live_slots() == slots


def test_frame_model_matches_the_wire_format() -> None:
    """The fuzz oracle's model of a frame (``predict_frame``) agrees with the format: an
    independent frame is accepted, its header-level edits are named."""
    frames = fuzzlib._IndependentFrames(b"k" * 32, b"s" * 32)
    frame = frames.frame(5, b"payload")
    assert fuzzlib.predict_frame(frame, frame, 4, 2**32 - 1) == "accept"
    assert fuzzlib.predict_frame(frame, frame, 5, 2**32 - 1) == "ReplayAttackError"
    assert fuzzlib.predict_frame(frame[:-1], frame, 0, 2**32 - 1) == "FrameFormatError"
    assert fuzzlib.predict_frame(frame, frame, 0, 5) == "SessionExpiredError"
    forged = frame[:-1] + bytes([frame[-1] ^ 1])
    assert fuzzlib.predict_frame(forged, frame, 0, 2**32 - 1) == "FrameAuthError"
    assert struct.unpack(">II", frame[:8]) == (5, 7)


# -- the record layer on a byte stream ----------------------------------------------------------


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_record_stream(plan: Plan) -> None:
    event(target("records")(plan))


# -- KEROS v2: certificates, the Noise handshake, the Noise transport ---------------------------
# (tests/test_fuzz_v2.py fuzzes the same entry points with plain byte mutations; these run the
# structure-aware plans of fuzzlib, whose oracles come from docs/certificates.md and
# docs/protocol.md, and are the ones atheris runs.)


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_certificate_plans(plan: Plan) -> None:
    event(target("certificate")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_noise_handshake_plans(plan: Plan) -> None:
    event(target("noise_handshake")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_noise_transport_plans(plan: Plan) -> None:
    event(target("noise_transport")(plan))


@FUZZ
@given(plan=fuzzlib.plans())
def test_fuzz_revocation_list_plans(plan: Plan) -> None:
    event(target("revocation_list")(plan))
