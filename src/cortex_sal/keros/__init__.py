"""KEROS: sensor certification, the v1 handshake, encrypted frames, and the seal.

Protocol logic only (sans-IO): bytes in, bytes or events out, explicit states.
The v1 handshake is UNAUTHENTICATED and kept for compatibility (``keros.legacy_v1``); the
authenticated channel is ``keros.v2``. The seed's API names are re-exported here.
"""

from ..clock import Clock, ManualClock, SystemClock
from .legacy_v1 import (
    GatewayHandshake,
    Role,
    SecureBusSession,
    SensorAck,
    SensorCertificationAuthority,
    SensorHandshake,
    SensorHello,
    TEEHello,
    establish_in_process,
)
from .registry import SensorModel, SensorRegistry, sensor_id_hash
from .states import State, seed_state_name

__all__ = [
    "Clock",
    "GatewayHandshake",
    "ManualClock",
    "Role",
    "SecureBusSession",
    "SensorAck",
    "SensorCertificationAuthority",
    "SensorHandshake",
    "SensorHello",
    "SensorModel",
    "SensorRegistry",
    "State",
    "SystemClock",
    "TEEHello",
    "establish_in_process",
    "seed_state_name",
    "sensor_id_hash",
]
