"""The shield takes any KEROS channel: a sensor whose v2 (Noise XX) channel was established
elsewhere is attached by its certificate and streams frames through the pipeline, decrypted
straight into the frame's locked buffer (the residue row ``shield_v2_channel`` proves that
from outside the process)."""

from __future__ import annotations

import numpy as np
import pytest

from cortex_sal.errors import InvalidArgumentError, ShieldError, WrongTypeError
from cortex_sal.keros import ManualClock, SecureBusSession
from cortex_sal.keros.channel import Channel
from cortex_sal.keros.noise.transport import NoiseTransport
from cortex_sal.keros.v2 import establish_v2_in_process
from cortex_sal.sal.frame import SAMPLE_DTYPE
from cortex_sal.sal.results import RefusalReason, Refused, Registered, Released
from cortex_sal.sal.shield import CognitiveShield
from cortex_sal.securemem import SecureBuffer
from cortex_sal.sources import synthetic_eeg
from v2_world import MODEL, World

SENSOR_ID = f"{MODEL}/SN-0001"


def frames(n: int, seed: int = 5) -> list[bytes]:
    return [np.asarray(x, SAMPLE_DTYPE).tobytes() for x in synthetic_eeg(n, seed=seed).frames]


def v2_pair(world: World) -> tuple[NoiseTransport, NoiseTransport, object]:
    gateway = world.gateway()
    up, down = establish_v2_in_process(world.sensor(), gateway)
    return up, down, gateway.peer


def seal(channel: Channel, payload: bytes) -> bytes:
    with SecureBuffer.from_bytes(payload) as buf:
        return channel.seal(buf)


def test_v1_sessions_and_v2_transports_are_channels(world: World) -> None:
    up, down, _ = v2_pair(world)
    with CognitiveShield(clock=ManualClock()) as shield:
        shield.register_sensor("eeg_fp1_certified_v1", 35.0, 16)
        v1 = shield.sensor_endpoint("eeg_fp1_certified_v1")
        assert isinstance(v1, SecureBusSession) and isinstance(v1, Channel) and v1.overhead == 8 + 12 + 16
        assert isinstance(up, Channel) and up.overhead == 16 and up.is_open
        lossy_up, lossy_down = establish_v2_in_process(world.sensor(), world.gateway(), lossy=True)
        assert lossy_up.overhead == 16 + 8
        for channel in (up, down, lossy_up, lossy_down):
            channel.close()
            assert not channel.is_open
        assert not isinstance("a channel?", Channel)
        frame = v1.seal(b"\x01" * 32)
        with pytest.raises(WrongTypeError, match="out must be a SecureBuffer"):
            v1.open_into(frame, bytearray(32))  # type: ignore[arg-type]
        with SecureBuffer(32) as out:
            gateway_side = shield._sensors["eeg_fp1_certified_v1"].gateway
            assert gateway_side.open_into(frame, out) == 32 and out.constant_time_compare(b"\x01" * 32)


def test_a_v2_sensor_streams_through_the_shield_as_the_raw_path_does(world: World) -> None:
    data = frames(6)
    up, down, peer = v2_pair(world)
    with CognitiveShield(clock=ManualClock()) as shield:
        attached = shield.attach_sensor(down, peer)  # type: ignore[arg-type]
        assert isinstance(attached, Registered) and attached.sensor_id == SENSOR_ID and attached.session is None
        over_v2 = [shield.ingest_frame(SENSOR_ID, seal(up, x)) for x in data]
    with CognitiveShield(clock=ManualClock()) as shield:
        shield.register_sensor(SENSOR_ID, 35.0, 16)
        raw = [shield.ingest_raw_data(SENSOR_ID, np.frombuffer(x, SAMPLE_DTYPE)) for x in data]
    assert all(isinstance(r, Released) for r in over_v2) and len(over_v2) == len(data)
    assert all(isinstance(r, Released) for r in raw)
    assert [(r.coherency_index, r.state_label) for r in over_v2 if isinstance(r, Released)] == [
        (r.coherency_index, r.state_label) for r in raw if isinstance(r, Released)
    ]
    assert not down.is_open  # closed by the shield's destroy_session
    up.close()


def test_every_frame_gives_its_locked_slot_back(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """A view of a frame's samples left alive when the frame closes makes the arena retire its slot
    (zeroed, never reused): over a long session the arena would run dry. Released and refused frames
    alike must return theirs."""
    from cortex_sal.securemem.arena import arena

    data = frames(40)
    data[5] = np.full(256, np.nan, SAMPLE_DTYPE).tobytes()  # a refused frame (non-finite) among them
    up, down, peer = v2_pair(world)
    with caplog.at_level("WARNING", logger="cortex_sal.securemem"), CognitiveShield(clock=ManualClock()) as shield:
        shield.attach_sensor(down, peer)  # type: ignore[arg-type]
        shield.ingest_frame(SENSOR_ID, seal(up, data[0]))
        live_before = arena().live_slots()[0]
        results = [shield.ingest_frame(SENSOR_ID, seal(up, x)) for x in data[1:]]
        live_after = arena().live_slots()[0]
    up.close()
    assert sum(isinstance(r, Released) for r in results) >= 30 and isinstance(results[4], Refused)
    assert "outlived" not in caplog.text, caplog.text
    assert live_after == live_before


def test_v2_frames_that_fail_are_refused_with_the_reason(world: World) -> None:
    up, down, peer = v2_pair(world)
    payload = frames(1)[0]
    with CognitiveShield(clock=ManualClock()) as shield:
        shield.attach_sensor(down, peer)  # type: ignore[arg-type]
        good = seal(up, payload)
        tampered = bytearray(good)
        tampered[100] ^= 0x01
        refused = shield.ingest_frame(SENSOR_ID, bytes(tampered))
        assert isinstance(refused, Refused) and refused.reason is RefusalReason.FRAME_AUTH
        assert "FrameAuthError" in refused.detail
        short = shield.ingest_frame(SENSOR_ID, seal(up, payload[:100]))
        assert isinstance(short, Refused) and short.reason is RefusalReason.FRAME_FORMAT
        assert "FrameFormatError" in short.detail
        assert "1040 on the wire" in short.detail  # the v2 overhead (16), not v1's
    up.close()


def test_attach_refuses_what_is_not_a_sensor_channel(world: World) -> None:
    up, down, peer = v2_pair(world)
    with CognitiveShield(clock=ManualClock()) as shield:
        with pytest.raises(WrongTypeError, match="keros Channel"):
            shield.attach_sensor("not a channel", peer)  # type: ignore[arg-type]
        with pytest.raises(WrongTypeError, match="VerifiedCertificate"):
            shield.attach_sensor(down, SENSOR_ID)  # type: ignore[arg-type]
        sensor = world.sensor()
        gateway = world.gateway()
        sensor.receive_gateway_hello(gateway.receive_sensor_hello(sensor.start()))
        with pytest.raises(InvalidArgumentError, match="got a gateway's"):
            shield.attach_sensor(down, sensor.peer)  # a gateway's certificate
        sensor.close()
        gateway.close()
        assert down.is_open  # the type refusals left the channel alone
        assert isinstance(shield.attach_sensor(down, peer), Registered)  # type: ignore[arg-type]
        again_up, again_down, again_peer = v2_pair(world)
        twice = shield.attach_sensor(again_down, again_peer)  # type: ignore[arg-type]
        assert isinstance(twice, Refused) and twice.reason is RefusalReason.ALREADY_REGISTERED
        assert "already registered" in twice.detail
        assert not again_down.is_open  # a refusal closes the channel it was given
        again_up.close()
        closed_up, closed_down, closed_peer = v2_pair(world)
        closed_down.close()
        with pytest.raises(InvalidArgumentError, match="closed"):
            shield.attach_sensor(closed_down, closed_peer)  # type: ignore[arg-type]
        closed_up.close()
        with pytest.raises(ShieldError, match="no in-process endpoint"):
            shield.sensor_endpoint(SENSOR_ID)
    up.close()


class LooksLikeAChannel:
    """Every name of the Channel protocol, none of its meaning."""

    def overhead(self) -> int:  # a method, not the property
        return 16

    def is_open(self) -> bool:
        return True

    seal = open_into = close = overhead


class RaisingChannel(LooksLikeAChannel):
    @property
    def overhead(self) -> int:  # type: ignore[override]
        raise RuntimeError("boom")


def test_attach_refuses_objects_that_only_look_like_a_channel(world: World) -> None:
    up, down, peer = v2_pair(world)
    with CognitiveShield(clock=ManualClock()) as shield:
        for fake in (LooksLikeAChannel(), RaisingChannel()):
            with pytest.raises(WrongTypeError, match="keros Channel"):
                shield.attach_sensor(fake, peer)  # type: ignore[arg-type]
        assert shield.custody_report().channels_attached == 0
    up.close()
    down.close()


def test_an_expired_v1_session_is_not_open() -> None:
    clock = ManualClock()
    with CognitiveShield(clock=clock) as shield:
        shield.register_sensor("eeg_fp1_certified_v1", 35.0, 16)
        session = shield.sensor_endpoint("eeg_fp1_certified_v1")
        assert session.is_open
        clock.advance(3600 * 24 * 365)
        assert not session.is_open  # past its lifetime, before any call noticed


def test_attach_applies_the_shields_own_registry(world: World) -> None:
    up, down, peer = v2_pair(world)
    with CognitiveShield(clock=ManualClock()) as shield:
        shield.registry.revoke(SENSOR_ID)
        refused = shield.attach_sensor(down, peer)  # type: ignore[arg-type]
        assert isinstance(refused, Refused) and refused.reason is RefusalReason.NOT_CERTIFIED
        assert "revoked" in refused.detail
        assert not down.is_open
    up.close()


def test_destroy_session_purges_an_attached_transport(world: World) -> None:
    up, down, peer = v2_pair(world)
    shield = CognitiveShield(clock=ManualClock())
    shield.attach_sensor(down, peer)  # type: ignore[arg-type]
    keys = down._secret_buffers()
    assert keys and not any(k.is_purged for k in keys)
    report = shield.custody_report()
    assert (report.channels_attached, report.channels_closed) == (1, 0)
    destroyed = shield.destroy_session()
    assert destroyed.sessions_closed == 1 and (destroyed.channels_attached, destroyed.channels_closed) == (1, 1)
    assert all(k.is_purged for k in keys) and not down.is_open
    shield.close()
    up.close()
