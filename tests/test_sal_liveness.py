"""LIMES liveness: proofs recomputed here with hmac/hashlib/struct from the master bytes the
test put into the SecureKeyBuffer; boundary tables around liveness_ttl_s (30 s).

Edge convention under test: a proof exactly ttl seconds old still verifies, one any amount
older does not; a proof dated in the future does not.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import inspect
import pickle
import struct
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.clock import ManualClock
from cortex_sal.errors import (
    InvalidArgumentError,
    LivenessError,
    NotCopyableError,
    PurgedBufferError,
    WrongTypeError,
)
from cortex_sal.governance import ClinicalThresholds
from cortex_sal.sal import liveness
from cortex_sal.sal.liveness import LivenessProof, LivenessProver
from cortex_sal.securemem import SecureKeyBuffer
from hypothesis_profiles import examples

MASTER = bytes(range(100, 132))
FEATURES = np.array([0.42, 0.11, 0.33, 0.51, 0.68])
OTHER = np.array([0.42, 0.11, 0.33, 0.51, 0.69])
TTL = 30.0


class SettableClock:
    """A wall clock tests may also move backwards (as NTP can)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return 0.0


def expected_tag(master: bytes, features: object, nonce: bytes, timestamp: float) -> bytes:
    fb = struct.pack(">5d", *[float(x) for x in features])  # type: ignore[attr-defined]
    message = hashlib.sha256(fb).digest() + nonce + struct.pack(">d", timestamp)
    return hmac.new(master, message, hashlib.sha256).digest()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def prover(clock: ManualClock):  # type: ignore[no-untyped-def]
    with LivenessProver(SecureKeyBuffer(MASTER), clock=clock) as p:
        yield p


# -- the proof -------------------------------------------------------------------------------


def test_proof_equals_independent_hmac(prover: LivenessProver, clock: ManualClock) -> None:
    p = prover.prove(FEATURES)
    assert isinstance(p.proof, bytes) and len(p.proof) == 32
    assert isinstance(p.nonce, bytes) and len(p.nonce) == 16
    assert p.timestamp == clock.time()
    assert p.proof == expected_tag(MASTER, FEATURES, p.nonce, p.timestamp)


@settings(max_examples=examples(40), deadline=None)
@given(
    features=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=5, max_size=5),
    master=st.binary(min_size=32, max_size=32),
    start=st.floats(min_value=0.0, max_value=4e9),
)
def test_proof_equals_oracle_for_any_input(features: list[float], master: bytes, start: float) -> None:
    c = ManualClock(start)
    with LivenessProver(SecureKeyBuffer(master), clock=c) as p:
        proof = p.prove(np.array(features))
        assert proof.proof == expected_tag(master, features, proof.nonce, start)
        assert p.verify(features, proof)


def test_nonces_are_fresh(prover: LivenessProver) -> None:
    nonces = {prover.prove(FEATURES).nonce for _ in range(200)}
    assert len(nonces) == 200


def test_proof_is_frozen(prover: LivenessProver) -> None:
    p = prover.prove(FEATURES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.nonce = bytes(16)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("proof", "nonce", "timestamp"),
    [
        (bytes(31), bytes(16), 1.0),
        (bytes(33), bytes(16), 1.0),
        (bytes(32), bytes(15), 1.0),
        (bytes(32), bytes(17), 1.0),
        (bytes(32), bytes(16), float("nan")),
        (bytes(32), bytes(16), float("inf")),
        (bytes(32), bytes(16), "1.0"),
        (bytes(32), bytes(16), True),
        ("00" * 32, bytes(16), 1.0),
        (bytes(32), None, 1.0),
    ],
)
def test_malformed_proof_cannot_be_built(proof: object, nonce: object, timestamp: object) -> None:
    with pytest.raises(LivenessError):
        LivenessProof(proof, nonce, timestamp)  # type: ignore[arg-type]


def test_proof_fields_normalised() -> None:
    p = LivenessProof(bytearray(32), memoryview(bytes(16)), 5)
    assert type(p.proof) is bytes and type(p.nonce) is bytes and type(p.timestamp) is float


# -- freshness: the boundary table -----------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "valid"),
    [
        (0.0, True),
        (1.0, True),
        (TTL / 2, True),
        (TTL - 1.0, True),
        (TTL - 1e-3, True),
        (TTL - 2.5e-7, True),  # about one ulp of the wall clock below the edge
        (TTL, True),  # the edge itself is still valid
        (TTL + 5e-7, False),
        (TTL + 1e-3, False),
        (TTL + 1.0, False),
        (10 * TTL, False),
    ],
)
def test_ttl_boundary(prover: LivenessProver, clock: ManualClock, age: float, valid: bool) -> None:
    p = prover.prove(FEATURES)
    clock.advance(age)
    assert clock.time() - p.timestamp == pytest.approx(age, abs=5e-7)
    assert prover.verify(FEATURES, p) is valid


@pytest.mark.parametrize(("age", "valid"), [(4.0, True), (5.0, True), (5.001, False), (6.0, False)])
def test_ttl_comes_from_thresholds(clock: ManualClock, age: float, valid: bool) -> None:
    with LivenessProver(thresholds=ClinicalThresholds(liveness_ttl_s=5.0), clock=clock) as p:
        proof = p.prove(FEATURES)
        clock.advance(age)
        assert p.verify(FEATURES, proof) is valid


def test_expired_reason(prover: LivenessProver, clock: ManualClock) -> None:
    p = prover.prove(FEATURES)
    clock.advance(TTL + 1)
    with pytest.raises(LivenessError, match="expired"):
        prover.require(FEATURES, p)


def test_future_dated_proof_refused() -> None:
    c = SettableClock()
    with LivenessProver(SecureKeyBuffer(MASTER), clock=c) as prover:
        p = prover.prove(FEATURES)
        c.now -= 1.0  # the wall clock steps back
        with pytest.raises(LivenessError, match="future"):
            prover.require(FEATURES, p)
        c.now += 1.0
        assert prover.verify(FEATURES, p)


def test_clock_going_back_cannot_revive_a_dropped_nonce() -> None:
    c = SettableClock()
    with LivenessProver(SecureKeyBuffer(MASTER), clock=c) as prover:
        p = prover.prove(FEATURES)
        assert prover.verify(FEATURES, p)
        c.now += 100.0
        assert prover.held_nonces == 0  # dropped: the proof has long expired
        c.now -= 90.0  # back to 10 s after the proof: fresh by the current reading alone
        assert not prover.verify(FEATURES, p)


# -- one time, same features, untampered -------------------------------------------------------


def test_verifies_once(prover: LivenessProver) -> None:
    p = prover.prove(FEATURES)
    assert prover.verify(FEATURES, p) is True
    assert prover.verify(FEATURES, p) is False
    with pytest.raises(LivenessError, match="already used"):
        prover.require(FEATURES, p)
    # an equal copy of the proof is the same nonce
    assert not prover.verify(FEATURES, LivenessProof(p.proof, p.nonce, p.timestamp))


def test_used_nonce_is_held_until_the_proof_cannot_verify(prover: LivenessProver, clock: ManualClock) -> None:
    p = prover.prove(FEATURES)
    assert prover.verify(FEATURES, p)
    clock.advance(TTL)  # still fresh: a replay must still be caught
    assert prover.held_nonces == 1
    assert not prover.verify(FEATURES, p)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.999])
@pytest.mark.parametrize("age", [TTL - 0.5, TTL - 1e-3, TTL])
def test_replay_caught_at_any_offset_within_the_second(fraction: float, age: float) -> None:
    """Nonces are grouped by second; a replay must be caught until the proof itself expires."""
    c = ManualClock(1_800_000_000.0 + fraction)
    with LivenessProver(SecureKeyBuffer(MASTER), clock=c) as prover:
        p = prover.prove(FEATURES)
        assert prover.verify(FEATURES, p)
        c.advance(age)
        assert prover.held_nonces == 1
        assert not prover.verify(FEATURES, p)


def test_pruning_an_old_second_keeps_the_next_ones_nonces(prover: LivenessProver, clock: ManualClock) -> None:
    old = prover.prove(FEATURES)
    assert prover.verify(FEATURES, old)
    clock.advance(1.5)
    recent = prover.prove(FEATURES)
    assert prover.verify(FEATURES, recent)
    clock.advance(TTL - 0.3)  # old's second is dropped; recent is 29.7 s old and still fresh
    assert prover.held_nonces == 1
    assert not prover.verify(FEATURES, recent)


def test_each_proof_verifies_independently(prover: LivenessProver) -> None:
    proofs = [prover.prove(FEATURES) for _ in range(5)]
    assert [prover.verify(FEATURES, p) for p in reversed(proofs)] == [True] * 5
    assert [prover.verify(FEATURES, p) for p in proofs] == [False] * 5


def test_different_features_refused_without_burning_the_nonce(prover: LivenessProver) -> None:
    p = prover.prove(FEATURES)
    assert not prover.verify(OTHER, p)
    assert not prover.verify(-FEATURES, p)
    assert not prover.verify(np.nextafter(FEATURES, 2.0), p)  # one ulp per feature
    assert prover.verify(FEATURES, p)  # the wrong guesses did not use the nonce up


def test_equal_values_in_another_dtype_verify(prover: LivenessProver) -> None:
    f = np.array([1, 2, 3, 4, 5])
    p = prover.prove(f)
    assert prover.verify([1.0, 2.0, 3.0, 4.0, 5.0], p)


def _flip(b: bytes, i: int) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: LivenessProof(_flip(p.proof, 0), p.nonce, p.timestamp),
        lambda p: LivenessProof(_flip(p.proof, 31), p.nonce, p.timestamp),
        lambda p: LivenessProof(p.proof, _flip(p.nonce, 0), p.timestamp),
        lambda p: LivenessProof(p.proof, _flip(p.nonce, 15), p.timestamp),
        lambda p: LivenessProof(p.proof, p.nonce, p.timestamp - 1.0),
        lambda p: LivenessProof(p.proof, p.nonce, float(np.nextafter(p.timestamp, 0.0))),
        lambda p: LivenessProof(bytes(32), p.nonce, p.timestamp),
    ],
)
def test_tampered_proof_refused(prover: LivenessProver, tamper: object) -> None:
    p = prover.prove(FEATURES)
    bad = tamper(p)  # type: ignore[operator]
    assert not prover.verify(FEATURES, bad)
    with pytest.raises(LivenessError, match="does not verify"):
        prover.require(FEATURES, bad)
    assert prover.verify(FEATURES, p)


def test_proof_of_another_master_refused(clock: ManualClock) -> None:
    with LivenessProver(clock=clock) as a, LivenessProver(clock=clock) as b:
        assert not b.verify(FEATURES, a.prove(FEATURES))


def test_shared_master_verifies_across_provers(clock: ManualClock) -> None:
    """The spec binds a proof to the master, not to the instance that issued it."""
    with (
        LivenessProver(SecureKeyBuffer(MASTER), clock=clock) as a,
        LivenessProver(SecureKeyBuffer(MASTER), clock=clock) as b,
    ):
        assert b.verify(FEATURES, a.prove(FEATURES))


def test_one_winner_under_concurrency(prover: LivenessProver) -> None:
    p = prover.prove(FEATURES)
    results: list[bool] = []
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        results.append(prover.verify(FEATURES, p))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


# -- pruning ---------------------------------------------------------------------------------


def test_used_nonces_are_pruned_by_age(prover: LivenessProver, clock: ManualClock) -> None:
    assert prover.held_nonces == 0
    first = [prover.prove(FEATURES) for _ in range(3)]
    assert all(prover.verify(FEATURES, p) for p in first)
    assert prover.held_nonces == 3
    clock.advance(10.0)
    second = [prover.prove(FEATURES) for _ in range(2)]
    assert all(prover.verify(FEATURES, p) for p in second)
    assert prover.held_nonces == 5
    clock.advance(TTL + 1.5 - 10.0)  # the first three are more than ttl + 1 s old
    assert prover.held_nonces == 2
    clock.advance(10.0)
    assert prover.held_nonces == 0
    assert not any(prover.verify(FEATURES, p) for p in first + second)  # expired all the same


def test_failed_verifications_hold_nothing(prover: LivenessProver) -> None:
    p = prover.prove(FEATURES)
    prover.verify(OTHER, p)
    assert prover.held_nonces == 0


def test_held_nonces_stay_bounded_under_steady_traffic(prover: LivenessProver, clock: ManualClock) -> None:
    for _ in range(300):  # 10 proofs per second for 30 s ... then 30 s more
        for _ in range(2):
            assert prover.verify(FEATURES, prover.prove(FEATURES))
        clock.advance(0.2)
    # only proofs from the last ttl + 1 s (plus the bucket in progress) can still be held
    assert prover.held_nonces <= 2 * (TTL + 2) / 0.2


# -- rotation and purge ---------------------------------------------------------------------


def test_rotate_invalidates_old_proofs_and_purges_old_master(clock: ManualClock) -> None:
    master = SecureKeyBuffer(MASTER)
    prover = LivenessProver(master, clock=clock)
    old = prover.prove(FEATURES)
    prover.rotate()
    assert master.is_purged
    assert not prover.is_purged
    assert not prover.verify(FEATURES, old)
    fresh = prover.prove(FEATURES)
    assert fresh.proof != expected_tag(MASTER, FEATURES, fresh.nonce, fresh.timestamp)
    assert prover.verify(FEATURES, fresh)
    prover.purge()


def test_rotate_to_a_given_master(clock: ManualClock) -> None:
    new_bytes = bytes(range(200, 232))
    with LivenessProver(SecureKeyBuffer(MASTER), clock=clock) as prover:
        new = SecureKeyBuffer(new_bytes)
        prover.rotate(new)
        p = prover.prove(FEATURES)
        assert p.proof == expected_tag(new_bytes, FEATURES, p.nonce, p.timestamp)
        with pytest.raises(InvalidArgumentError):
            prover.rotate(new)  # rotating to the master in use would purge it
        with pytest.raises(WrongTypeError):
            prover.rotate(new_bytes)  # type: ignore[arg-type]
    assert new.is_purged


def test_purge(clock: ManualClock) -> None:
    master = SecureKeyBuffer(MASTER)
    prover = LivenessProver(master, clock=clock)
    p = prover.prove(FEATURES)
    prover.purge()
    assert master.is_purged and prover.is_purged
    prover.purge()  # idempotent
    with pytest.raises(PurgedBufferError):
        prover.prove(FEATURES)
    with pytest.raises(PurgedBufferError):
        prover.verify(FEATURES, p)
    with pytest.raises(PurgedBufferError):
        prover.rotate()
    assert prover.held_nonces == 0


def test_context_manager_purges_and_default_master_is_random(clock: ManualClock) -> None:
    with LivenessProver(clock=clock) as a, LivenessProver(clock=clock) as b:
        pa, pb = a.prove(FEATURES), b.prove(FEATURES)
        assert pa.proof != expected_tag(MASTER, FEATURES, pa.nonce, pa.timestamp)
        assert not a.verify(FEATURES, LivenessProof(pb.proof, pb.nonce, pb.timestamp))
    assert a.is_purged and b.is_purged


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("features", "error"),
    [
        (np.ones(4), InvalidArgumentError),
        (np.ones((1, 5)), InvalidArgumentError),
        (np.array([0.1, 0.2, np.nan, 0.3, 0.4]), InvalidArgumentError),
        (np.array([0.1, 0.2, np.inf, 0.3, 0.4]), InvalidArgumentError),
        (np.ones(5, dtype=complex), WrongTypeError),
        (["a", "b", "c", "d", "e"], WrongTypeError),
    ],
)
def test_bad_features_refused(prover: LivenessProver, features: object, error: type[Exception]) -> None:
    good = prover.prove(FEATURES)
    with pytest.raises(error):
        prover.prove(features)  # type: ignore[arg-type]
    with pytest.raises(error):
        prover.verify(features, good)  # type: ignore[arg-type]
    assert prover.verify(FEATURES, good)


@pytest.mark.parametrize("bad", [None, b"\x00" * 56, (bytes(32), bytes(16), 0.0), "proof"])
def test_verify_needs_a_proof(prover: LivenessProver, bad: object) -> None:
    with pytest.raises(WrongTypeError):
        prover.verify(FEATURES, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [MASTER, bytearray(MASTER), "m" * 32, 0])
def test_master_must_be_a_key_buffer(bad: object) -> None:
    with pytest.raises(WrongTypeError):
        LivenessProver(bad)  # type: ignore[arg-type]


def test_purged_master_refused() -> None:
    k = SecureKeyBuffer(MASTER)
    k.secure_purge()
    with pytest.raises(PurgedBufferError):
        LivenessProver(k)


def test_thresholds_type_checked() -> None:
    with pytest.raises(WrongTypeError):
        LivenessProver(thresholds={"liveness_ttl_s": 30.0})  # type: ignore[arg-type]


def test_prover_cannot_be_copied_or_pickled(prover: LivenessProver) -> None:
    for attempt in (lambda: copy.copy(prover), lambda: copy.deepcopy(prover), lambda: pickle.dumps(prover)):
        with pytest.raises(NotCopyableError):
            attempt()
    assert "live" in repr(prover) and str(MASTER) not in repr(prover)


def test_module_never_turns_the_master_into_bytes() -> None:
    src = inspect.getsource(liveness)
    for forbidden in ("export_bytearray", "bytes(master", "bytes(self._master", ".tobytes(", "_view(", "_address("):
        assert forbidden not in src


@pytest.mark.parametrize(("age", "valid"), [(4.0, True), (5.0, True), (5.001, False)])
def test_set_ttl_applies_to_later_verifications(
    prover: LivenessProver, clock: ManualClock, age: float, valid: bool
) -> None:
    proof = prover.prove(FEATURES)
    prover.set_ttl(5.0)
    assert prover.ttl == 5.0
    clock.advance(age)
    assert prover.verify(FEATURES, proof) is valid


@pytest.mark.parametrize(
    ("ttl", "error"),
    [(0.0, InvalidArgumentError), (-1.0, InvalidArgumentError), (float("nan"), InvalidArgumentError),
     (float("inf"), InvalidArgumentError), (True, WrongTypeError), ("30", WrongTypeError), (None, WrongTypeError)],
)  # fmt: skip
def test_set_ttl_refuses_bad_input_and_keeps_the_old_one(prover: LivenessProver, ttl: object, error: type) -> None:
    before = prover.ttl
    with pytest.raises(error):
        prover.set_ttl(ttl)  # type: ignore[arg-type]
    assert prover.ttl == before


# -- the batch path (the shield's ingest_batch) ----------------------------------------------


class SteppingClock(SettableClock):
    """The first reading moves the clock by ``step`` (negative: a clock stepping back between
    the two readings of one batch); later readings do not move it."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def time(self) -> float:
        now = self.now
        self.now += self.step
        self.step = 0.0
        return now


def test_batch_proofs_are_the_documented_tags_and_use_their_nonces(
    prover: LivenessProver, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = np.array([FEATURES, OTHER, FEATURES * 2])
    passes: list[tuple[bytes, bytes]] = []
    real = liveness.hmac_sha256_many

    def spying(key: SecureKeyBuffer, messages: bytes, size: int) -> bytes:
        tags = real(key, messages, size)
        passes.append((messages, tags))
        return tags

    monkeypatch.setattr(liveness, "hmac_sha256_many", spying)
    assert prover.prove_and_verify_batch(rows) == [True, True, True]
    assert len(passes) == 2 and passes[0] == passes[1]  # made, then checked over the same messages
    messages, tags = passes[0]
    assert len(messages) == 3 * 56 and len(tags) == 3 * 32
    for i, row in enumerate(rows):  # each row's tag recomputed here from the master's bytes
        message = messages[56 * i : 56 * (i + 1)]
        nonce, stamp = message[32:48], struct.unpack(">d", message[48:])[0]
        assert stamp == clock.time()
        assert tags[32 * i : 32 * (i + 1)] == expected_tag(MASTER, row, nonce, stamp)
    assert prover.held_nonces == 3  # used up as verify uses them
    assert len({messages[56 * i + 32 : 56 * i + 48] for i in range(3)}) == 3  # three fresh nonces


def test_batch_equals_the_single_path_row_for_row(clock: ManualClock) -> None:
    rows = np.random.default_rng(7).uniform(-1, 1, (40, 5))
    with (
        LivenessProver(SecureKeyBuffer(MASTER), clock=clock) as a,
        LivenessProver(SecureKeyBuffer(MASTER), clock=clock) as b,
    ):
        assert a.prove_and_verify_batch(rows) == [b.verify(r, b.prove(r)) for r in rows] == [True] * 40
        assert a.held_nonces == b.held_nonces == 40
        assert a.prove_and_verify_batch(rows[:0]) == []


def test_batch_row_whose_check_fails_is_false_and_holds_nothing(
    prover: LivenessProver, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = liveness.hmac_sha256_many
    seen: list[int] = []

    def second_pass_differs_on_row_1(key: SecureKeyBuffer, messages: bytes, size: int) -> bytes:
        tags = real(key, messages, size)
        seen.append(1)
        if len(seen) == 2:  # the checking pass: row 1's expected tag differs
            tags = tags[:32] + bytes(32) + tags[64:]
        return tags

    monkeypatch.setattr(liveness, "hmac_sha256_many", second_pass_differs_on_row_1)
    assert prover.prove_and_verify_batch(np.array([FEATURES, OTHER, FEATURES])) == [True, False, True]
    assert prover.held_nonces == 2


@pytest.mark.parametrize(("step", "valid"), [(-0.5, False), (TTL, True), (TTL + 0.001, False)])
def test_batch_freshness_follows_the_single_path(step: float, valid: bool) -> None:
    """The two clock readings (stamp, check): back in time or past the ttl refuses every row."""
    with LivenessProver(SecureKeyBuffer(MASTER), clock=SteppingClock(step)) as p:
        assert p.prove_and_verify_batch(np.array([FEATURES, OTHER])) == [valid, valid]
        assert p.held_nonces == (2 if valid else 0)


@pytest.mark.parametrize(
    ("features", "error"),
    [
        (np.ones(5), InvalidArgumentError),
        (np.ones((2, 4)), InvalidArgumentError),
        (np.array([[1.0, 2.0, np.nan, 3.0, 4.0]]), InvalidArgumentError),
        (np.array([["a"] * 5]), WrongTypeError),
    ],
)
def test_batch_refuses_bad_rows_before_any_proof(prover: LivenessProver, features: object, error: type) -> None:
    with pytest.raises(error):
        prover.prove_and_verify_batch(features)  # type: ignore[arg-type]
    assert prover.held_nonces == 0


def test_batch_of_a_purged_prover_raises(clock: ManualClock) -> None:
    p = LivenessProver(SecureKeyBuffer(MASTER), clock=clock)
    p.purge()
    with pytest.raises(PurgedBufferError):
        p.prove_and_verify_batch(np.array([FEATURES]))
