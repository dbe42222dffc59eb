"""The neutrality suite: no single institution, operator or app can change what the shield lets through.

Covers run-time immutability of every clinical threshold, every quorum edge for every decision type,
citations, registry and anti-capture quorums, audit tamper detection, the no-socket rule, consent
auto-revocation on dysregulation, bounds that move only with an enacted bundle, caller-independent
decisions, and logs free of raw identifiers.

Runs under pytest and as a plain script (``python -W error tests/test_cognitive_neutrality.py``).
No fixtures and no pytest marks: parametrised cases are generated module-level functions built from
the case tables below, so both runners see the same tests.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cortex_sal.clock import ManualClock
from cortex_sal.crypto.ed25519 import Ed25519SigningKey
from cortex_sal.errors import BundleError, ProposalError, QuorumError, WrongTypeError
from cortex_sal.governance import (
    DEFAULT_THRESHOLDS,
    AuditError,
    ClinicalThresholds,
    DecisionType,
    EnactedBundle,
    GovernanceNode,
    ImmutablePolicyError,
    NodeRegistry,
    Proposal,
    apply_bundle,
    enact,
    sign_proposal,
    truncated_hash,
)
from cortex_sal.governance.quorum import PROPOSAL_LIFETIME_S, Refusal, Signature, required_signatures
from cortex_sal.sal.consent import ConsentLedger
from cortex_sal.sal.drift import DriftDetector
from cortex_sal.sal.results import RefusalReason, Refused, Registered, Released
from cortex_sal.sal.shield import CognitiveShield
from cortex_sal.sources import synthetic_eeg
from cortex_sal.store.audit import AuditTrail

T0 = 1_700_000_000.0
SENSOR = "eeg_fp1_certified_v1"
CITES = ("Doe et al. 2024, doi:10.0000/neutrality",)
# 9 nodes in 4 jurisdictions, interleaved so that any first N >= 3 signers span >= 3 jurisdictions
JURISDICTIONS = ["DE", "FR", "US", "EU", "DE", "FR", "US", "EU", "DE"]
KEYS = [Ed25519SigningKey.generate() for _ in JURISDICTIONS]
NODES = [
    GovernanceNode(k.public_key(), f"Institution {i}", j)
    for i, (k, j) in enumerate(zip(KEYS, JURISDICTIONS, strict=True))
]
OUTSIDER_KEY = Ed25519SigningKey.generate()
OUTSIDER = GovernanceNode(OUTSIDER_KEY.public_key(), "Outsider Institute", "JP")
EXTRA_KEY = Ed25519SigningKey.generate()
EXTRA = GovernanceNode(EXTRA_KEY.public_key(), "Tenth Institution", "BR")


@atexit.register
def _purge_keys() -> None:
    for k in [*KEYS, OUTSIDER_KEY, EXTRA_KEY]:
        if not k.is_purged:
            k.purge()


# --- helpers (plain functions: script mode has no fixtures) ---------------------------------------


def raises(exc: type[BaseException] | tuple[type[BaseException], ...], fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except exc as e:
        return e
    raise AssertionError(f"expected {exc}, nothing raised")


def registry(deactivate: tuple[int, ...] = (), extra: tuple[GovernanceNode, ...] = ()) -> NodeRegistry:
    reg = NodeRegistry([*NODES, *extra])
    for i in deactivate:
        reg.deactivate(NODES[i].node_id)
    return reg


CONTENT: dict[DecisionType, dict[str, object]] = {
    DecisionType.CLINICAL_THRESHOLD_CHANGE: {"min_snr_db": 32.0},
    DecisionType.CAPABILITY_MODULE: {"module": "acolyte-v2", "version": 2},
    DecisionType.STANDARD_CHANGE: {"standard": "keros", "version": 3},
    DecisionType.NODE_REGISTRY_CHANGE: {"add": "Institution 9", "jurisdiction": "BR"},
    DecisionType.ANTI_CAPTURE_CHANGE: {"rule": "no-single-institution", "version": 2},
}
CHANGED: dict[DecisionType, dict[str, object]] = {
    DecisionType.CLINICAL_THRESHOLD_CHANGE: {"min_snr_db": 20.0},
    DecisionType.CAPABILITY_MODULE: {"module": "acolyte-v2", "version": 3},
    DecisionType.STANDARD_CHANGE: {"standard": "keros", "version": 4},
    DecisionType.NODE_REGISTRY_CHANGE: {"add": "Captured Corp", "jurisdiction": "BR"},
    DecisionType.ANTI_CAPTURE_CHANGE: {"rule": "single-institution-ok", "version": 2},
}
REQUIRED = {
    DecisionType.CLINICAL_THRESHOLD_CHANGE: 5,
    DecisionType.CAPABILITY_MODULE: 3,
    DecisionType.STANDARD_CHANGE: 7,
    DecisionType.NODE_REGISTRY_CHANGE: 5,
    DecisionType.ANTI_CAPTURE_CHANGE: 9,
}


def proposal(
    dtype: DecisionType,
    content: dict[str, object] | None = None,
    *,
    created: float = T0,
    proposer: int = 0,
    citations: tuple[str, ...] = CITES,
) -> Proposal:
    return Proposal(
        type=dtype,
        content=CONTENT[dtype] if content is None else content,
        citations=citations,
        proposer=NODES[proposer].node_id,
        created=created,
    )


def sign_by(p: Proposal, indices: list[int] | range) -> list[Signature]:
    return [sign_proposal(p, KEYS[i], NODES[i]) for i in indices]


class AuditLog:
    """Collects enact()'s audit callbacks."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    def __call__(self, event: str, details: object) -> None:
        self.events.append((event, dict(details)))  # type: ignore[call-overload]


def expect_refusal(
    exc: type[BaseException], reason: Refusal, p: Proposal, sigs: list[Signature], reg: NodeRegistry, now: float
) -> None:
    log = AuditLog()
    digests: set = set()
    e = raises(exc, lambda: enact(p, sigs, reg, now=now, enacted_digests=digests, audit=log))
    assert getattr(e, "reason", None) == reason, (e, reason)
    assert digests == set(), "a refused proposal must not be recorded as enacted"
    assert log.events and log.events[-1][0] == "governance.refused"
    assert log.events[-1][1]["reason"] == reason


def eeg(n: int, seed: int = 5) -> list[np.ndarray]:
    return list(synthetic_eeg(n, seed=seed).frames)


BLOCKING = ClinicalThresholds(max_coherency_sum_per_minute=1e-6)  # every frame is a hard violation


def run_shield(gateway_id: str, thresholds: ClinicalThresholds, frames: list[np.ndarray]) -> tuple[list, list]:
    with CognitiveShield(clock=ManualClock(), thresholds=thresholds, gateway_id=gateway_id) as shield:
        assert isinstance(shield.register_sensor(SENSOR, 35.0, 16), Registered)
        results = [shield.ingest_raw_data(SENSOR, f) for f in frames]
        log = shield.session_log
    decisions = [
        ("ok", r.state_label, None, r.consent_active)
        if isinstance(r, Released)
        else ("refused", r.state_label, f"{r.reason.value}: {r.detail}", r.consent_active)
        for r in results
    ]
    return decisions, log


# --- 1. run-time immutability of every threshold (2 tests per field, generated) --------------------

FIELDS = [f.name for f in dataclasses.fields(ClinicalThresholds)]


def _make_setattr_test(name: str) -> Callable[[], None]:
    def test() -> None:
        t = ClinicalThresholds()
        before = getattr(t, name)
        raises(ImmutablePolicyError, lambda: setattr(t, name, before * 0 if before else 1))
        raises(ImmutablePolicyError, lambda: setattr(DEFAULT_THRESHOLDS, name, before))
        assert getattr(t, name) == before and getattr(DEFAULT_THRESHOLDS, name) == before
        assert issubclass(ImmutablePolicyError, AttributeError)

    return test


def _make_delattr_test(name: str) -> Callable[[], None]:
    def test() -> None:
        t = ClinicalThresholds()
        before = getattr(t, name)
        raises(ImmutablePolicyError, lambda: delattr(t, name))
        raises(ImmutablePolicyError, lambda: delattr(DEFAULT_THRESHOLDS, name))
        assert getattr(t, name) == before

    return test


def _register(name: str, fn: Callable[[], None]) -> None:
    assert name.startswith("test_") and name not in globals(), name
    fn.__name__ = fn.__qualname__ = name
    globals()[name] = fn


for _field in FIELDS:
    _register(f"test_setattr_refused_{_field}", _make_setattr_test(_field))
    _register(f"test_delattr_refused_{_field}", _make_delattr_test(_field))


def test_every_design_threshold_is_covered() -> None:
    assert len(FIELDS) >= 17
    for name in ("max_coherency_sum_per_minute", "min_snr_db", "min_bits", "consent_ttl_s", "hard_violations_to_block"):
        assert name in FIELDS


def test_new_attribute_cannot_be_added_to_thresholds() -> None:
    raises(ImmutablePolicyError, lambda: setattr(DEFAULT_THRESHOLDS, "override", True))
    assert not hasattr(DEFAULT_THRESHOLDS, "override")


# --- 2. every quorum edge, for every decision type (generated) ----------------------------------------


def _edge_exact(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    reg = registry()
    assert required_signatures(dtype, reg) == n
    p = proposal(dtype)
    log = AuditLog()
    digests: set = set()
    bundle = enact(p, sign_by(p, range(n)), reg, now=T0 + 1, enacted_digests=digests, audit=log)
    assert isinstance(bundle, EnactedBundle) and len(bundle.signatures) == n
    assert p.digest() in digests
    assert log.events[-1][0] == "governance.enacted"
    bundle.verify(reg, T0 + 2)


def _edge_n_minus_1(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    p = proposal(dtype)
    expect_refusal(QuorumError, Refusal.INSUFFICIENT_SIGNATURES, p, sign_by(p, range(n - 1)), registry(), T0 + 1)


def _edge_duplicate(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    p = proposal(dtype)
    sigs = sign_by(p, range(n - 1))
    sigs.append(sign_proposal(p, KEYS[0], NODES[0]))  # N signatures, N-1 signers
    expect_refusal(QuorumError, Refusal.DUPLICATE_SIGNER, p, sigs, registry(), T0 + 1)


def _edge_deactivated(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    p = proposal(dtype)
    expect_refusal(
        QuorumError, Refusal.DEACTIVATED_NODE, p, sign_by(p, range(n)), registry(deactivate=(n - 1,)), T0 + 1
    )


def _edge_unknown(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    p = proposal(dtype)
    sigs = [*sign_by(p, range(n - 1)), sign_proposal(p, OUTSIDER_KEY, OUTSIDER)]
    expect_refusal(QuorumError, Refusal.UNKNOWN_NODE, p, sigs, registry(), T0 + 1)


def _edge_forged_key(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    p = proposal(dtype)
    forged = Signature(NODES[n - 1].node_id, OUTSIDER_KEY.sign(p.signing_message()))
    expect_refusal(QuorumError, Refusal.INVALID_SIGNATURE, p, [*sign_by(p, range(n - 1)), forged], registry(), T0 + 1)


def _edge_forged_bytes(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    p = proposal(dtype)
    sigs = sign_by(p, range(n))
    bad = bytearray(sigs[-1].signature)
    bad[7] ^= 0x01
    sigs[-1] = Signature(sigs[-1].node_id, bytes(bad))
    expect_refusal(QuorumError, Refusal.INVALID_SIGNATURE, p, sigs, registry(), T0 + 1)


def _edge_content_changed(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    signed = proposal(dtype)
    changed = proposal(dtype, CHANGED[dtype])
    assert signed.digest() != changed.digest()
    expect_refusal(QuorumError, Refusal.INVALID_SIGNATURE, changed, sign_by(signed, range(n)), registry(), T0 + 1)


def _edge_expired(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    p = proposal(dtype)
    assert p.expires == T0 + PROPOSAL_LIFETIME_S
    expect_refusal(ProposalError, Refusal.EXPIRED, p, sign_by(p, range(n)), registry(), p.expires)


def _edge_already_enacted(dtype: DecisionType) -> None:
    n = REQUIRED[dtype]
    p = proposal(dtype)
    sigs = sign_by(p, range(n))
    reg = registry()
    digests: set = set()
    enact(p, sigs, reg, now=T0 + 1, enacted_digests=digests)
    log = AuditLog()
    e = raises(ProposalError, lambda: enact(p, sigs, reg, now=T0 + 2, enacted_digests=digests, audit=log))
    assert getattr(e, "reason", None) == Refusal.ALREADY_ENACTED
    assert log.events[-1][1]["reason"] == Refusal.ALREADY_ENACTED


EDGES: dict[str, Callable[[DecisionType], None]] = {
    "exact_quorum_enacts": _edge_exact,
    "n_minus_1_refused": _edge_n_minus_1,
    "duplicate_signer_refused": _edge_duplicate,
    "deactivated_node_refused": _edge_deactivated,
    "unknown_node_refused": _edge_unknown,
    "forged_by_other_key_refused": _edge_forged_key,
    "forged_bitflip_refused": _edge_forged_bytes,
    "content_changed_after_signing_refused": _edge_content_changed,
    "expired_refused": _edge_expired,
    "already_enacted_refused": _edge_already_enacted,
}


def _make_edge_test(edge: Callable[[DecisionType], None], dtype: DecisionType) -> Callable[[], None]:
    def test() -> None:
        edge(dtype)

    return test


for _dtype in DecisionType:
    for _edge_name, _edge in EDGES.items():
        _register(f"test_quorum_{_dtype.value}_{_edge_name}", _make_edge_test(_edge, _dtype))


def test_clinical_change_needs_three_jurisdictions() -> None:
    p = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE)
    two = [0, 4, 8, 1, 5]  # DE, DE, DE, FR, FR: five signers, two jurisdictions
    assert {JURISDICTIONS[i] for i in two} == {"DE", "FR"}
    expect_refusal(QuorumError, Refusal.INSUFFICIENT_JURISDICTIONS, p, sign_by(p, two), registry(), T0 + 1)
    three = [0, 4, 8, 1, 2]
    enact(p, sign_by(p, three), registry(), now=T0 + 1, enacted_digests=set())


def test_non_clinical_change_has_no_jurisdiction_rule() -> None:
    p = proposal(DecisionType.CAPABILITY_MODULE)
    enact(p, sign_by(p, [0, 4, 8]), registry(), now=T0 + 1, enacted_digests=set())  # all DE


def test_proposal_not_yet_valid_is_refused() -> None:
    p = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, created=T0 + 100)
    expect_refusal(ProposalError, Refusal.NOT_YET_VALID, p, sign_by(p, range(5)), registry(), T0)


def test_last_valid_instant_before_expiry_enacts() -> None:
    p = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE)
    enact(p, sign_by(p, range(5)), registry(), now=p.expires - 0.001, enacted_digests=set())


# --- 3. citations -------------------------------------------------------------------------------


def test_clinical_change_without_citation_refused_at_submission() -> None:
    raises(ProposalError, lambda: proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, citations=()))


def test_clinical_change_with_blank_citation_refused() -> None:
    raises(ProposalError, lambda: proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, citations=("   ",)))


def test_citations_are_part_of_what_is_signed() -> None:
    a = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE)
    b = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, citations=("Someone else 2025",))
    assert a.digest() != b.digest()
    expect_refusal(QuorumError, Refusal.INVALID_SIGNATURE, b, sign_by(a, range(5)), registry(), T0 + 1)


def test_non_clinical_change_needs_no_citation() -> None:
    p = proposal(DecisionType.CAPABILITY_MODULE, citations=())
    assert p.citations == ()


# --- 4. registry changes and anti-capture need their own quorum -----------------------------------


def test_registry_change_needs_five() -> None:
    assert required_signatures(DecisionType.NODE_REGISTRY_CHANGE, registry()) == 5
    p = proposal(DecisionType.NODE_REGISTRY_CHANGE)
    expect_refusal(QuorumError, Refusal.INSUFFICIENT_SIGNATURES, p, sign_by(p, range(4)), registry(), T0 + 1)


def test_signatures_for_another_decision_type_do_not_count() -> None:
    content = {"add": "Captured Corp", "jurisdiction": "BR"}
    module = proposal(DecisionType.CAPABILITY_MODULE, content)
    reg_change = proposal(DecisionType.NODE_REGISTRY_CHANGE, content)
    sigs = sign_by(module, range(5))
    enact(module, sigs[:3], registry(), now=T0 + 1, enacted_digests=set())
    expect_refusal(QuorumError, Refusal.INVALID_SIGNATURE, reg_change, sigs, registry(), T0 + 1)


def test_anti_capture_needs_every_active_node() -> None:
    reg = registry(extra=(EXTRA,))
    assert required_signatures(DecisionType.ANTI_CAPTURE_CHANGE, reg) == 10
    p = proposal(DecisionType.ANTI_CAPTURE_CHANGE)
    expect_refusal(QuorumError, Refusal.INSUFFICIENT_SIGNATURES, p, sign_by(p, range(9)), reg, T0 + 1)
    sigs = [*sign_by(p, range(9)), sign_proposal(p, EXTRA_KEY, EXTRA)]
    enact(p, sigs, reg, now=T0 + 1, enacted_digests=set())


def test_deactivating_nodes_does_not_lower_the_anti_capture_bar() -> None:
    reg = registry(deactivate=(7, 8))
    assert required_signatures(DecisionType.ANTI_CAPTURE_CHANGE, reg) == 9
    p = proposal(DecisionType.ANTI_CAPTURE_CHANGE)
    expect_refusal(QuorumError, Refusal.INSUFFICIENT_SIGNATURES, p, sign_by(p, range(7)), reg, T0 + 1)


# --- 5. audit tamper detection (sqlite3 straight on the file) --------------------------------------

N_AUDIT = 6


def _fill(path: Path, tag: str, start: float = 1_800_000_000.0) -> tuple[int, str]:
    with AuditTrail(path, clock=ManualClock(start=start)) as trail:
        for i in range(N_AUDIT):
            trail.append(
                "signature_added", node_hash=truncated_hash(f"{tag}-node-{i}"), proposal_hash=truncated_hash(tag), n=i
            )
        assert trail.verify().ok
        return tuple(trail.head())  # type: ignore[return-value]


def _tamper(path: Path, *statements: tuple[str, tuple]) -> None:
    with contextlib.closing(sqlite3.connect(str(path), isolation_level=None)) as conn:
        for trig in ("audit_entries_no_update", "audit_entries_no_delete", "audit_head_no_shrink"):
            conn.execute(f"DROP TRIGGER IF EXISTS {trig}")
        conn.execute("BEGIN")
        for sql, args in statements:
            conn.execute(sql, args)
        conn.execute("COMMIT")


def _verify(path: Path, expected_head: tuple[int, str] | None = None):  # type: ignore[no-untyped-def]
    with AuditTrail(path) as trail:
        return trail.verify(expected_head=expected_head)


def test_audit_untouched_log_verifies() -> None:
    with tempfile.TemporaryDirectory() as d:
        head = _fill(Path(d) / "a.db", "a")
        r = _verify(Path(d) / "a.db", head)
        assert r.ok and r.first_bad_index is None


def test_audit_edit_detected() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        _fill(path, "a")
        _tamper(path, ("UPDATE audit_entries SET details = replace(details, '\"n\":2', '\"n\":7') WHERE seq = 2", ()))
        r = _verify(path)
        assert not r.ok and r.first_bad_index == 2, r


def test_audit_timestamp_edit_detected() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        _fill(path, "a")
        _tamper(path, ("UPDATE audit_entries SET timestamp = timestamp + 1.0 WHERE seq = 4", ()))
        r = _verify(path)
        assert not r.ok and r.first_bad_index == 4, r


def test_audit_delete_detected() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        _fill(path, "a")
        _tamper(path, ("DELETE FROM audit_entries WHERE seq = 2", ()))
        r = _verify(path)
        assert not r.ok and r.first_bad_index == 2, r


def test_audit_reorder_detected() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        _fill(path, "a")
        _tamper(
            path,
            ("UPDATE audit_entries SET seq = -1 WHERE seq = 1", ()),
            ("UPDATE audit_entries SET seq = 1 WHERE seq = 2", ()),
            ("UPDATE audit_entries SET seq = 2 WHERE seq = -1", ()),
        )
        r = _verify(path)
        assert not r.ok and r.first_bad_index == 1, r


def test_audit_careful_truncation_detected_with_expected_head() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        head = _fill(path, "a")
        with contextlib.closing(sqlite3.connect(str(path))) as conn:
            keep_hash = conn.execute("SELECT entry_hash FROM audit_entries WHERE seq = 2").fetchone()[0]
        _tamper(
            path,
            ("DELETE FROM audit_entries WHERE seq >= 3", ()),
            ("UPDATE audit_head SET count = 3, last_hash = ? WHERE id = 0", (keep_hash,)),
        )
        assert _verify(path).ok  # internally perfect: only a retained head can tell
        r = _verify(path, head)
        assert not r.ok, r


def test_audit_careless_truncation_detected_by_stored_head() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        _fill(path, "a")
        _tamper(path, ("DELETE FROM audit_entries WHERE seq >= 4", ()))
        assert not _verify(path).ok


def test_audit_splice_from_another_log_detected() -> None:
    with tempfile.TemporaryDirectory() as d:
        a, b = Path(d) / "a.db", Path(d) / "b.db"
        _fill(a, "a")
        _fill(b, "b", start=1_800_000_500.0)
        with contextlib.closing(sqlite3.connect(str(b))) as conn:
            row = conn.execute(
                "SELECT idx, timestamp, event, details, prev_hash, entry_hash FROM audit_entries WHERE seq = 3"
            ).fetchone()
        _tamper(
            a,
            ("DELETE FROM audit_entries WHERE seq = 3", ()),
            (
                "INSERT INTO audit_entries (seq, idx, timestamp, event, details, prev_hash, entry_hash)"
                " VALUES (3, ?, ?, ?, ?, ?, ?)",
                tuple(row),
            ),
        )
        r = _verify(a)
        assert not r.ok and r.first_bad_index == 3, r


def test_audit_honest_code_cannot_rewrite_history() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        _fill(path, "a")
        with contextlib.closing(sqlite3.connect(str(path))) as conn:
            raises(sqlite3.DatabaseError, lambda: conn.execute("DELETE FROM audit_entries WHERE seq = 0"))
            raises(sqlite3.DatabaseError, lambda: conn.execute("UPDATE audit_entries SET event = 'x'"))
        assert _verify(path).ok


# --- 6. no socket: a whole demo session and a governance round under an audit hook ------------------

_HOOK = textwrap.dedent(
    """
    import os, sys
    def _hook(event, args):
        if event.startswith("socket."):
            sys.stderr.write("SOCKET EVENT " + event + "\\n")
            sys.stderr.flush()
            os._exit(97)
    sys.addaudithook(_hook)
    """
)

_SESSION = textwrap.dedent(
    """
    import io, tempfile
    from pathlib import Path
    from rich.console import Console
    from cortex_sal.cli.demo import run_demo
    from cortex_sal.crypto.ed25519 import Ed25519SigningKey
    from cortex_sal.store.audit import AuditTrail
    from cortex_sal.governance import (DEFAULT_THRESHOLDS, DecisionType, GovernanceNode, NodeRegistry,
        Proposal, apply_bundle, enact, sign_proposal, truncated_hash)
    assert run_demo(Console(file=io.StringIO()), frames=6, delay_s=0.0, use_edf=False) == 0
    keys = [Ed25519SigningKey.generate() for _ in range(5)]
    places = "DE FR US DE FR".split()
    nodes = [GovernanceNode(k.public_key(), f"Inst {i}", j) for i, (k, j) in enumerate(zip(keys, places))]
    reg = NodeRegistry(nodes)
    p = Proposal(type=DecisionType.CLINICAL_THRESHOLD_CHANGE, content={"min_snr_db": 31.0},
                 citations=["Doe 2024"], proposer=nodes[0].node_id, created=1_700_000_000.0)
    sigs = [sign_proposal(p, k, n) for k, n in zip(keys, nodes)]
    bundle = enact(p, sigs, reg, now=1_700_000_001.0, enacted_digests=set())
    new = apply_bundle(DEFAULT_THRESHOLDS, bundle, reg, 1_700_000_002.0)
    assert new.min_snr_db == 31.0
    with tempfile.TemporaryDirectory() as d:
        with AuditTrail(Path(d) / "audit.db") as trail:
            trail.append("proposal_enacted", proposal_hash=p.digest().hex(), signers=len(sigs))
            assert trail.verify().ok
    for k in keys:
        k.purge()
    print("SESSION-DONE")
    """
)


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", _HOOK + code], capture_output=True, text=True, timeout=180, check=False
    )


def test_whole_demo_and_governance_round_open_no_socket() -> None:
    r = _child(_SESSION)
    assert r.returncode == 0, (r.returncode, r.stdout[-2000:], r.stderr[-4000:])
    assert "SESSION-DONE" in r.stdout and "SOCKET EVENT" not in r.stderr


def test_socket_hook_catches_a_socket() -> None:
    r = _child("import socket\ns = socket.socket()\ns.close()\nprint('SHOULD-NOT-PRINT')\n")
    assert r.returncode == 97, (r.returncode, r.stderr[-2000:])
    assert "SOCKET EVENT socket." in r.stderr and "SHOULD-NOT-PRINT" not in r.stdout


# --- 7. consent auto-revocation on dysregulation ------------------------------------------------


def test_drift_block_revokes_consent() -> None:
    clock = ManualClock()
    detector = DriftDetector(clock=clock)
    ledger = ConsentLedger(clock=clock)
    key = truncated_hash(SENSOR)
    ledger.grant(key, ("biometric",))
    capacities = []
    for _ in range(3):
        state = detector.update(2.0)  # window sums 2.0, 4.0, 6.0: the second and third are hard violations
        ledger.set_capacity(key, state.capacity)
        capacities.append(state.capacity)
    state = detector.update(2.0)
    ledger.set_capacity(key, state.capacity)
    assert state.blocked and state.capacity == "NONE", capacities
    assert not ledger.is_active(key, "biometric")
    rec = ledger.record(key)
    assert rec.revoked and "capacity NONE" in (rec.revocation_reason or "")


def test_capacity_none_revokes_even_if_later_full() -> None:
    ledger = ConsentLedger(clock=ManualClock())
    ledger.grant("k", ("biometric",))
    ledger.set_capacity("k", "NONE")
    ledger.set_capacity("k", "FULL")
    assert not ledger.is_active("k")


def test_shield_stops_releasing_when_dysregulated() -> None:
    decisions, _ = run_shield("gw-a", BLOCKING, eeg(6))
    statuses = [d[0] for d in decisions]
    assert statuses[:2] == ["ok", "ok"], decisions
    assert all(s == "refused" for s in statuses[2:]), decisions
    assert "capacity NONE" in decisions[2][2] and decisions[2][2].startswith(RefusalReason.CONSENT_INACTIVE.value)
    assert all(d[3] is False for d in decisions[2:])


# --- 8. no bound moves without an enacted bundle ------------------------------------------------


def _clinical_bundle(content: dict[str, object] | None = None) -> tuple[Proposal, EnactedBundle, NodeRegistry]:
    reg = registry()
    p = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, content)
    return p, enact(p, sign_by(p, range(5)), reg, now=T0 + 1, enacted_digests=set()), reg


def test_shield_thresholds_cannot_be_mutated() -> None:
    with CognitiveShield(clock=ManualClock()) as shield:
        raises(ImmutablePolicyError, lambda: setattr(shield.thresholds, "min_snr_db", 0.0))
        raises(ImmutablePolicyError, lambda: setattr(shield.thresholds, "max_coherency_sum_per_minute", 1e9))
        assert shield.thresholds.min_snr_db == 30.0
        refused = shield.register_sensor(SENSOR, 29.9, 16)
        assert isinstance(refused, Refused) and refused.reason is RefusalReason.NOT_CERTIFIED


def test_shield_refuses_a_non_policy_thresholds_object() -> None:
    raises(WrongTypeError, lambda: CognitiveShield(thresholds={"min_snr_db": 0.0}))  # type: ignore[arg-type]


def test_apply_bundle_refuses_too_few_signatures() -> None:
    p, bundle, reg = _clinical_bundle({"min_snr_db": 10.0})
    short = EnactedBundle(p, bundle.signatures[:4])
    e = raises(QuorumError, lambda: apply_bundle(DEFAULT_THRESHOLDS, short, reg, T0 + 2))
    assert getattr(e, "reason", None) == Refusal.INSUFFICIENT_SIGNATURES
    assert DEFAULT_THRESHOLDS.min_snr_db == 30.0


def test_apply_bundle_refuses_tampered_json() -> None:
    _, bundle, reg = _clinical_bundle({"min_snr_db": 32.0})
    text = bundle.to_json()
    assert '"min_snr_db":32' in text
    tampered = EnactedBundle.from_json(text.replace('"min_snr_db":32', '"min_snr_db":10'))
    e = raises(QuorumError, lambda: apply_bundle(DEFAULT_THRESHOLDS, tampered, reg, T0 + 2))
    assert getattr(e, "reason", None) == Refusal.INVALID_SIGNATURE


def test_apply_bundle_refuses_non_clinical_bundle() -> None:
    reg = registry()
    p = proposal(DecisionType.CAPABILITY_MODULE)
    bundle = enact(p, sign_by(p, range(3)), reg, now=T0 + 1, enacted_digests=set())
    raises(BundleError, lambda: apply_bundle(DEFAULT_THRESHOLDS, bundle, reg, T0 + 2))


def test_apply_bundle_refuses_replay() -> None:
    p, bundle, reg = _clinical_bundle()
    applied = {p.digest()}
    e = raises(ProposalError, lambda: apply_bundle(DEFAULT_THRESHOLDS, bundle, reg, T0 + 2, enacted_digests=applied))
    assert getattr(e, "reason", None) == Refusal.ALREADY_ENACTED


def test_apply_bundle_rechecks_registry_at_apply_time() -> None:
    _, bundle, _ = _clinical_bundle()
    later = registry(deactivate=(2,))
    raises(QuorumError, lambda: apply_bundle(DEFAULT_THRESHOLDS, bundle, later, T0 + 2))


def test_valid_bundle_yields_new_thresholds_and_old_unchanged() -> None:
    old = ClinicalThresholds()
    _, bundle, reg = _clinical_bundle({"min_snr_db": 32.0, "hard_violations_to_block": 4})
    new = apply_bundle(old, bundle, reg, T0 + 2)
    assert new is not old and isinstance(new, ClinicalThresholds)
    assert (new.min_snr_db, new.hard_violations_to_block) == (32.0, 4)
    assert (old.min_snr_db, old.hard_violations_to_block) == (30.0, 3)
    assert DEFAULT_THRESHOLDS == ClinicalThresholds()
    for name in FIELDS:
        if name not in ("min_snr_db", "hard_violations_to_block"):
            assert getattr(new, name) == getattr(old, name), name
    raises(ImmutablePolicyError, lambda: setattr(new, "min_snr_db", 0.0))
    with CognitiveShield(clock=ManualClock(), thresholds=new) as shield:
        stricter = shield.register_sensor(SENSOR, 31.0, 16)  # the new, stricter bound
        assert isinstance(stricter, Refused) and stricter.reason is RefusalReason.NOT_CERTIFIED


# --- 9. the same inputs give the same decisions whoever asks ------------------------------------


def test_same_frames_same_decisions_for_any_gateway() -> None:
    frames = eeg(10)
    a, _ = run_shield("hospital-gateway-A", DEFAULT_THRESHOLDS, frames)
    b, _ = run_shield("app-vendor-gateway-B", DEFAULT_THRESHOLDS, frames)
    assert a == b
    assert all(d[0] == "ok" for d in a)


def test_same_refusals_for_any_gateway() -> None:
    frames = eeg(8)
    a, _ = run_shield("operator-1", BLOCKING, frames)
    b, _ = run_shield("operator-2", BLOCKING, frames)
    assert a == b and any(d[0] == "refused" for d in a)


def test_enact_independent_of_signature_order() -> None:
    p = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, {"min_snr_db": 33.0})
    sigs = sign_by(p, range(6))
    orders = [sigs, sigs[::-1], sigs[3:] + sigs[:3], [sigs[i] for i in (4, 1, 5, 0, 3, 2)]]
    results = []
    for order in orders:
        reg = registry()
        bundle = enact(p, order, reg, now=T0 + 1, enacted_digests=set())
        results.append(
            (
                bundle.proposal.digest(),
                frozenset(bundle.signatures),
                apply_bundle(DEFAULT_THRESHOLDS, bundle, reg, T0 + 2),
            )
        )
    assert all(r == results[0] for r in results)


def test_refusal_independent_of_signature_order() -> None:
    p = proposal(DecisionType.STANDARD_CHANGE)
    sigs = sign_by(p, range(6))  # one short of 7
    for order in (sigs, sigs[::-1], sigs[2:] + sigs[:2]):
        expect_refusal(QuorumError, Refusal.INSUFFICIENT_SIGNATURES, p, order, registry(), T0 + 1)


def test_quorum_independent_of_proposer() -> None:
    for proposer in (0, 3, 8):
        p = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE, proposer=proposer)
        expect_refusal(QuorumError, Refusal.INSUFFICIENT_SIGNATURES, p, sign_by(p, range(4)), registry(), T0 + 1)
        enact(p, sign_by(p, range(5)), registry(), now=T0 + 1, enacted_digests=set())


# --- 10. logs hold no raw identifier --------------------------------------------------------------


def test_shield_session_log_holds_no_sensor_id() -> None:
    _, log = run_shield("gw", BLOCKING, eeg(5))
    text = repr(log)
    assert log and SENSOR not in text and "eeg_fp1" not in text
    assert {e["sensor"] for e in log} == {truncated_hash(SENSOR)}


def test_audit_refuses_raw_identifier_keys_and_values() -> None:
    with tempfile.TemporaryDirectory() as d, AuditTrail(Path(d) / "a.db") as trail:
        raises(AuditError, lambda: trail.append("node_registered", sensor_id=SENSOR))
        raises(AuditError, lambda: trail.append("node_registered", node_id="0123456789abcdef"))
        raises(AuditError, lambda: trail.append("node_registered", serial="123e4567-e89b-12d3-a456-426614174000"))
        raises(AuditError, lambda: trail.append("node_registered", key="ab" * 32))
        raises(AuditError, lambda: trail.append("node_registered", sensor_hash=SENSOR))
        raises(AuditError, lambda: trail.append("policy_applied", eeg_mean=1.5))
        assert len(trail) == 0


def test_audit_file_holds_no_raw_identifier() -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "a.db"
        p = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE)
        log = AuditLog()
        enact(p, sign_by(p, range(5)), registry(), now=T0 + 1, enacted_digests=set(), audit=log)
        with AuditTrail(path, clock=ManualClock()) as trail:
            trail.append("node_registered", node_hash=truncated_hash(NODES[0].institution), jurisdiction="DE")
            trail.append("proposal_enacted", proposal_hash=p.digest().hex(), signers=5)
            trail.append(
                "policy_applied", sensor_hash=truncated_hash(SENSOR), proposal_hash=str(log.events[-1][1]["proposal"])
            )
            assert trail.verify().ok
        data = b"".join(f.read_bytes() for f in Path(d).iterdir())
        for raw in (SENSOR, "eeg_fp1", NODES[0].institution, NODES[0].public_key.hex()):
            assert raw.encode() not in data, raw


def test_enact_audit_details_hold_only_hashes() -> None:
    p = proposal(DecisionType.CLINICAL_THRESHOLD_CHANGE)
    log = AuditLog()
    enact(p, sign_by(p, range(5)), registry(), now=T0 + 1, enacted_digests=set(), audit=log)
    text = repr(log.events)
    for node in NODES:
        assert node.institution not in text and node.public_key.hex() not in text
    assert log.events[-1][1]["proposal"] == p.digest().hex()


# --- script mode --------------------------------------------------------------------------------


def _main() -> int:
    tests = [(name, fn) for name, fn in list(globals().items()) if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception:
            failed += 1
            print(f"{name} FAIL")
            traceback.print_exc()
        else:
            passed += 1
            print(f"{name} ok")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())
