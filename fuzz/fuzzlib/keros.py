"""Targets of the KEROS protocol layer (``cortex_sal.keros``): the v1 messages, both v1
handshake machines, v1 frames, the sensor registry file, the seed's certification API and the
record layer on a byte stream (``keros.framing``). Imports only ``keros`` and the layers below.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import itertools
import json
import math
import struct
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as COracleX25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as COraclePublic
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from fuzzlib.oracle import (
    LOW_ORDER_POINTS,
    OracleViolation,
    Target,
    _Scratch,
    as_bytes,
    c_public,
    is_bytes_like,
    live_slots,
    low_order,
    refusal,
    require,
)
from fuzzlib.plan import Plan, Spec, dump_json, json_message, message

T0 = 1_800_000_000.0
SENSOR = "eeg_fp1_certified_v1"
GATEWAY = "cortex-fuzz-gateway"
S2G = b"cortex-sensor-frames-v1 sensor->gateway"
G2S = b"cortex-sensor-frames-v1 gateway->sensor"
HANDSHAKE_INFO = b"cortex-sensor-ecdh-handshake-v1"
SENSOR_PRIVATE = bytes(range(1, 33))
GATEWAY_PRIVATES = (bytes(range(101, 133)), bytes(range(140, 172)))


def oracle_session_key(private: bytes, peer_public: bytes, challenge: bytes) -> bytes:
    shared = COracleX25519.from_private_bytes(private).exchange(COraclePublic.from_public_bytes(peer_public))
    return HKDF(hashes.SHA256(), 32, challenge, HANDSHAKE_INFO).derive(shared)


def _hello_spec(now_ms: int, hashes_: tuple[bytes, ...]) -> Spec:
    window = 30_000
    stamps = (0, 1, now_ms, now_ms - window, now_ms + window, now_ms - window - 1, now_ms + window + 1,
              now_ms - 2 * window, 2**63, 2**64 - 1, now_ms // 1000)  # fmt: skip
    return Spec(
        fields=((0, 32), (32, 64), (64, 72)),
        int_fields=((64, 72, stamps),),
        alternates=((0, hashes_), (1, LOW_ORDER_POINTS)),
    )


class V1MessageTarget(Target):
    """``SensorHello`` / ``TEEHello`` / ``SensorAck``.parse: exact size or ``HandshakeError``."""

    def __init__(self, which: str) -> None:
        from cortex_sal.keros.messages import SensorAck, SensorHello, TEEHello

        self.name = f"v1_{which}"
        self.cls, self.size = {"hello": (SensorHello, 72), "tee_hello": (TEEHello, 96), "ack": (SensorAck, 32)}[which]
        rnd = [hashlib.sha256(bytes([i])).digest() for i in range(4)]
        if which == "hello":
            self.bases = [rnd[i] + rnd[i + 1] + struct.pack(">Q", int(T0 * 1000) + i) for i in range(3)]
            self.spec = _hello_spec(int(T0 * 1000), (rnd[0],))
        elif which == "tee_hello":
            self.bases = [rnd[i] + rnd[i + 1] + rnd[(i + 2) % 4] for i in range(3)]
            self.spec = Spec(fields=((0, 32), (32, 64), (64, 96)), alternates=((1, LOW_ORDER_POINTS),))
        else:
            self.bases = rnd
            self.spec = Spec(fields=((0, 16), (16, 32)))

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import HandshakeError

        data = message(plan, self.bases[plan.base % len(self.bases)], self.spec)
        expected = is_bytes_like(data) and len(as_bytes(data)) == self.size
        parsed, exc = refusal((HandshakeError,), lambda: self.cls.parse(data))
        if exc is not None:
            require(not expected, f"{self.name}: a well-sized message was refused: {exc}")
            return "refused"
        require(expected, f"{self.name}: accepted {len(as_bytes(data))} bytes ({type(data).__name__})")
        require(parsed.to_bytes() == as_bytes(data), f"{self.name}: to_bytes() does not give the input back")
        return "parsed"


class GatewayHelloTarget(Target):
    """``GatewayHandshake.receive_sensor_hello``: accepted iff the model of v1 says so.

    Refusal is terminal by design (COMPROMISED, nothing held); the shared registry is
    untouched and a fresh machine on it completes a handshake.
    """

    name = "gateway_hello"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock, SensorRegistry

        self.clock = ManualClock(T0)
        self.registry = SensorRegistry.default()
        self.candidates = [m.model_id for m in self.registry.models()]
        self.known = {hashlib.sha256(s.encode()).digest(): s for s in self.candidates}
        self.now_ms = int(T0 * 1000)
        pubs = [c_public(bytes([i + 1]) * 32) for i in range(3)]
        hashes_ = (*self.known, hashlib.sha256(b"eeg_unknown_v9").digest(), hashlib.sha256(b"").digest())
        self.bases = [
            h + pubs[i % 3] + struct.pack(">Q", self.now_ms + d)
            for i, (h, d) in enumerate((h, d) for h in self.known for d in (0, -29_000, 29_999))
        ]
        self.spec = _hello_spec(self.now_ms, hashes_)
        self._registry_view = self._view()

    def _view(self) -> object:
        return (
            [(m.model_id, m.snr_db, m.bits) for m in self.registry.models()],
            sorted(self.registry._revoked),
            self.registry.min_snr_db,
            self.registry.min_bits,
        )

    def expected(self, data: object) -> str | None:
        raw = as_bytes(data)
        if not is_bytes_like(data) or len(raw) != 72 or raw[:32] not in self.known:
            return None
        (ts,) = struct.unpack(">Q", raw[64:72])
        if abs(self.clock.time() * 1000 - ts) / 1000 > 30.0 or low_order(raw[32:64]):
            return None
        return self.known[raw[:32]]

    def fresh_handshake_completes(self) -> None:
        from cortex_sal.keros import GatewayHandshake, SensorHandshake

        sensor = SensorHandshake(SENSOR, clock=self.clock)
        gateway = GatewayHandshake(GATEWAY, registry=self.registry, clock=self.clock)
        gateway.receive_sensor_ack(sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start())))
        with sensor.session() as s, gateway.session() as g, g.decrypt_frame(s.encrypt_frame(b"ok")) as got:
            require(got.constant_time_compare(b"ok"), "a fresh handshake does not carry frames")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import HandshakeError
        from cortex_sal.keros import ChannelState, GatewayHandshake

        base = self.bases[plan.base % len(self.bases)]
        data = message(plan, base, self.spec)
        expected = self.expected(data)
        slots = live_slots()
        gateway = GatewayHandshake(GATEWAY, registry=self.registry, clock=self.clock)
        out, exc = refusal((HandshakeError,), lambda: gateway.receive_sensor_hello(data))
        if exc is None:
            require(expected is not None, "gateway accepted a SensorHello the model refuses")
            require(gateway.state is ChannelState.HANDSHAKE, f"accepted hello left state {gateway.state}")
            require(gateway.sensor_id == expected, "gateway admitted another sensor than the hello names")
            require(isinstance(out, bytes) and len(out) == 96, "TEEHello is not 96 bytes")
            require(out[:32] == hashlib.sha256(GATEWAY.encode()).digest(), "TEEHello names another gateway")
            gateway.abort()
            outcome = "accepted"
        else:
            require(expected is None, f"gateway refused a valid SensorHello: {exc}")
            require(gateway.state is ChannelState.COMPROMISED, f"refused hello left state {gateway.state}")
            require(gateway._session_key is None and gateway._ephemeral is None, "a refused machine holds a key")
            require(gateway.session_id is None, "a refused machine has a session id")
            _, again = refusal((HandshakeError,), lambda: gateway.receive_sensor_hello(base))
            require(again is not None, "a failed handshake is terminal, yet it took another hello")
            _, none = refusal((HandshakeError,), lambda: gateway.session())
            require(none is not None, "a failed handshake handed out a session")
            outcome = "refused"
        require(live_slots() == slots, "secure buffers left behind by the gateway")
        require(self._view() == self._registry_view, "the registry changed")
        if outcome == "refused":
            self.fresh_handshake_completes()
        return outcome


class GatewayAckTarget(Target):
    """``GatewayHandshake.receive_sensor_ack`` in HANDSHAKE: only the true ACK establishes."""

    name = "gateway_ack"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock, SensorRegistry

        self.clock = ManualClock(T0)
        self.registry = SensorRegistry.default()
        self.spec = Spec(fields=((0, 8), (8, 16), (16, 24), (24, 32)))

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import HandshakeError
        from cortex_sal.keros import ChannelState, GatewayHandshake, SensorHandshake

        slots = live_slots()
        sensor = SensorHandshake(SENSOR, clock=self.clock)
        gateway = GatewayHandshake(GATEWAY, registry=self.registry, clock=self.clock)
        ack = sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start()))
        data = message(plan, ack, self.spec)
        key = gateway._session_key
        _, exc = refusal((HandshakeError,), lambda: gateway.receive_sensor_ack(data))
        if is_bytes_like(data) and as_bytes(data) == ack:
            require(exc is None, f"the true ACK was refused: {exc}")
            require(gateway.state is ChannelState.ESTABLISHED, "the true ACK did not establish")
            with sensor.session() as s, gateway.session() as g, g.decrypt_frame(s.encrypt_frame(b"x")) as got:
                require(got.constant_time_compare(b"x"), "sessions do not interoperate")
            outcome = "established"
        else:
            require(exc is not None, "a wrong ACK established the session")
            require(gateway.state is ChannelState.COMPROMISED, f"a wrong ACK left state {gateway.state}")
            require(key is not None and key.is_purged and gateway._session_key is None, "session key not purged")
            sensor.abort()
            outcome = "refused"
        require(live_slots() == slots, "secure buffers left behind by the ACK check")
        return outcome


class SensorTeeHelloTarget(Target):
    """``SensorHandshake.receive_tee_hello``: any 96 bytes with a usable point are accepted
    (v1 authenticates nobody) and the ACK equals an independent computation."""

    name = "sensor_tee_hello"

    def __init__(self) -> None:
        from cortex_sal.keros import ManualClock

        self.clock = ManualClock(T0)
        self.id_hash = hashlib.sha256(SENSOR.encode()).digest()
        self.bases = [
            hashlib.sha256(GATEWAY.encode()).digest() + c_public(p) + hashlib.sha256(p).digest()
            for p in GATEWAY_PRIVATES
        ]
        self.spec = Spec(fields=((0, 32), (32, 64), (64, 96)), alternates=((1, LOW_ORDER_POINTS),))

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import X25519PrivateKey
        from cortex_sal.errors import HandshakeError
        from cortex_sal.keros import ChannelState, SensorHandshake
        from cortex_sal.securemem import SecureKeyBuffer

        slots = live_slots()
        data = message(plan, self.bases[plan.base % len(self.bases)], self.spec)
        raw = as_bytes(data)
        expected = is_bytes_like(data) and len(raw) == 96 and not low_order(raw[32:64])
        sensor = SensorHandshake(
            SENSOR, clock=self.clock, ephemeral_key=X25519PrivateKey(SecureKeyBuffer(SENSOR_PRIVATE))
        )
        sensor.start()
        ack, exc = refusal((HandshakeError,), lambda: sensor.receive_tee_hello(data))
        if exc is None:
            require(expected, "sensor accepted a TEEHello the model refuses")
            key = oracle_session_key(SENSOR_PRIVATE, raw[32:64], raw[64:96])
            require(ack == std_hmac.digest(key, raw[64:96], "sha256"), "ACK differs from the independent HMAC")
            sid = hashlib.sha256(
                b"cortex-sensor-session-v1" + self.id_hash + c_public(SENSOR_PRIVATE) + raw[32:64] + raw[64:96]
            ).digest()
            require(sensor.session_id == sid, "session id differs from the independent SHA-256")
            sensor.session().close()
            outcome = "accepted"
        else:
            require(not expected, f"sensor refused a usable TEEHello: {exc}")
            require(sensor.state is ChannelState.COMPROMISED, f"refused TEEHello left state {sensor.state}")
            require(sensor._ephemeral is None and sensor._session_key is None, "a refused sensor holds a key")
            outcome = "refused"
        require(live_slots() == slots, "secure buffers left behind by the sensor")
        return outcome


class _IndependentFrames:
    """Frames of the sensor->gateway direction, written and opened with ``cryptography`` only."""

    def __init__(self, session_key: bytes, session_id: bytes) -> None:
        self.aead = ChaCha20Poly1305(HKDFExpand(hashes.SHA256(), 32, S2G).derive(session_key))
        self.suffix = session_id[:4]

    def frame(self, seq: int, payload: bytes) -> bytes:
        header = struct.pack(">II", seq, len(payload))
        nonce = struct.pack(">Q", seq) + self.suffix
        return header + nonce + self.aead.encrypt(nonce, payload, header)

    def open(self, frame: bytes) -> bytes | None:
        """The plaintext of an authentic frame of this session (any sequence number), else None."""
        from cryptography.exceptions import InvalidTag

        seq = struct.unpack(">I", frame[:4])[0]
        if frame[8:20] != struct.pack(">Q", seq) + self.suffix:
            return None
        try:
            return self.aead.decrypt(frame[8:20], frame[20:], frame[:8])
        except InvalidTag:
            return None


def predict_frame(data: object, frame: bytes, last: int, max_seq: int, frames: _IndependentFrames | None = None) -> str:
    """What ``decrypt_frame`` must do with ``data`` (the model of SYSTEM.md "Frames"). With
    ``frames``, any authentic frame of the session is accepted (a fuzzer may replay one an
    earlier input produced under the same key); without, only ``frame`` is."""
    if not is_bytes_like(data):
        return "WrongTypeError"
    raw = as_bytes(data)
    if len(raw) < 37:
        return "FrameFormatError"
    seq, length = struct.unpack(">II", raw[:8])
    if length > 8192 or len(raw) != 36 + length or length == 0:
        return "FrameFormatError"
    if seq <= last:
        return "ReplayAttackError"
    if seq >= max_seq:
        return "SessionExpiredError"
    if raw == frame or (frames is not None and frames.open(raw) is not None):
        return "accept"
    return "FrameAuthError"


def _frame_spec(frame: bytes, last: int, max_seq: int) -> Spec:
    n = len(frame) - 36
    seqs = (0, 1, last, last + 1, last + 2, max_seq - 1, max_seq, 2**32 - 1, 2**31)
    lengths = (0, 1, n - 1, n, n + 1, 8192, 8193, 2**32 - 1, len(frame))
    return Spec(
        fields=((0, 4), (4, 8), (8, 16), (16, 20), (20, 20 + n), (20 + n, 36 + n)),
        int_fields=((0, 4, seqs), (4, 8, lengths), (8, 16, seqs)),
        alternates=((3, (b"\x00" * 4, b"\xff" * 4)),),
    )


def frame_seq(frame: bytes) -> int:
    return int(struct.unpack(">I", frame[:4])[0])


class FrameTarget(Target):
    """``SecureBusSession.decrypt_frame`` on mutated frames of an independent encoder.

    ``lenient``: one session reused (``compromise_on_auth_failure=False``): every refusal
    leaves the state and ``last_accepted`` unchanged and the next valid frame is accepted.
    Strict (the default policy): a fresh session per input; header-level refusals change
    nothing, a failed tag (or nonce) compromises the session and purges its three keys.
    """

    SESSION_KEY = hashlib.sha256(b"fuzz session key").digest()
    SESSION_ID = hashlib.sha256(b"fuzz session id").digest()

    def __init__(self, *, lenient: bool) -> None:
        from cortex_sal.keros import ManualClock

        self.name = "frames_lenient" if lenient else "frames_strict"
        self.lenient = lenient
        self.clock = ManualClock(T0)
        self.encoder = _IndependentFrames(self.SESSION_KEY, self.SESSION_ID)
        self.session = self._session() if lenient else None

    def _session(self) -> Any:
        from cortex_sal.keros import Role, SecureBusSession
        from cortex_sal.securemem import SecureKeyBuffer

        return SecureBusSession(
            SecureKeyBuffer(self.SESSION_KEY), self.SESSION_ID, Role.GATEWAY, clock=self.clock,
            compromise_on_auth_failure=not self.lenient,
        )  # fmt: skip

    def _payload(self, base: int) -> bytes:
        return hashlib.sha256(bytes([base])).digest() * 3 if base % 5 == 0 else bytes([base]) * (1 + base % 40)

    def _accept(self, session: Any, frame: bytes, payload: bytes) -> None:
        with session.decrypt_frame(frame) as got:
            require(len(got) == len(payload) and got.constant_time_compare(payload), "plaintext differs")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import (
            FrameAuthError,
            FrameFormatError,
            ReplayAttackError,
            SessionExpiredError,
            WrongTypeError,
        )
        from cortex_sal.keros import ChannelState

        slots = live_slots()
        session = self.session if self.lenient else self._session()
        if not self.lenient:
            for seq in range(1, 1 + plan.base % 4):
                self._accept(session, self.encoder.frame(seq, b"warm-up"), b"warm-up")
        last = session.last_accepted_seq
        seq = last + 1 + plan.base % 3
        payload = self._payload(plan.base)
        frame = self.encoder.frame(seq, payload)
        data = message(plan, frame, _frame_spec(frame, last, session._max_seq))
        predicted = predict_frame(data, frame, last, session._max_seq, self.encoder)
        keys = [session.session_key, session._send_key, session._recv_key]
        allowed = (FrameFormatError, ReplayAttackError, FrameAuthError, SessionExpiredError, WrongTypeError)
        out, exc = refusal(allowed, lambda: session.decrypt_frame(data))
        if exc is None:
            require(predicted == "accept", f"accepted a frame the model refuses ({predicted})")
            expected = self.encoder.open(as_bytes(data))
            with out:
                require(expected is not None and out.constant_time_compare(expected), "accepted another plaintext")
            require(session.last_accepted_seq == frame_seq(as_bytes(data)), "last_accepted did not move to it")
            outcome = "accepted" if as_bytes(data) == frame else "accepted another authentic frame"
        else:
            require(type(exc).__name__ == predicted, f"refused with {type(exc).__name__}, model says {predicted}")
            require(session.last_accepted_seq == last, "a refused frame moved last_accepted")
            if isinstance(exc, FrameAuthError) and not self.lenient:
                require(session.state is ChannelState.COMPROMISED, "a failed tag did not compromise the session")
                require(all(k.is_purged for k in keys), "a compromised session kept a key")
                _, after = refusal((SessionExpiredError,), lambda: session.decrypt_frame(frame))
                require(after is not None, "a compromised session accepted a frame")
            else:
                require(session.state is ChannelState.ESTABLISHED, f"a refused frame left state {session.state}")
                require(not any(k.is_purged for k in keys), "a refused frame purged a key")
                self._accept(session, frame, payload)  # the valid frame still goes through
            outcome = f"refused:{type(exc).__name__}"
        if not self.lenient:
            session.close()
        require(live_slots() == slots, "secure buffers left behind by decrypt_frame")
        return outcome


class RegistryFileTarget(Target):
    """``SensorRegistry.from_file``: a registry or ``InvalidArgumentError``; ``extend`` untouched."""

    name = "sensor_registry"

    def __init__(self) -> None:
        from importlib import resources

        from cortex_sal.keros import SensorRegistry

        self.scratch = _Scratch()
        packaged = resources.files("cortex_sal.keros").joinpath("data/sensor_models.json").read_text("utf-8")
        user = {
            "minimums": {"snr_db": 20.0, "bits": 8},
            "models": [{"model_id": "eeg_user_v1", "manufacturer": "Lab", "snr_db": 33.5, "bits": 14}],
        }
        self.docs = [json.loads(packaged), user]
        self.texts = [packaged.encode(), dump_json(user)]
        self.extend = SensorRegistry.default()
        self.extend.revoke("eeg_fp1_certified_v1/0001")

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import InvalidArgumentError
        from cortex_sal.keros import SensorRegistry

        i = (plan.base // 2) % len(self.docs)
        data = json_message(plan, self.docs[i], self.texts[i])
        path = self.scratch.write("registry.json", as_bytes(data) if is_bytes_like(data) else repr(data).encode())
        before = (self.extend.models(), set(self.extend._revoked), self.extend.min_snr_db, self.extend.min_bits)
        extend = self.extend if plan.base % 4 >= 2 else None
        registry, exc = refusal((InvalidArgumentError,), lambda: SensorRegistry.from_file(path, extend=extend))
        after = (self.extend.models(), set(self.extend._revoked), self.extend.min_snr_db, self.extend.min_bits)
        require(before == after, "loading a registry file changed the registry it extends")
        if exc is not None:
            return "refused"
        require(isinstance(registry, SensorRegistry), "from_file returned something else")
        for model in registry.models():
            require(model.model_id and "/" not in model.model_id, f"accepted model id {model.model_id!r}")
            require(math.isfinite(model.snr_db) and isinstance(model.bits, int), "accepted a non-finite model")
        require(math.isfinite(registry.min_snr_db) and isinstance(registry.min_bits, int), "bad minima accepted")
        return "loaded"


class CertificationTarget(Target):
    """``SensorCertificationAuthority.full_handshake`` (the seed's API) on mutated public inputs:
    a refusal dict that holds no key, or ``ok`` exactly for the true (pub, ack, challenge)."""

    name = "certification"

    def __init__(self) -> None:
        from cortex_sal.keros import SensorCertificationAuthority

        self.ca = SensorCertificationAuthority()
        self.tee_private = bytes(range(200, 232))
        self.pub = c_public(SENSOR_PRIVATE)
        self.challenge = hashlib.sha256(b"fuzz challenge").digest()
        key = oracle_session_key(SENSOR_PRIVATE, c_public(self.tee_private), self.challenge)
        self.ack = std_hmac.digest(key, self.challenge, "sha256")
        self.parts = (self.pub, self.ack, self.challenge)
        self.specs = (
            Spec(fields=((0, 16), (16, 32)), alternates=((0, LOW_ORDER_POINTS),)),
            Spec(fields=((0, 16), (16, 32))),
            Spec(fields=((0, 16), (16, 32))),
        )
        self.ids = (SENSOR, SENSOR + "/0042", "eeg_unknown_v9", "eeg_fp1_certified_v1x", "eeg/../x", "\u00e9",
                    SENSOR + "/\ud800", "")  # fmt: skip

    def same_point(self, pub: bytes) -> bool:
        """True if ``pub`` is another encoding of the sensor's point (X25519 ignores bit 255
        and reduces mod p, RFC 7748 section 5): the same shared secret, so a valid ACK."""
        if len(pub) != 32 or low_order(pub):
            return False
        tee = COracleX25519.from_private_bytes(self.tee_private)
        return tee.exchange(COraclePublic.from_public_bytes(pub)) == tee.exchange(
            COraclePublic.from_public_bytes(self.pub)
        )

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import X25519PrivateKey
        from cortex_sal.errors import InvalidArgumentError, WrongTypeError
        from cortex_sal.securemem import SecureKeyBuffer

        which = plan.base % 3
        parts = list(self.parts)
        parts[which] = message(plan, parts[which], self.specs[which])
        sensor_id = self.ids[(plan.base // 3) % len(self.ids)] if plan.base % 7 else SENSOR
        slots = live_slots()
        tee = X25519PrivateKey(SecureKeyBuffer(self.tee_private))
        pub, ack, challenge = parts
        result, exc = refusal(
            (WrongTypeError, InvalidArgumentError),
            lambda: self.ca.full_handshake(sensor_id, pub, ack, tee, challenge),
        )
        bad_id = sensor_id == "" or "\ud800" in sensor_id
        if exc is not None:
            require(bad_id or not all(is_bytes_like(p) for p in parts), f"bytes-like inputs raised {exc!r}")
            outcome = "raised"
        else:
            good = all(is_bytes_like(p) for p in parts) and [as_bytes(p) for p in parts[1:]] == list(self.parts[1:])
            good = good and sensor_id in (SENSOR, SENSOR + "/0042") and self.same_point(as_bytes(pub))
            require(not bad_id, "an invalid sensor id was not refused with an exception")
            require(result["status"] == ("ok" if good else "refused"), f"status {result['status']} for good={good}")
            if good:
                key = oracle_session_key(self.tee_private, self.pub, self.challenge)
                with result["session_key"] as got:
                    require(got.constant_time_compare(key), "session key differs from the independent HKDF")
            else:
                require(result["session_key"] is None and result["reason"], "a refusal carries a key or no reason")
            outcome = result["status"]
        tee.purge()
        require(live_slots() == slots, "secure buffers left behind by full_handshake")
        return outcome


# -- the record layer on a byte stream (keros.framing) -------------------------------------------

RECORD_TYPES = {1: "HANDSHAKE", 2: "DATA", 3: "CLOSE"}
CLOSE_REASONS = frozenset({0, 1, 2, 3})
RECORD_LENGTHS = (0, 1, 2, 39, 40, 41, 240, 241, 242, 0xFFFF)  # the edges of every limit


def wire_record(kind: int, body: bytes) -> bytes:
    """A record exactly as docs/protocol.md lays it out: ``type u8 || length u16 BE || body``."""
    return struct.pack(">BH", kind, len(body)) + body


def oracle_records(stream: bytes, max_body: int = 65535) -> tuple[list[tuple[str, object]], str]:
    """What a byte stream that then ends must give, written from docs/protocol.md alone: the
    records before the first error (``("DATA", body)``, ``("CLOSE", (reason, text))``) and how
    it ends: ``"eof"`` (between records), ``"closed-eof"`` (right after a CLOSE), or an error
    named for where it is found: ``"error:header"`` (unknown type, length over the limit: known
    from the 3 header bytes alone), ``"error:truncated"`` (EOF inside a record),
    ``"error:close"`` (a malformed CLOSE body), ``"error:after-close"``."""
    out: list[tuple[str, object]] = []
    at = 0
    while True:
        if at == len(stream):
            return out, "eof"
        if len(stream) - at < 3:
            return out, "error:truncated"
        kind, length = struct.unpack_from(">BH", stream, at)
        if kind not in RECORD_TYPES or length > (241 if kind == 3 else max_body):
            return out, "error:header"
        if len(stream) - at - 3 < length:
            return out, "error:truncated"
        body = stream[at + 3 : at + 3 + length]
        at += 3 + length
        if kind != 3:
            out.append((RECORD_TYPES[kind], body))
            continue
        if not body or body[0] not in CLOSE_REASONS:
            return out, "error:close"
        try:
            text = body[1:].decode("utf-8")
        except UnicodeDecodeError:
            return out, "error:close"
        out.append(("CLOSE", (body[0], text)))
        return out, ("closed-eof" if at == len(stream) else "error:after-close")


def _record_error_kind(message: str) -> str:
    """Where ``RecordReader`` found an error, from its message (the names of :func:`oracle_records`)."""
    if message.startswith("EOF inside"):
        return "error:truncated"
    if "after a CLOSE" in message:
        return "error:after-close"
    if message.startswith("unknown record type") or " record of " in message:
        return "error:header"
    if message.startswith("a CLOSE record"):
        return "error:close"
    raise OracleViolation(f"records: a RemoteProtocolError the oracle cannot place: {message}")


def cut(stream: bytes, points: Iterable[int]) -> list[bytes]:
    """``stream`` cut at ``points`` (any order; points beyond its end are ignored)."""
    edges = sorted({0, len(stream), *(p for p in points if 0 <= p <= len(stream))})
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


def read_records(chunks: Iterable[bytes], max_body: int = 65535) -> tuple[list[tuple[str, object]], str, Any]:
    """Feed ``RecordReader`` the chunks as a socket loop would (draining after each; empty
    chunks skipped, since ``b""`` is EOF), then EOF. Returns the records, the ending (as
    :func:`oracle_records` names it) and the reader."""
    from cortex_sal.errors import RemoteProtocolError
    from cortex_sal.keros.framing import EOF, NEED_DATA, Close, ReaderState, RecordReader

    reader = RecordReader(max_body=max_body)
    got: list[tuple[str, object]] = []

    def drain() -> str | None:
        while True:
            item = reader.next_record()
            if item is NEED_DATA:
                return None
            if item is EOF:
                return "closed-eof" if reader.close_record is not None else "eof"
            got.append(
                ("CLOSE", (int(item.reason), item.text)) if isinstance(item, Close) else (item.type.name, item.body)
            )

    try:
        for chunk in chunks:
            if chunk:
                reader.receive_data(chunk)
                drain()
        reader.receive_data(b"")
        end = drain()
        require(end is not None, "records: NEED_DATA after EOF")
    except RemoteProtocolError as exc:
        require(reader.state is ReaderState.FAILED, f"records: a remote error left the reader {reader.state}")
        return got, _record_error_kind(str(exc)), reader
    return got, str(end), reader


class RecordStreamTarget(Target):
    """``RecordReader`` on a mutated stream cut into chunks at points drawn from the input:
    the records and the ending are exactly :func:`oracle_records`'s; a non-bytes input is a
    ``WrongTypeError`` and changes nothing."""

    name = "records"

    def __init__(self) -> None:
        streams = [
            wire_record(1, bytes(range(32))) + wire_record(2, b"") + wire_record(3, b"\x00"),
            wire_record(1, b"\x11" * 96) + wire_record(2, bytes(range(64))) + wire_record(2, b"\x7f"),
            wire_record(2, b"x" * 40) + wire_record(3, bytes([3]) + "arrêt".encode()),
        ]
        self.bases = streams
        self.specs = [
            Spec(
                fields=_record_fields(stream),
                int_fields=tuple(
                    field
                    for at, _ in _record_fields(stream)[0::2]  # the headers
                    for field in ((at, at + 1, (0, 1, 2, 3, 4, 0xFF)), (at + 1, at + 3, RECORD_LENGTHS))
                ),
            )
            for stream in streams
        ]

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import WrongTypeError
        from cortex_sal.keros.framing import ReaderState, RecordReader

        i = plan.base % len(self.bases)
        data = message(plan, self.bases[i], self.specs[i])
        if not is_bytes_like(data):
            reader = RecordReader()
            _, exc = refusal((WrongTypeError,), lambda: reader.receive_data(data))  # type: ignore[arg-type]
            require(exc is not None, f"records: accepted a {type(data).__name__}")
            require(reader.state is ReaderState.OPEN and reader.buffered == 0, "records: a refusal changed the reader")
            return "refused type"
        stream = as_bytes(data)
        max_body = (65535, 40, 1)[plan.base // 3 % 3]
        digest = hashlib.sha256(stream).digest()
        got, end, _ = read_records(
            cut(stream, [b * (len(stream) + 1) // 256 for b in digest[: 1 + digest[0] % 8]]), max_body
        )
        want = oracle_records(stream, max_body)
        require((got, end) == want, f"records: reader gave {(got, end)!r}, the document says {want!r}")
        return end


def _record_fields(stream: bytes) -> tuple[tuple[int, int], ...]:
    """The (header, body) spans of each record of a valid stream."""
    spans = []
    at = 0
    while at < len(stream):
        length = struct.unpack_from(">H", stream, at + 1)[0]
        spans += [(at, at + 3), (at + 3, at + 3 + length)]
        at += 3 + length
    return tuple(spans)
