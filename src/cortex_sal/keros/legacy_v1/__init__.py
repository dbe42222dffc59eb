"""KEROS v1, LEGACY and UNAUTHENTICATED: the seed's sensor channel, kept for compatibility.

v1 proves only that *someone* did the Diffie-Hellman: anyone can run it, and a man in the
middle can talk to both ends. KEROS v2 (:mod:`cortex_sal.keros.v2`, Noise XX with certified
static keys) is the authenticated channel; a v2 gateway refuses v1 unless ``allow_v1``.

* :mod:`.keys`: the v1 key schedule (session key, ACK, session id, frame keys);
* :mod:`.messages`: SensorHello, TEEHello, SensorAck;
* :mod:`.handshake`: the sans-IO handshake machines (sensor and gateway);
* :mod:`.session`: ``SecureBusSession``, the encrypted, replay-proof frame channel;
* :mod:`.certification`: ``SensorCertificationAuthority``, the seed's API.
"""

from .certification import SensorCertificationAuthority
from .handshake import GatewayHandshake, SensorHandshake, establish_in_process
from .messages import SensorAck, SensorHello, TEEHello
from .session import Role, SecureBusSession

__all__ = [
    "GatewayHandshake",
    "Role",
    "SecureBusSession",
    "SensorAck",
    "SensorCertificationAuthority",
    "SensorHandshake",
    "SensorHello",
    "TEEHello",
    "establish_in_process",
]
