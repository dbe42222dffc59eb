"""KEROS: sensor certification, the v1 handshake, encrypted frames, and the seal.

Protocol logic only (sans-IO): bytes in, bytes or events out, explicit states.
The v1 handshake is UNAUTHENTICATED and kept for compatibility (see ``keros.v1``).
"""

from .certification import SensorCertificationAuthority
from .clock import Clock, ManualClock, SystemClock
from .handshake import GatewayHandshake, SensorHandshake, establish_in_process
from .messages import SensorAck, SensorHello, TEEHello
from .registry import SensorModel, SensorRegistry, sensor_id_hash
from .session import Role, SecureBusSession
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
