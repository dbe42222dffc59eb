"""governance: the clinical threshold policy (read-only at run time); quorum and audit to come."""

from .thresholds import DEFAULT_THRESHOLDS, ClinicalThresholds

__all__ = ["DEFAULT_THRESHOLDS", "ClinicalThresholds"]
