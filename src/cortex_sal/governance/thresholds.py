"""The design's clinical thresholds: an immutable policy object.

These are the Cortex Protocol design's own numbers, carried over as configuration; they
are not clinical advice. The shield reads every bound from the policy in force; nothing
changes it at run time (a change will need an N-of-M signed proposal).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ImmutablePolicyError


@dataclass(frozen=True)
class _Values:
    max_coherency_sum_per_minute: float = 2.5
    drift_window_s: float = 60.0
    hard_violations_to_block: int = 3
    soft_violations_to_block: int = 5
    min_snr_db: float = 30.0
    min_bits: int = 12
    bridge_max_std: float = 0.5
    bridge_max_p75: float = 0.7
    bridge_max_peak: float = 0.9
    liveness_ttl_s: float = 30.0
    consent_ttl_s: float = 3600.0
    # the design's fixed parts of the drift detector and labels
    baseline_frames: int = 7
    baseline_min_readings: int = 3
    soft_z_score: float = 3.0
    recovery_fraction: float = 0.6
    calm_below: float = 0.3
    focused_below: float = 0.7


class ClinicalThresholds(_Values):
    """The thresholds in force. Build a new one (a governance decision) to change them."""

    def __setattr__(self, name: str, value: object) -> None:
        raise ImmutablePolicyError(f"clinical thresholds are read-only at run time (tried to set {name})")

    def __delattr__(self, name: str) -> None:
        raise ImmutablePolicyError(f"clinical thresholds are read-only at run time (tried to delete {name})")


DEFAULT_THRESHOLDS = ClinicalThresholds()
