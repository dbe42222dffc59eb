"""A sans-IO Noise transport over Split()'s two CipherStates, for one side of a session.

Feed it plaintexts and get wire messages, feed it wire messages and get plaintexts; it never
touches a socket. The two directions have independent keys, nonces and rekey epochs.

The contract - the ordered and lossy wire formats, every limit, the replay window's edges,
rekeying by count and by time (the epoch rule, what happens at nonce 2**32), the errors and
what a refused message leaves unchanged - is written down once, in ``docs/protocol.md``,
"KEROS v2" > "Transport". This module implements it; its tests check it against
``noiseprotocol`` and a model of the window (``tests/test_noise_transport.py``).

Not thread-safe: one object is used by one thread at a time.
"""

from __future__ import annotations

import struct
from typing import Any

from ...checks import int_in_range, public_bytes
from ...clock import SYSTEM_CLOCK, Clock
from ...crypto import CipherKey
from ...crypto.cipher import COUNTER_SIZE, MAX_MESSAGE, MAX_NONCE, MAX_PLAINTEXT, TAG_SIZE
from ...errors import (
    FrameAuthError,
    FrameFormatError,
    InvalidArgumentError,
    NotCopyableError,
    ReplayAttackError,
    SensorBusError,
    SessionExpiredError,
    WrongLengthError,
    WrongTypeError,
)
from ...securemem import SecureBuffer, SecureKeyBuffer
from ..states import State
from .state import CipherState, HandshakeState

NONCE_SIZE = COUNTER_SIZE  # lossy mode's explicit nonce: n as u64 big-endian
DEFAULT_WINDOW = 1024
MIN_WINDOW = 1024
MAX_WINDOW = 1 << 16
DEFAULT_EPOCH = 1 << 32  # the epoch length when rekey_every is None
DEFAULT_MAX_EPOCH_SKIP = 16
MAX_EPOCH_SKIP = 1 << 16
DEFAULT_REKEY_GRACE_S = 5.0

_unpack_be = struct.Struct(">Q").unpack_from


def _seconds_option(value: object, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WrongTypeError(f"{what} must be a number of seconds, got {type(value).__name__}")
    if not value > 0:
        raise InvalidArgumentError(f"{what} must be positive, got {value!r}")
    return float(value)


class _Epoch:
    """A lossy receiver's key epoch: its key and its replay window."""

    __slots__ = ("highest", "index", "key", "seen", "started")

    def __init__(self, index: int, key: CipherKey, started: float) -> None:
        self.index = index
        self.key = key
        self.highest = -1  # nothing accepted yet
        self.seen = 0  # bit d set: nonce highest - d was accepted
        self.started = started


class NoiseTransport:
    """Encrypt and decrypt Noise transport messages for one side (see the module docstring).

    ``send``/``recv`` are taken over (closed with this object); either may be None for the
    silent direction of a one-way pattern. Both must be fresh from Split() (``n == 0``).
    """

    __slots__ = (
        "_clock",
        "_closed",
        "_cur",
        "_epoch_len",
        "_grace",
        "_interval",
        "_lossy",
        "_mask",
        "_max_skip",
        "_prev",
        "_r_limit",
        "_r_low",
        "_recv_epoch",
        "_rk",
        "_rn",
        "_s_limit",
        "_s_started",
        "_send_epoch",
        "_sk",
        "_sn",
        "_why_closed",
        "_window",
    )

    def __init__(
        self,
        send: CipherState | None,
        recv: CipherState | None,
        *,
        lossy: bool = False,
        rekey_every: int | None = None,
        rekey_interval_s: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        window: int = DEFAULT_WINDOW,
        max_epoch_skip: int = DEFAULT_MAX_EPOCH_SKIP,
        rekey_grace_s: float = DEFAULT_REKEY_GRACE_S,
    ) -> None:
        for cs, what in ((send, "send"), (recv, "recv")):
            if cs is None:
                continue
            if not isinstance(cs, CipherState):
                raise WrongTypeError(f"{what} must be a CipherState or None, got {type(cs).__name__}")
            if cs.is_closed or not cs.has_key():
                raise InvalidArgumentError(f"{what} CipherState must be keyed and open (fresh from split())")
            if cs.n != 0:
                raise InvalidArgumentError(f"{what} CipherState must be fresh from split() (n == 0), got n={cs.n}")
            cs.ensure_key_live()  # a purged or fork-inherited key is refused now
        if send is None and recv is None:
            raise InvalidArgumentError("a transport needs at least one direction")
        if send is not None and send is recv:
            raise InvalidArgumentError("send and recv must be different CipherStates")
        if not isinstance(lossy, bool):
            raise WrongTypeError(f"lossy must be a bool, got {type(lossy).__name__}")
        window = int_in_range(window, "window", MIN_WINDOW, MAX_WINDOW)
        epoch_len = DEFAULT_EPOCH if rekey_every is None else int_in_range(rekey_every, "rekey_every", 1, DEFAULT_EPOCH)
        if lossy and epoch_len < window:
            raise InvalidArgumentError(
                f"in lossy mode rekey_every ({epoch_len}) must be at least the replay window ({window})"
            )
        interval = None if rekey_interval_s is None else _seconds_option(rekey_interval_s, "rekey_interval_s")
        grace = _seconds_option(rekey_grace_s, "rekey_grace_s")
        max_skip = int_in_range(max_epoch_skip, "max_epoch_skip", 1, MAX_EPOCH_SKIP)
        if not callable(getattr(clock, "monotonic", None)):
            raise WrongTypeError(f"clock must have a monotonic() method, got {type(clock).__name__}")

        self._lossy = lossy
        self._epoch_len = epoch_len
        self._interval = interval
        self._grace = grace
        self._max_skip = max_skip
        self._window = window
        self._mask = (1 << (window + 1)) - 1
        self._clock = clock
        self._closed = False
        self._why_closed = ""
        # sending direction: its key, next nonce, epoch and when that epoch started
        self._sk: CipherKey | None = None
        self._sn = 0
        self._send_epoch = 0
        self._s_started = 0.0
        # receiving direction (ordered: key + next nonce; lossy: current/previous epochs)
        self._rk: CipherKey | None = None
        self._rn = 0
        self._recv_epoch = 0
        self._cur: _Epoch | None = None
        self._prev: _Epoch | None = None
        now = clock.monotonic() if interval is not None or lossy else 0.0
        if send is not None:
            self._sk = send.take_key()  # taken over: the CipherState is left empty and closed
            self._s_started = now
        if recv is not None:
            self._rk = recv.take_key()
            if lossy:
                assert self._rk is not None
                self._cur = _Epoch(0, self._rk, now)
        self._set_limits()

    @classmethod
    def from_handshake(cls, handshake: HandshakeState, **options: Any) -> NoiseTransport:
        """The transport of an ESTABLISHED handshake (takes its CipherStates over via ``split()``).

        The initiator sends with ``c1`` and receives with ``c2``, the responder the other way
        round; for a one-way pattern the initiator only sends and the responder only receives
        (``c2`` is closed unused).
        """
        if not isinstance(handshake, HandshakeState):
            raise WrongTypeError(f"handshake must be a HandshakeState, got {type(handshake).__name__}")
        if handshake.status is not State.ESTABLISHED:
            raise InvalidArgumentError(f"the handshake is not complete (status {handshake.status.value})")
        c1, c2 = handshake.split()
        if handshake.pattern.one_way:
            c2.close()
            send, recv = (c1, None) if handshake.initiator else (None, c1)
        else:
            send, recv = (c1, c2) if handshake.initiator else (c2, c1)
        try:
            return cls(send, recv, **options)
        except BaseException:
            for cs in (c1, c2):
                cs.close()
            raise

    # -- properties ----------------------------------------------------------------------------

    @property
    def lossy(self) -> bool:
        return self._lossy

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def rekey_every(self) -> int:
        """The epoch length E in nonces (2**32 when no count was given)."""
        return self._epoch_len

    @property
    def window(self) -> int:
        return self._window

    @property
    def send_nonce(self) -> int:
        """The nonce the next sent message will use (before any time skip)."""
        return self._sn

    @property
    def send_epoch(self) -> int:
        return self._send_epoch

    @property
    def recv_nonce(self) -> int:
        """Ordered mode: the nonce expected next. Lossy mode: the highest accepted plus one."""
        if self._lossy:
            return self._cur.highest + 1 if self._cur is not None else 0
        return self._rn

    @property
    def recv_epoch(self) -> int:
        if self._lossy:
            return self._cur.index if self._cur is not None else 0
        return self._recv_epoch

    @property
    def recv_highest(self) -> int:
        """Lossy mode: the highest nonce accepted so far (-1 before the first)."""
        return self._cur.highest if self._cur is not None else -1

    @property
    def has_previous_epoch_key(self) -> bool:
        """Lossy mode: whether the previous epoch's key is still kept for late messages."""
        return self._prev is not None

    # -- internals -------------------------------------------------------------------------------

    def _set_limits(self) -> None:
        """The fast paths run while the next nonce stays inside the current epoch (and no clock
        needs reading); anything else takes the checked path."""
        if self._closed or self._sk is None or self._interval is not None:
            self._s_limit = -1
        else:
            self._s_limit = min((self._send_epoch + 1) * self._epoch_len, MAX_NONCE)
        self._r_low = self._recv_epoch * self._epoch_len
        if self._closed or self._rk is None:
            self._r_limit = -1
        elif self._lossy:
            self._r_limit = -1 if self._prev is not None else min((self._recv_epoch + 1) * self._epoch_len, MAX_NONCE)
        else:
            self._r_limit = min((self._recv_epoch + 1) * self._epoch_len, MAX_NONCE)

    def _check_open(self) -> None:
        if self._closed:
            raise SessionExpiredError(f"the Noise transport is closed ({self._why_closed}); re-handshake")

    # -- sending -----------------------------------------------------------------------------------

    def encrypt(self, plaintext: bytes | SecureBuffer, ad: bytes = b"") -> bytes:
        """One wire message for ``plaintext`` (bytes, or a SecureBuffer read in place; at most 65519 bytes)."""
        n = self._sn
        if n < self._s_limit:  # the send key's fast path: None unless bytes that fit
            key: CipherKey = self._sk  # type: ignore[assignment]  # _s_limit >= 0 only while a send key is held
            if self._lossy:
                message = key.encrypt_with_counter_fast(n, ad, plaintext)  # type: ignore[arg-type]  # a SecureBuffer gives None: checked path
            else:
                message = key.encrypt_fast(n, ad, plaintext)  # type: ignore[arg-type]  # a SecureBuffer gives None: checked path
            if message is not None:
                self._sn = n + 1
                return message
        return self._encrypt_checked(plaintext, ad)

    def _encrypt_checked(self, plaintext: object, ad: object) -> bytes:
        self._check_open()
        if self._sk is None:
            raise SensorBusError("this side of a one-way transport only receives")
        ad_b = public_bytes(ad, "ad")
        if isinstance(plaintext, SecureBuffer):
            size = len(plaintext)
        elif isinstance(plaintext, bytes | bytearray | memoryview):
            plaintext = bytes(plaintext)
            size = len(plaintext)
        else:
            raise WrongTypeError(f"plaintext must be bytes or a SecureBuffer, got {type(plaintext).__name__}")
        if size > MAX_PLAINTEXT:
            raise WrongLengthError(
                f"a {size}-byte plaintext does not fit a Noise message: at most {MAX_PLAINTEXT} bytes "
                f"(65535 including the {TAG_SIZE}-byte tag); nothing was encrypted"
            )
        n = self._sn
        epoch = self._send_epoch
        now = 0.0
        if self._interval is not None:
            now = self._clock.monotonic()
            boundary = (epoch + 1) * self._epoch_len
            if now - self._s_started >= self._interval and n < boundary:
                n = boundary  # a time rekey: skip to the first nonce of the next epoch
        if n >= MAX_NONCE:
            raise SessionExpiredError("the sending nonces are exhausted (2^64-1 is reserved); re-handshake")
        if n // self._epoch_len != epoch:
            old, self._sk = self._sk, self._sk.rekeyed()
            old.purge()  # the old key, the moment the new one is in place
            self._send_epoch = epoch + 1
            self._s_started = now if self._interval is not None else 0.0
        key = self._sk
        message = key.encrypt_with_counter(n, ad_b, plaintext) if self._lossy else key.encrypt(n, ad_b, plaintext)
        self._sn = n + 1
        self._set_limits()
        return message

    # -- receiving ---------------------------------------------------------------------------------

    def decrypt(self, message: bytes, ad: bytes = b"") -> bytes:
        """The plaintext of one wire message, as bytes (for public payloads)."""
        if not self._lossy:
            n = self._rn
            if n < self._r_limit:  # the current epoch; the key's fast path checks the arguments
                plaintext = self._rk.decrypt_fast(n, ad, message)  # type: ignore[union-attr]  # held while _r_limit >= 0
                if plaintext is not None:
                    self._rn = n + 1
                    return plaintext
        elif type(message) is bytes:
            lossy_plaintext = self._open_lossy_fast(message, ad, None, 0)
            if lossy_plaintext is not None:
                return lossy_plaintext  # type: ignore[return-value]  # bytes when out is None
        result = self._decrypt_checked(message, ad, None, 0)
        assert isinstance(result, bytes)
        return result

    def decrypt_into(self, message: bytes, out: SecureBuffer, offset: int = 0, ad: bytes = b"") -> int:
        """Decrypt one wire message straight into locked memory (``out`` at ``offset``); return its length.

        On a failed tag libsodium zeroes the target region; nothing else changes.
        """
        if not self._lossy:
            n = self._rn
            if n < self._r_limit:  # the current epoch; the key's fast path checks the arguments
                written = self._rk.decrypt_into_fast(n, ad, message, out, offset)  # type: ignore[union-attr]  # as above
                if written >= 0:  # with the stack scrub
                    self._rn = n + 1
                    return written
        elif type(message) is bytes:
            lossy_written = self._open_lossy_fast(message, ad, out, offset)
            if lossy_written is not None:
                return lossy_written  # type: ignore[return-value]  # an int when out is given
        if not isinstance(out, SecureBuffer):
            raise WrongTypeError(f"out must be a SecureBuffer, got {type(out).__name__}")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise InvalidArgumentError(f"offset must be a non-negative int, got {offset!r}")
        result = self._decrypt_checked(message, ad, out, offset)
        assert isinstance(result, int)
        return result

    # -- the Channel interface (keros.channel) ------------------------------------------------

    @property
    def overhead(self) -> int:
        return TAG_SIZE + (NONCE_SIZE if self._lossy else 0)

    @property
    def is_open(self) -> bool:
        return not self._closed

    seal = encrypt  # the Channel names are the transport's own methods: no extra call per frame
    open_into = decrypt_into

    def _open_lossy_fast(self, message: bytes, ad: bytes, out: SecureBuffer | None, offset: int) -> bytes | int | None:
        """Lossy mode's common case: a message of the current epoch, inside the window, no previous
        key kept. Returns the plaintext (bytes, or its length once in ``out``), or None for "take
        the checked path" (which also re-checks and reports a failed tag)."""
        size = len(message)
        if NONCE_SIZE + TAG_SIZE <= size <= NONCE_SIZE + MAX_MESSAGE:
            (n,) = _unpack_be(message)
            if self._r_low <= n < self._r_limit:  # the current epoch, and no previous key kept
                cur: _Epoch = self._cur  # type: ignore[assignment]  # always set in lossy mode while open
                d = cur.highest - n
                if d < 0 or (d <= self._window and not (cur.seen >> d) & 1):
                    body = message[NONCE_SIZE:]
                    if out is None:
                        result: bytes | int | None = cur.key.decrypt_fast(n, ad, body)
                        if result is None:
                            return None
                    elif (result := cur.key.decrypt_into_fast(n, ad, body, out, offset)) < 0:  # with the scrub
                        return None
                    # the tag verified: only now does the window move
                    if d < 0:
                        cur.seen = ((cur.seen << -d) | 1) & self._mask
                        cur.highest = n
                    else:
                        cur.seen |= 1 << d
                    return result
        return None

    def _decrypt_checked(self, message: object, ad: object, out: SecureBuffer | None, offset: int) -> bytes | int:
        message = public_bytes(message, "message")
        ad = public_bytes(ad, "ad")
        self._check_open()
        if self._rk is None:
            raise SensorBusError("this side of a one-way transport only sends")
        assert isinstance(message, bytes) and isinstance(ad, bytes)
        head = NONCE_SIZE if self._lossy else 0
        size = len(message)
        if size < head + TAG_SIZE:
            raise FrameFormatError(f"a {size}-byte message is truncated: at least {head + TAG_SIZE} bytes")
        if size - head > MAX_MESSAGE:
            raise FrameFormatError(
                f"a {size - head}-byte Noise message exceeds the {MAX_MESSAGE}-byte maximum (tag included)"
            )
        plain_len = size - head - TAG_SIZE
        if out is not None and offset + plain_len > len(out):
            raise WrongLengthError(
                f"a {plain_len}-byte plaintext at offset {offset} does not fit a {len(out)}-byte buffer"
            )
        if self._lossy:
            return self._decrypt_lossy(message, ad, out, offset, plain_len)
        return self._decrypt_ordered(message, ad, out, offset, plain_len)

    @staticmethod
    def _open(
        key: CipherKey, n: int, body: bytes, ad: bytes, out: SecureBuffer | None, offset: int
    ) -> bytes | int | None:
        """The plaintext (bytes, or its length once in ``out``), or None if the tag did not verify."""
        if out is None:
            return key.decrypt(n, ad, body)
        written = key.decrypt_into(n, ad, body, out, offset)  # with the stack scrub
        return None if written < 0 else written

    def _decrypt_ordered(
        self, message: bytes, ad: bytes, out: SecureBuffer | None, offset: int, plain_len: int
    ) -> bytes | int:
        assert self._rk is not None
        n = self._rn
        if n >= MAX_NONCE:
            raise SessionExpiredError("the receiving nonces are exhausted (2^64-1 is reserved); re-handshake")
        epoch = self._recv_epoch
        next_key: CipherKey | None = None
        try:
            if n // self._epoch_len == epoch:
                candidates = [(n, False)]
                skip = (epoch + 1) * self._epoch_len  # a sender's time rekey lands here
                if skip < MAX_NONCE:
                    candidates.append((skip, True))
            else:
                candidates = [(n, True)]  # n starts the next epoch
            for nonce, is_next in candidates:
                if is_next and next_key is None:
                    next_key = self._rk.rekeyed()
                key = next_key if is_next and next_key is not None else self._rk
                result = self._open(key, nonce, message, ad, out, offset)
                if result is not None:
                    if is_next:
                        old, self._rk, next_key = self._rk, key, None
                        old.purge()
                        self._recv_epoch = epoch + 1
                    self._rn = nonce + 1
                    self._set_limits()
                    return result
        finally:
            if next_key is not None:
                next_key.purge()  # a tentative key that did not verify
        raise FrameAuthError(f"message {n} failed authentication (tampered, forged, or out of order)")

    def _decrypt_lossy(
        self, message: bytes, ad: bytes, out: SecureBuffer | None, offset: int, plain_len: int
    ) -> bytes | int:
        cur = self._cur
        assert cur is not None
        (n,) = _unpack_be(message)
        if n >= MAX_NONCE:
            raise FrameFormatError("nonce 2^64-1 is reserved: no message uses it")
        now = self._clock.monotonic()
        # an expired previous key is not used, but only an authenticated message purges it:
        # nothing unauthenticated changes state
        prev = self._prev if self._prev is not None and not self._previous_expired(now) else None
        if cur.highest - n > self._window:  # the window is the global one, across epochs
            raise ReplayAttackError(
                f"nonce {n} is {cur.highest - n} behind the highest accepted ({cur.highest}); "
                f"the window is {self._window}"
            )
        epoch = n // self._epoch_len
        body = message[NONCE_SIZE:]
        if epoch == cur.index or (prev is not None and epoch == prev.index):
            slot = cur if epoch == cur.index else prev
            assert slot is not None
            d = self._window_check(slot, n)
            result = self._open(slot.key, n, body, ad, out, offset)
            if result is None:
                raise FrameAuthError(f"message {n} failed authentication (tampered or forged); window unchanged")
            self._window_accept(slot, n, d)
            self._expire_previous(now)
            return result
        if epoch < cur.index:
            raise ReplayAttackError(f"nonce {n} belongs to key epoch {epoch}, already retired (current {cur.index})")
        ahead = epoch - cur.index
        if ahead > self._max_skip:
            raise FrameAuthError(
                f"nonce {n} is {ahead} key epochs ahead (at most {self._max_skip}): not authenticated; "
                "if the peer is genuine, re-handshake"
            )
        # a later epoch: derive its key tentatively, keep it only if the tag verifies
        chain: list[CipherKey] = []
        try:
            key = cur.key
            for _ in range(ahead):
                key = key.rekeyed()
                chain.append(key)
            result = self._open(key, n, body, ad, out, offset)
            if result is None:
                raise FrameAuthError(f"message {n} failed authentication (tampered or forged); keys unchanged")
            new = _Epoch(epoch, chain.pop(), now)
            new.highest, new.seen = n, 1
            old_prev = self._prev
            if ahead == 1:
                self._prev = cur
            else:  # epochs were skipped: the one just before the new one may still send late messages
                self._prev = _Epoch(epoch - 1, chain.pop(), now)
                cur.key.purge()
            if old_prev is not None:
                old_prev.key.purge()
            self._cur = new
            self._rk = new.key
            self._recv_epoch = epoch
            self._set_limits()
            return result
        finally:
            for k in chain:
                k.purge()  # intermediate (and, on failure, all) tentative keys

    def _window_check(self, slot: _Epoch, n: int) -> int:
        d = slot.highest - n
        if d >= 0:
            if d > self._window:
                raise ReplayAttackError(
                    f"nonce {n} is {d} behind the highest accepted ({slot.highest}); the window is {self._window}"
                )
            if (slot.seen >> d) & 1:
                raise ReplayAttackError(f"nonce {n} was already accepted (replay)")
        return d

    def _window_accept(self, slot: _Epoch, n: int, d: int) -> None:
        if d < 0:
            slot.seen = ((slot.seen << -d) | 1) & self._mask
            slot.highest = n
        else:
            slot.seen |= 1 << d

    def _previous_expired(self, now: float) -> bool:
        """The previous epoch's key is done once ``window`` nonces of the current epoch have
        passed (every older nonce is out of the window) or ``rekey_grace_s`` after the switch."""
        cur = self._cur
        assert cur is not None
        return cur.highest - cur.index * self._epoch_len >= self._window or now - cur.started >= self._grace

    def _expire_previous(self, now: float) -> None:
        prev = self._prev
        if prev is not None and self._previous_expired(now):
            self._prev = None
            prev.key.purge()
            self._set_limits()

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Purge every key (both directions, any previous epoch). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._why_closed = "closed"
        keys = [self._sk, self._rk]
        for ep in (self._cur, self._prev):
            if ep is not None:
                keys.append(ep.key)
        self._sk = self._rk = None
        self._cur = self._prev = None
        for key in keys:
            if key is not None:
                key.purge()
        self._set_limits()

    def _secret_buffers(self) -> list[SecureKeyBuffer]:
        """Every key this transport holds (tests check they end purged)."""
        keys = [k for k in (self._sk, self._rk) if k is not None]
        keys += [ep.key for ep in (self._cur, self._prev) if ep is not None and ep.key not in keys]
        return [k.key_buffer for k in keys]

    def __enter__(self) -> NoiseTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce_ex__(self, protocol: object) -> Any:
        raise NotCopyableError("a NoiseTransport holds keys: it cannot be pickled or copied")

    def __repr__(self) -> str:
        mode = "lossy" if self._lossy else "ordered"
        state = "closed" if self._closed else "open"
        return f"<NoiseTransport {mode} {state} sent={self._sn} recv={self.recv_nonce}>"


__all__ = ["DEFAULT_WINDOW", "NONCE_SIZE", "NoiseTransport"]
