"""KEROS records on a byte stream: a sans-IO, length-prefixed record layer (h11's style).

A TCP connection carries a sequence of records, each ``type (u8) || length (u16 BE) || body``
(``docs/protocol.md``, "Records on a byte stream"). This module only cuts the stream into
records and writes them; it never sees a secret (handshake messages and channel messages are
already what goes on the wire) and it does no I/O:

* :class:`RecordReader` - the I/O loop feeds it whatever ``recv`` returned
  (:meth:`~RecordReader.receive_data`, ``b""`` for EOF) and takes records with
  :meth:`~RecordReader.next_record` until it answers :data:`NEED_DATA`. A header is checked
  (known type, length within ``max_body``, a CLOSE within 241 bytes) as soon as its three
  bytes are there, before any of its body is waited for. EOF between records is :data:`EOF`; EOF inside one is a
  :class:`~cortex_sal.errors.RemoteProtocolError`. Any remote error leaves the reader
  ``FAILED`` for good.
* :class:`RecordWriter` - turns a body into the bytes to send, refusing what the protocol
  forbids (an oversize body, anything after CLOSE) before anything is produced.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final, NoReturn

from ..checks import int_in_range
from ..errors import InvalidArgumentError, LocalProtocolError, RemoteProtocolError, WrongTypeError

HEADER_SIZE: Final = 3
MAX_BODY: Final = 65535  # the u16 length field; a Noise message is at most this
MAX_CLOSE_TEXT: Final = 240  # bytes of UTF-8 after the reason code
MAX_CLOSE_BODY: Final = 1 + MAX_CLOSE_TEXT  # the reason byte and the text, whatever max_body is
DEFAULT_MAX_BUFFER: Final = 2**20  # what one receive_data may bring beyond a partial record
_HEADER = struct.Struct(">BH")


class RecordType(enum.IntEnum):
    HANDSHAKE = 0x01  # a handshake message (v2: Noise XX messages 1-3; v1: hello, TEE hello, ack)
    DATA = 0x02  # a channel message (v2: a Noise transport message; v1: a frame)
    CLOSE = 0x03  # the sender's last record: reason (u8) || UTF-8 text


class CloseReason(enum.IntEnum):
    NORMAL = 0  # done: the stream ended as planned
    PROTOCOL_ERROR = 1  # the peer broke the protocol (a record, a handshake, a frame)
    REFUSED = 2  # the peer's certificate or authorisation was refused
    SHUTDOWN = 3  # the sender is going away (restart, shutdown); reconnecting later is fine


class ReaderState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"  # a CLOSE record was received: only EOF may follow
    DONE = "done"  # EOF was returned
    FAILED = "failed"  # a remote protocol error: the connection cannot go on


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


NEED_DATA: Final = _Sentinel("NEED_DATA")
""":meth:`RecordReader.next_record`: no whole record is buffered yet; feed more bytes."""
EOF: Final = _Sentinel("EOF")
""":meth:`RecordReader.next_record`: the stream ended between records."""


@dataclass(frozen=True, slots=True)
class Record:
    """A HANDSHAKE or DATA record."""

    type: RecordType
    body: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """A CLOSE record: why the peer ends the stream. Unauthenticated (anyone on the path can
    forge one), so it ends the connection but proves nothing; ``text`` is the peer's words,
    escape them before showing them."""

    reason: CloseReason
    text: str = ""

    @property
    def type(self) -> RecordType:
        return RecordType.CLOSE


def _byte_view(data: object, what: str) -> memoryview:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WrongTypeError(f"{what} must be bytes, bytearray or memoryview, got {type(data).__name__}")
    try:
        view = memoryview(data)
        contiguous, empty = view.c_contiguous, view.nbytes == 0
        if contiguous and not empty and (view.format != "B" or view.ndim != 1):
            view = view.cast("B")
    except (ValueError, TypeError):  # a released memoryview; an odd format or shape
        raise InvalidArgumentError(f"{what} is a buffer that cannot be read as bytes") from None
    if not contiguous:
        raise InvalidArgumentError(f"{what} must be a contiguous buffer")
    return memoryview(b"") if empty else view


def _body_limit(kind: RecordType, max_body: int, max_handshake: int | None = None) -> int:
    """The largest body a record of ``kind`` may have: a CLOSE's is fixed, a HANDSHAKE's
    ``max_handshake`` (``max_body`` when not given), a DATA record's ``max_body``."""
    if kind is RecordType.CLOSE:
        return MAX_CLOSE_BODY
    if kind is RecordType.HANDSHAKE and max_handshake is not None:
        return max_handshake
    return max_body


def _close_body(reason: object, text: object) -> bytes:
    if not isinstance(reason, CloseReason):
        raise WrongTypeError(f"reason must be a CloseReason, got {type(reason).__name__}")
    if not isinstance(text, str):
        raise WrongTypeError(f"text must be a str, got {type(text).__name__}")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise LocalProtocolError("the close text is not encodable as UTF-8 (a lone surrogate)") from None
    if len(encoded) > MAX_CLOSE_TEXT:
        raise LocalProtocolError(f"the close text is {len(encoded)} bytes of UTF-8, at most {MAX_CLOSE_TEXT}")
    return bytes([reason]) + encoded


class RecordReader:
    """Cuts an incoming byte stream into records. Sans-IO: feed bytes, take records.

    Memory is bounded twice: a record in progress never exceeds ``3 + max(max_body, 241)``
    bytes (its header is checked first; 241 is the largest CLOSE body), and the buffer as a
    whole never exceeds ``max_buffer`` (by default 1 MiB beyond one record; at least one
    record), so a loop that reads at most 1 MiB at a time and drains the reader after each
    read cannot be made to hold more. Feeding without draining past that limit is
    refused with :class:`~cortex_sal.errors.LocalProtocolError` and buffers nothing.

    ``max_handshake_body`` bounds HANDSHAKE records on their own (default: ``max_body``): a
    gateway lets large DATA records through (a 32-channel frame is 32 KiB) while handshake
    messages stay as small as they are.
    """

    def __init__(
        self, *, max_body: int = MAX_BODY, max_buffer: int | None = None, max_handshake_body: int | None = None
    ) -> None:
        self._max_body = int_in_range(max_body, "max_body", 1, MAX_BODY)
        self._max_handshake = (
            None if max_handshake_body is None else int_in_range(max_handshake_body, "max_handshake_body", 1, MAX_BODY)
        )
        largest = HEADER_SIZE + max(self._max_body, MAX_CLOSE_BODY)  # a CLOSE may exceed a small max_body
        limit = DEFAULT_MAX_BUFFER + largest if max_buffer is None else max_buffer
        self._max_buffer = int_in_range(limit, "max_buffer", largest, 2**30)
        self._buffer = bytearray()
        self._eof = False
        self._state = ReaderState.OPEN
        self._failure = ""
        self._close: Close | None = None

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def close_record(self) -> Close | None:
        """The CLOSE the peer sent, or ``None``: an EOF without one means the stream was cut."""
        return self._close

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as a record."""
        return len(self._buffer)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed what the socket returned; ``b""`` means the peer closed its side (EOF)."""
        self._check_usable()
        view = _byte_view(data, "data")
        if self._eof:
            raise LocalProtocolError("data fed after EOF")
        if not len(view):
            self._eof = True
            return
        if len(self._buffer) + len(view) > self._max_buffer:
            raise LocalProtocolError(
                f"{len(self._buffer)} bytes are buffered and {len(view)} more would pass the limit of "
                f"{self._max_buffer}: take records with next_record() before feeding more"
            )
        self._buffer += view
        if self._state is ReaderState.OPEN and len(self._buffer) >= HEADER_SIZE:
            self._header()  # the current record's header: refused before its body is waited for

    def next_record(self) -> Record | Close | _Sentinel:
        """The next whole record, :data:`NEED_DATA`, or :data:`EOF` (the stream ended between records)."""
        self._check_usable()
        if self._state is ReaderState.DONE:
            return EOF
        if self._state is ReaderState.CLOSED:
            if self._buffer:
                self._fail(f"{len(self._buffer)} bytes after a CLOSE record")
            return self._end() if self._eof else NEED_DATA
        if len(self._buffer) < HEADER_SIZE:
            if not self._eof:
                return NEED_DATA
            if not self._buffer:
                return self._end()
            self._fail(f"EOF inside a record header ({len(self._buffer)} of {HEADER_SIZE} bytes)")
        kind, length = self._header()
        total = HEADER_SIZE + length
        if len(self._buffer) < total:
            if self._eof:
                self._fail(f"EOF inside a {kind.name} record ({len(self._buffer)} of {total} bytes)")
            return NEED_DATA
        body = bytes(self._buffer[HEADER_SIZE:total])
        del self._buffer[:total]
        if kind is RecordType.CLOSE:
            self._close = self._parse_close(body)
            self._state = ReaderState.CLOSED
            return self._close
        return Record(kind, body)

    def _parse_close(self, body: bytes) -> Close:
        if not body:
            self._fail("a CLOSE record without its reason byte")
        try:
            reason = CloseReason(body[0])
        except ValueError:
            self._fail(f"a CLOSE record with unknown reason {body[0]}")
        try:
            text = body[1:].decode("utf-8")
        except UnicodeDecodeError:
            self._fail("a CLOSE record whose text is not UTF-8")
        return Close(reason, text)

    # -- internals ---------------------------------------------------------------------

    def _header(self) -> tuple[RecordType, int]:
        code, length = _HEADER.unpack_from(self._buffer)
        try:
            kind = RecordType(code)
        except ValueError:
            self._fail(f"unknown record type 0x{code:02x}")
        limit = _body_limit(kind, self._max_body, self._max_handshake)
        if length > limit:
            self._fail(f"a {kind.name} record of {length} bytes, at most {limit}")
        return kind, length

    def _end(self) -> _Sentinel:
        self._state = ReaderState.DONE
        return EOF

    def _check_usable(self) -> None:
        if self._state is ReaderState.FAILED:
            raise LocalProtocolError(f"the reader failed earlier ({self._failure}): close the connection")

    def _fail(self, why: str) -> NoReturn:
        self._state = ReaderState.FAILED
        self._failure = why
        self._buffer = bytearray()
        raise RemoteProtocolError(why)


class RecordWriter:
    """Turns bodies into records to send; after :meth:`close` nothing more may be written."""

    def __init__(self, *, max_body: int = MAX_BODY) -> None:
        self._max_body = int_in_range(max_body, "max_body", 1, MAX_BODY)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def handshake(self, message: bytes | bytearray | memoryview) -> bytes:
        return self._record(RecordType.HANDSHAKE, message)

    def data(self, message: bytes | bytearray | memoryview) -> bytes:
        return self._record(RecordType.DATA, message)

    def close(self, reason: CloseReason = CloseReason.NORMAL, text: str = "") -> bytes:
        """The CLOSE record; the writer is closed afterwards."""
        record = self._record(RecordType.CLOSE, _close_body(reason, text))
        self._closed = True
        return record

    def _record(self, kind: RecordType, body: bytes | bytearray | memoryview) -> bytes:
        view = _byte_view(body, f"a {kind.name} body")
        if self._closed:
            raise LocalProtocolError(f"a {kind.name} record after CLOSE: nothing may follow it")
        limit = _body_limit(kind, self._max_body)
        if len(view) > limit:
            raise LocalProtocolError(f"a {kind.name} body of {len(view)} bytes, at most {limit}")
        return b"".join((_HEADER.pack(kind, len(view)), view))  # wire bytes: ciphertext or public


__all__ = [
    "EOF",
    "HEADER_SIZE",
    "MAX_BODY",
    "MAX_CLOSE_BODY",
    "MAX_CLOSE_TEXT",
    "NEED_DATA",
    "Close",
    "CloseReason",
    "ReaderState",
    "Record",
    "RecordReader",
    "RecordType",
    "RecordWriter",
]
