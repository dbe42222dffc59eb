"""One state vocabulary and one failure policy for every KEROS handshake and channel machine.

The v1 handshakes (``keros.legacy_v1.handshake``), the v1 session (``keros.legacy_v1.session``), the v2 parties
(``keros.v2``) and the Noise ``HandshakeState`` (``keros.noise.state``) all report a
:class:`State`. Where a handshake is *within* its messages (awaiting message 2, message 3) is a
separate attribute of each machine (``step``, ``message_index``), not a state.

Transitions are data: each machine has a table ``(state, event) -> state``
(:data:`~cortex_sal.keros.legacy_v1.handshake.TRANSITIONS`, :data:`~cortex_sal.keros.v2.TRANSITIONS`,
:data:`~cortex_sal.keros.noise.state.TRANSITIONS`). An event that is not in the table is a
caller's bug, :class:`~cortex_sal.errors.HandshakeStateError` (a ``LocalProtocolError``).

The failure policy, :class:`FailurePolicy`, is implemented once here and mixed into the three
handshake machines: every failure - the peer's bad message, a call out of turn once the
handshake has started (HANDSHAKE or ESTABLISHED), a call after ``close()``, an exception from a
primitive - moves the machine to FAILED, purges every secret it holds, records why (never a
secret) and then raises the specific error. In START nothing has happened yet, and in
TRANSPORT the machine's secrets have been handed over: a call out of turn there is refused and
changes nothing. A call refused for its argument's *type* changes nothing in any state, with
one exception kept from the seed's v1 handshake: its ``receive_*`` methods refuse a message
that is not bytes as a malformed message (``HandshakeMessageError``) and the machine ends FAILED.

The seed's names (SYSTEM.md: UNINITIALIZED, HANDSHAKE, ESTABLISHED, EXPIRED, COMPROMISED) are
kept at the seed's edge: :data:`SEED_NAMES` / :func:`seed_state_name` (re-exported by
``src/keros/sensor_channel.py``).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping

from ..errors import CortexError, HandshakeStateError, WrongTypeError

log = logging.getLogger("cortex_sal.keros")


class State(enum.Enum):
    """The state of a KEROS handshake or channel machine."""

    START = "START"  # nothing sent or received; no secret derived yet
    HANDSHAKE = "HANDSHAKE"  # messages remain (which one: the machine's ``step``)
    ESTABLISHED = "ESTABLISHED"  # handshake done: session keys held / the session is usable
    TRANSPORT = "TRANSPORT"  # the session or transport was handed over: the machine holds nothing
    CLOSED = "CLOSED"  # close() by the caller: every secret purged, terminal
    EXPIRED = "EXPIRED"  # a session past its lifetime or out of sequence numbers: purged, terminal
    FAILED = "FAILED"  # a failure: every secret purged, terminal

    # Members are singletons compared by identity: the identity hash serves every table keyed by
    # a state (each handshake step looks one up) without Enum's Python-level __hash__.
    __hash__ = object.__hash__


#: a call out of turn in one of these states fails the machine (the handshake has started, or
#: the caller already closed it); in START and TRANSPORT it is refused and changes nothing
FAIL_ON_MISUSE = frozenset({State.HANDSHAKE, State.ESTABLISHED, State.CLOSED})

#: the states a machine never leaves (except CLOSED -> FAILED on a call after close)
TERMINAL = frozenset({State.CLOSED, State.EXPIRED, State.FAILED})

#: the seed's channel states (SYSTEM.md), for users of the seed API
SEED_NAMES: Mapping[State, str] = {
    State.START: "UNINITIALIZED",
    State.HANDSHAKE: "HANDSHAKE",
    State.ESTABLISHED: "ESTABLISHED",
    State.TRANSPORT: "ESTABLISHED",  # the seed has no hand-over: its session is established
    State.CLOSED: "EXPIRED",  # the seed's close() ends a session as EXPIRED
    State.EXPIRED: "EXPIRED",
    State.FAILED: "COMPROMISED",
}


def seed_state_name(state: State) -> str:
    """The seed's name (SYSTEM.md) for ``state``."""
    if not isinstance(state, State):
        raise WrongTypeError(f"state must be a keros State, got {type(state).__name__}")
    return SEED_NAMES[state]


Transitions = Mapping[tuple[State, str], State]

_HINTS = {
    State.ESTABLISHED: " (the handshake is complete)",
    State.TRANSPORT: " (the handshake is complete and its session was handed over)",
    State.CLOSED: " (it was closed)",
    State.EXPIRED: " (it expired)",
}


class FailurePolicy:
    """The one failure policy, mixed into every handshake machine.

    A machine provides ``_state`` and ``_failure`` attributes, its table ``_TRANSITIONS``, a
    ``_wipe()`` that purges every secret it holds (idempotent) and a ``_name`` for messages.
    """

    __slots__ = ("_failure", "_name", "_state")  # slotted machines (Noise's HandshakeState) keep no __dict__

    _state: State
    _failure: str | None
    _TRANSITIONS: Transitions
    _name: str

    def _wipe(self) -> None:  # pragma: no cover - every machine defines it
        raise NotImplementedError

    def _fail(self, exc: BaseException | str) -> None:
        """FAILED, every secret purged, the reason recorded (a library error's message, never a
        secret; for anything else only its type)."""
        if isinstance(exc, str):
            why = exc
        elif isinstance(exc, CortexError):
            why = str(exc)
        else:
            why = f"internal error ({type(exc).__name__})"
        self._state = State.FAILED
        self._failure = why
        try:
            self._wipe()
        finally:
            log.warning("%s failed: %s", self._name, why)

    def _refusal(self, event: str) -> HandshakeStateError:
        """The error for ``event`` in the current state, naming both (no change: for queries)."""
        if self._state is State.FAILED:
            hint = f" ({self._failure})"
        else:
            hint = _HINTS.get(self._state, "")
        return HandshakeStateError(f"{event} refused in state {self._state.value} for the {self._name}{hint}")

    def _refuse(self, event: str) -> HandshakeStateError:
        """The error for ``event`` out of turn, after applying the policy: FAILED and purged once
        the handshake has started or after close; nothing changes in START or TRANSPORT."""
        refusal = self._refusal(event)
        if self._state in FAIL_ON_MISUSE:
            self._fail(refusal)
        return refusal

    def _next(self, event: str) -> State:
        """The state ``event`` leads to; an event not in the table is refused (see ``_refuse``)."""
        target = self._TRANSITIONS.get((self._state, event))
        if target is None:
            raise self._refuse(event)
        return target


__all__ = ["FAIL_ON_MISUSE", "SEED_NAMES", "TERMINAL", "FailurePolicy", "State", "Transitions", "seed_state_name"]
