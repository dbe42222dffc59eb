"""The drift proposal (docs/proposals/drift-resting-eeg.json, docs/sal.md "Drift on real EEG") end to end.

The proposal file is loaded with the CLI's own loader, signed by five throwaway node keys in three
jurisdictions through the real quorum code, enacted, and applied by a shield. Then the real Fp1 EEG
pyedflib ships and the pushed stream of ``bench/drift_study.py`` (the same function builds it) run
through shields under the design's defaults and under the enacted policy, a ``ManualClock`` advanced
2 s per frame. Every expectation is computed from the frames here (bridge bounds, labels); the only
bounds are the ones the streams are defined by (the push starts at 120 s; the issue says the
defaults block the real EEG within a minute).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from cortex_sal.clock import ManualClock
from cortex_sal.crypto.ed25519 import Ed25519SigningKey
from cortex_sal.errors import QuorumError
from cortex_sal.governance import DEFAULT_THRESHOLDS, ClinicalThresholds, DecisionType, Proposal, enact, sign_proposal
from cortex_sal.governance.quorum import EnactedBundle, GovernanceNode, NodeRegistry, canonical_json
from cortex_sal.sal.features import LABELS, bridge_check, coherency, phase_a, state_label
from cortex_sal.sal.results import FrameResult, RefusalReason, Refused, Registered, Released
from cortex_sal.sal.shield import CognitiveShield
from cortex_sal.store.governance import load_proposal

ROOT = Path(__file__).resolve().parents[1]
PROPOSAL = ROOT / "docs" / "proposals" / "drift-resting-eeg.json"
MODEL = "eeg_fp1_certified_v1"
FRAME_S = 2.0
DRIFT_REFUSALS = (RefusalReason.DRIFT_BLOCKED, RefusalReason.CONSENT_INACTIVE)


def _study() -> ModuleType:
    """bench/drift_study.py, so the test runs the very streams docs/sal.md describes."""
    spec = importlib.util.spec_from_file_location("drift_study", ROOT / "bench" / "drift_study.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("drift_study", module)
    spec.loader.exec_module(module)
    return module


study = _study()


@pytest.fixture(scope="module")
def real_frames() -> np.ndarray:
    eeg = study.real_signal()
    assert eeg.size == 698 * 128  # the 698 s Fp1 recording at 128 Hz
    frames: np.ndarray = study.frames_of(eeg)
    return frames


@pytest.fixture(scope="module")
def pushed_frames() -> np.ndarray:
    frames: np.ndarray = study.frames_of(study.pushed(study.real_signal()))
    return frames


@pytest.fixture(scope="module")
def proposal() -> Proposal:
    return load_proposal(PROPOSAL)


@dataclasses.dataclass
class Enacted:
    bundle: EnactedBundle
    registry: NodeRegistry
    now: float


@pytest.fixture(scope="module")
def enacted(proposal: Proposal) -> Iterator[Enacted]:
    """Five throwaway node keys (DE, DE, FR, FR, SE) sign the file's proposal; the quorum enacts it."""
    keys = [Ed25519SigningKey.generate() for _ in range(5)]
    try:
        nodes = [
            GovernanceNode(k.public_key(), f"drift study node {i}", j)
            for i, (k, j) in enumerate(zip(keys, ("DE", "DE", "FR", "FR", "SE"), strict=True))
        ]
        registry = NodeRegistry(nodes)
        sigs = [sign_proposal(proposal, k, n) for k, n in zip(keys, nodes, strict=True)]
    finally:
        for k in keys:
            k.purge()
    now = proposal.created + 60.0  # within its 30-day validity, whatever today's date
    with pytest.raises(QuorumError):
        enact(proposal, sigs[:4], registry, now=now, enacted_digests=set())  # 4 of 5: refused
    bundle = enact(proposal, sigs, registry, now=now, enacted_digests=set())
    yield Enacted(EnactedBundle.from_json(bundle.to_json()), registry, now)  # as the bundle file travels


def _shield(enacted: Enacted | None) -> tuple[CognitiveShield, ManualClock]:
    clock = ManualClock(start=enacted.now + 60.0 if enacted is not None else 1_800_000_000.0)
    shield = CognitiveShield(clock=clock)
    if enacted is not None:
        shield.apply_policy(enacted.bundle, enacted.registry)
    assert isinstance(shield.register_sensor(MODEL, 35.0, 16), Registered)
    return shield, clock


def _run(frames: np.ndarray, enacted: Enacted | None) -> list[FrameResult]:
    shield, clock = _shield(enacted)
    results = []
    with shield:
        for x in frames:
            results.append(shield.ingest_raw_data(MODEL, x))
            clock.advance(FRAME_S)
    return results


def _reason(r: FrameResult) -> RefusalReason | None:
    return r.reason if isinstance(r, Refused) else None


def test_the_proposal_file_is_a_clinical_threshold_change_draft(proposal: Proposal) -> None:
    assert proposal.type is DecisionType.CLINICAL_THRESHOLD_CHANGE
    assert proposal.citations and all(c.strip() for c in proposal.citations)
    # exactly what `cortex-sal governance propose` writes: the canonical JSON of the draft, unsigned
    assert PROPOSAL.read_bytes() == canonical_json(proposal.to_dict()) + b"\n"
    fields = {f.name for f in dataclasses.fields(ClinicalThresholds)}
    assert proposal.content and set(proposal.content) <= fields
    assert all(proposal.content[k] != getattr(DEFAULT_THRESHOLDS, k) for k in proposal.content)
    # the defaults in the code stay the design's (the change is for the quorum to enact)
    assert DEFAULT_THRESHOLDS.max_coherency_sum_per_minute == 2.5
    assert (DEFAULT_THRESHOLDS.baseline_frames, DEFAULT_THRESHOLDS.soft_z_score) == (7, 3.0)


def test_the_enacted_bundle_puts_the_proposal_in_force(proposal: Proposal, enacted: Enacted) -> None:
    shield, _ = _shield(enacted)
    with shield:
        t = shield.thresholds
        for f in dataclasses.fields(ClinicalThresholds):
            want = proposal.content.get(f.name, getattr(DEFAULT_THRESHOLDS, f.name))
            assert getattr(t, f.name) == want, f.name
        assert shield.policy.origin is not None


def test_resting_eeg_blocked_under_the_defaults_passes_under_the_enacted_policy(
    real_frames: np.ndarray, enacted: Enacted
) -> None:
    within = [bridge_check(phase_a(x)) is None for x in real_frames]  # the bridge is not changed
    default = _run(real_frames, None)
    proposed = _run(real_frames, enacted)

    # the defaults: the sensor is blocked for good within the first minute of data
    first = next(i for i, r in enumerate(default) if _reason(r) in DRIFT_REFUSALS)
    assert (first + 1) * FRAME_S <= 60.0
    assert all(_reason(r) is RefusalReason.DRIFT_BLOCKED for r in default[first + 1 :])

    # the enacted policy: no drift refusal at all, every frame within the bridge released at FULL capacity
    assert not any(_reason(r) in DRIFT_REFUSALS for r in proposed)
    for r, ok in zip(proposed, within, strict=True):
        if ok:
            assert isinstance(r, Released) and r.capacity == "FULL"
        else:
            assert _reason(r) is RefusalReason.BRIDGE_BOUNDS
    freed = [i for i, r in enumerate(default) if _reason(r) in DRIFT_REFUSALS and within[i]]
    assert len(freed) > len(real_frames) // 2  # most of the recording was lost to the block
    assert all(isinstance(proposed[i], Released) for i in freed)


def test_the_pushed_stream_is_still_blocked_under_the_enacted_policy(
    pushed_frames: np.ndarray, real_frames: np.ndarray, enacted: Enacted
) -> None:
    start = int(study.PUSH_START_S / FRAME_S)  # up to here the pushed stream is the recording itself
    assert np.array_equal(pushed_frames[:start], real_frames[:start])
    full = int(study.PUSH_FULL_S / FRAME_S)  # from here on a pure 10 Hz rhythm
    for x in pushed_frames[full:]:
        f = phase_a(x)
        assert bridge_check(f) is None and state_label(coherency(f)) == LABELS[1]  # would pass, as "focused"

    results = _run(pushed_frames, enacted)
    block = next(i for i, r in enumerate(results) if _reason(r) in DRIFT_REFUSALS)
    assert _reason(results[block]) is RefusalReason.CONSENT_INACTIVE  # the frame that blocked it
    assert start < block < full  # after the push began, before the rhythm has fully taken over
    assert all(_reason(r) is RefusalReason.DRIFT_BLOCKED for r in results[block + 1 :])
    assert any(isinstance(r, Released) and r.capacity == "LIMITED" for r in results[:block])  # hard violations
