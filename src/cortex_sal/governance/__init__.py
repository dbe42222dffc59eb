"""governance: the clinical threshold policy (read-only at run time), the Ed25519 N-of-M
quorum that alone can change it, and the hash-chained audit trail."""

from .audit import AuditError, truncated_hash
from .quorum import (
    DecisionType,
    EnactedBundle,
    GovernanceNode,
    NodeRegistry,
    Proposal,
    apply_bundle,
    enact,
    sign_proposal,
)
from .thresholds import DEFAULT_THRESHOLDS, ClinicalThresholds, ImmutablePolicyError

__all__ = [
    "DEFAULT_THRESHOLDS",
    "AuditError",
    "ClinicalThresholds",
    "DecisionType",
    "EnactedBundle",
    "GovernanceNode",
    "ImmutablePolicyError",
    "NodeRegistry",
    "Proposal",
    "apply_bundle",
    "enact",
    "sign_proposal",
    "truncated_hash",
]
