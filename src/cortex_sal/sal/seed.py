"""The seed's dict-shaped results, kept at the seed's edge only.

The seed's entry point (``src/sal/cognitive_shield_v2.py``) and its ``--test`` vectors
(:mod:`cortex_sal.testing.sal_selftest`) speak in dicts: ``{"status": "ok" | "refused" |
"registered" | "destroyed", ...}``. :func:`to_seed_dict` turns a typed result of
:mod:`cortex_sal.sal.results` into that shape, and :class:`SeedCognitiveShield` is the
shield with every result passed through it. Nothing else in the library uses dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy.typing as npt

from ..errors import WrongTypeError
from ..keros import SecureBusSession
from ..keros.certificate import VerifiedCertificate
from ..keros.channel import Channel
from .results import CustodyReport, DestroyReport, Refused, Registered, Released
from .shield import CognitiveShield

__all__ = ["SeedCognitiveShield", "to_seed_dict"]

SeedResult = Released | Refused | Registered | CustodyReport | DestroyReport


def to_seed_dict(result: SeedResult) -> dict[str, Any]:
    """The seed's dict for a typed result (``"reason"`` of a refusal is its ``detail``)."""
    if isinstance(result, Released):
        return {
            "status": "ok",
            "coherency_index": result.coherency_index,
            "state_label": result.state_label,
            "liveness_proven": result.liveness_proven,
            "consent_active": True,
            "capacity": result.capacity,
            "tensor": result.tensor,
            "tensor_norm": result.tensor_norm,
            "research_payload": result.research_payload,
            "processing_time_ms": result.processing_time_ms,
        }
    if isinstance(result, Refused):
        return {
            "status": "refused",
            "reason": result.detail,
            "refusal": result.reason.value,
            "state_label": result.state_label,
            "consent_active": result.consent_active,
            "processing_time_ms": result.processing_time_ms,
        }
    if isinstance(result, Registered):
        out: dict[str, Any] = {"status": "registered", "sensor": result.log_id, "sensor_id": result.sensor_id}
        if result.session is not None:
            out["session"] = result.session
        return out
    if isinstance(result, DestroyReport):
        return {"status": "destroyed", **asdict(result)}
    if isinstance(result, CustodyReport):
        return asdict(result)
    raise WrongTypeError(f"not a shield result: {type(result).__name__}")


class SeedCognitiveShield:
    """:class:`CognitiveShield` with the seed's dict results (the seed's entry point only).

    ``typed`` is the shield itself; everything that is not a result is delegated to it."""

    def __init__(self, **options: Any) -> None:
        self.typed = CognitiveShield(**options)

    def register_sensor(self, sensor_id: str, snr: float, bits: int) -> dict[str, Any]:
        return to_seed_dict(self.typed.register_sensor(sensor_id, snr, bits))

    def attach_sensor(self, channel: Channel, peer: VerifiedCertificate) -> dict[str, Any]:
        return to_seed_dict(self.typed.attach_sensor(channel, peer))

    def ingest_frame(self, sensor_id: str, frame: bytes) -> dict[str, Any]:
        return to_seed_dict(self.typed.ingest_frame(sensor_id, frame))

    def ingest_raw_data(self, sensor_id: str, raw: npt.ArrayLike) -> dict[str, Any]:
        return to_seed_dict(self.typed.ingest_raw_data(sensor_id, raw))

    def ingest_batch(self, sensor_ids: Sequence[str], raw: npt.ArrayLike) -> list[dict[str, Any]]:
        return [to_seed_dict(r) for r in self.typed.ingest_batch(sensor_ids, raw)]

    def destroy_session(self) -> dict[str, Any]:
        return to_seed_dict(self.typed.destroy_session())

    def custody_report(self) -> dict[str, Any]:
        return to_seed_dict(self.typed.custody_report())

    def sensor_endpoint(self, sensor_id: str) -> SecureBusSession:
        return self.typed.sensor_endpoint(sensor_id)

    @property
    def session_log(self) -> list[dict[str, Any]]:
        return self.typed.session_log

    def close(self) -> None:
        self.typed.close()

    def __enter__(self) -> SeedCognitiveShield:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.typed, name)
