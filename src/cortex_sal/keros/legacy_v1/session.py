"""``SecureBusSession``: encrypted, replay-proof frames over the hostile sensor bus.

Wire format of a frame (SYSTEM.md "Frames")::

    frame_seq (u32 BE) || payload_len (u32 BE) || nonce (12) || ciphertext || tag (16)
    nonce = frame_seq as u64 BE || session_id[0:4];   AAD = the 8-byte header

Every check that the header can answer runs *before* decryption: size and length field,
the nonce's construction, anti-replay (``frame_seq`` must exceed the last accepted one),
sequence exhaustion, session lifetime. Only then does the AEAD run, straight into a
secure buffer; ``last_accepted`` moves only after the tag verified.

Each direction has its own key (``v1.frame_key``), so the two directions never share a
(key, nonce) pair. ``close()`` (or leaving the ``with`` block) purges the session key and
both frame keys.

States (``keros.states.State``): ESTABLISHED from construction; CLOSED after ``close()``;
EXPIRED past the lifetime or out of sequence numbers; FAILED after a frame that failed
authentication (under the default ``compromise_on_auth_failure``). Each of the last three
purges the three keys and is terminal. A frame refused on its header (size, replay, sequence
limit) proves nothing about the key and leaves the session ESTABLISHED.
"""

from __future__ import annotations

import enum
import logging
import struct

from ...clock import SYSTEM_CLOCK, Clock
from ...crypto import aead_encrypt
from ...crypto.aead import decrypt_unchecked
from ...errors import (
    FrameAuthError,
    FrameFormatError,
    InvalidArgumentError,
    ReplayAttackError,
    SessionExpiredError,
    WrongLengthError,
    WrongTypeError,
)
from ...securemem import SecureBuffer, SecureKeyBuffer
from ..states import State
from . import keys as v1

log = logging.getLogger("cortex_sal.keros")

HEADER_SIZE = 8
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = HEADER_SIZE + NONCE_SIZE + TAG_SIZE
MAX_PAYLOAD = 8192
MAX_SEQ = 0xFFFFFFFF  # reaching it forces a re-handshake
SESSION_LIFETIME_S = 4 * 3600.0

_HEADER = struct.Struct(">II")
_NONCE_SEQ = struct.Struct(">Q")


class Role(enum.Enum):
    SENSOR = "sensor"
    GATEWAY = "gateway"


class SecureBusSession:
    """One established v1 session, seen from ``role``'s side.

    Takes ownership of ``session_key``: it is purged when the session closes, expires or
    is compromised.
    """

    def __init__(
        self,
        session_key: SecureKeyBuffer,
        session_id: bytes,
        role: Role,
        *,
        clock: Clock = SYSTEM_CLOCK,
        lifetime_s: float = SESSION_LIFETIME_S,
        max_seq: int = MAX_SEQ,
        compromise_on_auth_failure: bool = True,
    ) -> None:
        if not isinstance(session_key, SecureKeyBuffer):
            raise WrongTypeError(f"session_key must be a SecureKeyBuffer, got {type(session_key).__name__}")
        if not isinstance(session_id, bytes) or len(session_id) < 4:
            raise InvalidArgumentError("session_id must be bytes of at least 4 bytes")
        if not isinstance(role, Role):
            raise WrongTypeError(f"role must be a Role, got {type(role).__name__}")
        if not isinstance(max_seq, int) or not 2 <= max_seq <= MAX_SEQ:
            raise InvalidArgumentError(f"max_seq must be an int in 2..{MAX_SEQ}, got {max_seq!r}")
        if not isinstance(lifetime_s, int | float) or not lifetime_s > 0:
            raise InvalidArgumentError(f"lifetime_s must be a positive number, got {lifetime_s!r}")
        session_key.ensure_live()  # refuses a purged key before anything is built
        send_info, recv_info = (
            (v1.SENSOR_TO_GATEWAY, v1.GATEWAY_TO_SENSOR)
            if role is Role.SENSOR
            else (v1.GATEWAY_TO_SENSOR, v1.SENSOR_TO_GATEWAY)
        )
        self._send_key = v1.frame_key(session_key, send_info)
        try:
            self._recv_key = v1.frame_key(session_key, recv_info)
        except BaseException:
            self._send_key.secure_purge()
            raise
        self.session_key = session_key
        self.session_id = session_id
        self.role = role
        self._nonce_suffix = session_id[:4]
        self._clock = clock
        self._expires_at = clock.monotonic() + float(lifetime_s)
        self._max_seq = max_seq
        self._compromise_on_auth_failure = compromise_on_auth_failure
        self._send_seq = 0
        self._last_accepted = 0
        self.state = State.ESTABLISHED
        self._why_closed = ""

    # -- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Purge the session key and both frame keys. Idempotent."""
        if self.state is State.ESTABLISHED:
            self._end(State.CLOSED, "closed")

    def owned_keys(self) -> tuple[SecureKeyBuffer, SecureKeyBuffer, SecureKeyBuffer]:
        """The buffers this session owns and purges on close (session key, send and receive
        frame keys), for custody counting: read ``is_purged``, never the key."""
        return (self.session_key, self._send_key, self._recv_key)

    def _end(self, state: State, why: str) -> None:
        self.state = state
        self._why_closed = why
        for key in (self._send_key, self._recv_key, self.session_key):
            key.secure_purge()

    def __enter__(self) -> SecureBusSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_usable(self) -> None:
        if self.state is not State.ESTABLISHED:
            raise SessionExpiredError(f"session is {self.state.value} ({self._why_closed}); re-handshake")
        if self._clock.monotonic() >= self._expires_at:
            self._end(State.EXPIRED, "lifetime of the session key reached")
            raise SessionExpiredError("session lifetime reached; re-handshake")

    # -- frames ----------------------------------------------------------------------

    def _nonce(self, seq: int) -> bytes:
        return _NONCE_SEQ.pack(seq) + self._nonce_suffix

    def encrypt_frame(self, payload: bytes | SecureBuffer) -> bytes:
        """Seal one payload (1..8192 bytes; a secure buffer is read in place) into a frame."""
        self._check_usable()
        if isinstance(payload, SecureBuffer):
            length = len(payload)
        elif isinstance(payload, bytes | bytearray | memoryview):
            length = memoryview(payload).nbytes
        else:
            raise WrongTypeError(f"payload must be bytes-like or a SecureBuffer, got {type(payload).__name__}")
        if not 1 <= length <= MAX_PAYLOAD:
            raise FrameFormatError(f"payload of {length} bytes is outside 1..{MAX_PAYLOAD}")
        seq = self._send_seq + 1
        if seq >= self._max_seq:
            self._end(State.EXPIRED, "frame sequence numbers exhausted")
            raise SessionExpiredError(f"frame sequence exhausted at {seq:#x}; re-handshake")
        header = _HEADER.pack(seq, length)
        nonce = self._nonce(seq)
        sealed = aead_encrypt(self._send_key, nonce, payload, header)
        self._send_seq = seq
        return header + nonce + sealed

    def decrypt_frame(self, frame: bytes, out: SecureBuffer | None = None, offset: int = 0) -> SecureBuffer:
        """Check and open one frame; the payload goes straight into ``out`` (at ``offset``)
        or a new secure buffer, which is returned."""
        if type(frame) is not bytes:
            if not isinstance(frame, bytes | bytearray | memoryview):
                raise WrongTypeError(f"frame must be bytes, got {type(frame).__name__}")
            frame = bytes(frame)
        if self.state is not State.ESTABLISHED or self._clock.monotonic() >= self._expires_at:
            self._check_usable()
        size = len(frame)
        if size < OVERHEAD + 1:
            raise FrameFormatError(f"frame of {size} bytes is truncated (minimum {OVERHEAD + 1})")
        seq, length = _HEADER.unpack_from(frame)
        if length > MAX_PAYLOAD:
            raise FrameFormatError(f"frame announces {length} payload bytes, above the maximum {MAX_PAYLOAD}")
        if size != OVERHEAD + length:
            raise FrameFormatError(
                f"frame is {size} bytes but its header announces {length} payload bytes ({OVERHEAD + length})"
            )
        if length == 0:
            raise FrameFormatError("frame announces an empty payload")
        if seq <= self._last_accepted:
            raise ReplayAttackError(f"frame seq {seq} is not greater than the last accepted {self._last_accepted}")
        if seq >= self._max_seq:
            # refused, but it does not end the session: the frame is not authenticated, and
            # anyone can write a header (only an accepted last frame exhausts the session)
            raise SessionExpiredError(f"frame seq {seq:#x} is beyond the sequence limit {self._max_seq - 1:#x}")
        nonce = _NONCE_SEQ.pack(seq) + self._nonce_suffix  # the only nonce this frame may carry
        if not frame.startswith(nonce, HEADER_SIZE):
            self._auth_failed(f"frame seq {seq}: nonce does not match its sequence number and session")
        if out is None:
            target = SecureBuffer(length)
        elif isinstance(out, SecureBuffer):
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or offset + length > len(out):
                raise WrongLengthError(
                    f"a {length}-byte payload at offset {offset!r} does not fit a {len(out)}-byte buffer"
                )
            target = out
        else:
            raise WrongTypeError(f"out must be a SecureBuffer, got {type(out).__name__}")
        # every check the header can answer is done: only now does the AEAD run
        if not decrypt_unchecked(
            self._recv_key, nonce, frame[HEADER_SIZE + NONCE_SIZE :], frame[:HEADER_SIZE], target,
            offset if out is not None else 0,
        ):  # fmt: skip
            if out is None:
                target.secure_purge()
            self._auth_failed(f"frame seq {seq} failed authentication")
        self._last_accepted = seq
        if seq == self._max_seq - 1:  # authenticated, and no later frame can be valid
            self._end(State.EXPIRED, "frame sequence numbers exhausted")
        return target

    # -- the Channel interface (keros.channel) ------------------------------------------

    @property
    def overhead(self) -> int:
        return OVERHEAD

    @property
    def is_open(self) -> bool:
        return self.state is State.ESTABLISHED and self._clock.monotonic() < self._expires_at

    seal = encrypt_frame

    def open_into(self, message: bytes, out: SecureBuffer, offset: int = 0) -> int:
        if not isinstance(out, SecureBuffer):
            raise WrongTypeError(f"out must be a SecureBuffer, got {type(out).__name__}")
        self.decrypt_frame(message, out=out, offset=offset)
        return len(message) - OVERHEAD

    def _auth_failed(self, why: str) -> None:
        if self._compromise_on_auth_failure:
            self._end(State.FAILED, why)
            log.warning("sensor session compromised: %s", why)
        raise FrameAuthError(why)

    @property
    def last_accepted_seq(self) -> int:
        return self._last_accepted

    @property
    def sent_seq(self) -> int:
        return self._send_seq

    def __repr__(self) -> str:
        role, state = self.role.value, self.state.value
        return f"<SecureBusSession {role} {state} sent={self._send_seq} accepted={self._last_accepted}>"
