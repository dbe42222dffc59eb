"""The seed's entry point: ``python -m src.keros.sensor_channel`` runs the channel self-test.

Thin on purpose: everything lives in ``cortex_sal.keros``. The seed's channel-state names
(SYSTEM.md: UNINITIALIZED, HANDSHAKE, ESTABLISHED, EXPIRED, COMPROMISED) stay reachable here:
``seed_state_name(machine.state)`` / ``SEED_NAMES`` map ``cortex_sal.keros.State`` onto them.
"""

import sys

from cortex_sal.keros import GatewayHandshake, SecureBusSession, SensorCertificationAuthority, SensorHandshake
from cortex_sal.keros.states import SEED_NAMES, seed_state_name
from cortex_sal.testing.keros_selftest import main

__all__ = [
    "SEED_NAMES",
    "GatewayHandshake",
    "SecureBusSession",
    "SensorCertificationAuthority",
    "SensorHandshake",
    "seed_state_name",
]

if __name__ == "__main__":
    sys.exit(main())
