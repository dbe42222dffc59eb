"""KEROS v1 sans-IO handshakes: states, refusals, message formats, and interoperation with
an independent peer (``IndependentV1Sensor``, written with ``cryptography`` + ``hmac`` only).

Expected keys come from ``cryptography``; secrets are compared inside their buffers.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.crypto import X25519PrivateKey
from cortex_sal.errors import HandshakeError, HandshakeStateError, LocalProtocolError, SensorBusError
from cortex_sal.keros import (
    GatewayHandshake,
    ManualClock,
    Role,
    SensorAck,
    SensorHandshake,
    SensorHello,
    SensorRegistry,
    State,
    TEEHello,
)
from cortex_sal.securemem import SecureKeyBuffer
from cortex_sal.securemem.arena import arena
from cortex_sal.testing.scenarios import IndependentV1Sensor
from hypothesis_profiles import examples

SENSOR = "eeg_fp1_certified_v1"
INFO = b"cortex-sensor-ecdh-handshake-v1"
T0 = 1_800_000_000.0


def live_slots() -> int:
    gc.collect()
    return arena().live_slots()[0]


def oracle_key(private_bytes: bytes, peer_public: bytes, challenge: bytes) -> bytes:
    priv = c_x25519.X25519PrivateKey.from_private_bytes(private_bytes)
    shared = priv.exchange(c_x25519.X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(hashes.SHA256(), 32, challenge, INFO).derive(shared)


def c_pub(private_bytes: bytes) -> bytes:
    return c_x25519.X25519PrivateKey.from_private_bytes(private_bytes).public_key().public_bytes_raw()


def machines(
    clock: ManualClock | None = None, sensor_id: str = SENSOR, **gateway_options: object
) -> tuple[SensorHandshake, GatewayHandshake, ManualClock]:
    clock = clock or ManualClock(T0)
    return (
        SensorHandshake(sensor_id, clock=clock),
        GatewayHandshake("gw-test", clock=clock, **gateway_options),  # type: ignore[arg-type]
        clock,
    )


def run(sensor: SensorHandshake, gateway: GatewayHandshake) -> None:
    ack = sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start()))
    gateway.receive_sensor_ack(ack)


def assert_names(exc: BaseException, *words: str) -> None:
    for word in words:
        assert word in str(exc), f"{word!r} not in {str(exc)!r}"


# -- happy path -------------------------------------------------------------------------------


def test_happy_path_both_roles_established_and_sessions_interoperate() -> None:
    sensor, gateway, _ = machines()
    assert sensor.state is gateway.state is State.START
    hello = sensor.start()
    assert sensor.state is State.HANDSHAKE and len(hello) == 72
    tee = gateway.receive_sensor_hello(hello)
    assert gateway.state is State.HANDSHAKE and len(tee) == 96
    assert gateway.sensor_id == SENSOR
    ack = sensor.receive_tee_hello(tee)
    assert sensor.state is State.ESTABLISHED and len(ack) == 32
    gateway.receive_sensor_ack(ack)
    assert gateway.state is State.ESTABLISHED
    assert sensor.session_id == gateway.session_id and len(sensor.session_id or b"") == 32
    with sensor.session() as s, gateway.session() as g:
        assert s.role is Role.SENSOR and g.role is Role.GATEWAY
        assert s.session_key.constant_time_compare(g.session_key)
        for i in range(20):
            up, down = f"up {i}".encode() * 3, f"down {i}".encode() * 5
            with g.decrypt_frame(s.encrypt_frame(up)) as got:
                assert got.constant_time_compare(up)
            with s.decrypt_frame(g.encrypt_frame(down)) as got:
                assert got.constant_time_compare(down)


def test_serial_ids_handshake_when_the_gateway_expects_them() -> None:
    sid = SENSOR + "/SN-0042"
    sensor = SensorHandshake(sid, clock=ManualClock(T0))
    gateway = GatewayHandshake("gw", sensor_ids=["other/1", sid], clock=ManualClock(T0))
    run(sensor, gateway)
    assert gateway.sensor_id == sid
    sensor.session().close()
    gateway.session().close()


def test_same_session_key_as_an_independent_computation() -> None:
    sensor_priv, gateway_priv = bytes(range(1, 33)), bytes(range(101, 133))
    clock = ManualClock(T0)
    sensor = SensorHandshake(SENSOR, clock=clock, ephemeral_key=X25519PrivateKey(SecureKeyBuffer(sensor_priv)))
    gw_eph = X25519PrivateKey(SecureKeyBuffer(gateway_priv))
    gateway = GatewayHandshake("gw-kat", clock=clock, ephemeral_key=gw_eph)

    hello = sensor.start()
    id_hash = hashlib.sha256(SENSOR.encode()).digest()
    assert hello == id_hash + c_pub(sensor_priv) + struct.pack(">Q", int(T0 * 1000))

    tee = gateway.receive_sensor_hello(hello)
    assert gw_eph.is_purged  # the machine took the injected key over and purged it after use
    assert tee[:32] == hashlib.sha256(b"gw-kat").digest()
    assert tee[32:64] == c_pub(gateway_priv)
    challenge = tee[64:]
    expected = oracle_key(sensor_priv, c_pub(gateway_priv), challenge)
    assert expected == oracle_key(gateway_priv, c_pub(sensor_priv), challenge)

    ack = sensor.receive_tee_hello(tee)
    assert ack == hmac.digest(expected, challenge, "sha256")
    gateway.receive_sensor_ack(ack)
    expected_sid = hashlib.sha256(
        b"cortex-sensor-session-v1" + id_hash + c_pub(sensor_priv) + c_pub(gateway_priv) + challenge
    ).digest()
    assert sensor.session_id == gateway.session_id == expected_sid
    with sensor.session() as s, gateway.session() as g:
        assert s.session_key.constant_time_compare(expected)
        assert g.session_key.constant_time_compare(expected)
        assert s.session_id == expected_sid


def test_each_handshake_draws_a_fresh_challenge_and_key() -> None:
    keys = []
    for _ in range(2):
        sensor, gateway, _ = machines()
        run(sensor, gateway)
        keys.append(sensor.session())
        gateway.abort()
    a, b = keys
    assert a.session_id != b.session_id
    assert not a.session_key.constant_time_compare(b.session_key)
    a.close()
    b.close()


def test_session_can_be_taken_once_and_owns_the_key() -> None:
    sensor, gateway, _ = machines()
    run(sensor, gateway)
    s = sensor.session()
    with pytest.raises(HandshakeError, match="no session"):
        sensor.session()
    sensor.abort()  # the machine no longer holds the key: aborting leaves the session alone
    assert not s.session_key.is_purged and s.state is State.ESTABLISHED
    s.close()
    gateway.abort()
    with pytest.raises(HandshakeError):
        gateway.session()


def test_established_handshake_leaves_only_the_session_keys() -> None:
    before = live_slots()
    sensor, gateway, _ = machines()
    run(sensor, gateway)
    assert live_slots() == before + 2  # one session key per side; ephemerals and shared secrets purged
    s, g = sensor.session(), gateway.session()
    assert live_slots() == before + 2 + 4  # plus two frame keys per side
    s.close()
    g.close()
    assert live_slots() == before


# -- out-of-order events ------------------------------------------------------------------------

OUT_OF_ORDER: dict[str, tuple[Callable[[SensorHandshake, GatewayHandshake], object], tuple[str, ...]]] = {
    "ack before hello": (
        lambda s, g: g.receive_sensor_ack(bytes(32)),
        ("receive SensorAck", "gateway", "START"),
    ),
    "start twice": (lambda s, g: (s.start(), s.start()), ("send SensorHello", "sensor", "HANDSHAKE")),
    "tee hello before start": (
        lambda s, g: s.receive_tee_hello(bytes(96)),
        ("receive TEEHello", "sensor", "START"),
    ),
    "sensor hello twice": (
        lambda s, g: (g.receive_sensor_hello(hello := s.start()), g.receive_sensor_hello(hello)),
        ("receive SensorHello", "gateway", "HANDSHAKE"),
    ),
    "tee hello twice": (
        lambda s, g: (
            s.receive_tee_hello(tee := g.receive_sensor_hello(s.start())),
            s.receive_tee_hello(tee),
        ),
        ("receive TEEHello", "sensor", "ESTABLISHED"),
    ),
    "ack twice": (
        lambda s, g: (
            g.receive_sensor_ack(ack := s.receive_tee_hello(g.receive_sensor_hello(s.start()))),
            g.receive_sensor_ack(ack),
        ),
        ("receive SensorAck", "gateway", "ESTABLISHED"),
    ),
    "start after established": (
        lambda s, g: (run(s, g), s.start()),
        ("send SensorHello", "sensor", "ESTABLISHED"),
    ),
}


@pytest.mark.parametrize("case", list(OUT_OF_ORDER))
def test_out_of_order_event_names_event_role_and_state(case: str) -> None:
    action, words = OUT_OF_ORDER[case]
    sensor, gateway, _ = machines()
    with pytest.raises(HandshakeError) as info:
        action(sensor, gateway)
    assert_names(info.value, *words)
    assert isinstance(info.value, SensorBusError)
    sensor.abort()
    gateway.abort()


def test_out_of_order_before_established_is_terminal_and_purges() -> None:
    before = live_slots()
    sensor, _gateway, _ = machines()
    sensor.start()
    assert live_slots() == before + 1  # the ephemeral key
    with pytest.raises(HandshakeError):
        sensor.start()
    assert sensor.state is State.FAILED
    assert live_slots() == before
    # terminal: the next legal-looking event is refused too, naming the state
    with pytest.raises(HandshakeError) as info:
        sensor.receive_tee_hello(bytes(96))
    assert_names(info.value, "FAILED")
    with pytest.raises(HandshakeError):
        sensor.session()


def test_out_of_order_after_established_fails_and_purges() -> None:
    """keros.states: once started (ESTABLISHED included, until the session is taken) a call out
    of turn fails the machine and purges its key (until 2026-12 v1 kept the session)."""
    sensor, gateway, _ = machines()
    run(sensor, gateway)
    held = gateway._session_key
    assert held is not None and not held.is_purged
    with pytest.raises(HandshakeStateError) as info:
        gateway.receive_sensor_ack(bytes(32))
    assert isinstance(info.value, LocalProtocolError)
    assert gateway.state is State.FAILED and held.is_purged and gateway._session_key is None
    with pytest.raises(HandshakeStateError, match="FAILED"):
        gateway.session()
    sensor.abort()


def test_out_of_turn_after_the_session_was_taken_changes_nothing() -> None:
    sensor, gateway, _ = machines()
    run(sensor, gateway)
    with sensor.session() as s, gateway.session() as g:
        assert sensor.state is gateway.state is State.TRANSPORT
        with pytest.raises(HandshakeStateError, match="TRANSPORT"):
            gateway.receive_sensor_ack(bytes(32))
        assert gateway.state is State.TRANSPORT  # it holds nothing; the session is not its to end
        with g.decrypt_frame(s.encrypt_frame(b"still fine")) as got:
            assert got.constant_time_compare(b"still fine")


# -- malformed messages ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 71, 73, 96])
def test_wrong_size_sensor_hello_refused(size: int) -> None:
    sensor, gateway, _ = machines()
    hello = sensor.start()
    data = (hello * 2)[:size]
    with pytest.raises(HandshakeError) as info:
        gateway.receive_sensor_hello(data)
    assert_names(info.value, "SensorHello", str(size), "72")
    assert gateway.state is State.FAILED
    sensor.abort()


@pytest.mark.parametrize("size", [0, 72, 95, 97])
def test_wrong_size_tee_hello_refused(size: int) -> None:
    sensor, gateway, _ = machines()
    tee = gateway.receive_sensor_hello(sensor.start())
    before = live_slots()
    with pytest.raises(HandshakeError) as info:
        sensor.receive_tee_hello((tee * 2)[:size])
    assert_names(info.value, "TEEHello", str(size), "96")
    assert sensor.state is State.FAILED
    assert live_slots() == before - 1  # the sensor's ephemeral key is gone
    gateway.abort()


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_wrong_size_sensor_ack_refused(size: int) -> None:
    sensor, gateway, _ = machines()
    ack = sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start()))
    with pytest.raises(HandshakeError) as info:
        gateway.receive_sensor_ack((ack * 3)[:size])
    assert_names(info.value, "SensorAck", str(size), "32")
    assert gateway.state is State.FAILED
    with pytest.raises(HandshakeError):
        gateway.session()
    sensor.abort()


@pytest.mark.parametrize("data", ["x" * 72, None, 72, list(range(72))])
def test_non_bytes_messages_refused(data: object) -> None:
    sensor, gateway, _ = machines()
    with pytest.raises(HandshakeError, match="SensorHello"):
        gateway.receive_sensor_hello(data)  # type: ignore[arg-type]
    sensor.start()
    with pytest.raises(HandshakeError, match="TEEHello"):
        sensor.receive_tee_hello(data)  # type: ignore[arg-type]


def test_low_order_gateway_key_is_refused_by_the_sensor() -> None:
    sensor, gateway, _ = machines()
    tee = gateway.receive_sensor_hello(sensor.start())
    before = live_slots()
    with pytest.raises(HandshakeError, match="TEEHello"):
        sensor.receive_tee_hello(tee[:32] + bytes(32) + tee[64:])
    assert sensor.state is State.FAILED
    assert live_slots() == before - 1
    gateway.abort()


def test_low_order_sensor_key_is_refused_by_the_gateway() -> None:
    clock = ManualClock(T0)
    gateway = GatewayHandshake("gw", clock=clock)
    hello = hashlib.sha256(SENSOR.encode()).digest() + (1).to_bytes(32, "little") + struct.pack(">Q", int(T0 * 1000))
    before = live_slots()
    with pytest.raises(HandshakeError, match="SensorHello"):
        gateway.receive_sensor_hello(hello)
    assert gateway.state is State.FAILED
    assert live_slots() == before


# -- freshness and admission -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(0.0, True), (29.5, True), (30.0, True), (-30.0, True), (30.5, False), (31.0, False), (-31.0, False),
     (3600.0, False), (-3600.0, False)],
)  # fmt: skip
def test_hello_timestamp_window(offset: float, accepted: bool) -> None:
    """``offset`` = sensor clock minus gateway clock; negative: the hello is stale, positive: from the future."""
    sensor = SensorHandshake(SENSOR, clock=ManualClock(T0 + offset))
    gateway = GatewayHandshake("gw", clock=ManualClock(T0))
    hello = sensor.start()
    if accepted:
        gateway.receive_sensor_hello(hello)
        assert gateway.state is State.HANDSHAKE
    else:
        with pytest.raises(HandshakeError) as info:
            gateway.receive_sensor_hello(hello)
        assert_names(info.value, "timestamp", "30")
        assert gateway.state is State.FAILED
    gateway.abort()
    sensor.abort()


def test_hello_goes_stale_while_the_gateway_waits() -> None:
    clock = ManualClock(T0)
    indep = IndependentV1Sensor()
    hello = indep.hello(now=clock.time())
    clock.advance(31)
    gateway = GatewayHandshake("gw", clock=clock)
    with pytest.raises(HandshakeError, match="timestamp"):
        gateway.receive_sensor_hello(hello)


def test_custom_freshness_window() -> None:
    sensor = SensorHandshake(SENSOR, clock=ManualClock(T0 - 5))
    gateway = GatewayHandshake("gw", clock=ManualClock(T0), freshness_s=2.0)
    with pytest.raises(HandshakeError, match="timestamp"):
        gateway.receive_sensor_hello(sensor.start())


@pytest.mark.parametrize(
    "sensor_id",
    ["eeg_unknown_v9", "eeg_fp1_certified_v1/SN-1", "EEG_FP1_CERTIFIED_V1", "eeg_fp1_certified_v1 "],
)
def test_unknown_sensor_hash_refused(sensor_id: str) -> None:
    sensor, gateway, _ = machines(sensor_id=sensor_id)
    before = live_slots()
    with pytest.raises(HandshakeError) as info:
        gateway.receive_sensor_hello(sensor.start())
    assert_names(info.value, "receive SensorHello", "not know")
    assert gateway.state is State.FAILED
    assert live_slots() == before + 1  # only the sensor's ephemeral key; the gateway drew nothing
    sensor.abort()


def test_revoked_or_below_minimum_candidates_refused() -> None:
    reg = SensorRegistry.default()
    reg.revoke(SENSOR + "/SN-bad")
    sensor = SensorHandshake(SENSOR + "/SN-bad", clock=ManualClock(T0))
    gateway = GatewayHandshake("gw", registry=reg, sensor_ids=[SENSOR + "/SN-bad"], clock=ManualClock(T0))
    with pytest.raises(HandshakeError, match="revoked"):
        gateway.receive_sensor_hello(sensor.start())
    assert gateway.state is State.FAILED
    sensor.abort()
    weak = SensorRegistry([*reg.models()], min_snr_db=40.0)
    sensor = SensorHandshake(SENSOR, clock=ManualClock(T0))
    gateway = GatewayHandshake("gw", registry=weak, clock=ManualClock(T0))
    with pytest.raises(HandshakeError, match="SNR"):
        gateway.receive_sensor_hello(sensor.start())
    sensor.abort()


# -- bad ACK --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mutation", ["zeros", "flip first", "flip last", "other challenge"])
def test_bad_ack_compromises_the_gateway_and_purges_its_key(mutation: str) -> None:
    sensor, gateway, _ = machines()
    tee = gateway.receive_sensor_hello(sensor.start())
    ack = sensor.receive_tee_hello(tee)
    held = gateway._session_key
    assert held is not None and not held.is_purged
    if mutation == "zeros":
        bad = bytes(32)
    elif mutation == "flip first":
        bad = bytes([ack[0] ^ 1]) + ack[1:]
    elif mutation == "flip last":
        bad = ack[:31] + bytes([ack[31] ^ 0x80])
    else:
        with sensor.session() as s:  # an HMAC of the right key over the wrong message
            with s.session_key.export_bytearray() as raw:
                bad = hmac.digest(bytes(raw), bytes(32), "sha256")
    before = live_slots()
    with pytest.raises(HandshakeError) as info:
        gateway.receive_sensor_ack(bad)
    assert_names(info.value, "ACK")
    assert gateway.state is State.FAILED
    assert held.is_purged
    assert live_slots() == before - 1
    with pytest.raises(HandshakeError) as info:
        gateway.session()
    assert_names(info.value, "FAILED")
    # and the correct ACK is no longer accepted: the failure is terminal
    with pytest.raises(HandshakeError):
        gateway.receive_sensor_ack(ack)
    sensor.abort()


def test_good_ack_after_mutations_guard() -> None:
    # guards the test above: the unmutated ACK *is* accepted
    sensor, gateway, _ = machines()
    ack = sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start()))
    gateway.receive_sensor_ack(ack)
    assert gateway.state is State.ESTABLISHED
    sensor.abort()
    gateway.abort()


def test_abort_and_context_exit_purge_everything() -> None:
    before = live_slots()
    with SensorHandshake(SENSOR, clock=ManualClock(T0)) as sensor, GatewayHandshake("gw", clock=ManualClock(T0)) as gw:
        gw.receive_sensor_hello(sensor.start())
        assert live_slots() == before + 2  # the sensor's ephemeral, the gateway's session key
    assert live_slots() == before
    injected = X25519PrivateKey.generate()
    machine = SensorHandshake(SENSOR, ephemeral_key=injected)
    machine.abort()
    assert injected.is_purged and machine.state is State.FAILED


# -- message formats --------------------------------------------------------------------------------

b32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=examples(50), deadline=None)
@given(h=b32, pub=b32, ts=st.integers(min_value=0, max_value=2**64 - 1))
def test_sensor_hello_round_trip(h: bytes, pub: bytes, ts: int) -> None:
    wire = SensorHello(h, pub, ts).to_bytes()
    assert len(wire) == 72
    assert wire == h + pub + ts.to_bytes(8, "big")
    assert SensorHello.parse(wire) == SensorHello(h, pub, ts)
    assert SensorHello.parse(bytearray(wire)) == SensorHello(h, pub, ts)


@settings(max_examples=examples(50), deadline=None)
@given(h=b32, pub=b32, challenge=b32)
def test_tee_hello_round_trip(h: bytes, pub: bytes, challenge: bytes) -> None:
    wire = TEEHello(h, pub, challenge).to_bytes()
    assert len(wire) == 96 and wire == h + pub + challenge
    assert TEEHello.parse(memoryview(wire)) == TEEHello(h, pub, challenge)


@settings(max_examples=examples(50), deadline=None)
@given(tag=b32)
def test_sensor_ack_round_trip(tag: bytes) -> None:
    wire = SensorAck(tag).to_bytes()
    assert len(wire) == 32 and wire == tag
    assert SensorAck.parse(wire) == SensorAck(tag)


@settings(max_examples=examples(50), deadline=None)
@given(data=st.binary(max_size=200))
def test_parse_accepts_exactly_the_right_size(data: bytes) -> None:
    for cls, size in ((SensorHello, 72), (TEEHello, 96), (SensorAck, 32)):
        if len(data) == size:
            assert cls.parse(data).to_bytes() == data  # type: ignore[attr-defined]
        else:
            with pytest.raises(HandshakeError, match=cls.__name__):
                cls.parse(data)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "build",
    [
        lambda: SensorHello(bytes(31), bytes(32), 0),
        lambda: SensorHello(bytes(32), bytes(33), 0),
        lambda: SensorHello(bytes(32), bytes(32), -1),
        lambda: SensorHello(bytes(32), bytes(32), 2**64),
        lambda: SensorHello(bytes(32), bytes(32), 1.5),
        lambda: SensorHello("x" * 32, bytes(32), 0),
        lambda: TEEHello(bytes(32), bytes(32), bytes(31)),
        lambda: TEEHello(bytes(32), None, bytes(32)),
        lambda: SensorAck(bytes(16)),
    ],
)
def test_message_fields_are_checked(build: Callable[[], object]) -> None:
    with pytest.raises(HandshakeError):
        build()


# -- an independent sensor talks to our gateway ---------------------------------------------------


def test_independent_sensor_and_our_gateway_exchange_frames_both_ways() -> None:
    clock = ManualClock(T0)
    indep = IndependentV1Sensor(SENSOR)
    gateway = GatewayHandshake("gw-interop", sensor_ids=[SENSOR], clock=clock)
    tee = gateway.receive_sensor_hello(indep.hello(now=clock.time()))
    gateway.receive_sensor_ack(indep.receive_tee_hello(tee))
    assert gateway.state is State.ESTABLISHED
    assert gateway.session_id == indep.session_id
    with gateway.session() as session:
        assert session.session_key.constant_time_compare(indep.session_key)
        for i in range(50):
            payload = hashlib.sha256(i.to_bytes(4, "big")).digest() * (1 + i % 7)
            with session.decrypt_frame(indep.frame(payload)) as got:
                assert got.constant_time_compare(payload)
            reply = payload[::-1] + b"!"
            assert indep.open(session.encrypt_frame(reply)) == reply
        assert session.last_accepted_seq == 50 and session.sent_seq == 50


def test_independent_sensor_with_a_wrong_key_is_refused_by_our_gateway() -> None:
    clock = ManualClock(T0)
    indep = IndependentV1Sensor(SENSOR)
    gateway = GatewayHandshake("gw", clock=clock)
    tee = gateway.receive_sensor_hello(indep.hello(now=clock.time()))
    # a man in the middle swaps the gateway's public key: the sensor derives another key
    mitm = c_x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    ack = indep.receive_tee_hello(tee[:32] + mitm + tee[64:])
    with pytest.raises(HandshakeError, match="ACK"):
        gateway.receive_sensor_ack(ack)
    assert gateway.state is State.FAILED


@pytest.mark.parametrize("options", [{"max_seq": 1}, {"lifetime_s": 0}, {"role": Role.GATEWAY}, {"bogus": True}])
def test_refused_session_options_do_not_lose_the_key(options: dict[str, object]) -> None:
    """``session()`` with options the session refuses leaves the key with the handshake:
    a retry works, and ``abort()`` purges it deterministically (not a finaliser)."""
    sensor, gateway, _ = machines()
    run(sensor, gateway)
    held = sensor._session_key
    assert held is not None
    with pytest.raises((TypeError, ValueError)):
        sensor.session(**options)
    assert not held.is_purged and sensor._session_key is held
    with sensor.session(max_seq=10) as s, gateway.session() as g:
        assert s.session_key is held
        with g.decrypt_frame(s.encrypt_frame(b"after a retry")) as got:
            assert got.constant_time_compare(b"after a retry")
    # and a handshake given up after a refusal purges the key it kept
    sensor, gateway, _ = machines()
    run(sensor, gateway)
    held = sensor._session_key
    with pytest.raises((TypeError, ValueError)):
        sensor.session(**options)
    sensor.abort()
    assert held is not None and held.is_purged
    gateway.abort()
