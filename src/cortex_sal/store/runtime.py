"""A shield built from the store: the verified policy in force, the stored registry, durable consent.

This is how the command line and the gateway get a :class:`~cortex_sal.sal.shield.CognitiveShield`
(never with arbitrary thresholds): :func:`open_shield` replays and re-verifies the stored policy
(:func:`~cortex_sal.governance.policy.replay_policy`: each bundle against its recorded registry at
its recorded time), refuses to start if it does not verify, builds the sensor registry from the
stored models (the packaged ones if none are stored) with the stored revocations and the policy's
minima, audits every sensor admitted or refused in the store's chain, and gives the shield the
wearer's consent ledger restored from the store, writing every change through the store before
it takes effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..clock import SYSTEM_CLOCK, Clock
from ..governance.thresholds import ClinicalThresholds
from ..keros.registry import SensorRegistry
from ..sal.consent import ConsentLedger
from .base import Store

if TYPE_CHECKING:  # the shield (numpy, scipy) is imported only by what starts one
    from ..sal.shield import CognitiveShield

__all__ = ["durable_ledger", "open_shield", "stored_registry"]


def durable_ledger(store: Store, thresholds: ClinicalThresholds, clock: Clock = SYSTEM_CLOCK) -> ConsentLedger:
    """A consent ledger holding the store's records, journaling every change to it first."""
    ledger = ConsentLedger(thresholds=thresholds, clock=clock, journal=store.consent_journal())
    ledger.restore(store.consent_records())
    return ledger


def stored_registry(store: Store, thresholds: ClinicalThresholds) -> SensorRegistry:
    """The stored sensor models (the packaged registry's when none are stored) with the stored revocations."""
    models = store.sensor_models() or SensorRegistry.default().models()
    registry = SensorRegistry(models, min_snr_db=thresholds.min_snr_db, min_bits=thresholds.min_bits)
    for sensor_id in store.revoked_sensors():
        registry.revoke(sensor_id)
    return registry


def open_shield(store: Store, *, clock: Clock = SYSTEM_CLOCK, **options: Any) -> CognitiveShield:
    """The shield under the stored, re-verified policy (PolicyVerificationError if it does not verify)."""
    from ..sal.shield import CognitiveShield

    policy = store.policy_in_force()
    return CognitiveShield(
        policy=policy,
        registry=stored_registry(store, policy.thresholds),
        consent=durable_ledger(store, policy.thresholds, clock),
        audit=store.audit,
        clock=clock,
        **options,
    )
