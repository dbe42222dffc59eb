"""Targets of the KEROS protocol layer (``cortex_sal.keros``): the v1 messages, both v1
handshake machines, v1 frames, the sensor registry file, the seed's certification API and the
record layer on a byte stream (``keros.framing``). Imports only ``keros`` and the layers below.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import itertools
import re
import struct
import unicodedata
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey as COracleEd25519Public
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as COracleX25519
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey as COraclePublic
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

from fuzzlib.oracle import (
    LOW_ORDER_POINTS,
    OracleViolation,
    Target,
    as_bytes,
    c_public,
    is_bytes_like,
    live_slots,
    low_order,
    refusal,
    require,
)
from fuzzlib.plan import Plan, Spec, message

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
    """``SensorHello`` / ``TEEHello`` / ``SensorAck``.parse: exact size or ``HandshakeMessageError``."""

    def __init__(self, which: str) -> None:
        from cortex_sal.keros.legacy_v1.messages import SensorAck, SensorHello, TEEHello

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
        from cortex_sal.errors import HandshakeMessageError

        data = message(plan, self.bases[plan.base % len(self.bases)], self.spec)
        expected = is_bytes_like(data) and len(as_bytes(data)) == self.size
        parsed, exc = refusal((HandshakeMessageError,), lambda: self.cls.parse(data))
        if exc is not None:
            require(not expected, f"{self.name}: a well-sized message was refused: {exc}")
            return "refused"
        require(expected, f"{self.name}: accepted {len(as_bytes(data))} bytes ({type(data).__name__})")
        require(parsed.to_bytes() == as_bytes(data), f"{self.name}: to_bytes() does not give the input back")
        return "parsed"


class GatewayHelloTarget(Target):
    """``GatewayHandshake.receive_sensor_hello``: accepted iff the model of v1 says so.

    Refusal is terminal by design (FAILED, nothing held); the shared registry is
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
        from cortex_sal.errors import HandshakeMessageError, HandshakeStateError
        from cortex_sal.keros import GatewayHandshake, State

        base = self.bases[plan.base % len(self.bases)]
        data = message(plan, base, self.spec)
        expected = self.expected(data)
        slots = live_slots()
        gateway = GatewayHandshake(GATEWAY, registry=self.registry, clock=self.clock)
        out, exc = refusal((HandshakeMessageError,), lambda: gateway.receive_sensor_hello(data))
        if exc is None:
            require(expected is not None, "gateway accepted a SensorHello the model refuses")
            require(gateway.state is State.HANDSHAKE, f"accepted hello left state {gateway.state}")
            require(gateway.sensor_id == expected, "gateway admitted another sensor than the hello names")
            require(isinstance(out, bytes) and len(out) == 96, "TEEHello is not 96 bytes")
            require(out[:32] == hashlib.sha256(GATEWAY.encode()).digest(), "TEEHello names another gateway")
            gateway.abort()
            outcome = "accepted"
        else:
            require(expected is None, f"gateway refused a valid SensorHello: {exc}")
            require(gateway.state is State.FAILED, f"refused hello left state {gateway.state}")
            require(gateway._session_key is None and gateway._ephemeral is None, "a refused machine holds a key")
            require(gateway.session_id is None, "a refused machine has a session id")
            _, again = refusal((HandshakeStateError,), lambda: gateway.receive_sensor_hello(base))
            require(again is not None, "a failed handshake is terminal, yet it took another hello")
            _, none = refusal((HandshakeStateError,), lambda: gateway.session())
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
        from cortex_sal.errors import HandshakeMessageError
        from cortex_sal.keros import GatewayHandshake, SensorHandshake, State

        slots = live_slots()
        sensor = SensorHandshake(SENSOR, clock=self.clock)
        gateway = GatewayHandshake(GATEWAY, registry=self.registry, clock=self.clock)
        ack = sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start()))
        data = message(plan, ack, self.spec)
        key = gateway._session_key
        _, exc = refusal((HandshakeMessageError,), lambda: gateway.receive_sensor_ack(data))
        if is_bytes_like(data) and as_bytes(data) == ack:
            require(exc is None, f"the true ACK was refused: {exc}")
            require(gateway.state is State.ESTABLISHED, "the true ACK did not establish")
            with sensor.session() as s, gateway.session() as g, g.decrypt_frame(s.encrypt_frame(b"x")) as got:
                require(got.constant_time_compare(b"x"), "sessions do not interoperate")
            outcome = "established"
        else:
            require(exc is not None, "a wrong ACK established the session")
            require(gateway.state is State.FAILED, f"a wrong ACK left state {gateway.state}")
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
        from cortex_sal.clock import ManualClock

        self.clock = ManualClock(T0)
        self.id_hash = hashlib.sha256(SENSOR.encode()).digest()
        self.bases = [
            hashlib.sha256(GATEWAY.encode()).digest() + c_public(p) + hashlib.sha256(p).digest()
            for p in GATEWAY_PRIVATES
        ]
        self.spec = Spec(fields=((0, 32), (32, 64), (64, 96)), alternates=((1, LOW_ORDER_POINTS),))

    def run(self, plan: Plan) -> str:
        from cortex_sal.crypto import X25519PrivateKey
        from cortex_sal.errors import HandshakeMessageError
        from cortex_sal.keros import SensorHandshake, State
        from cortex_sal.securemem import SecureKeyBuffer

        slots = live_slots()
        data = message(plan, self.bases[plan.base % len(self.bases)], self.spec)
        raw = as_bytes(data)
        expected = is_bytes_like(data) and len(raw) == 96 and not low_order(raw[32:64])
        sensor = SensorHandshake(
            SENSOR, clock=self.clock, ephemeral_key=X25519PrivateKey(SecureKeyBuffer(SENSOR_PRIVATE))
        )
        sensor.start()
        ack, exc = refusal((HandshakeMessageError,), lambda: sensor.receive_tee_hello(data))
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
            require(sensor.state is State.FAILED, f"refused TEEHello left state {sensor.state}")
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
        from cortex_sal.clock import ManualClock

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
        from cortex_sal.keros import State

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
                require(session.state is State.FAILED, "a failed tag did not compromise the session")
                require(all(k.is_purged for k in keys), "a compromised session kept a key")
                _, after = refusal((SessionExpiredError,), lambda: session.decrypt_frame(frame))
                require(after is not None, "a compromised session accepted a frame")
            else:
                require(session.state is State.ESTABLISHED, f"a refused frame left state {session.state}")
                require(not any(k.is_purged for k in keys), "a refused frame purged a key")
                self._accept(session, frame, payload)  # the valid frame still goes through
            outcome = f"refused:{type(exc).__name__}"
        if not self.lenient:
            session.close()
        require(live_slots() == slots, "secure buffers left behind by decrypt_frame")
        return outcome


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


# -- KEROS v2: certificates, the Noise XX handshake, the Noise transport ------------------------
#
# The oracles are written from docs/certificates.md and docs/protocol.md ("KEROS v2"), not from
# the code: an independent parser of the certificate layout with ``cryptography``'s Ed25519, and
# the documented refusals and terminal states of the handshake and the transport.

CERT_CONTEXT = b"cortex-sal certificate v1\x00"
CERT_SERIAL = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._-]*")
CERT_FORBIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})
CERT_NOW = int(T0)
SENSOR_KIND, GATEWAY_KIND = 1, 2


def cert_fields(cert: bytes) -> tuple[tuple[int, int], ...]:
    """The spans of a well-formed certificate's fields (docs/certificates.md, section 1)."""
    s = cert[86]
    n = cert[87 + s]
    return ((0, 4), (4, 5), (5, 6), (6, 38), (38, 46), (46, 54), (54, 86), (86, 87), (87, 87 + s),
            (87 + s, 88 + s), (88 + s, 88 + s + n), (88 + s + n, 152 + s + n))  # fmt: skip


def oracle_parse_certificate(data: bytes) -> dict[str, Any] | None:
    """The fields of a certificate that parses strictly, or None (reason ``malformed``)."""
    size = len(data)
    if not 154 <= size <= 280 or data[:4] != b"CXCT" or data[4] != 1 or data[5] not in (SENSOR_KIND, GATEWAY_KIND):
        return None
    not_before, not_after = struct.unpack_from(">QQ", data, 38)
    s = data[86]
    if not_before >= not_after or not 1 <= s <= 64 or 88 + s > size:
        return None
    serial, n = data[87 : 87 + s], data[87 + s]
    if CERT_SERIAL.fullmatch(serial) is None or not 1 <= n <= 64 or size != 152 + s + n:
        return None
    try:
        name = data[88 + s : 88 + s + n].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if name != name.strip() or any(unicodedata.category(c) in CERT_FORBIDDEN for c in name):
        return None
    if data[5] == SENSOR_KIND and "/" in name:
        return None
    return {"kind": data[5], "subject": data[6:38], "not_before": not_before, "not_after": not_after,
            "issuer": data[54:86], "serial": serial.decode("ascii"), "name": name,
            "signed": data[: 88 + s + n], "signature": data[88 + s + n :]}  # fmt: skip


def oracle_certificate_reason(
    data: bytes, *, remote_static: bytes, kind: int, roots: dict[bytes, tuple[int, bytes]],
    revoked: dict[bytes, set[str]], now: int, admitted: set[str],
) -> str:  # fmt: skip
    """``"ok"`` or the first ``reason`` of the documented check order (certificates.md, section 2).

    ``roots`` maps a trusted root's key id to (the kind it issues, its Ed25519 public key).
    """
    fields = oracle_parse_certificate(data)
    if fields is None:
        return "malformed"
    if fields["issuer"] not in roots:
        return "unknown_issuer"
    issues, public = roots[fields["issuer"]]
    try:
        COracleEd25519Public.from_public_bytes(public).verify(fields["signature"], CERT_CONTEXT + fields["signed"])
    except InvalidSignature:
        return "bad_signature"
    if fields["kind"] != kind or issues != kind:
        return "wrong_kind"
    if now < fields["not_before"]:
        return "not_yet_valid"
    if now > fields["not_after"]:
        return "expired"
    if fields["subject"] != remote_static:
        return "wrong_key"
    if fields["serial"] in revoked.get(fields["issuer"], set()):
        return "revoked"
    if kind == SENSOR_KIND:
        sensor_id = f"{fields['name']}/{fields['serial']}"
        require(sensor_id in admitted, f"the oracle cannot decide the registry for {sensor_id}")
    return "ok"


class _V2World:
    """Two trusted CAs (a manufacturer, a site), an untrusted one, keys and certificates."""

    def __init__(self) -> None:
        from cortex_sal.crypto import X25519PrivateKey
        from cortex_sal.keros.certificate import CertificateAuthority, TrustStore

        self.maker = CertificateAuthority.generate("manufacturer", "Fuzz Devices")
        self.site = CertificateAuthority.generate("site", "Fuzz Ward")
        self.rogue = CertificateAuthority.generate("manufacturer", "Fuzz Rogue")
        self.s_key, self.g_key = X25519PrivateKey.generate(), X25519PrivateKey.generate()
        self.s_pub, self.g_pub = self.s_key.public_bytes(), self.g_key.public_bytes()
        window = {"not_before": CERT_NOW - 86_400, "not_after": CERT_NOW + 10 * 365 * 86_400}
        self.s_cert = self.maker.issue_sensor(self.s_pub, model_id=SENSOR, serial="SN-1", **window)
        self.g_cert = self.site.issue_gateway(self.g_pub, gateway_name="gw-1", serial="GW-1", **window)
        self.trust = TrustStore([self.maker.root, self.site.root])
        self.revoked = {self.maker.root.key_id: {"SN-R"}}
        self.trust.add_revocation_list(self.maker.revocation_list(["SN-R"], issued_at=CERT_NOW - 10))
        self.roots = {
            self.maker.root.key_id: (SENSOR_KIND, self.maker.root.public_key),
            self.site.root.key_id: (GATEWAY_KIND, self.site.root.public_key),
        }

    def close(self) -> None:
        for thing in (self.s_key, self.g_key, self.maker, self.site, self.rogue):
            thing.purge()


class CertificateTarget(Target):
    """``parse_certificate`` and ``verify_certificate`` (as a gateway verifies a sensor's):
    only ``CertificateError`` (``WrongTypeError`` for a non-bytes), with exactly the ``reason``
    the documented check order gives; what verifies is what the CA signed."""

    name = "certificate"

    def __init__(self) -> None:
        self.world = w = _V2World()
        other = c_public(bytes(range(50, 82)))
        near = {"not_before": CERT_NOW - 86_400, "not_after": CERT_NOW + 86_400}
        self.bases = [
            w.s_cert,
            w.g_cert,
            w.maker.issue_sensor(
                w.s_pub, model_id=SENSOR, serial="SN-2", not_before=CERT_NOW + 1, not_after=CERT_NOW + 86_400
            ),
            w.maker.issue_sensor(
                w.s_pub, model_id=SENSOR, serial="SN-3", not_before=CERT_NOW - 86_400, not_after=CERT_NOW - 1
            ),
            w.maker.issue_sensor(other, model_id=SENSOR, serial="SN-4", **near),
            w.maker.issue_sensor(w.s_pub, model_id=SENSOR, serial="SN-R", **near),
            w.rogue.issue_sensor(w.s_pub, model_id=SENSOR, serial="SN-1", **near),
        ]
        stamps = (0, 1, CERT_NOW - 1, CERT_NOW, CERT_NOW + 1, 2**63, 2**64 - 1)
        ids = (w.maker.root.key_id, w.site.root.key_id, w.rogue.root.key_id, bytes(32))
        names = tuple(x.encode() for x in (SENSOR + "/x", " " + SENSOR[1:], SENSOR[:-1] + "\u200b", "a\x00b"))
        self.specs = [
            Spec(
                fields=cert_fields(cert),
                int_fields=(
                    (4, 5, (0, 1, 2)),
                    (5, 6, (0, 1, 2, 3)),
                    (38, 46, stamps),
                    (46, 54, stamps),
                    (86, 87, (0, 1, 64, 65, 255)),
                ),
                alternates=((3, (w.s_pub, w.g_pub, other, *LOW_ORDER_POINTS[:2])), (6, ids), (10, names)),
            )
            for cert in self.bases
        ]
        self.admitted = {f"{SENSOR}/SN-{i}" for i in ("1", "2", "3", "4", "R")}

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import CertificateError, WrongTypeError
        from cortex_sal.keros.certificate import parse_certificate, verify_certificate

        w = self.world
        base = plan.base % len(self.bases)
        data = message(plan, self.bases[base], self.specs[base])
        slots = live_slots()
        parsed, exc = refusal((CertificateError, WrongTypeError), lambda: parse_certificate(data))  # type: ignore[arg-type]  # any object, on purpose
        if not is_bytes_like(data):
            require(isinstance(exc, WrongTypeError), f"certificate: a {type(data).__name__} was not a WrongTypeError")
            return "refused:WrongTypeError"
        require(not isinstance(exc, WrongTypeError), f"certificate: WrongTypeError for a {type(data).__name__}")
        raw = as_bytes(data)
        fields = oracle_parse_certificate(raw)
        require((exc is None) == (fields is not None), f"certificate: parse said {exc}, the layout says {fields}")
        if fields is not None:
            got = (int(parsed.kind), parsed.subject_key, parsed.serial, parsed.name, parsed.not_before,
                   parsed.not_after, parsed.issuer_key_id, parsed.tbs, parsed.signature)  # fmt: skip
            want = tuple(fields[k] for k in ("kind", "subject", "serial", "name", "not_before", "not_after", "issuer",
                                              "signed", "signature"))  # fmt: skip
            require(got == want, f"certificate: parsed {got}, the layout says {want}")
        expected = oracle_certificate_reason(
            raw, remote_static=w.s_pub, kind=SENSOR_KIND, roots=w.roots, revoked=w.revoked, now=CERT_NOW,
            admitted=self.admitted,
        )  # fmt: skip
        verified, exc = refusal(
            (CertificateError,),
            lambda: verify_certificate(data, remote_static=w.s_pub, kind="sensor", trust=w.trust, now=CERT_NOW),  # type: ignore[arg-type]  # bytes-like, on purpose
        )
        require(live_slots() == slots, "certificate: verification left a secure buffer behind")
        if exc is None:
            require(expected == "ok", f"certificate: verified, the documented checks say {expected}")
            require(raw in self.bases, "certificate: a certificate the CA never issued verified")
            require(verified.serial == fields["serial"], "certificate: verified another serial")  # type: ignore[index]
            return "verified"
        reason = str(getattr(exc, "reason", ""))
        require(reason == expected, f"certificate: refused as {reason!r}, the documented checks say {expected!r}")
        return f"refused:{reason}"

    def close(self) -> None:
        self.world.close()


def _failed(party: Any) -> bool:
    return str(party.state.name) == "FAILED"


class NoiseHandshakeTarget(Target):
    """Message 2 at the sensor (``SensorV2.receive_gateway_hello``) or message 3 at the gateway
    (``GatewayV2.receive_sensor_finish``): accepted only as sent (every byte after ``e`` is
    AEAD-protected, ``e`` is in the hash); any refusal (``HandshakeMessageError``, the other
    ``HandshakeError``s, ``CertificateError``) leaves the party FAILED with every secret purged
    and refusing every later call (``HandshakeStateError``); a wrong type (``WrongTypeError``)
    changes nothing and the genuine message still completes."""

    name = "noise_handshake"

    def __init__(self) -> None:
        from cortex_sal.clock import ManualClock

        self.world = _V2World()
        self.clock = ManualClock(float(CERT_NOW))
        self.run_genuine()  # warm-up: per-thread scratch state is allocated once, not per handshake

    def parties(self) -> tuple[Any, Any]:
        from cortex_sal.keros.v2 import GatewayV2, SensorV2

        w = self.world
        return (SensorV2(w.s_key, w.s_cert, w.trust, clock=self.clock),
                GatewayV2(w.g_key, w.g_cert, w.trust, clock=self.clock))  # fmt: skip

    def run_genuine(self) -> None:
        sensor, gateway = self.parties()
        try:
            gateway.receive_sensor_finish(sensor.receive_gateway_hello(gateway.receive_sensor_hello(sensor.start())))
        finally:
            sensor.close()
            gateway.close()

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import (
            CertificateError,
            HandshakeError,
            HandshakeMessageError,
            HandshakeStateError,
            WrongTypeError,
        )

        slots = live_slots()
        sensor, gateway = self.parties()
        try:
            m2 = gateway.receive_sensor_hello(sensor.start())
            if plan.base % 2 == 0:
                party, other, genuine, feed = sensor, gateway, m2, sensor.receive_gateway_hello
                spec = Spec(fields=((0, 32), (32, 80), (80, len(m2) - 16), (len(m2) - 16, len(m2))),
                            alternates=((0, LOW_ORDER_POINTS),))  # fmt: skip
            else:
                genuine = sensor.receive_gateway_hello(m2)
                party, other, feed = gateway, sensor, gateway.receive_sensor_finish
                spec = Spec(fields=((0, 48), (48, len(genuine) - 16), (len(genuine) - 16, len(genuine))))
            data = message(plan, genuine, spec)
            allowed = (HandshakeError, HandshakeMessageError, CertificateError, WrongTypeError)
            result, exc = refusal(allowed, lambda: feed(data))
            same = is_bytes_like(data) and as_bytes(data) == genuine
            if exc is None:
                require(same, f"{self.name}: a message that was not sent was accepted")
                if party is sensor:
                    gateway.receive_sensor_finish(result)
                require(sensor.handshake_hash == gateway.handshake_hash, f"{self.name}: the two ends disagree")
                return "established"
            if isinstance(exc, WrongTypeError):
                require(type(data) is not bytes, f"{self.name}: WrongTypeError for bytes")
                require(not _failed(party), f"{self.name}: a wrong type failed the party")
                result = feed(genuine)
                if party is sensor:
                    gateway.receive_sensor_finish(result)
                return "refused:WrongTypeError"
            require(is_bytes_like(data), f"{self.name}: a {type(data).__name__} was not a WrongTypeError")
            require(not same, f"{self.name}: the genuine message was refused: {exc}")
            require(_failed(party), f"{self.name}: a refused message did not leave the party FAILED")
            _, again = refusal((HandshakeError, HandshakeStateError), lambda: feed(genuine))
            require(again is not None, f"{self.name}: a FAILED party took the genuine message")
            other.close()
            require(live_slots() == slots, f"{self.name}: a FAILED party still holds secure buffers")
            return f"refused:{type(exc).__name__}"
        finally:
            sensor.close()
            gateway.close()
            require(live_slots() == slots, f"{self.name}: closing left a secure buffer behind")

    def close(self) -> None:
        self.world.close()


class NoiseTransportTarget(Target):
    """``NoiseTransport.decrypt`` in lossy mode (``base`` even) or ordered mode (odd): a message
    is opened only as sent; a refused one is exactly the documented error (``FrameFormatError``:
    truncated, over 65535 bytes, the reserved nonce; ``ReplayAttackError``: a nonce already
    accepted or more than ``window`` behind; ``FrameAuthError``: the tag), changes nothing, and
    the genuine message still opens."""

    name = "noise_transport"

    def __init__(self) -> None:
        from cortex_sal.clock import ManualClock
        from cortex_sal.keros.v2 import GatewayV2, SensorV2, establish_v2_in_process

        self.world = w = _V2World()
        clock = ManualClock(float(CERT_NOW))
        self.pairs = [
            establish_v2_in_process(
                SensorV2(w.s_key, w.s_cert, w.trust, clock=clock),
                GatewayV2(w.g_key, w.g_cert, w.trust, clock=clock),
                lossy=lossy,
            )
            for lossy in (True, False)
        ]
        self.counter = 0

    def predict(self, data: object, genuine: bytes, lossy: bool, highest: int, window: int) -> str:
        if not is_bytes_like(data):
            return "WrongTypeError"
        raw = as_bytes(data)
        if raw == genuine:
            return "accept"
        head = 8 if lossy else 0
        if len(raw) < head + 16 or len(raw) - head > 65535:
            return "FrameFormatError"
        if lossy:
            nonce = struct.unpack_from(">Q", raw)[0]
            if nonce == 2**64 - 1:
                return "FrameFormatError"
            if nonce <= highest or nonce < highest - window:  # every nonce up to the highest was accepted
                return "ReplayAttackError"
        return "FrameAuthError"

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import FrameAuthError, FrameFormatError, ReplayAttackError, WrongTypeError

        lossy = plan.base % 2 == 0
        up, down = self.pairs[0 if lossy else 1]
        self.counter += 1
        payload = hashlib.sha256(self.counter.to_bytes(8, "big")).digest()[: plan.base % 33]
        genuine = up.encrypt(payload)
        head = 8 if lossy else 0
        n = up.send_nonce - 1
        nonces = (0, n, n - 1, n + 1, n - down.window, n - down.window - 1, 2**32 - 1, 2**32, 17 * 2**32,
                  2**64 - 2, 2**64 - 1)  # fmt: skip
        fields = ((0, head), (head, len(genuine) - 16), (len(genuine) - 16, len(genuine)))
        spec = Spec(fields=fields[1:] if not lossy else fields, int_fields=((0, 8, nonces),) if lossy else ())
        data = message(plan, genuine, spec)
        before = (down.recv_nonce, down.recv_epoch, down.recv_highest)
        expected = self.predict(data, genuine, lossy, down.recv_highest, down.window)
        slots = live_slots()
        opened, exc = refusal(
            (FrameAuthError, FrameFormatError, ReplayAttackError, WrongTypeError), lambda: down.decrypt(data)
        )
        require(live_slots() == slots, f"{self.name}: a decryption left a secure buffer behind")
        if exc is None:
            require(expected == "accept", f"{self.name}: opened a message that was not sent (model: {expected})")
            require(opened == payload, f"{self.name}: opened to other bytes")
            return "opened"
        require(type(exc).__name__ == expected, f"{self.name}: refused with {type(exc).__name__}, model: {expected}")
        require((down.recv_nonce, down.recv_epoch, down.recv_highest) == before, f"{self.name}: a refusal moved state")
        require(down.decrypt(genuine) == payload, f"{self.name}: the genuine message no longer opens")
        return f"refused:{expected}"

    def close(self) -> None:
        for up, down in self.pairs:
            up.close()
            down.close()
        self.world.close()


CRL_CONTEXT = b"cortex-sal revocation list v1\x00"


def oracle_parse_revocation_list(data: bytes) -> dict[str, Any] | None:
    """The fields of a revocation list that parses strictly (certificates.md, section 3), or None."""
    if len(data) < 49 + 64:
        return None
    magic, version, issuer, issued_at, count = struct.unpack_from(">4sB32sQI", data)
    if magic != b"CXRL" or version != 1 or count > 1_000_000:
        return None
    end, pos, serials = len(data) - 64, 49, []
    for _ in range(count):
        if pos >= end:
            return None
        n = data[pos]
        raw = data[pos + 1 : pos + 1 + n]
        if not 1 <= n <= 64 or pos + 1 + n > end or (serials and raw <= serials[-1]):
            return None
        if CERT_SERIAL.fullmatch(raw) is None:
            return None
        serials.append(raw)
        pos += 1 + n
    if pos != end:
        return None
    return {"issuer": issuer, "issued_at": issued_at, "serials": frozenset(s.decode("ascii") for s in serials),
            "signed": data[:end], "signature": data[end:]}  # fmt: skip


class RevocationListTarget(Target):
    """``TrustStore.add_revocation_list`` on a store that already holds a list of the
    manufacturer's: only ``CertificateError`` (``WrongTypeError`` for a non-bytes) with the
    documented ``reason`` (``malformed``, ``unknown_issuer``, ``bad_signature``, ``stale``: older,
    or different with the same date); a refused list changes nothing in the store, an accepted
    one replaces the CA's list."""

    name = "revocation_list"

    def __init__(self) -> None:
        w = self.world = _V2World()
        self.held = w.maker.revocation_list(["SN-A"], issued_at=CERT_NOW - 100)
        self.bases = [
            w.maker.revocation_list(["SN-B", "SN-C"], issued_at=CERT_NOW),
            w.maker.revocation_list([], issued_at=CERT_NOW + 1),
            w.maker.revocation_list(["SN-A", "SN-Z"], issued_at=CERT_NOW - 100),
            w.maker.revocation_list(["SN-0"], issued_at=CERT_NOW - 200),
            w.site.revocation_list(["GW-9", "GW-a"], issued_at=CERT_NOW),
            w.rogue.revocation_list(["SN-B"], issued_at=CERT_NOW),
            self.held,
        ]
        dates = (0, CERT_NOW - 200, CERT_NOW - 101, CERT_NOW - 100, CERT_NOW - 99, CERT_NOW, 2**64 - 1)
        ids = (w.maker.root.key_id, w.site.root.key_id, w.rogue.root.key_id, bytes(32))
        self.specs = []
        for crl in self.bases:
            spans, pos = [(0, 4), (4, 5), (5, 37), (37, 45), (45, 49)], 49
            while pos < len(crl) - 64:
                spans.append((pos, pos + 1 + crl[pos]))
                pos += 1 + crl[pos]
            spans.append((len(crl) - 64, len(crl)))
            counts = (0, 1, 2, 3, 1_000_000, 1_000_001, 2**32 - 1)
            ints = ((4, 5, (0, 1, 2)), (37, 45, dates), (45, 49, counts))
            self.specs.append(Spec(fields=tuple(spans), int_fields=ints, alternates=((2, ids),)))

    def expected(self, raw: bytes) -> str:
        w = self.world
        fields = oracle_parse_revocation_list(raw)
        if fields is None:
            return "malformed"
        if fields["issuer"] not in w.roots:
            return "unknown_issuer"
        try:
            public = w.roots[fields["issuer"]][1]
            COracleEd25519Public.from_public_bytes(public).verify(fields["signature"], CRL_CONTEXT + fields["signed"])
        except InvalidSignature:
            return "bad_signature"
        if fields["issuer"] == w.maker.root.key_id:  # the store holds the maker's list of CERT_NOW - 100
            older = fields["issued_at"] < CERT_NOW - 100
            if older or (fields["issued_at"] == CERT_NOW - 100 and fields["serials"] != {"SN-A"}):
                return "stale"
        return "ok"

    def run(self, plan: Plan) -> str:
        from cortex_sal.errors import CertificateError, WrongTypeError
        from cortex_sal.keros.certificate import TrustStore

        w = self.world
        base = plan.base % len(self.bases)
        data = message(plan, self.bases[base], self.specs[base])
        trust = TrustStore([w.maker.root, w.site.root])
        trust.add_revocation_list(self.held)
        view = {kid: trust.revocation_list(kid) for kid in w.roots}
        _, exc = refusal((CertificateError, WrongTypeError), lambda: trust.add_revocation_list(data))  # type: ignore[arg-type]  # any object, on purpose
        if not is_bytes_like(data):
            require(isinstance(exc, WrongTypeError), f"revocation_list: a {type(data).__name__} was accepted")
            require({kid: trust.revocation_list(kid) for kid in w.roots} == view, "revocation_list: the store moved")
            return "refused:WrongTypeError"
        raw = as_bytes(data)
        expected = self.expected(raw)
        if exc is not None:
            reason = str(getattr(exc, "reason", type(exc).__name__))
            require(
                reason == expected, f"revocation_list: refused as {reason!r}, the documented checks say {expected!r}"
            )
            require(
                {kid: trust.revocation_list(kid) for kid in w.roots} == view,
                "revocation_list: a refusal moved the store",
            )
            return f"refused:{reason}"
        require(expected == "ok", f"revocation_list: accepted, the documented checks say {expected}")
        fields = oracle_parse_revocation_list(raw)
        assert fields is not None
        require(raw in self.bases, "revocation_list: a list no CA signed was accepted")
        held = trust.revocation_list(fields["issuer"])
        require(held is not None and (held.issued_at, held.serials) == (fields["issued_at"], fields["serials"]),
                "revocation_list: the store does not hold the list it accepted")  # fmt: skip
        require(all(trust.is_revoked(fields["issuer"], s) for s in fields["serials"]), "revocation_list: not revoked")
        return "accepted"

    def close(self) -> None:
        self.world.close()
