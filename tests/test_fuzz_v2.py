"""Fuzzing KEROS v2 (issue #6, item 8): certificates, Noise handshake messages, Noise transport.

10,000 hypothesis examples per parser: mutations of valid inputs (bit flips, truncations,
extensions, splices) and random bytes. Only the documented exceptions may come out; a refused
transport message changes no state and the next genuine message still opens; a refused
handshake message leaves the party FAILED with every secret purged (the documented terminal
state) and never ESTABLISHED.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.errors import (
    CertificateError,
    FrameAuthError,
    FrameFormatError,
    HandshakeError,
    ReplayAttackError,
    WrongLengthError,
)
from cortex_sal.keros.certificate import CertificateAuthority, TrustStore, parse_certificate, verify_certificate
from cortex_sal.keros.states import State
from cortex_sal.keros.v2 import GatewayV2, SensorV2, establish_v2_in_process
from hypothesis_profiles import examples

FUZZ = settings(max_examples=examples(10_000), deadline=None)
NOW = int(time.time())  # certificates below are valid a day either side: a clock step cannot expire them


def _mutate(data: bytes, how: int, at: int, value: int, extra: bytes) -> bytes:
    at %= max(len(data), 1)
    kind = how % 5
    if kind == 0:  # bit flip
        b = bytearray(data)
        b[at] ^= 1 << (value % 8)
        return bytes(b)
    if kind == 1:  # truncation
        return data[:at]
    if kind == 2:  # extension
        return data + extra
    if kind == 3:  # splice random bytes in
        return data[:at] + extra + data[at + len(extra) :]
    return extra  # random bytes


MUTATION = st.tuples(st.integers(0, 4), st.integers(0, 2**16), st.integers(0, 255), st.binary(max_size=80))


@pytest.fixture(scope="module")
def world():
    maker = CertificateAuthority.generate("manufacturer", "Fuzz Devices")
    site = CertificateAuthority.generate("site", "Fuzz Ward")
    s_key, g_key = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    s_cert = maker.issue_sensor(s_key.public_bytes(), model_id="eeg_fp1_certified_v1", serial="SN-1",
                                not_before=NOW - 86_400, not_after=NOW + 86_400)  # fmt: skip
    g_cert = site.issue_gateway(g_key.public_bytes(), gateway_name="gw", serial="GW-1", not_before=NOW - 86_400,
                                not_after=NOW + 86_400)  # fmt: skip
    trust = TrustStore([maker.root, site.root])
    yield {"s_key": s_key, "g_key": g_key, "s_cert": s_cert, "g_cert": g_cert, "trust": trust}
    for k in (s_key, g_key):
        k.purge()
    maker.purge()
    site.purge()


@FUZZ
@given(MUTATION)
def test_fuzz_certificate(world, mutation) -> None:
    data = _mutate(world["s_cert"], *mutation)
    try:
        parse_certificate(data)
    except CertificateError:
        pass
    try:
        verified = verify_certificate(data, remote_static=world["s_key"].public_bytes(), kind="sensor",
                                      trust=world["trust"], now=NOW)  # fmt: skip
    except CertificateError:
        return
    assert data == world["s_cert"], "a mutated certificate verified"
    assert verified.serial == "SN-1"


@FUZZ
@given(MUTATION, st.integers(0, 1))
def test_fuzz_v2_handshake_messages(world, mutation, which) -> None:
    sensor = SensorV2(world["s_key"], world["s_cert"], world["trust"])
    gateway = GatewayV2(world["g_key"], world["g_cert"], world["trust"])
    m2 = gateway.receive_sensor_hello(sensor.start())
    if which == 0:  # message 2 at the sensor
        bad = _mutate(m2, *mutation)
        try:
            sensor.receive_gateway_hello(bad)
        except (HandshakeError, CertificateError):
            assert sensor.state is State.FAILED and not sensor._noise._secret_buffers()
        else:
            assert bad == m2
        sensor.close()
        gateway.close()
        return
    m3 = sensor.receive_gateway_hello(m2)
    bad = _mutate(m3, *mutation)
    try:
        gateway.receive_sensor_finish(bad)
    except (HandshakeError, CertificateError):
        assert gateway.state is State.FAILED and not gateway._noise._secret_buffers()
    else:
        assert bad == m3
    sensor.close()
    gateway.close()


@pytest.fixture(scope="module")
def lossy_pair(world):
    up, down = establish_v2_in_process(
        SensorV2(world["s_key"], world["s_cert"], world["trust"]),
        GatewayV2(world["g_key"], world["g_cert"], world["trust"]),
        lossy=True,
    )
    yield up, down
    up.close()
    down.close()


@FUZZ
@given(MUTATION)
def test_fuzz_noise_transport_lossy(lossy_pair, mutation) -> None:
    up, down = lossy_pair
    genuine = up.encrypt(b"samples")
    bad = _mutate(genuine, *mutation)
    before = (down.recv_highest, down.recv_epoch)
    if bad != genuine:
        with pytest.raises((FrameAuthError, ReplayAttackError, FrameFormatError, WrongLengthError)):
            down.decrypt(bad)
        assert (down.recv_highest, down.recv_epoch) == before  # a refused message changes nothing
    assert down.decrypt(genuine) == b"samples"  # and the genuine one still opens
