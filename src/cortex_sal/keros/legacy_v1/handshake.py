"""The v1 handshake as sans-IO state machines, one per role (h11 style).

UNAUTHENTICATED (see ``v1``): kept for compatibility; it authenticates nobody.

Everything that changes a handshake's state is in this file, in one table
(``TRANSITIONS``, in ``keros.states``' vocabulary). Feed bytes in, get bytes out; an event
that has no entry for the current state is a ``HandshakeStateError`` naming the event, the
role and the state. The failure policy is ``keros.states.FailurePolicy``: any failure (a bad
message, a call out of turn once started, a call after close, a primitive's exception) is
terminal: the machine moves to FAILED and purges every secret it held.

    sensor                                   gateway
    start()            -- SensorHello -->    receive_sensor_hello()
    receive_tee_hello() <-- TEEHello ---
                        --- SensorAck -->    receive_sensor_ack()
    ESTABLISHED                              ESTABLISHED
    session()  TRANSPORT (key handed over)   session()  TRANSPORT
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TypeVar

from ...clock import SYSTEM_CLOCK, Clock
from ...crypto import X25519PrivateKey
from ...errors import (
    CortexError,
    HandshakeError,
    HandshakeMessageError,
    InvalidArgumentError,
    SecureMemoryError,
    SensorNotCertifiedError,
    WrongTypeError,
)
from ...securemem import SecureKeyBuffer
from ..registry import SensorRegistry, sensor_id_hash
from ..states import FailurePolicy, State
from . import keys as v1
from .messages import CHALLENGE_SIZE, SensorAck, SensorHello, TEEHello
from .session import Role, SecureBusSession

HELLO_FRESHNESS_S = 30.0

_T = TypeVar("_T")

# (role, state, event) -> next state; an event not here is refused (keros.states.FailurePolicy)
TRANSITIONS: dict[tuple[Role, State, str], State] = {
    (Role.SENSOR, State.START, "send SensorHello"): State.HANDSHAKE,
    (Role.SENSOR, State.HANDSHAKE, "receive TEEHello"): State.ESTABLISHED,
    (Role.SENSOR, State.ESTABLISHED, "session()"): State.TRANSPORT,
    (Role.GATEWAY, State.START, "receive SensorHello"): State.HANDSHAKE,
    (Role.GATEWAY, State.HANDSHAKE, "receive SensorAck"): State.ESTABLISHED,
    (Role.GATEWAY, State.ESTABLISHED, "session()"): State.TRANSPORT,
}


def _table(role: Role) -> dict[tuple[State, str], State]:
    return {(state, event): target for (r, state, event), target in TRANSITIONS.items() if r is role}


class _Handshake(FailurePolicy):
    role: Role

    def __init__(self, clock: Clock, ephemeral_key: X25519PrivateKey | None) -> None:
        if ephemeral_key is not None and not isinstance(ephemeral_key, X25519PrivateKey):
            raise WrongTypeError(f"ephemeral_key must be an X25519PrivateKey, got {type(ephemeral_key).__name__}")
        self._state = State.START
        self._failure: str | None = None
        self._name = f"v1 {self.role.value}"
        self._clock = clock
        self._given_ephemeral = ephemeral_key
        self._ephemeral: X25519PrivateKey | None = None
        self._session_key: SecureKeyBuffer | None = None
        self.session_id: bytes | None = None

    @property
    def state(self) -> State:
        return self._state

    @property
    def failure(self) -> str | None:
        """Why the machine failed (no secret in it), or None."""
        return self._failure

    def _take_ephemeral(self) -> X25519PrivateKey:
        """The ephemeral key: injected (known-answer runs, residue tests) or drawn now."""
        given, self._given_ephemeral = self._given_ephemeral, None
        return given if given is not None else X25519PrivateKey.generate()

    def _wipe(self) -> None:
        if self._given_ephemeral is not None:
            self._given_ephemeral.purge()
            self._given_ephemeral = None
        if self._ephemeral is not None:
            self._ephemeral.purge()
            self._ephemeral = None
        if self._session_key is not None:
            self._session_key.secure_purge()
            self._session_key = None

    def _run(self, event: str, step: Callable[[], _T]) -> _T:
        """Check the transition, run the step; on any error fail terminally and raise: a
        ``HandshakeError`` or a secure-memory error as it is, the peer's bad input as a
        ``HandshakeMessageError``."""
        target = self._next(event)
        try:
            result = step()
        except (HandshakeError, SecureMemoryError) as exc:
            self._fail(exc)
            raise
        except (CortexError, ValueError) as exc:
            self._fail(f"{event}: {exc}")
            raise HandshakeMessageError(f"{event} refused: {exc}") from None
        except BaseException as exc:
            self._fail(exc)
            raise
        self._state = target
        return result

    def session(self, **options: object) -> SecureBusSession:
        """The established session; it takes ownership of the session key. Once.

        Options the session refuses (``TypeError``/``ValueError``) change nothing: the
        handshake keeps (and will purge) the key, and a retry may follow.
        """
        if (self._state, "session()") not in self._TRANSITIONS:
            raise self._refuse("no session: session()")
        key, sid = self._session_key, self.session_id
        assert key is not None and sid is not None
        try:
            session = SecureBusSession(key, sid, self.role, clock=self._clock, **options)  # type: ignore[arg-type]  # options are SecureBusSession's keywords, checked there
        except (TypeError, ValueError):
            raise
        except BaseException as exc:
            self._fail(exc)
            raise
        self._session_key = None
        self._state = self._next("session()")
        return session

    def abort(self) -> None:
        """Give up: FAILED (unless the session was handed over), every secret purged."""
        if self._state not in (State.TRANSPORT, State.FAILED, State.EXPIRED):
            self._fail("aborted by the caller")
        self._wipe()

    def close(self) -> None:
        """Purge everything this handshake still holds; CLOSED unless handed over or failed."""
        if self._state in (State.START, State.HANDSHAKE, State.ESTABLISHED):
            self._state = State.CLOSED
        self._wipe()

    def __enter__(self) -> _Handshake:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SensorHandshake(_Handshake):
    """The sensor's side: sends SensorHello, answers TEEHello with SensorAck."""

    role = Role.SENSOR
    _TRANSITIONS = _table(Role.SENSOR)

    def __init__(
        self, sensor_id: str, *, clock: Clock = SYSTEM_CLOCK, ephemeral_key: X25519PrivateKey | None = None
    ) -> None:
        super().__init__(clock, ephemeral_key)
        self.sensor_id_hash = sensor_id_hash(sensor_id)
        self._hello: SensorHello | None = None

    def start(self) -> bytes:
        def step() -> bytes:
            self._ephemeral = self._take_ephemeral()
            self._hello = SensorHello(
                self.sensor_id_hash, self._ephemeral.public_bytes(), int(self._clock.time() * 1000)
            )
            return self._hello.to_bytes()

        return self._run("send SensorHello", step)

    def receive_tee_hello(self, data: bytes) -> bytes:
        """Derive the session key from the gateway's hello; return the SensorAck to send."""

        def step() -> bytes:
            tee = TEEHello.parse(data)
            assert self._ephemeral is not None and self._hello is not None
            self._session_key = v1.derive_session_key(self._ephemeral.key_buffer, tee.ephemeral_public, tee.challenge)
            self._ephemeral.purge()
            self._ephemeral = None
            self.session_id = v1.session_id(
                self.sensor_id_hash, self._hello.ephemeral_public, tee.ephemeral_public, tee.challenge
            )
            return SensorAck(v1.compute_ack(self._session_key, tee.challenge)).to_bytes()

        return self._run("receive TEEHello", step)


class GatewayHandshake(_Handshake):
    """The gateway's (TEE's) side: admits the sensor, sends TEEHello, verifies SensorAck.

    ``sensor_ids`` are the ids this gateway expects (the hello carries only a hash);
    by default the registry's model ids. Each is admitted through the registry.
    ``ephemeral_key`` (both roles) injects the ephemeral key for known-answer runs and
    residue tests; the machine takes it over and purges it.
    """

    role = Role.GATEWAY
    _TRANSITIONS = _table(Role.GATEWAY)

    def __init__(
        self,
        gateway_id: str,
        *,
        registry: SensorRegistry | None = None,
        sensor_ids: Iterable[str] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        freshness_s: float = HELLO_FRESHNESS_S,
        ephemeral_key: X25519PrivateKey | None = None,
    ) -> None:
        super().__init__(clock, ephemeral_key)
        self.gateway_id_hash = sensor_id_hash(gateway_id)
        if registry is not None and not isinstance(registry, SensorRegistry):
            raise WrongTypeError(f"registry must be a SensorRegistry, got {type(registry).__name__}")
        self.registry = registry or SensorRegistry.default()
        if sensor_ids is not None and (isinstance(sensor_ids, str) or not isinstance(sensor_ids, Iterable)):
            raise WrongTypeError(f"sensor_ids must be an iterable of str, got {type(sensor_ids).__name__}")
        self._candidates = list(sensor_ids) if sensor_ids is not None else [m.model_id for m in self.registry.models()]
        if isinstance(freshness_s, bool) or not isinstance(freshness_s, int | float) or not freshness_s >= 0:
            raise InvalidArgumentError(f"freshness_s must be a number of seconds >= 0, got {freshness_s!r}")
        self._freshness_s = float(freshness_s)
        self._challenge: bytes | None = None
        self.sensor_id: str | None = None

    def receive_sensor_hello(self, data: bytes) -> bytes:
        def step() -> bytes:
            hello = SensorHello.parse(data)
            sensor_id = self.registry.find_by_hash(hello.sensor_id_hash, self._candidates)
            if sensor_id is None:
                raise SensorNotCertifiedError("SensorHello names a sensor this gateway does not know")
            self.registry.admit(sensor_id)
            skew = abs(self._clock.time() * 1000 - hello.timestamp_ms) / 1000
            if skew > self._freshness_s:
                raise HandshakeMessageError(
                    f"SensorHello timestamp is {skew:.1f} s away from now (window {self._freshness_s:.0f} s)"
                )
            self.sensor_id = sensor_id
            self._ephemeral = self._take_ephemeral()
            challenge = os.urandom(CHALLENGE_SIZE)
            self._session_key = v1.derive_session_key(self._ephemeral.key_buffer, hello.ephemeral_public, challenge)
            public = self._ephemeral.public_bytes()
            self._ephemeral.purge()
            self._ephemeral = None
            self._challenge = challenge
            self.session_id = v1.session_id(hello.sensor_id_hash, hello.ephemeral_public, public, challenge)
            return TEEHello(self.gateway_id_hash, public, challenge).to_bytes()

        return self._run("receive SensorHello", step)

    def receive_sensor_ack(self, data: bytes) -> None:
        def step() -> None:
            ack = SensorAck.parse(data)
            assert self._session_key is not None and self._challenge is not None
            if not v1.ack_is_valid(self._session_key, self._challenge, ack.tag):
                raise HandshakeMessageError("SensorAck does not prove the session key (wrong ACK)")

        self._run("receive SensorAck", step)


def establish_in_process(
    sensor_id: str,
    gateway_id: str,
    *,
    registry: SensorRegistry | None = None,
    sensor_ids: Iterable[str] | None = None,
    clock: Clock = SYSTEM_CLOCK,
    **session_options: object,
) -> tuple[SecureBusSession, SecureBusSession]:
    """Run both roles of a v1 handshake in this process: ``(sensor session, gateway session)``.

    For sensors that live in the same process as the gateway (the shield's registration,
    the demo, self-tests, benchmarks). On any failure both machines purge what they held
    and the error propagates.
    """
    sensor = SensorHandshake(sensor_id, clock=clock)
    gateway = GatewayHandshake(gateway_id, registry=registry, sensor_ids=sensor_ids, clock=clock)
    try:
        gateway.receive_sensor_ack(sensor.receive_tee_hello(gateway.receive_sensor_hello(sensor.start())))
        gateway_session = gateway.session(**session_options)
        try:
            return sensor.session(**session_options), gateway_session
        except BaseException:
            gateway_session.close()
            raise
    except BaseException:
        sensor.abort()
        gateway.abort()
        raise


__all__ = ["HELLO_FRESHNESS_S", "GatewayHandshake", "SensorHandshake", "establish_in_process"]
