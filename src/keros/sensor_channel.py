"""The seed's entry point: ``python -m src.keros.sensor_channel`` runs the channel self-test.

Thin on purpose: everything lives in ``cortex_sal.keros``.
"""

import sys

from cortex_sal.keros import GatewayHandshake, SecureBusSession, SensorCertificationAuthority, SensorHandshake
from cortex_sal.keros.selftest import main

__all__ = ["GatewayHandshake", "SecureBusSession", "SensorCertificationAuthority", "SensorHandshake"]

if __name__ == "__main__":
    sys.exit(main())
