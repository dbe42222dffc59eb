"""One channel interface for KEROS v1 sessions and v2 transports.

The shield (and, next, the gateway) needs only this from a sensor's channel, whichever
protocol set it up: :class:`SecureBusSession` (v1) and :class:`~.noise.transport.NoiseTransport`
(v2) both implement it. Plaintext always goes into a secure buffer the caller owns, never
through ``bytes``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..errors import WrongTypeError
from ..securemem import SecureBuffer


@runtime_checkable
class Channel(Protocol):
    """An established, encrypted, replay-proof channel seen from one end."""

    @property
    def overhead(self) -> int:
        """Bytes a message adds on the wire to its plaintext (header, nonce, tag)."""
        ...

    @property
    def is_open(self) -> bool:
        """False once closed, expired or compromised: every later call raises."""
        ...

    def seal(self, payload: bytes | SecureBuffer) -> bytes:
        """The wire message for ``payload`` (a secure buffer is read in place)."""
        ...

    def open_into(self, message: bytes, out: SecureBuffer, offset: int = 0) -> int:
        """Check and decrypt ``message`` straight into ``out`` at ``offset``; return the plaintext's length.

        A refused message raises the layer's ``SensorBusError`` subclass and writes nothing of
        a plaintext anywhere but ``out`` (which reads zeros there on a failed tag)."""
        ...

    def close(self) -> None:
        """Purge every key of the channel. Idempotent."""
        ...


def check_channel(obj: object) -> Channel:
    """``obj`` if it really implements :class:`Channel`, else ``WrongTypeError``.

    ``isinstance`` against a runtime-checkable protocol only sees that the names exist; this
    checks that ``overhead`` is an int, ``is_open`` a bool and the methods callable, and turns
    any exception an odd object raises on the way (a missing name included) into the refusal."""
    try:
        ok = (
            type(obj.overhead) is int  # type: ignore[attr-defined]  # any object: a missing name is refused below
            and type(obj.is_open) is bool  # type: ignore[attr-defined]  # as above
            and all(callable(getattr(obj, name)) for name in ("seal", "open_into", "close"))
        )
    except Exception:
        ok = False
    if not ok:
        raise WrongTypeError(f"channel must be a keros Channel, got {type(obj).__name__}")
    return obj  # type: ignore[return-value]  # checked just above


__all__ = ["Channel", "check_channel"]
