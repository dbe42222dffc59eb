"""The policy in force: the thresholds, and the enacted bundles that put them in force, in order.

A bundle verifies only while its proposal is valid (30 days), so a policy read back after a
restart cannot be checked against "now". What is checked instead is the record of each
application: the bundle, the node registry it was verified against, and the time it was
verified. :func:`replay_policy` starts from the design's defaults and applies every recorded
bundle in order, each re-verified (quorum, distinct active signers, jurisdictions, signatures,
validity window) against its own registry *at its recorded time*; the result must equal the
thresholds that were recorded with the last one. Any failure raises
:class:`~cortex_sal.errors.PolicyVerificationError` naming the step and why: a policy that does
not verify is never put in force.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import CortexError, PolicyVerificationError, WrongTypeError
from .quorum import EnactedBundle, NodeRegistry, apply_bundle
from .thresholds import DEFAULT_THRESHOLDS, ClinicalThresholds

__all__ = ["AppliedBundle", "PolicyInForce", "replay_policy"]


@dataclass(frozen=True, slots=True)
class AppliedBundle:
    """One recorded application of a bundle: what was verified, against what, when, with what result."""

    bundle: EnactedBundle
    registry: NodeRegistry
    verified_at: float
    thresholds: ClinicalThresholds  # the thresholds in force right after it

    @property
    def digest_hex(self) -> str:
        """The full 64-hex digest of the bundle's proposal."""
        return self.bundle.proposal.digest().hex()

    @property
    def signer_count(self) -> int:
        return len(self.bundle.signatures)


@dataclass(frozen=True, slots=True)
class PolicyInForce:
    """The thresholds in force and the applications that made them (empty: the design's defaults)."""

    thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS
    history: tuple[AppliedBundle, ...] = ()

    @property
    def origin(self) -> AppliedBundle | None:
        """The application that set the thresholds in force, or ``None`` for the defaults."""
        return self.history[-1] if self.history else None

    @property
    def applied_digests(self) -> frozenset[bytes]:
        return frozenset(a.bundle.proposal.digest() for a in self.history)

    def describe(self) -> str:
        """One line: which bundle put the policy in force (or that it is the defaults)."""
        origin = self.origin
        if origin is None:
            return "policy in force: the design's default thresholds (no bundle applied)"
        return (
            f"policy in force: proposal {origin.digest_hex} ({origin.signer_count} signatures), "
            f"verified at {origin.verified_at:.0f}; {len(self.history)} bundle(s) applied in all"
        )


def replay_policy(history: Iterable[AppliedBundle]) -> PolicyInForce:
    """Re-verify every recorded application in order and return the policy they put in force."""
    current = DEFAULT_THRESHOLDS
    seen: set[bytes] = set()
    done: list[AppliedBundle] = []
    for step, applied in enumerate(history):
        if not isinstance(applied, AppliedBundle):
            raise WrongTypeError(f"history holds AppliedBundle values, got {type(applied).__name__}")
        when = applied.verified_at
        if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
            raise PolicyVerificationError(f"application {step}: its verification time is not a finite number")
        try:
            current = apply_bundle(current, applied.bundle, applied.registry, float(when), enacted_digests=seen)
        except CortexError as exc:
            raise PolicyVerificationError(
                f"application {step} (proposal {applied.digest_hex[:16]}) does not verify against its recorded "
                f"registry at its recorded time: {exc}"
            ) from None
        seen.add(applied.bundle.proposal.digest())
        if current != applied.thresholds:
            raise PolicyVerificationError(
                f"application {step} (proposal {applied.digest_hex[:16]}): the thresholds recorded with it "
                "differ from what the bundle gives"
            )
        done.append(applied)
    return PolicyInForce(current, tuple(done))
