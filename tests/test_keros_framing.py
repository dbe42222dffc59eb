"""The record layer on a byte stream (``keros.framing``), against the layout in docs/protocol.md.

The oracle is written from the document alone (``fuzzlib.wire_record``, built with ``struct``
from the layout ``type u8 || length u16 BE || body``, and ``fuzzlib.oracle_records``, a parser
of its own that says what any byte string must give; the fuzz target ``records`` uses the
same oracle). The reader is driven with every way of cutting a stream:
all at once, one byte at a time, every two-piece split, random splits, and EOF at every
position; and with oversize, unknown, truncated and trailing records.
"""

from __future__ import annotations

import struct

import fuzzlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.errors import (
    InvalidArgumentError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    SensorBusError,
    WrongTypeError,
)
from cortex_sal.keros.framing import (
    EOF,
    MAX_BODY,
    NEED_DATA,
    Close,
    CloseReason,
    ReaderState,
    Record,
    RecordReader,
    RecordType,
    RecordWriter,
)
from hypothesis_profiles import examples

wire = fuzzlib.wire_record
oracle_parse = fuzzlib.oracle_records


drive = fuzzlib.read_records


# a stream with every record type, an empty body, a one-byte body and multi-byte UTF-8
SMALL = (
    wire(1, bytes(range(32)))
    + wire(2, b"")
    + wire(2, b"\x7f")
    + wire(1, b"\x00" * 96)
    + wire(2, bytes(range(200, 256)) * 2)
    + wire(3, bytes([3]) + "arrêt".encode())
)
EXPECTED = oracle_parse(SMALL)[0]


def test_the_writer_writes_the_documented_layout() -> None:
    w = RecordWriter()
    assert w.handshake(b"\x01" * 32) == b"\x01\x00\x20" + b"\x01" * 32
    assert w.data(bytearray(b"abc")) == b"\x02\x00\x03abc"
    assert w.data(memoryview(b"")) == b"\x02\x00\x00"
    assert w.data(b"\xaa" * MAX_BODY) == b"\x02\xff\xff" + b"\xaa" * MAX_BODY
    assert w.close(CloseReason.REFUSED, "é") == b"\x03\x00\x03\x02\xc3\xa9"
    assert w.closed


def test_the_reference_stream_is_what_the_oracle_says() -> None:
    assert oracle_parse(SMALL)[1] == "closed-eof"
    assert len(EXPECTED) == 6 and EXPECTED[-1] == ("CLOSE", (3, "arrêt"))


def test_all_at_once_and_one_byte_at_a_time() -> None:
    assert drive([SMALL])[:2] == (EXPECTED, "closed-eof")
    assert drive([SMALL[i : i + 1] for i in range(len(SMALL))])[:2] == (EXPECTED, "closed-eof")


def test_every_two_piece_split() -> None:
    for cut in range(len(SMALL) + 1):
        assert drive([SMALL[:cut], SMALL[cut:]])[:2] == (EXPECTED, "closed-eof"), cut


def test_a_maximum_record_one_byte_at_a_time() -> None:
    body = bytes(range(256)) * 255 + bytes(range(255))  # 65535 bytes
    stream = wire(2, body) + wire(2, b"next")
    reader = RecordReader()
    for i in range(len(stream)):
        reader.receive_data(stream[i : i + 1])
        if i < 3 + MAX_BODY - 1:
            assert reader.next_record() is NEED_DATA
    assert reader.next_record() == Record(RecordType.DATA, body)
    assert reader.next_record() == Record(RecordType.DATA, b"next")
    assert reader.next_record() is NEED_DATA


@settings(max_examples=examples(300), deadline=None)
@given(cuts=st.lists(st.integers(0, len(SMALL)), max_size=12))
def test_random_splits(cuts: list[int]) -> None:
    assert drive(fuzzlib.cut(SMALL, cuts))[:2] == (EXPECTED, "closed-eof")


def test_eof_at_every_position() -> None:
    boundaries = {0}
    at = 0
    while at < len(SMALL):
        at += 3 + struct.unpack_from(">H", SMALL, at + 1)[0]
        boundaries.add(at)
    for cut in range(len(SMALL) + 1):
        got, end, reader = drive([SMALL[:cut]])
        want, want_end = oracle_parse(SMALL[:cut])
        assert (got, end) == (want, want_end), cut
        if cut in boundaries:
            assert end in ("eof", "closed-eof") and reader.state is ReaderState.DONE
            assert (reader.close_record is not None) == (cut == len(SMALL))  # only the full stream was closed
        else:
            assert end == "error:truncated"


def test_an_oversize_header_is_refused_before_its_body() -> None:
    reader = RecordReader(max_body=100)
    reader.receive_data(wire(2, b"x" * 100))
    assert reader.next_record() == Record(RecordType.DATA, b"x" * 100)
    with pytest.raises(RemoteProtocolError, match="DATA record of 101 bytes, at most 100"):
        reader.receive_data(struct.pack(">BH", 2, 101))  # the header alone: no body sent yet
    assert reader.state is ReaderState.FAILED and reader.buffered == 0


def test_an_oversize_close_is_refused_at_its_header() -> None:
    reader = RecordReader()
    header = struct.pack(">BH", 3, 242)
    reader.receive_data(header[:2])  # not yet a header: nothing to judge
    assert reader.state is ReaderState.OPEN and reader.next_record() is NEED_DATA
    with pytest.raises(RemoteProtocolError, match="CLOSE record of 242 bytes, at most 241"):
        reader.receive_data(header[2:])
    assert reader.state is ReaderState.FAILED and reader.buffered == 0


def test_a_largest_close_fits_a_reader_with_a_small_max_body() -> None:
    """A CLOSE may be 241 bytes whatever max_body is: the smallest buffer still holds one."""
    reader = RecordReader(max_body=10, max_buffer=3 + 241)
    text = "é" * 120  # 240 bytes of UTF-8
    reader.receive_data(RecordWriter(max_body=10).close(CloseReason.SHUTDOWN, text))
    assert reader.next_record() == Close(CloseReason.SHUTDOWN, text)
    with pytest.raises(InvalidArgumentError, match="max_buffer"):
        RecordReader(max_body=10, max_buffer=3 + 240)


@pytest.mark.parametrize("code", [0x00, 0x04, 0x7F, 0xFF])
def test_an_unknown_record_type_is_refused_at_its_header(code: int) -> None:
    reader = RecordReader()
    reader.receive_data(bytes([code]))
    reader.receive_data(b"\x00")
    with pytest.raises(RemoteProtocolError, match=f"unknown record type 0x{code:02x}"):
        reader.receive_data(b"\x05")


@pytest.mark.parametrize(
    ("body", "why"),
    [(b"", "without its reason byte"), (b"\x09", "unknown reason 9"), (b"\x00\xff", "not UTF-8")],
)
def test_a_malformed_close_is_refused(body: bytes, why: str) -> None:
    reader = RecordReader()
    reader.receive_data(wire(2, b"before") + wire(3, body))
    assert reader.next_record() == Record(RecordType.DATA, b"before")
    with pytest.raises(RemoteProtocolError, match=why):
        reader.next_record()
    assert reader.state is ReaderState.FAILED


def test_anything_after_close_is_refused() -> None:
    reader = RecordReader()
    reader.receive_data(wire(3, b"\x00"))
    assert reader.next_record() == Close(CloseReason.NORMAL, "")
    assert reader.state is ReaderState.CLOSED and reader.next_record() is NEED_DATA
    reader.receive_data(wire(2, b"late"))
    with pytest.raises(RemoteProtocolError, match="7 bytes after a CLOSE record"):
        reader.next_record()


def test_a_failed_reader_refuses_every_later_call() -> None:
    reader = RecordReader()
    with pytest.raises(RemoteProtocolError):
        reader.receive_data(b"\x09\x00\x00")
    for call in (lambda: reader.receive_data(b"\x02\x00\x00"), reader.next_record):
        with pytest.raises(LocalProtocolError, match="failed earlier"):
            call()


def test_eof_is_final_and_idempotent() -> None:
    reader = RecordReader()
    reader.receive_data(b"")
    assert reader.next_record() is EOF and reader.next_record() is EOF
    with pytest.raises(LocalProtocolError, match="after EOF"):
        reader.receive_data(b"\x02\x00\x00")
    assert reader.close_record is None  # a bare EOF: the stream was cut, not closed


def test_feeding_without_draining_is_refused_and_changes_nothing() -> None:
    reader = RecordReader(max_body=100, max_buffer=244)  # the smallest buffer: one largest CLOSE
    a, b, c = b"a" * 100, b"b" * 100, b"c" * 35
    reader.receive_data(wire(2, a) + wire(2, b) + wire(2, c))  # 103 + 103 + 38 = 244 bytes
    with pytest.raises(LocalProtocolError, match="take records with next_record"):
        reader.receive_data(b"\x02")
    assert reader.buffered == 244 and reader.state is ReaderState.OPEN
    assert reader.next_record() == Record(RecordType.DATA, a)
    reader.receive_data(wire(2, b"z"))
    for body in (b, c, b"z"):
        assert reader.next_record() == Record(RecordType.DATA, body)


@pytest.mark.parametrize("bad", ["text", 7, None, [1, 2], bytearray(4).__iter__()])
def test_receive_data_refuses_what_is_not_bytes(bad: object) -> None:
    reader = RecordReader()
    with pytest.raises(WrongTypeError):
        reader.receive_data(bad)  # type: ignore[arg-type]
    assert reader.state is ReaderState.OPEN and reader.buffered == 0


def test_a_non_contiguous_buffer_is_refused() -> None:
    reader, writer = RecordReader(), RecordWriter()
    with pytest.raises(InvalidArgumentError, match="contiguous"):
        reader.receive_data(memoryview(b"\x02\x00\x00\x00")[::2])
    with pytest.raises(InvalidArgumentError, match="contiguous"):
        writer.data(memoryview(b"abcd")[::2])
    released = memoryview(b"\x02\x00\x00")
    released.release()
    with pytest.raises(InvalidArgumentError, match="cannot be read as bytes"):
        reader.receive_data(released)
    assert reader.state is ReaderState.OPEN and reader.buffered == 0 and not writer.closed
    empty_2d = memoryview(np.zeros((0, 2), np.uint8))
    assert writer.data(empty_2d) == b"\x02\x00\x00"  # an empty buffer of any shape is an empty body
    wide = memoryview(bytearray(b"\x02\x00\x02\xaa\xbb\x00")).cast("H")  # 3 two-byte items
    reader.receive_data(wide)
    assert reader.next_record() == Record(RecordType.DATA, b"\xaa\xbb")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"max_body": 0}, InvalidArgumentError),
        ({"max_body": MAX_BODY + 1}, InvalidArgumentError),
        ({"max_body": True}, WrongTypeError),
        ({"max_body": 10.0}, WrongTypeError),
        ({"max_body": 10, "max_buffer": 12}, InvalidArgumentError),
        ({"max_buffer": "big"}, WrongTypeError),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RecordReader(**kwargs)  # type: ignore[arg-type]
    if set(kwargs) == {"max_body"}:
        with pytest.raises(error):
            RecordWriter(**kwargs)  # type: ignore[arg-type]


def test_the_writer_refuses_what_the_protocol_forbids() -> None:
    w = RecordWriter(max_body=8)
    with pytest.raises(LocalProtocolError, match="DATA body of 9 bytes, at most 8"):
        w.data(b"123456789")
    with pytest.raises(WrongTypeError):
        w.handshake("abc")  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError, match="CloseReason"):
        w.close(0)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError, match="text must be a str"):
        w.close(CloseReason.NORMAL, b"bytes")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="at most 240"):
        w.close(CloseReason.NORMAL, "x" * 241)
    with pytest.raises(LocalProtocolError, match="lone surrogate"):
        w.close(CloseReason.NORMAL, "\ud800")
    assert not w.closed  # every refusal above changed nothing
    assert w.close(CloseReason.NORMAL, "x" * 240)[:3] == b"\x03\x00\xf1"  # a CLOSE is not bound by max_body
    with pytest.raises(LocalProtocolError, match="after CLOSE"):
        w.data(b"late")
    with pytest.raises(LocalProtocolError, match="after CLOSE"):
        w.close()


def test_errors_sit_in_the_sensor_bus_family() -> None:
    assert issubclass(RemoteProtocolError, ProtocolError) and issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(ProtocolError, SensorBusError)


@settings(max_examples=examples(2_000), deadline=None)
@given(
    stream=st.one_of(
        st.binary(max_size=300),
        st.lists(st.tuples(st.sampled_from([1, 2, 3, 0, 4]), st.binary(max_size=40)), max_size=6).map(
            lambda rs: b"".join(wire(k, b) for k, b in rs)
        ),
        st.tuples(st.binary(max_size=80), st.integers(0, 80)).map(lambda t: (SMALL + t[0])[: len(SMALL) + t[1]]),
    ),
    cuts=st.lists(st.integers(0, 400), max_size=8),
    max_body=st.sampled_from([MAX_BODY, 40, 1]),
)
def test_any_bytes_in_any_chunks_give_what_the_oracle_says(stream: bytes, cuts: list[int], max_body: int) -> None:
    got, end, _ = drive(fuzzlib.cut(stream, cuts), max_body=max_body)
    assert (got, end) == oracle_parse(stream, max_body)
