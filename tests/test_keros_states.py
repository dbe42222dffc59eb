"""One state vocabulary and one failure policy (``keros.states``) for the three handshake machines.

For each machine (v1 ``SensorHandshake``/``GatewayHandshake``, v2 ``SensorV2``/``GatewayV2``,
Noise ``HandshakeState``) and each phase, a call out of turn and a hostile input each end FAILED
with every secret buffer the machine held purged: checked on the buffers themselves (they are
purged, and reading one raises ``PurgedBufferError``), not only on the state. In START nothing has
started (a call out of turn changes nothing); after the hand-over (TRANSPORT) the machine holds
nothing and a call out of turn changes nothing; a call after ``close()`` fails the machine.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.errors import (
    CryptoError,
    DecryptionError,
    HandshakeMessageError,
    HandshakeStateError,
    LocalProtocolError,
    PurgedBufferError,
    RemoteProtocolError,
    WrongLengthError,
)
from cortex_sal.keros import GatewayHandshake, ManualClock, SensorHandshake, State, seed_state_name, states
from cortex_sal.keros import v2 as v2_module
from cortex_sal.keros.legacy_v1 import handshake as v1_handshake
from cortex_sal.keros.noise import HandshakeState
from cortex_sal.keros.noise import state as noise_state
from cortex_sal.keros.v2 import GatewayV2, SensorV2
from cortex_sal.securemem import SecureBuffer
from v2_world import World

SENSOR = "eeg_fp1_certified_v1"
T0 = 1_800_000_000.0
XX = "Noise_XX_25519_ChaChaPoly_SHA256"
# a point of order 8 on Curve25519: X25519 with it is all zeros
LOW_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def assert_all_purged(buffers: list[SecureBuffer]) -> None:
    assert buffers, "the machine held secrets before the failure"
    for buf in buffers:
        assert buf.is_purged
        with pytest.raises(PurgedBufferError):
            buf.constant_time_compare(bytes(len(buf) or 1))


# -- the vocabulary -------------------------------------------------------------------------------


def test_one_vocabulary_and_the_seed_names() -> None:
    assert [s.name for s in State] == [
        "START", "HANDSHAKE", "ESTABLISHED", "TRANSPORT", "CLOSED", "EXPIRED", "FAILED",
    ]  # fmt: skip
    # the seed's names (SYSTEM.md) stay reachable at the seed's edge
    assert {seed_state_name(s) for s in State} == {
        "UNINITIALIZED",
        "HANDSHAKE",
        "ESTABLISHED",
        "EXPIRED",
        "COMPROMISED",
    }
    assert seed_state_name(State.FAILED) == "COMPROMISED" and seed_state_name(State.START) == "UNINITIALIZED"
    with pytest.raises(TypeError):
        seed_state_name("FAILED")  # type: ignore[arg-type]
    # every table speaks it, and a refused event is a LocalProtocolError
    for table in (v1_handshake.TRANSITIONS, v2_module.TRANSITIONS):
        assert all(isinstance(a, State) and isinstance(b, State) for (_, a, _), b in table.items())
    assert all(isinstance(a, State) and isinstance(b, State) for (a, _), b in noise_state.TRANSITIONS.items())
    assert issubclass(HandshakeStateError, LocalProtocolError)
    assert issubclass(HandshakeMessageError, RemoteProtocolError)
    assert states.FAIL_ON_MISUSE == {State.HANDSHAKE, State.ESTABLISHED, State.CLOSED}


def test_seed_entry_point_exposes_the_seed_names() -> None:
    path = Path(__file__).resolve().parents[1] / "src" / "keros" / "sensor_channel.py"  # the seed's entry point
    spec = importlib.util.spec_from_file_location("seed_sensor_channel", path)
    assert spec is not None and spec.loader is not None
    sensor_channel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sensor_channel)
    assert sensor_channel.SEED_NAMES[State.FAILED] == "COMPROMISED"
    assert sensor_channel.seed_state_name(State.START) == "UNINITIALIZED"


# -- v1 --------------------------------------------------------------------------------------------


def v1_secrets(machine: SensorHandshake | GatewayHandshake) -> list[SecureBuffer]:
    out: list[SecureBuffer] = []
    for key in (machine._given_ephemeral, machine._ephemeral):
        if key is not None:
            out.append(key.key_buffer)
    if machine._session_key is not None:
        out.append(machine._session_key)
    return out


def v1_pair() -> tuple[SensorHandshake, GatewayHandshake]:
    clock = ManualClock(T0)
    return SensorHandshake(SENSOR, clock=clock), GatewayHandshake("gw", clock=clock)


V1_CASES: dict[str, Callable[[SensorHandshake, GatewayHandshake], tuple[object, Callable[[], object], type]]] = {}


def _v1_case(name: str) -> Callable[[Callable[..., object]], Callable[..., object]]:
    def register(build: Callable[..., object]) -> Callable[..., object]:
        V1_CASES[name] = build  # type: ignore[assignment]  # each builder returns (machine, call, error)
        return build

    return register


@_v1_case("sensor HANDSHAKE, misuse")
def _(s: SensorHandshake, g: GatewayHandshake) -> tuple[object, Callable[[], object], type]:
    s.start()
    return s, s.start, HandshakeStateError


@_v1_case("sensor HANDSHAKE, hostile TEEHello")
def _(s: SensorHandshake, g: GatewayHandshake) -> tuple[object, Callable[[], object], type]:
    tee = g.receive_sensor_hello(s.start())
    return s, lambda: s.receive_tee_hello(tee[:32] + LOW_ORDER + tee[64:]), HandshakeMessageError


@_v1_case("sensor ESTABLISHED, misuse")
def _(s: SensorHandshake, g: GatewayHandshake) -> tuple[object, Callable[[], object], type]:
    tee = g.receive_sensor_hello(s.start())
    s.receive_tee_hello(tee)
    return s, lambda: s.receive_tee_hello(tee), HandshakeStateError


@_v1_case("gateway START, hostile SensorHello")
def _(s: SensorHandshake, g: GatewayHandshake) -> tuple[object, Callable[[], object], type]:
    machine = GatewayHandshake("gw", clock=ManualClock(T0), ephemeral_key=X25519PrivateKey.generate())
    hello = s.start()
    return machine, lambda: machine.receive_sensor_hello(hello[:32] + LOW_ORDER + hello[64:]), HandshakeMessageError


@_v1_case("gateway HANDSHAKE, misuse")
def _(s: SensorHandshake, g: GatewayHandshake) -> tuple[object, Callable[[], object], type]:
    hello = s.start()
    g.receive_sensor_hello(hello)
    return g, lambda: g.receive_sensor_hello(hello), HandshakeStateError


@_v1_case("gateway HANDSHAKE, hostile SensorAck")
def _(s: SensorHandshake, g: GatewayHandshake) -> tuple[object, Callable[[], object], type]:
    s.receive_tee_hello(g.receive_sensor_hello(s.start()))
    return g, lambda: g.receive_sensor_ack(bytes(32)), HandshakeMessageError


@_v1_case("gateway ESTABLISHED, misuse")
def _(s: SensorHandshake, g: GatewayHandshake) -> tuple[object, Callable[[], object], type]:
    ack = s.receive_tee_hello(g.receive_sensor_hello(s.start()))
    g.receive_sensor_ack(ack)
    return g, lambda: g.receive_sensor_ack(ack), HandshakeStateError


@pytest.mark.parametrize("case", list(V1_CASES))
def test_v1_failure_ends_failed_and_purged(case: str) -> None:
    sensor, gateway = v1_pair()
    machine, call, error = V1_CASES[case](sensor, gateway)
    assert isinstance(machine, SensorHandshake | GatewayHandshake)
    held = v1_secrets(machine)
    with pytest.raises(error):
        call()
    assert machine.state is State.FAILED and machine.failure
    assert_all_purged(held)
    assert v1_secrets(machine) == []
    with pytest.raises(HandshakeStateError, match="FAILED"):
        machine.session()
    for m in (sensor, gateway, machine):
        m.abort()


@pytest.mark.parametrize("role", ["sensor", "gateway"])
def test_v1_call_after_close_fails(role: str) -> None:
    sensor, gateway = v1_pair()
    hello = sensor.start()
    gateway.receive_sensor_hello(hello)
    machine = sensor if role == "sensor" else gateway
    held = v1_secrets(machine)
    machine.close()
    assert machine.state is State.CLOSED
    assert_all_purged(held)
    with pytest.raises(HandshakeStateError, match="CLOSED"):
        sensor.receive_tee_hello(bytes(96)) if machine is sensor else gateway.receive_sensor_ack(bytes(32))
    assert machine.state is State.FAILED
    sensor.abort()
    gateway.abort()


def test_v1_misuse_in_start_changes_nothing() -> None:
    injected = X25519PrivateKey.generate()
    sensor = SensorHandshake(SENSOR, clock=ManualClock(T0), ephemeral_key=injected)
    gateway = GatewayHandshake("gw", clock=ManualClock(T0))
    with pytest.raises(HandshakeStateError, match="START"):
        sensor.receive_tee_hello(bytes(96))
    with pytest.raises(HandshakeStateError, match="START"):
        gateway.receive_sensor_ack(bytes(32))
    assert sensor.state is gateway.state is State.START and not injected.is_purged
    gateway.receive_sensor_ack(sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start())))
    assert sensor.state is gateway.state is State.ESTABLISHED
    sensor.abort()
    gateway.abort()
    assert injected.is_purged


def test_v1_primitive_failure_ends_failed_and_purged(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor, gateway = v1_pair()
    tee = gateway.receive_sensor_hello(sensor.start())
    held = v1_secrets(sensor)

    def broken(*args: object) -> object:
        raise CryptoError("the primitive failed")

    monkeypatch.setattr(v1_handshake.v1, "derive_session_key", broken)
    with pytest.raises(HandshakeMessageError):
        sensor.receive_tee_hello(tee)
    assert sensor.state is State.FAILED
    assert_all_purged(held)
    gateway.abort()


def test_v1_session_is_handed_over_as_transport() -> None:
    sensor, gateway = v1_pair()
    gateway.receive_sensor_ack(sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start())))
    with sensor.session() as s, gateway.session() as g:
        assert sensor.state is gateway.state is State.TRANSPORT
        assert s.state is g.state is State.ESTABLISHED
    assert s.state is g.state is State.CLOSED and s.session_key.is_purged


# -- v2 --------------------------------------------------------------------------------------------


def v2_secrets(party: SensorV2 | GatewayV2) -> list[SecureBuffer]:
    return list(party._noise._secret_buffers())


def _tampered(message: bytes, at: int) -> bytes:
    out = bytearray(message)
    out[at] ^= 1
    return bytes(out)


V2_PHASES = [
    "sensor HANDSHAKE misuse",
    "sensor HANDSHAKE hostile",
    "sensor ESTABLISHED misuse",
    "gateway START hostile",
    "gateway HANDSHAKE misuse",
    "gateway HANDSHAKE hostile",
    "gateway ESTABLISHED misuse",
]


@pytest.mark.parametrize("phase", V2_PHASES)
def test_v2_failure_ends_failed_and_purged(world: World, phase: str) -> None:
    sensor, gateway = world.sensor(), world.gateway()
    call: Callable[[], object]
    if phase.startswith("gateway START"):
        party, call, error = gateway, (lambda: gateway.receive_sensor_hello(LOW_ORDER)), HandshakeMessageError
    else:
        m1 = sensor.start()
        m2 = gateway.receive_sensor_hello(m1)
        if phase == "sensor HANDSHAKE misuse":
            party, call, error = sensor, sensor.start, HandshakeStateError
        elif phase == "sensor HANDSHAKE hostile":
            party, call, error = (
                sensor,
                (lambda: sensor.receive_gateway_hello(_tampered(m2, 40))),
                HandshakeMessageError,
            )
        elif phase == "gateway HANDSHAKE misuse":
            party, call, error = gateway, (lambda: gateway.receive_sensor_hello(m1)), HandshakeStateError
        else:
            m3 = sensor.receive_gateway_hello(m2)
            if phase == "gateway HANDSHAKE hostile":
                party, call, error = (
                    gateway,
                    (lambda: gateway.receive_sensor_finish(_tampered(m3, 40))),
                    HandshakeMessageError,
                )
            else:
                gateway.receive_sensor_finish(m3)
                if phase == "sensor ESTABLISHED misuse":
                    party, call, error = sensor, (lambda: sensor.receive_gateway_hello(m2)), HandshakeStateError
                else:
                    party, call, error = gateway, (lambda: gateway.receive_sensor_finish(m3)), HandshakeStateError
    held = v2_secrets(party)
    with pytest.raises(error):
        call()
    assert party.state is State.FAILED and party.failure
    assert_all_purged(held)
    assert v2_secrets(party) == []
    with pytest.raises(HandshakeStateError, match="FAILED"):
        party.transport()
    sensor.close()
    gateway.close()


def test_v2_step_is_an_attribute_not_a_state(world: World) -> None:
    sensor, gateway = world.sensor(), world.gateway()
    assert sensor.step is None and sensor.state is State.START
    m2 = gateway.receive_sensor_hello(sensor.start())
    assert sensor.state is gateway.state is State.HANDSHAKE
    assert (sensor.step, gateway.step) == ("message 2", "message 3")
    gateway.receive_sensor_finish(sensor.receive_gateway_hello(m2))
    assert sensor.state is gateway.state is State.ESTABLISHED and sensor.step is None
    with sensor.transport(), gateway.transport():
        assert sensor.state is gateway.state is State.TRANSPORT
        with pytest.raises(HandshakeStateError, match="TRANSPORT"):
            sensor.start()
        assert sensor.state is State.TRANSPORT  # handed over: nothing held, nothing changes
        assert sensor.handshake_hash == gateway.handshake_hash


@pytest.mark.parametrize("role", ["sensor", "gateway"])
def test_v2_call_after_close_fails(world: World, role: str) -> None:
    sensor, gateway = world.sensor(), world.gateway()
    m1 = sensor.start()
    gateway.receive_sensor_hello(m1)
    party = sensor if role == "sensor" else gateway
    held = v2_secrets(party)
    party.close()
    assert party.state is State.CLOSED
    assert_all_purged(held)
    with pytest.raises(HandshakeStateError, match="closed"):
        sensor.receive_gateway_hello(bytes(200)) if party is sensor else gateway.receive_sensor_finish(bytes(200))
    assert party.state is State.FAILED
    sensor.close()
    gateway.close()


def test_v2_primitive_failure_ends_failed_and_purged(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    sensor, gateway = world.sensor(), world.gateway()
    m2 = gateway.receive_sensor_hello(sensor.start())
    held = v2_secrets(sensor)

    def broken(self: object, *args: object) -> None:
        raise RuntimeError("the primitive failed")

    monkeypatch.setattr(noise_state.SymmetricState, "mix_key_dh", broken)
    with pytest.raises(RuntimeError):
        sensor.receive_gateway_hello(m2)
    assert sensor.state is State.FAILED and sensor.failure == "internal error (RuntimeError)"
    assert_all_purged(held)
    gateway.close()


# -- Noise -----------------------------------------------------------------------------------------


class _XX:
    def __init__(self) -> None:
        self.si, self.sr = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        self.i = HandshakeState(XX, True, b"p", s=self.si)
        self.r = HandshakeState(XX, False, b"p", s=self.sr)

    def close(self) -> None:
        self.i.close()
        self.r.close()
        self.si.purge()
        self.sr.purge()


NOISE_PHASES = [
    "message 1, misuse",  # the responder writes first
    "message 1, hostile",  # a truncated message 1
    "message 2, misuse",  # the initiator writes again
    "message 2, hostile",  # a tampered message 2
    "message 3, hostile",  # a tampered message 3
    "complete, misuse",  # a write after the last message
    "complete, split",  # split taken, then (nothing held) out of turn: unchanged
]


@pytest.mark.parametrize("phase", NOISE_PHASES)
def test_noise_failure_ends_failed_and_purged(phase: str) -> None:
    xx = _XX()
    i, r = xx.i, xx.r
    call: Callable[[], object]
    if phase == "message 1, misuse":
        party, call, error = r, r.write_message, HandshakeStateError
    elif phase == "message 1, hostile":
        party, call, error = r, (lambda: r.read_message(bytes(31))), WrongLengthError
    else:
        r.read_message(i.write_message())
        m2 = r.write_message(b"cert")
        if phase == "message 2, misuse":
            party, call, error = i, i.write_message, HandshakeStateError
        elif phase == "message 2, hostile":
            party, call, error = i, (lambda: i.read_message(_tampered(m2, 40))), DecryptionError
        else:
            i.read_message(m2)
            m3 = i.write_message(b"cert")
            if phase == "message 3, hostile":
                party, call, error = r, (lambda: r.read_message(_tampered(m3, 10))), DecryptionError
            else:
                r.read_message(m3)
                assert r.status is State.ESTABLISHED
                party, call, error = r, r.write_message, HandshakeStateError
    if phase == "complete, split":
        c1, c2 = r.split()
        assert r.status is State.TRANSPORT and r._secret_buffers() == []
        with pytest.raises(HandshakeStateError, match="TRANSPORT"):
            r.write_message()
        assert r.status is State.TRANSPORT
        c1.close()
        c2.close()
        xx.close()
        return
    held = list(party._secret_buffers())
    with pytest.raises(error):
        call()
    assert party.status is State.FAILED and party.failure
    assert_all_purged(held)
    assert party._secret_buffers() == []
    assert not xx.si.is_purged and not xx.sr.is_purged  # the callers' static keys
    with pytest.raises(HandshakeStateError, match="FAILED"):
        party.write_message()
    xx.close()


def test_noise_call_after_close_fails() -> None:
    xx = _XX()
    xx.r.read_message(xx.i.write_message())
    held = list(xx.r._secret_buffers())
    xx.r.close()
    assert xx.r.status is State.CLOSED
    assert_all_purged(held)
    with pytest.raises(HandshakeStateError, match="closed"):
        xx.r.write_message()
    assert xx.r.status is State.FAILED
    xx.close()
