"""ETHOS consent ledger: grants, the expiry edge (consent_ttl_s = 3600 s), revocation,
capacity, scopes.

Edge convention under test: a grant is still active exactly ttl seconds after it was made
and expired any amount later.
"""

from __future__ import annotations

import dataclasses
import threading

import pytest

from cortex_sal.clock import ManualClock
from cortex_sal.errors import ConsentError, InvalidArgumentError, WrongTypeError
from cortex_sal.governance import ClinicalThresholds
from cortex_sal.sal.consent import SCOPES, ConsentLedger, ConsentRecord

TTL = 3600.0
S = "a1b2c3d4e5f60718"  # the shield keys records by a truncated sensor hash


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger(clock: ManualClock) -> ConsentLedger:
    return ConsentLedger(clock=clock)


def test_scopes_are_the_designs() -> None:
    assert SCOPES == ("biometric", "acolyte", "audio", "location", "desci", "clinical")


def test_grant_makes_exactly_the_granted_scopes_active(ledger: ConsentLedger) -> None:
    ledger.grant(S, ["biometric", "audio"])
    assert {s for s in SCOPES if ledger.is_active(S, s)} == {"biometric", "audio"}
    assert ledger.is_active(S)  # the default scope is "biometric"


def test_record_is_a_frozen_view(ledger: ConsentLedger, clock: ManualClock) -> None:
    t0 = clock.time()
    returned = ledger.grant(S, ["clinical", "biometric", "clinical"])
    r = ledger.record(S)
    assert isinstance(r, ConsentRecord) and r == returned
    assert r.sensor_key == S
    assert r.scopes == ("biometric", "clinical")  # SCOPES order, duplicates dropped
    assert r.granted_at == t0 and r.expires_at == t0 + TTL
    assert r.capacity == "FULL" and not r.revoked and r.revocation_reason is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.scopes = ("audio",)  # type: ignore[misc]
    ledger.revoke(S, "wearer asked")
    assert not r.revoked  # the view taken earlier does not change
    assert ledger.record(S).revoked


# -- expiry: the boundary table -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "active"),
    [
        (0.0, True),
        (1.0, True),
        (TTL / 2, True),
        (TTL - 1.0, True),
        (TTL - 1e-3, True),
        (TTL - 2.5e-7, True),  # about one ulp of the wall clock below the edge
        (TTL, True),  # the edge itself is still active
        (TTL + 5e-7, False),
        (TTL + 1e-3, False),
        (TTL + 1.0, False),
        (10 * TTL, False),
    ],
)
def test_default_ttl_edge(ledger: ConsentLedger, clock: ManualClock, elapsed: float, active: bool) -> None:
    t0 = clock.time()
    ledger.grant(S, ["biometric", "desci"])
    clock.advance(elapsed)
    assert clock.time() - t0 == pytest.approx(elapsed, abs=5e-7)
    assert ledger.is_active(S, "biometric") is active
    assert ledger.is_active(S, "desci") is active


@pytest.mark.parametrize(("elapsed", "active"), [(9.0, True), (10.0, True), (10.001, False), (11.0, False)])
def test_explicit_ttl_edge(ledger: ConsentLedger, clock: ManualClock, elapsed: float, active: bool) -> None:
    ledger.grant(S, ["biometric"], ttl_s=10)
    assert ledger.record(S).expires_at == ledger.record(S).granted_at + 10.0
    clock.advance(elapsed)
    assert ledger.is_active(S) is active


@pytest.mark.parametrize(("elapsed", "active"), [(59.0, True), (60.0, True), (60.5, False)])
def test_ttl_comes_from_thresholds(clock: ManualClock, elapsed: float, active: bool) -> None:
    ledger = ConsentLedger(thresholds=ClinicalThresholds(consent_ttl_s=60.0), clock=clock)
    ledger.grant(S, "biometric")
    clock.advance(elapsed)
    assert ledger.is_active(S) is active


def test_expired_record_stays_readable_and_regrant_renews(ledger: ConsentLedger, clock: ManualClock) -> None:
    ledger.grant(S, ["biometric"])
    clock.advance(TTL + 1)
    assert not ledger.is_active(S)
    assert ledger.record(S).expired_at(clock.time())
    with pytest.raises(ConsentError, match="expired"):
        ledger.require(S)
    ledger.grant(S, ["biometric"])
    assert ledger.is_active(S)
    assert ledger.record(S).granted_at == clock.time()


# -- revocation ---------------------------------------------------------------------------------


def test_revoke(ledger: ConsentLedger, clock: ManualClock) -> None:
    ledger.grant(S, SCOPES)
    clock.advance(5.0)
    r = ledger.revoke(S, "wearer withdrew consent")
    assert not any(ledger.is_active(S, s) for s in SCOPES)
    assert r.revoked and r.revoked_at == clock.time() and r.revocation_reason == "wearer withdrew consent"
    with pytest.raises(ConsentError, match="withdrew"):
        ledger.require(S)


def test_revoke_twice_keeps_the_first_reason(ledger: ConsentLedger, clock: ManualClock) -> None:
    ledger.grant(S, ["biometric"])
    first = ledger.revoke(S, "first")
    clock.advance(1.0)
    assert ledger.revoke(S, "second") == first
    assert ledger.record(S).revocation_reason == "first"


def test_regrant_lifts_a_revocation_and_replaces_scopes(ledger: ConsentLedger) -> None:
    ledger.grant(S, ["biometric", "audio"])
    ledger.revoke(S, "paused")
    ledger.grant(S, ["audio"])
    assert ledger.is_active(S, "audio") and not ledger.is_active(S, "biometric")
    assert not ledger.record(S).revoked


def test_revoke_all(ledger: ConsentLedger) -> None:
    keys = [f"sensor{i:02d}" for i in range(5)]
    for k in keys:
        ledger.grant(k, ["biometric"])
    ledger.revoke(keys[0], "earlier")
    assert ledger.revoke_all("session destroyed") == 4
    assert not any(ledger.is_active(k) for k in keys)
    assert ledger.record(keys[0]).revocation_reason == "earlier"
    assert {ledger.record(k).revocation_reason for k in keys[1:]} == {"session destroyed"}
    assert ledger.revoke_all("again") == 0


@pytest.mark.parametrize(
    ("reason", "error"),
    [("", InvalidArgumentError), ("  ", InvalidArgumentError), (None, WrongTypeError), (3, WrongTypeError)],
)
def test_revocation_needs_a_reason(ledger: ConsentLedger, reason: object, error: type[Exception]) -> None:
    ledger.grant(S, ["biometric"])
    with pytest.raises(error):
        ledger.revoke(S, reason)  # type: ignore[arg-type]
    with pytest.raises(error):
        ledger.revoke_all(reason)  # type: ignore[arg-type]
    assert ledger.is_active(S)


# -- capacity -----------------------------------------------------------------------------------


def test_capacity_limited_is_still_active(ledger: ConsentLedger) -> None:
    ledger.grant(S, ["biometric"])
    (r,) = ledger.set_capacity(S, "LIMITED")
    assert r.capacity == "LIMITED" and ledger.is_active(S)
    ledger.set_capacity(S, "FULL")
    assert ledger.is_active(S)


def test_capacity_none_revokes_with_a_reason(ledger: ConsentLedger, clock: ManualClock) -> None:
    ledger.grant(S, ["biometric", "clinical"])
    ledger.set_capacity(S, "LIMITED")
    clock.advance(2.0)
    (r,) = ledger.set_capacity(S, "NONE")
    assert not ledger.is_active(S) and not ledger.is_active(S, "clinical")
    assert r.revoked and r.revoked_at == clock.time() and r.capacity == "NONE"
    assert r.revocation_reason is not None and "capacity NONE" in r.revocation_reason
    # capacity coming back does not lift the revocation: a new grant is needed
    ledger.set_capacity(S, "FULL")
    assert not ledger.is_active(S) and ledger.record(S).revoked


def test_grant_while_capacity_none_waits_for_capacity(ledger: ConsentLedger) -> None:
    ledger.grant(S, ["biometric"])
    ledger.set_capacity(S, "NONE")
    ledger.grant(S, ["biometric"])
    assert ledger.record(S).capacity == "NONE" and not ledger.is_active(S)
    with pytest.raises(ConsentError, match="capacity"):
        ledger.require(S)
    ledger.set_capacity(S, "LIMITED")
    assert ledger.is_active(S)


@pytest.mark.parametrize(
    ("capacity", "error"),
    [
        ("none", InvalidArgumentError),
        ("PARTIAL", InvalidArgumentError),
        ("", InvalidArgumentError),
        (0, WrongTypeError),
        (None, WrongTypeError),
    ],
)
def test_unknown_capacity_refused(ledger: ConsentLedger, capacity: object, error: type[Exception]) -> None:
    ledger.grant(S, ["biometric"])
    with pytest.raises(error):
        ledger.set_capacity(S, capacity)  # type: ignore[arg-type]
    assert ledger.is_active(S) and ledger.record(S).capacity == "FULL"


# -- scopes and refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("scopes", [["biometric", "telepathy"], ["Biometric"], ["biometric "], ["unknown"]])
def test_unknown_scope_refused_and_nothing_recorded(ledger: ConsentLedger, scopes: list[str]) -> None:
    with pytest.raises(InvalidArgumentError, match="unknown consent scope"):
        ledger.grant(S, scopes)
    assert S not in ledger and len(ledger) == 0


def test_unknown_scope_in_a_question_refused(ledger: ConsentLedger) -> None:
    ledger.grant(S, ["biometric"])
    with pytest.raises(InvalidArgumentError):
        ledger.is_active(S, "telepathy")
    with pytest.raises(WrongTypeError):
        ledger.is_active(S, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scopes", "error"),
    [
        ([], InvalidArgumentError),
        ((), InvalidArgumentError),
        ([1], WrongTypeError),
        (None, WrongTypeError),
        (5, WrongTypeError),
        ([b"biometric"], WrongTypeError),
    ],
)
def test_bad_scopes(ledger: ConsentLedger, scopes: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        ledger.grant(S, scopes)  # type: ignore[arg-type]
    assert len(ledger) == 0


def test_single_scope_string_is_one_scope(ledger: ConsentLedger) -> None:
    ledger.grant(S, "audio")
    assert ledger.record(S).scopes == ("audio",)


@pytest.mark.parametrize(
    ("ttl", "error"),
    [
        (0, InvalidArgumentError),
        (-1.0, InvalidArgumentError),
        (float("nan"), InvalidArgumentError),
        (float("inf"), InvalidArgumentError),
        ("10", WrongTypeError),
        (True, WrongTypeError),
    ],
)
def test_bad_ttl(ledger: ConsentLedger, ttl: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        ledger.grant(S, ["biometric"], ttl_s=ttl)  # type: ignore[arg-type]
    assert len(ledger) == 0


@pytest.mark.parametrize(
    ("key", "error"),
    [("", InvalidArgumentError), (None, WrongTypeError), (b"sensor", WrongTypeError), (7, WrongTypeError)],
)
def test_bad_sensor_key(ledger: ConsentLedger, key: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        ledger.grant(key, ["biometric"])  # type: ignore[arg-type]
    with pytest.raises(error):
        ledger.is_active(key)  # type: ignore[arg-type]


def test_unknown_sensor(ledger: ConsentLedger) -> None:
    assert not ledger.is_active("never-granted")
    for call in (
        lambda: ledger.revoke("never-granted", "x"),
        lambda: ledger.set_capacity("never-granted", "NONE"),
        lambda: ledger.record("never-granted"),
        lambda: ledger.require("never-granted"),
    ):
        with pytest.raises(ConsentError):
            call()


def test_require_scope_not_covered(ledger: ConsentLedger) -> None:
    ledger.grant(S, ["biometric"])
    ledger.require(S)
    with pytest.raises(ConsentError, match="scope 'audio'"):
        ledger.require(S, "audio")


def test_records_are_per_sensor(ledger: ConsentLedger) -> None:
    ledger.grant("a" * 16, ["biometric"])
    ledger.grant("b" * 16, ["biometric"])
    ledger.set_capacity("a" * 16, "NONE")
    assert not ledger.is_active("a" * 16) and ledger.is_active("b" * 16)


def test_thresholds_type_checked() -> None:
    with pytest.raises(WrongTypeError):
        ConsentLedger(thresholds=None)  # type: ignore[arg-type]


def test_concurrent_capacity_and_grants_stay_consistent(ledger: ConsentLedger) -> None:
    keys = [f"k{i}" for i in range(50)]
    for k in keys:
        ledger.grant(k, ["biometric"])

    def drop(part: list[str]) -> None:
        for k in part:
            ledger.set_capacity(k, "LIMITED")
            ledger.set_capacity(k, "NONE")

    threads = [threading.Thread(target=drop, args=(keys[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(ledger.record(k).revoked and ledger.record(k).capacity == "NONE" for k in keys)
    assert ledger.revoke_all("end") == 0


def test_set_ttl_applies_to_later_grants_only(ledger: ConsentLedger, clock: ManualClock) -> None:
    early = ledger.grant("early", "biometric")
    ledger.set_ttl(60.0)
    assert ledger.ttl == 60.0
    late = ledger.grant("late", "biometric")
    assert late.expires_at - late.granted_at == 60.0
    assert early.expires_at - early.granted_at == ledger.record("early").expires_at - early.granted_at != 60.0
    clock.advance(61.0)
    assert not ledger.is_active("late") and ledger.is_active("early")


@pytest.mark.parametrize(
    ("ttl", "error"),
    [(0, InvalidArgumentError), (-5.0, InvalidArgumentError), (float("nan"), InvalidArgumentError),
     (True, WrongTypeError), ("60", WrongTypeError)],
)  # fmt: skip
def test_set_ttl_refuses_bad_input_and_keeps_the_old_one(ledger: ConsentLedger, ttl: object, error: type) -> None:
    before = ledger.ttl
    with pytest.raises(error):
        ledger.set_ttl(ttl)  # type: ignore[arg-type]
    assert ledger.ttl == before
