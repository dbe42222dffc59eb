"""The KEROS v2 "world" the tests share: two CAs, trust, a manual clock, a sensor and a
gateway with certified static keys (fixture ``world`` in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from cortex_sal.clock import ManualClock
from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.keros.certificate import CertificateAuthority, TrustStore
from cortex_sal.keros.v2 import GatewayV2, SensorV2

NOW = 1_800_000_000
DAY = 86_400
MODEL = "eeg_fp1_certified_v1"


@dataclass
class World:
    manufacturer: CertificateAuthority
    site: CertificateAuthority
    trust: TrustStore
    clock: ManualClock
    sensor_key: X25519PrivateKey
    sensor_cert: bytes
    gateway_key: X25519PrivateKey
    gateway_cert: bytes

    def sensor(self, **kw: object) -> SensorV2:
        return SensorV2(kw.pop("key", self.sensor_key), kw.pop("cert", self.sensor_cert), self.trust,
                        clock=self.clock, **kw)  # type: ignore[arg-type]  # fmt: skip

    def gateway(self, **kw: object) -> GatewayV2:
        return GatewayV2(kw.pop("key", self.gateway_key), kw.pop("cert", self.gateway_cert), self.trust,
                         clock=self.clock, **kw)  # type: ignore[arg-type]  # fmt: skip


def sensor_cert(ca: CertificateAuthority, key: X25519PrivateKey, serial: str = "SN-0001", days: int = 365) -> bytes:
    return ca.issue_sensor(key.public_bytes(), model_id=MODEL, serial=serial, not_before=NOW - DAY,
                           not_after=NOW + days * DAY)  # fmt: skip


def make_world() -> Iterator[World]:
    manufacturer = CertificateAuthority.generate("manufacturer", "NeuroStandard GmbH")
    site = CertificateAuthority.generate("site", "Ward 3")
    trust = TrustStore([manufacturer.root, site.root])
    sensor_key, gateway_key = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    w = World(
        manufacturer, site, trust, ManualClock(float(NOW)),
        sensor_key, sensor_cert(manufacturer, sensor_key),
        gateway_key, site.issue_gateway(gateway_key.public_bytes(), gateway_name="gw-ward3", serial="GW-1",
                                        not_before=NOW - DAY, not_after=NOW + 90 * DAY),
    )  # fmt: skip
    yield w
    for key in (sensor_key, gateway_key):
        key.purge()
    manufacturer.purge()
    site.purge()
