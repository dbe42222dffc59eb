"""One sensor connection as a sans-IO machine, on each side (h11's style: no socket here).

:class:`GatewayConnection` is what the gateway's loop runs per TCP connection: it is fed the
bytes ``recv`` returned (``b""`` for EOF) and answers with events - bytes to send, the sensor
admitted, a frame's result, the end of the connection with its reason. Under it: the record
layer (:mod:`cortex_sal.keros.framing`), the KEROS v2 handshake (:class:`~cortex_sal.keros.v2.GatewayV2`)
and the shield (:meth:`~cortex_sal.sal.shield.CognitiveShield.attach_sensor`,
:meth:`~cortex_sal.sal.shield.CognitiveShield.ingest_frame`, which decrypts each frame straight
into locked memory). :class:`SensorConnection` is the sensor's side.

Every refusal ends the connection with a stable reason (a metric label, :data:`REASONS`) and a
CLOSE record; nothing a peer sends can raise out of :meth:`GatewayConnection.receive_data`
except a bug. When the connection ends, for whatever reason, every secret of it (the handshake
state, the transport keys) is purged: :meth:`GatewayConnection.close` detaches the sensor from
the shield, which closes its transport.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ..clock import SYSTEM_CLOCK, Clock
from ..crypto import X25519PrivateKey
from ..errors import (
    CertificateError,
    CortexError,
    HandshakeError,
    LocalProtocolError,
    RemoteProtocolError,
)
from ..keros.certificate import TrustStore, VerifiedCertificate
from ..keros.framing import EOF, NEED_DATA, Close, CloseReason, Record, RecordReader, RecordType, RecordWriter
from ..keros.noise.transport import NoiseTransport
from ..keros.registry import MAX_CHANNELS, SensorRegistry
from ..keros.v2 import V1_HELLO_SIZE, GatewayV2, SensorV2
from ..sal.frame import FRAME_PAYLOAD_BYTES
from ..sal.results import FrameResult, RefusalReason, Refused, Registered
from ..sal.shield import CognitiveShield

log = logging.getLogger("cortex_sal.gateway")

__all__ = [
    "MAX_HANDSHAKE_RECORD",
    "MAX_RECORD",
    "REASONS",
    "Admitted",
    "Ended",
    "FrameHandled",
    "GatewayConnection",
    "Send",
    "SensorConnection",
]

# why a connection ended: the metric labels (stable), one per cause
REASONS = (
    "normal",  # the peer sent CLOSE NORMAL, or EOF after streaming
    "eof_in_handshake",  # the peer hung up (or sent CLOSE) before the handshake was done
    "record",  # a malformed record, a record too large, garbage
    "handshake",  # a malformed or replayed handshake message
    "v1_refused",
    "certificate",  # the sensor's certificate refused (unknown CA, expired, bad signature)
    "revoked",  # revoked at the handshake, or while connected
    "not_admitted",  # the shield's registry refused the model, the minima, or the sensor is attached twice
    "channel",  # a transport record failed (tampered, replayed, reordered)
    "expired",  # the transport's lifetime or nonce space ended: the sensor re-handshakes
    "lifetime",  # the session reached the gateway's session lifetime (4 h): the sensor re-handshakes
    "frame",  # a frame the channel opened but whose size is not a frame's
    "handshake_timeout",
    "idle_timeout",
    "slow_reader",
    "superseded",  # the same sensor connected again
    "shutdown",  # the gateway is stopping (SIGTERM)
    "limit",  # the connection limit, or the source address's rate limit (refused at accept)
    "evicted",  # the handshake slots were full: the oldest handshake in progress gave way
    "error",  # anything else (logged)
)


class Stage(Enum):
    HELLO = "hello"  # awaiting Noise message 1
    FINISH = "finish"  # message 2 sent, awaiting message 3
    STREAMING = "streaming"  # admitted: DATA records are frames
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes


@dataclass(frozen=True, slots=True)
class Admitted:
    sensor_id: str
    log_id: str  # the pseudonym the logs and metrics use
    peer: VerifiedCertificate


@dataclass(frozen=True, slots=True)
class FrameHandled:
    result: FrameResult
    seq: int  # the frame's number on this connection (1, 2, ...)
    received: float  # time.perf_counter() when its record was complete


@dataclass(frozen=True, slots=True)
class Ended:
    reason: str  # one of REASONS
    detail: str  # for the log: no identifier, no key, no sample

    @property
    def normal(self) -> bool:
        return self.reason == "normal"


Event = Send | Admitted | FrameHandled | Ended

MAX_HANDSHAKE_RECORD = 4096  # the largest handshake record body (Noise XX messages are < 1 KiB)
# the largest DATA record body: a frame of MAX_CHANNELS channels (32 x 1024 bytes) and its channel's
# overhead (16 bytes, 24 for a lossy transport), with room to spare; Noise messages are <= 65535
MAX_RECORD = MAX_CHANNELS * FRAME_PAYLOAD_BYTES + 256

_CHANNEL_REFUSALS = frozenset({RefusalReason.FRAME_AUTH, RefusalReason.REPLAY, RefusalReason.CHANNEL_ERROR})


class GatewayConnection:
    """The gateway's side of one sensor connection (sans-IO)."""

    def __init__(
        self,
        *,
        static_key: X25519PrivateKey,
        certificate: bytes,
        trust: TrustStore,
        shield: CognitiveShield,
        registry: SensorRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_record: int = MAX_RECORD,
        transport_options: dict[str, object] | None = None,
        supersede: Callable[[str], None] | None = None,
        ephemeral: X25519PrivateKey | None = None,
        max_handshake_record: int = MAX_HANDSHAKE_RECORD,
    ) -> None:
        # ``ephemeral``: an injected Noise ephemeral (known-answer tests, the residue proof), taken
        # over by the handshake (purged with it); None: drawn in locked memory, as in production
        self._shield = shield
        # one read brings at most read_size bytes (4 records); a partial record may be held before it.
        # DATA records (frames: up to 32 channels, 32 KiB) are bounded by max_record, HANDSHAKE
        # records by max_handshake_record (4096, as before multi-channel); before the sensor is
        # admitted a read brings at most 4 handshake records
        self._max_record = max_record
        self._max_handshake_record = min(max_handshake_record, max_record)
        self._reader = RecordReader(
            max_body=max_record, max_buffer=4 * max_record + 3 + max_record,
            max_handshake_body=self._max_handshake_record,
        )  # fmt: skip
        self._writer = RecordWriter()
        self._handshake: GatewayV2 | None = GatewayV2(
            static_key, certificate, trust, registry=registry if registry is not None else shield.registry, clock=clock,
            ephemeral=ephemeral,
        )  # fmt: skip
        self._transport_options = dict(transport_options or {})
        self._supersede = supersede
        self.stage = Stage.HELLO
        self.sensor_id: str | None = None
        self.log_id: str | None = None
        self.frames = 0
        self.ended: Ended | None = None

    @property
    def read_size(self) -> int:
        """The most one read should bring: 4 records (handshake records until the sensor is admitted)."""
        return 4 * (self._max_record if self.stage is Stage.STREAMING else self._max_handshake_record)

    # -- input ------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed what ``recv`` returned (``b""``: EOF); returns what to do, in order."""
        if self.stage is Stage.CLOSED:
            return []
        events: list[Event] = []
        try:
            self._reader.receive_data(data)
            while self.stage is not Stage.CLOSED:
                item = self._reader.next_record()
                if item is NEED_DATA:
                    break
                if item is EOF:
                    events += self._end("normal" if self.stage is Stage.STREAMING else "eof_in_handshake", "EOF")
                    break
                if isinstance(item, Close):
                    why = "normal" if self.stage is Stage.STREAMING else "eof_in_handshake"
                    events += self._end(why, f"peer closed ({item.reason.name})", reply=False)
                    break
                assert isinstance(item, Record)
                events += self._record(item)
        except (RemoteProtocolError, LocalProtocolError) as exc:
            events += self._end("record", str(exc), close=CloseReason.PROTOCOL_ERROR)
        except CortexError as exc:  # pragma: no cover - each record path below catches its own
            events += self._end("error", f"{type(exc).__name__}: {exc}", close=CloseReason.PROTOCOL_ERROR)
        return events

    def _record(self, record: Record) -> list[Event]:
        if self.stage is Stage.STREAMING:
            if record.type is not RecordType.DATA:
                return self._end("record", "a handshake record after the handshake", close=CloseReason.PROTOCOL_ERROR)
            return self._frame(record.body)
        if record.type is not RecordType.HANDSHAKE:
            return self._end("record", "a data record before the handshake", close=CloseReason.PROTOCOL_ERROR)
        if self.stage is Stage.HELLO:
            return self._hello(record.body)
        return self._finish(record.body)

    def _hello(self, body: bytes) -> list[Event]:
        assert self._handshake is not None
        if len(body) == V1_HELLO_SIZE:
            return self._end("v1_refused", "a KEROS v1 hello: v1 is unauthenticated", close=CloseReason.REFUSED)
        try:
            reply = self._handshake.receive_sensor_hello(body)
        except HandshakeError as exc:
            return self._end("handshake", str(exc), close=CloseReason.PROTOCOL_ERROR)
        self.stage = Stage.FINISH
        return [Send(self._writer.handshake(reply))]

    def _finish(self, body: bytes) -> list[Event]:
        handshake = self._handshake
        assert handshake is not None
        try:
            peer = handshake.receive_sensor_finish(body)
            transport = handshake.transport(**self._transport_options)
        except CertificateError as exc:
            reason = "revoked" if "revoked" in exc.reason.value else "certificate"
            return self._end(reason, f"{exc.reason.value}: {exc.message}", close=CloseReason.REFUSED)
        except HandshakeError as exc:
            return self._end("handshake", str(exc), close=CloseReason.PROTOCOL_ERROR)
        except CortexError as exc:  # the registry's refusal (SensorNotCertifiedError) and the like
            return self._end("not_admitted", str(exc), close=CloseReason.REFUSED)
        self._handshake = None
        sensor_id = peer.sensor_id
        assert sensor_id is not None  # verified as a sensor's certificate
        if self._supersede is not None:
            self._supersede(sensor_id)  # an older connection of the same sensor ends first
        result = self._shield.attach_sensor(transport, peer)  # the shield owns the transport now
        if not isinstance(result, Registered):
            assert isinstance(result, Refused)
            return self._end("not_admitted", result.detail, close=CloseReason.REFUSED)
        self.sensor_id, self.log_id = sensor_id, result.log_id
        self.stage = Stage.STREAMING
        return [Admitted(sensor_id, result.log_id, peer)]

    def _frame(self, body: bytes) -> list[Event]:
        assert self.sensor_id is not None
        received = time.perf_counter()
        result = self._shield.ingest_frame(self.sensor_id, body)
        self.frames += 1
        events: list[Event] = [FrameHandled(result, self.frames, received)]
        if isinstance(result, Refused):
            if result.reason in _CHANNEL_REFUSALS:
                events += self._end("channel", result.detail, close=CloseReason.PROTOCOL_ERROR)
            elif result.reason is RefusalReason.CHANNEL_EXPIRED:
                events += self._end("expired", result.detail, close=CloseReason.SHUTDOWN)
            elif result.reason is RefusalReason.FRAME_FORMAT:
                events += self._end("frame", result.detail, close=CloseReason.PROTOCOL_ERROR)
        return events

    # -- the end ------------------------------------------------------------------------------

    def end(self, reason: str, detail: str, close: CloseReason = CloseReason.SHUTDOWN) -> list[Event]:
        """End the connection from this side (shutdown, revocation, a deadline, a limit)."""
        if self.stage is Stage.CLOSED:
            return []
        return self._end(reason, detail, close=close)

    def _end(
        self, reason: str, detail: str, *, close: CloseReason = CloseReason.NORMAL, reply: bool = True
    ) -> list[Event]:
        assert reason in REASONS, reason
        events: list[Event] = []
        if reply and not self._writer.closed:
            text = detail.encode("utf-8", "replace")[:200].decode("utf-8", "ignore")
            try:
                events.append(Send(self._writer.close(close, text)))
            except CortexError:  # pragma: no cover - the text is bounded and encodable
                pass
        self.close()
        self.ended = Ended(reason, detail)
        events.append(self.ended)
        return events

    def close(self) -> None:
        """Purge every secret of the connection (idempotent): the handshake, or the attached transport."""
        self.stage = Stage.CLOSED
        if self._handshake is not None:
            self._handshake.close()
            self._handshake = None
        if self.sensor_id is not None:
            self._shield.detach_sensor(self.sensor_id)


class SensorConnection:
    """The sensor's side (sans-IO): :meth:`start`, feed the gateway's bytes, then :meth:`frame` per frame."""

    def __init__(
        self,
        *,
        static_key: X25519PrivateKey,
        certificate: bytes,
        trust: TrustStore,
        clock: Clock = SYSTEM_CLOCK,
        expect_gateway: str | None = None,
        max_record: int = 4096,
        transport_options: dict[str, object] | None = None,
    ) -> None:
        self._handshake: SensorV2 | None = SensorV2(static_key, certificate, trust, clock=clock)
        self._reader = RecordReader(max_body=max_record)
        self._writer = RecordWriter()
        self._expect = expect_gateway
        self._transport_options = dict(transport_options or {})
        self.transport: NoiseTransport | None = None
        self.gateway: VerifiedCertificate | None = None
        self.ended: Ended | None = None

    def start(self) -> bytes:
        assert self._handshake is not None
        return self._writer.handshake(self._handshake.start())

    def receive_data(self, data: bytes) -> list[Event]:
        """The gateway's bytes: message 2 (answered with message 3), then only a CLOSE or EOF."""
        if self.ended is not None:
            return []
        events: list[Event] = []
        try:
            self._reader.receive_data(data)
            while self.ended is None:
                item = self._reader.next_record()
                if item is NEED_DATA:
                    break
                if item is EOF:
                    events += self._end("normal" if self.transport else "eof_in_handshake", "the gateway hung up")
                    break
                if isinstance(item, Close):
                    why = "shutdown" if item.reason is CloseReason.SHUTDOWN else "normal"
                    if item.reason is CloseReason.REFUSED:
                        why = "not_admitted"
                    elif item.reason is CloseReason.PROTOCOL_ERROR:
                        why = "record"
                    events += self._end(why, f"the gateway closed: {item.reason.name} {item.text!r}", reply=False)
                    break
                assert isinstance(item, Record)
                if item.type is not RecordType.HANDSHAKE or self._handshake is None:
                    events += self._end(
                        "record", "an unexpected record from the gateway", close=CloseReason.PROTOCOL_ERROR
                    )
                    break
                events += self._gateway_hello(item.body)
        except (RemoteProtocolError, LocalProtocolError) as exc:
            events += self._end("record", str(exc), close=CloseReason.PROTOCOL_ERROR)
        return events

    def _gateway_hello(self, body: bytes) -> list[Event]:
        handshake = self._handshake
        assert handshake is not None
        try:
            finish = handshake.receive_gateway_hello(body)
        except CertificateError as exc:
            return self._end("certificate", f"{exc.reason.value}: {exc.message}", close=CloseReason.REFUSED)
        except HandshakeError as exc:
            return self._end("handshake", str(exc), close=CloseReason.PROTOCOL_ERROR)
        peer = handshake.peer
        if self._expect is not None and peer.gateway_name != self._expect:
            handshake.close()
            self._handshake = None
            return self._end("certificate", f"the gateway is certified as {peer.gateway_name!r}, not {self._expect!r}",
                             close=CloseReason.REFUSED)  # fmt: skip
        try:
            self.transport = handshake.transport(**self._transport_options)
        except CortexError as exc:
            return self._end("handshake", str(exc), close=CloseReason.PROTOCOL_ERROR)
        self._handshake = None
        self.gateway = peer
        return [Send(self._writer.handshake(finish))]

    def frame(self, payload: bytes | object) -> bytes:
        """One frame's record (the payload encrypted by the transport)."""
        if self.transport is None or self.ended is not None:
            raise LocalProtocolError("no established channel: the handshake is not done or the connection ended")
        return self._writer.data(self.transport.encrypt(payload))  # type: ignore[arg-type]  # bytes or SecureBuffer

    def finish(self) -> bytes:
        """The CLOSE record that ends the stream normally (then close)."""
        data = self._writer.close(CloseReason.NORMAL, "done") if not self._writer.closed else b""
        self.close()
        return data

    def _end(
        self, reason: str, detail: str, *, close: CloseReason = CloseReason.NORMAL, reply: bool = True
    ) -> list[Event]:
        events: list[Event] = []
        if reply and not self._writer.closed:
            events.append(
                Send(self._writer.close(close, detail.encode("utf-8", "replace")[:200].decode("utf-8", "ignore")))
            )
        self.close()
        self.ended = Ended(reason, detail)
        events.append(self.ended)
        return events

    def close(self) -> None:
        """Purge every secret: the handshake state and the transport keys (idempotent)."""
        if self._handshake is not None:
            self._handshake.close()
            self._handshake = None
        if self.transport is not None:
            self.transport.close()
