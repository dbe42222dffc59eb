"""KEROS v2: Noise XX with certified static keys between a sensor and a gateway.

What must hold: both ends authenticate each other by certificate *bound to the Noise static
key*; a man in the middle, a certificate for another key, a revoked serial, an expired
certificate, an unknown issuer are refused, each with its reason, and every refusal purges the
handshake; v1 is refused unless allowed, and a v2 sensor never downgrades.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from noise.connection import Keypair, NoiseConnection

from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.errors import CertificateError, CertificateReason, HandshakeError, InvalidArgumentError, WrongTypeError
from cortex_sal.keros import GatewayHandshake, SensorRegistry, State
from cortex_sal.keros.certificate import CertificateAuthority
from cortex_sal.keros.v2 import (
    PROLOGUE,
    GatewayV2,
    SensorV2,
    classify_first_message,
    establish_v2_in_process,
)
from cortex_sal.securemem import SecureBuffer
from v2_world import DAY, MODEL, NOW, World
from v2_world import sensor_cert as _sensor_cert


def _secrets_purged(party: SensorV2 | GatewayV2) -> bool:
    return all(buf.is_purged for buf in party._noise._secret_buffers()) and not party._noise._secret_buffers()


# -- the handshake and the transport ------------------------------------------------------


def test_handshake_authenticates_both_ends_and_carries_frames(world: World) -> None:
    sensor, gateway = world.sensor(), world.gateway()
    m1 = sensor.start()
    assert len(m1) == 32
    m2 = gateway.receive_sensor_hello(m1)
    m3 = sensor.receive_gateway_hello(m2)
    verified = gateway.receive_sensor_finish(m3)
    # the identities each side may authorise on
    assert verified.sensor_id == f"{MODEL}/SN-0001" and verified.model is not None
    assert gateway.remote_static == world.sensor_key.public_bytes()
    assert sensor.peer.gateway_name == "gw-ward3"
    assert sensor.remote_static == world.gateway_key.public_bytes()
    assert sensor.handshake_hash == gateway.handshake_hash
    with sensor.transport() as up, gateway.transport() as down:
        samples = os.urandom(1024)
        for _ in range(3):
            with SecureBuffer.from_bytes(samples) as payload:
                frame = up.encrypt(payload)
            out = SecureBuffer(1024)
            assert down.decrypt_into(frame, out) == 1024
            assert out.constant_time_compare(samples)
            out.secure_purge()
        assert up.decrypt(down.encrypt(b"ack")) == b"ack"
    # the caller's static keys survive the session
    assert not world.sensor_key.is_purged and not world.gateway_key.is_purged


def test_lossy_transport_between_v2_ends(world: World) -> None:
    up, down = establish_v2_in_process(world.sensor(), world.gateway(), lossy=True, rekey_every=1024)
    frames = [up.encrypt(b"frame %d" % i) for i in range(5)]
    for i in (4, 0, 2):  # reordered, two lost
        assert down.decrypt(frames[i]) == b"frame %d" % i
    up.close()
    down.close()


def test_interoperates_with_an_independent_noise_initiator(world: World) -> None:
    """A sensor built on the `noiseprotocol` package, carrying our certificate, is accepted."""
    with world.sensor_key.key_buffer.export_bytearray() as raw:  # test oracle: the independent peer needs bytes
        private = bytes(raw)
    peer = NoiseConnection.from_name(b"Noise_XX_25519_ChaChaPoly_SHA256")
    peer.set_as_initiator()
    peer.set_prologue(PROLOGUE)
    peer.set_keypair_from_private_bytes(Keypair.STATIC, private)
    peer.start_handshake()
    gateway = world.gateway()
    m2 = gateway.receive_sensor_hello(bytes(peer.write_message(b"")))
    assert bytes(peer.read_message(m2)) == world.gateway_cert
    verified = gateway.receive_sensor_finish(bytes(peer.write_message(world.sensor_cert)))
    assert verified.serial == "SN-0001"
    with gateway.transport() as down:
        assert down.decrypt(bytes(peer.encrypt(b"samples"))) == b"samples"
        assert bytes(peer.decrypt(down.encrypt(b"ok"))) == b"ok"


# -- man in the middle and bad certificates -----------------------------------------------


def test_a_relaying_man_in_the_middle_is_detected(world: World) -> None:
    """Mallory runs XX with each side using her own static key and forwards the genuine
    certificates: each end sees a certificate that does not certify the key it talks to."""
    mallory_key = X25519PrivateKey.generate()
    sensor, gateway = world.sensor(), world.gateway()
    # Mallory as gateway towards the sensor, as sensor towards the gateway
    from cortex_sal.keros.noise import HandshakeState
    from cortex_sal.keros.v2 import PROTOCOL_NAME

    m_resp = HandshakeState(PROTOCOL_NAME, False, PROLOGUE, s=mallory_key)
    m_init = HandshakeState(PROTOCOL_NAME, True, PROLOGUE, s=mallory_key)
    m_resp.read_message(sensor.start())
    gw_m2 = gateway.receive_sensor_hello(m_init.write_message(b""))
    gateway_cert = m_init.read_message(gw_m2)  # the genuine gateway certificate
    with pytest.raises(CertificateError) as info:
        sensor.receive_gateway_hello(m_resp.write_message(gateway_cert))
    assert info.value.reason is CertificateReason.WRONG_KEY
    assert sensor.state is State.FAILED and _secrets_purged(sensor)
    # towards the gateway: Mallory forwards a genuine sensor certificate (not for her key)
    with pytest.raises(CertificateError) as info:
        gateway.receive_sensor_finish(m_init.write_message(world.sensor_cert))
    assert info.value.reason is CertificateReason.WRONG_KEY
    assert gateway.state is State.FAILED and _secrets_purged(gateway)
    for hs in (m_resp, m_init):
        hs.close()
    mallory_key.purge()


def _run_until_sensor_cert(world: World, sensor: SensorV2, gateway: GatewayV2) -> bytes:
    return sensor.receive_gateway_hello(gateway.receive_sensor_hello(sensor.start()))


def test_a_valid_certificate_for_another_key_is_refused(world: World) -> None:
    other = X25519PrivateKey.generate()
    cert_for_other = _sensor_cert(world.manufacturer, other, serial="SN-0009")
    # the sensor presents a genuine certificate - of a different key - for its own static key
    sensor = world.sensor()
    sensor._certificate = cert_for_other  # what a cloner with a stolen certificate would send
    gateway = world.gateway()
    with pytest.raises(CertificateError) as info:
        gateway.receive_sensor_finish(_run_until_sensor_cert(world, sensor, gateway))
    assert info.value.reason is CertificateReason.WRONG_KEY
    assert _secrets_purged(gateway)
    other.purge()


def test_constructors_refuse_a_certificate_that_is_not_for_the_key(world: World) -> None:
    with pytest.raises(InvalidArgumentError, match="does not certify its static key"):
        world.sensor(key=world.gateway_key)
    with pytest.raises(InvalidArgumentError, match="needs a gateway certificate"):
        world.gateway(cert=world.sensor_cert)
    with pytest.raises(WrongTypeError):
        SensorV2(b"\x01" * 32, world.sensor_cert, world.trust)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        GatewayV2(world.gateway_key, world.gateway_cert, [world.site.root])  # type: ignore[arg-type]


def test_a_revoked_serial_is_refused(world: World) -> None:
    world.trust.add_revocation_list(world.manufacturer.revocation_list(["SN-0001"], issued_at=NOW))
    sensor, gateway = world.sensor(), world.gateway()
    with pytest.raises(CertificateError) as info:
        gateway.receive_sensor_finish(_run_until_sensor_cert(world, sensor, gateway))
    assert info.value.reason is CertificateReason.REVOKED
    assert gateway.state is State.FAILED


def test_an_expired_certificate_is_refused(world: World) -> None:
    world.clock.advance(366 * DAY)  # the sensor certificate is valid 365 days, the gateway's 90
    sensor, gateway = world.sensor(), world.gateway()
    with pytest.raises(CertificateError) as info:
        sensor.receive_gateway_hello(gateway.receive_sensor_hello(sensor.start()))
    assert info.value.reason is CertificateReason.EXPIRED
    assert sensor.state is State.FAILED and _secrets_purged(sensor)


def test_an_expired_sensor_certificate_is_refused_by_the_gateway(world: World) -> None:
    short = _sensor_cert(world.manufacturer, world.sensor_key, serial="SN-0002", days=1)
    world.clock.advance(3 * DAY)
    sensor, gateway = world.sensor(cert=short), world.gateway()
    with pytest.raises(CertificateError) as info:
        gateway.receive_sensor_finish(_run_until_sensor_cert(world, sensor, gateway))
    assert info.value.reason is CertificateReason.EXPIRED


def test_an_unknown_issuer_is_refused(world: World) -> None:
    rogue = CertificateAuthority.generate("site", "Rogue site")
    rogue_cert = rogue.issue_gateway(world.gateway_key.public_bytes(), gateway_name="gw-ward3", serial="GW-1",
                                     not_before=NOW - DAY, not_after=NOW + DAY)  # fmt: skip
    sensor, gateway = world.sensor(), world.gateway(cert=rogue_cert)
    with pytest.raises(CertificateError) as info:
        sensor.receive_gateway_hello(gateway.receive_sensor_hello(sensor.start()))
    assert info.value.reason is CertificateReason.UNKNOWN_ISSUER
    rogue.purge()


def test_the_registry_authorises_by_model_and_serial(world: World) -> None:
    registry = SensorRegistry.default()
    registry.revoke(f"{MODEL}/SN-0001")
    sensor, gateway = world.sensor(), world.gateway(registry=registry)
    with pytest.raises(CertificateError) as info:
        gateway.receive_sensor_finish(_run_until_sensor_cert(world, sensor, gateway))
    assert info.value.reason is CertificateReason.MODEL_REVOKED


def test_a_tampered_message_fails_and_purges(world: World) -> None:
    sensor, gateway = world.sensor(), world.gateway()
    m2 = bytearray(gateway.receive_sensor_hello(sensor.start()))
    m2[40] ^= 1  # inside the encrypted static key
    with pytest.raises(HandshakeError):
        sensor.receive_gateway_hello(bytes(m2))
    assert sensor.state is State.FAILED and _secrets_purged(sensor)
    with pytest.raises(HandshakeError, match="FAILED"):
        sensor.transport()


def test_calls_out_of_turn_change_nothing(world: World) -> None:
    sensor, gateway = world.sensor(), world.gateway()
    with pytest.raises(HandshakeError, match="refused in state START"):
        sensor.receive_gateway_hello(b"\x00" * 300)
    with pytest.raises(HandshakeError):
        gateway.receive_sensor_finish(b"\x00" * 300)
    with pytest.raises(HandshakeError):
        sensor.peer  # noqa: B018
    with pytest.raises(WrongTypeError):
        gateway.receive_sensor_hello("hello")  # type: ignore[arg-type]
    assert sensor.state is State.START and gateway.state is State.START
    up, down = establish_v2_in_process(sensor, gateway)  # both still work
    assert down.decrypt(up.encrypt(b"x")) == b"x"


@pytest.mark.parametrize(
    "stage", ["sensor awaiting 2", "gateway awaiting 3", "sensor established", "gateway established"]
)
def test_a_call_out_of_turn_once_started_fails_and_purges(world: World, stage: str) -> None:
    """docs/protocol.md: a call out of turn once the handshake has started leaves the party
    FAILED with its secrets purged (before 2026-12-01 it raised and kept both)."""
    sensor, gateway = world.sensor(), world.gateway()
    m1 = sensor.start()
    if stage == "sensor awaiting 2":
        party, wrong = sensor, sensor.start
    elif stage == "gateway awaiting 3":
        gateway.receive_sensor_hello(m1)
        party, wrong = gateway, lambda: gateway.receive_sensor_hello(m1)
    else:
        gateway.receive_sensor_finish(sensor.receive_gateway_hello(gateway.receive_sensor_hello(m1)))
        party = sensor if stage.startswith("sensor") else gateway
        wrong = sensor.start if party is sensor else (lambda: gateway.receive_sensor_finish(b"\x00" * 64))
    assert party._noise._secret_buffers()
    with pytest.raises(HandshakeError, match="refused in state"):
        wrong()
    assert party.state is State.FAILED and _secrets_purged(party)
    with pytest.raises(HandshakeError, match="FAILED"):
        party.transport()
    sensor.close()
    gateway.close()


def test_a_transport_refused_for_its_options_leaves_the_party_failed(world: World) -> None:
    sensor, gateway = world.sensor(), world.gateway()
    gateway.receive_sensor_finish(sensor.receive_gateway_hello(gateway.receive_sensor_hello(sensor.start())))
    with pytest.raises(InvalidArgumentError, match="window"):
        gateway.transport(lossy=True, window=5)
    assert gateway.state is State.FAILED and _secrets_purged(gateway)
    with pytest.raises(HandshakeError, match="FAILED"):
        gateway.transport()
    sensor.close()


# -- downgrade ---------------------------------------------------------------------------


def test_a_v1_hello_is_refused_unless_allowed(world: World) -> None:
    from cortex_sal.keros import SensorHandshake

    v1 = SensorHandshake(MODEL)
    hello = v1.start()
    assert len(hello) == 72
    with pytest.raises(HandshakeError, match="v1 is unauthenticated and disabled"):
        classify_first_message(hello)
    assert classify_first_message(hello, allow_v1=True) == 1
    gateway = world.gateway()
    with pytest.raises(HandshakeError, match="v1"):
        gateway.receive_sensor_hello(hello)
    assert gateway.state is State.START  # refused before anything changed
    assert classify_first_message(world.sensor().start()) == 2


def test_a_v2_sensor_never_downgrades_to_v1(world: World) -> None:
    """A man in the middle answers the sensor's message 1 with a genuine v1 TEEHello."""
    from cortex_sal.keros import SensorHandshake

    v1_gateway = GatewayHandshake("mitm", sensor_ids=[MODEL])
    v1_sensor = SensorHandshake(MODEL)
    tee_hello = v1_gateway.receive_sensor_hello(v1_sensor.start())
    sensor = world.sensor()
    sensor.start()
    with pytest.raises(HandshakeError, match="never downgrades"):
        sensor.receive_gateway_hello(tee_hello)
    assert sensor.state is State.FAILED and _secrets_purged(sensor)
    v1_gateway.abort()
    v1_sensor.abort()


# -- from the shell: cortex-sal ca, then a v2 session -------------------------------------


def test_ca_commands_from_a_shell_then_a_v2_session(tmp_path: Path) -> None:
    """The commands of docs/certificates.md, run by a real shell, then both identities meet."""
    exe = Path(sys.executable).parent / "cortex-sal"
    script = f"""
set -e
cortex-sal() {{ "{exe}" "$@"; }}
cortex-sal ca init --kind manufacturer --name "NeuroStandard GmbH" --out ca/neurostandard
cortex-sal ca init --kind site --name "Charite Ward 3" --out ca/ward3
cortex-sal ca issue-sensor --ca ca/neurostandard --model {MODEL} --serial SN-0001 --days 365 --out sensors/sn-0001
cortex-sal ca issue-gateway --ca ca/ward3 --name gw-ward3 --days 90 --out gateways/ward3
"""
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    from cortex_sal.store.keros import load_identity, load_trust

    trust = load_trust(tmp_path / "ca/neurostandard", tmp_path / "ca/ward3")
    sensor_key, sensor_cert = load_identity(tmp_path / "sensors/sn-0001")
    gateway_key, gateway_cert = load_identity(tmp_path / "gateways/ward3")
    gateway = GatewayV2(gateway_key, gateway_cert, trust)
    up, down = establish_v2_in_process(SensorV2(sensor_key, sensor_cert, trust), gateway)
    assert gateway.peer.sensor_id == f"{MODEL}/SN-0001"
    assert down.decrypt(up.encrypt(b"first frame")) == b"first frame"
    for transport in (up, down):
        transport.close()
    for key in (sensor_key, gateway_key):
        key.purge()
