"""KEROS v2: the authenticated sensor channel (Noise_XX_25519_ChaChaPoly_SHA256, certified keys).

The sensor is the Noise initiator, the gateway the responder; both hold an X25519 static key
certified by a root they trust (``keros.certificate``: a manufacturer CA for sensors, a site CA
for gateways). Prologue ``b"cortex-sensor-noise-v1"``::

    1. sensor  -> gateway   -> e                 payload: empty             (32 bytes)
    2. gateway -> sensor    <- e, ee, s, es      payload: gateway certificate
    3. sensor  -> gateway   -> s, se             payload: sensor certificate

* The sensor checks the gateway's certificate *before* it writes message 3: a gateway that
  cannot prove its identity never learns which sensor called (the sensor's static key and
  certificate only travel in message 3, encrypted to the gateway's static key).
* The essential check, on both sides: the certificate's key equals the Noise remote static key
  ``rs`` (a man in the middle that relays with its own static key holds no certificate for it),
  and the signature chains to a trusted root. The gateway then authorises the sensor through the
  KEROS registry by model and serial (capability minima, revocation list) - not by a name the
  sensor declares.
* States and failures in ``keros.states``' vocabulary (``TRANSITIONS`` below, policy
  ``keros.states.FailurePolicy``): any failure (a bad message, a refused certificate, a call out
  of turn once started, a call after close) purges every secret of the handshake and leaves the
  object FAILED; each later call raises ``HandshakeStateError``.
* Downgrade: v1's hello is 72 bytes, v2's first message 32. A gateway refuses a v1 hello unless
  it was built with ``allow_v1=True`` (:func:`classify_first_message` tells the two apart); a v2
  sensor never falls back, and a v1 reply (a 96-byte TEEHello) to its message 1 is refused.

After message 3 both sides call :meth:`transport` to get a :class:`~.noise.NoiseTransport`
(ordered or lossy, with the same options on both ends). The peer's verified certificate
(:attr:`peer`) and static key (:attr:`remote_static`) stay available for authorisation, and
:attr:`handshake_hash` is the channel-binding value.
"""

from __future__ import annotations

import logging
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..crypto import X25519PrivateKey
from ..errors import (
    CertificateError,
    CortexError,
    HandshakeError,
    HandshakeMessageError,
    HandshakeStateError,
    InvalidArgumentError,
    NotCopyableError,
    WrongTypeError,
)
from .certificate import CertificateKind, TrustStore, VerifiedCertificate, parse_certificate, verify_certificate
from .noise import HandshakeState
from .noise.transport import NoiseTransport
from .registry import SensorRegistry
from .states import FailurePolicy, State

log = logging.getLogger("cortex_sal.keros")

PROTOCOL_NAME = "Noise_XX_25519_ChaChaPoly_SHA256"
PROLOGUE = b"cortex-sensor-noise-v1"
MESSAGE_1_SIZE = 32
V1_HELLO_SIZE = 72  # keros.legacy_v1.messages.SensorHello
V1_TEE_HELLO_SIZE = 96  # keros.legacy_v1.messages.TEEHello


# (role, state, event) -> next state, in keros.states' vocabulary; an event not here is refused
# by keros.states.FailurePolicy (FAILED and purged once started or after close)
TRANSITIONS: dict[tuple[str, State, str], State] = {
    ("sensor", State.START, "start()"): State.HANDSHAKE,  # message 1 sent, awaiting message 2
    ("sensor", State.HANDSHAKE, "receive_gateway_hello()"): State.ESTABLISHED,  # message 3 written
    ("sensor", State.ESTABLISHED, "transport()"): State.TRANSPORT,
    ("gateway", State.START, "receive_sensor_hello()"): State.HANDSHAKE,  # message 2 sent, awaiting 3
    ("gateway", State.HANDSHAKE, "receive_sensor_finish()"): State.ESTABLISHED,
    ("gateway", State.ESTABLISHED, "transport()"): State.TRANSPORT,
}

# what a party in HANDSHAKE waits for (the step within the handshake, not a state)
_AWAITING = {"sensor": "message 2", "gateway": "message 3"}


def _table(role: str) -> dict[tuple[State, str], State]:
    return {(state, event): target for (r, state, event), target in TRANSITIONS.items() if r == role}


def classify_first_message(message: bytes, *, allow_v1: bool = False) -> int:
    """Which protocol a sensor's first message speaks: 2 (Noise message 1), or 1 (a KEROS v1
    hello) when ``allow_v1``; anything else raises :class:`HandshakeMessageError`."""
    if not isinstance(message, bytes | bytearray | memoryview):
        raise WrongTypeError(f"message must be bytes, got {type(message).__name__}")
    size = memoryview(message).nbytes
    if size == MESSAGE_1_SIZE:
        return 2
    if size == V1_HELLO_SIZE:
        if allow_v1:
            return 1
        raise HandshakeMessageError("a KEROS v1 hello was refused: v1 is unauthenticated and disabled on this gateway")
    raise HandshakeMessageError(
        f"first message of {size} bytes is neither a v2 message 1 ({MESSAGE_1_SIZE}) nor a v1 hello"
    )


class _Party(FailurePolicy):
    """What the sensor and gateway sides share: the identity check, the Noise state, failure
    (``keros.states.FailurePolicy``)."""

    _role: str
    _TRANSITIONS: dict[tuple[State, str], State]
    _own_kind: CertificateKind
    _peer_kind: CertificateKind

    def __init__(
        self,
        static_key: X25519PrivateKey,
        certificate: bytes,
        trust: TrustStore,
        *,
        initiator: bool,
        clock: Clock,
        ephemeral: X25519PrivateKey | None,
    ) -> None:
        if not isinstance(static_key, X25519PrivateKey):
            raise WrongTypeError(f"static_key must be an X25519PrivateKey, got {type(static_key).__name__}")
        if not isinstance(trust, TrustStore):
            raise WrongTypeError(f"trust must be a TrustStore, got {type(trust).__name__}")
        if ephemeral is not None and not isinstance(ephemeral, X25519PrivateKey):
            raise WrongTypeError(f"ephemeral must be an X25519PrivateKey or None, got {type(ephemeral).__name__}")
        own = parse_certificate(certificate)  # CertificateError (MALFORMED) for garbage
        if own.kind is not self._own_kind:
            raise InvalidArgumentError(
                f"a {self._role} needs a {self._own_kind.name.lower()} certificate, got a {own.kind.name.lower()} one"
            )
        if own.subject_key != static_key.public_bytes():  # computed once per key object
            raise InvalidArgumentError(f"the {self._role}'s certificate does not certify its static key")
        self._certificate = bytes(certificate)  # public
        self._trust = trust
        self._clock = clock
        self._noise = HandshakeState(
            PROTOCOL_NAME, initiator, PROLOGUE, s=static_key,
            e=ephemeral,
        )  # fmt: skip
        self._state = State.START
        self._name = f"v2 {self._role}"
        self._peer: VerifiedCertificate | None = None
        self._failure: str | None = None

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def step(self) -> str | None:
        """In HANDSHAKE, what this party awaits (``"message 2"``, ``"message 3"``); else None."""
        return _AWAITING[self._role] if self._state is State.HANDSHAKE else None

    @property
    def failure(self) -> str | None:
        return self._failure

    @property
    def peer(self) -> VerifiedCertificate:
        """The peer's verified certificate (after its certificate was checked)."""
        if self._peer is None:
            raise HandshakeStateError(f"the peer is not authenticated yet (state {self._state.value})")
        return self._peer

    @property
    def remote_static(self) -> bytes:
        return self.peer.subject_key

    @property
    def handshake_hash(self) -> bytes:
        if self._state not in (State.ESTABLISHED, State.TRANSPORT):
            raise HandshakeStateError(f"the handshake hash exists once established (state {self._state.value})")
        return self._noise.handshake_hash

    def _wipe(self) -> None:
        self._noise.close()

    def _abort(self, exc: BaseException) -> BaseException:
        """Fail for good (``FailurePolicy``: FAILED, every secret purged); return what to raise:
        certificate refusals, handshake errors and non-library exceptions as they are, any other
        library error (the peer's bad message) as a ``HandshakeMessageError``."""
        self._fail(exc)
        if isinstance(exc, CertificateError | HandshakeError) or not isinstance(exc, CortexError):
            return exc
        return HandshakeMessageError(f"handshake message refused: {exc}")

    def _verify_peer(self, payload: bytes, registry: SensorRegistry | None) -> None:
        rs = self._noise.remote_static
        if rs is None:  # pragma: no cover - XX carries s in message 2 and 3
            raise HandshakeMessageError("the peer sent no static key")
        self._peer = verify_certificate(
            payload, remote_static=rs, kind=self._peer_kind, trust=self._trust, now=self._clock.time(),
            registry=registry,
        )  # fmt: skip

    def transport(self, **options: Any) -> NoiseTransport:
        """The established session's transport (``keros.noise.NoiseTransport`` options: ``lossy``,
        ``rekey_every``, ``rekey_interval_s``, ``window``...; both ends must agree). Once."""
        target = self._next("transport()")
        options.setdefault("clock", self._clock)
        try:
            transport = NoiseTransport.from_handshake(self._noise, **options)
        except BaseException as exc:  # e.g. a bad option: the split's keys are gone either way
            self._abort(exc)  # FAILED, every secret purged; the caller sees its own error
            raise
        self._state = target
        return transport

    def close(self) -> None:
        """Abort (or drop an un-taken transport): purge every secret of the handshake; CLOSED
        unless the transport was taken or the party failed. A later call fails the party."""
        if self._state in (State.START, State.HANDSHAKE, State.ESTABLISHED):
            self._state = State.CLOSED
        self._wipe()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError(f"a KEROS v2 {self._role} handshake holds secrets: it cannot be pickled or copied")

    def __repr__(self) -> str:
        return f"<KEROS v2 {self._role} {self._state.value}>"


class SensorV2(_Party):
    """The sensor's side (Noise initiator). ``static_key`` is the caller's (never purged here)."""

    _role = "sensor"
    _TRANSITIONS = _table("sensor")
    _own_kind = CertificateKind.SENSOR
    _peer_kind = CertificateKind.GATEWAY

    def __init__(
        self,
        static_key: X25519PrivateKey,
        certificate: bytes,
        trust: TrustStore,
        *,
        clock: Clock = SYSTEM_CLOCK,
        ephemeral: X25519PrivateKey | None = None,
    ) -> None:
        super().__init__(static_key, certificate, trust, initiator=True, clock=clock, ephemeral=ephemeral)

    def start(self) -> bytes:
        """Message 1 (``-> e``)."""
        target = self._next("start()")
        try:
            message = self._noise.write_message(b"")
        except BaseException as exc:
            raise self._abort(exc) from None
        self._state = target
        return message

    def receive_gateway_hello(self, message: bytes) -> bytes:
        """Read message 2, verify the gateway's certificate, and return message 3."""
        target = self._next("receive_gateway_hello()")
        if not isinstance(message, bytes | bytearray | memoryview):
            raise WrongTypeError(f"message must be bytes, got {type(message).__name__}")
        try:
            if memoryview(message).nbytes == V1_TEE_HELLO_SIZE:
                raise HandshakeMessageError(
                    "the gateway answered with a KEROS v1 TEEHello: a v2 sensor never downgrades"
                )
            payload = self._noise.read_message(bytes(message))
            self._verify_peer(payload, None)
            reply = self._noise.write_message(self._certificate)
        except BaseException as exc:
            raise self._abort(exc) from None
        self._state = target
        return reply


class GatewayV2(_Party):
    """The gateway's side (Noise responder). ``registry`` authorises sensors (default: the
    packaged registry); ``static_key`` is the caller's (never purged here)."""

    _role = "gateway"
    _TRANSITIONS = _table("gateway")
    _own_kind = CertificateKind.GATEWAY
    _peer_kind = CertificateKind.SENSOR

    def __init__(
        self,
        static_key: X25519PrivateKey,
        certificate: bytes,
        trust: TrustStore,
        *,
        registry: SensorRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        ephemeral: X25519PrivateKey | None = None,
    ) -> None:
        if registry is not None and not isinstance(registry, SensorRegistry):
            raise WrongTypeError(f"registry must be a SensorRegistry or None, got {type(registry).__name__}")
        super().__init__(static_key, certificate, trust, initiator=False, clock=clock, ephemeral=ephemeral)
        self._registry = registry

    def receive_sensor_hello(self, message: bytes) -> bytes:
        """Read message 1 and return message 2 (carrying this gateway's certificate)."""
        target = self._next("receive_sensor_hello()")
        classify_first_message(message)  # refused before any state changes; v1 goes to GatewayHandshake
        try:
            self._noise.read_message(bytes(message))
            reply = self._noise.write_message(self._certificate)
        except BaseException as exc:
            raise self._abort(exc) from None
        self._state = target
        return reply

    def receive_sensor_finish(self, message: bytes) -> VerifiedCertificate:
        """Read message 3; verify and authorise the sensor's certificate; return it."""
        target = self._next("receive_sensor_finish()")
        if not isinstance(message, bytes | bytearray | memoryview):
            raise WrongTypeError(f"message must be bytes, got {type(message).__name__}")
        try:
            payload = self._noise.read_message(bytes(message))
            self._verify_peer(payload, self._registry)
        except BaseException as exc:
            raise self._abort(exc) from None
        self._state = target
        return self.peer


def establish_v2_in_process(
    sensor: SensorV2, gateway: GatewayV2, **transport_options: Any
) -> tuple[NoiseTransport, NoiseTransport]:
    """Run the three messages between two local parties; return (sensor, gateway) transports.

    For tests, benches and a process that hosts both ends; on failure both parties are closed.
    """
    try:
        gateway.receive_sensor_finish(sensor.receive_gateway_hello(gateway.receive_sensor_hello(sensor.start())))
        sensor_side = sensor.transport(**transport_options)
        try:
            return sensor_side, gateway.transport(**transport_options)
        except BaseException:
            sensor_side.close()
            raise
    except BaseException:
        sensor.close()
        gateway.close()
        raise


__all__ = [
    "MESSAGE_1_SIZE",
    "PROLOGUE",
    "PROTOCOL_NAME",
    "TRANSITIONS",
    "GatewayV2",
    "SensorV2",
    "classify_first_message",
    "establish_v2_in_process",
]
