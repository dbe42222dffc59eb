"""``ClinicalChannel`` against an independent peer written with ``cryptography`` only:
interoperation both ways, the derived key, replay/reorder, tampering, roles, key zeroing on
close, expiry, and refused peer keys."""

from __future__ import annotations

import copy
import ctypes
import hashlib
import pickle
import struct
from collections.abc import Iterator

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cortex_sal.clock import ManualClock
from cortex_sal.errors import (
    ClinicalChannelError,
    CortexError,
    InvalidArgumentError,
    LowOrderPointError,
    NotCopyableError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.sal.clinical import ClinicalChannel
from cortex_sal.securemem import SecureBuffer
from cortex_sal.securemem.arena import arena

INFO = b"cortex-clinical-stream-v1"
HOURS_4 = 4 * 3600.0


class IndependentPeer:
    """The clinician's end, from RFC 7748 / 5869 / 8439 via ``cryptography`` only."""

    def __init__(self) -> None:
        self._private = X25519PrivateKey.generate()
        self.public = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._aead: ChaCha20Poly1305 | None = None
        self.key = b""
        self.counter = 0

    def derive(self, their_public: bytes) -> bytes:
        shared = self._private.exchange(X25519PublicKey.from_public_bytes(their_public))
        lo, hi = sorted([self.public, their_public])
        salt = hashlib.sha256(lo + hi).digest()
        self.key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=INFO).derive(shared)
        self._aead = ChaCha20Poly1305(self.key)
        return self.key

    def seal(self, plaintext: bytes, aad: bytes = b"", counter: int | None = None) -> bytes:
        assert self._aead is not None
        if counter is None:
            self.counter += 1
            counter = self.counter
        header = struct.pack(">Q", counter)
        return header + self._aead.encrypt(b"\x00" * 4 + header, plaintext, header + aad)

    def open(self, message: bytes, aad: bytes = b"") -> tuple[int, bytes]:
        assert self._aead is not None
        header = message[:8]
        (counter,) = struct.unpack(">Q", header)
        return counter, self._aead.decrypt(b"\x00" * 4 + header, message[8:], header + aad)


def pair(role: str, clock: ManualClock | None = None) -> tuple[ClinicalChannel, IndependentPeer]:
    peer = IndependentPeer()
    channel = ClinicalChannel.establish(peer.public, role, clock=clock or ManualClock())
    peer.derive(channel.public_key)
    return channel, peer


@pytest.fixture
def receiver() -> Iterator[tuple[ClinicalChannel, IndependentPeer]]:
    channel, peer = pair("receiver")
    yield channel, peer
    channel.close()


@pytest.fixture
def sender() -> Iterator[tuple[ClinicalChannel, IndependentPeer]]:
    channel, peer = pair("sender")
    yield channel, peer
    channel.close()


def read(address: int, size: int = 32) -> bytes:
    return ctypes.string_at(address, size)


def opened_equals(buf: SecureBuffer, expected: bytes) -> bool:
    try:
        return len(buf) == len(expected) and buf.constant_time_compare(expected)
    finally:
        buf.secure_purge()


# -- interoperation ------------------------------------------------------------------------------


def test_key_equals_independent_hkdf(receiver: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = receiver
    assert len(peer.key) == 32
    assert channel._key.constant_time_compare(peer.key)
    assert not channel._key.constant_time_compare(bytes(32))
    # and the salt order matters: swapping min/max gives another key
    other = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=hashlib.sha256(max(peer.public, channel.public_key) + min(peer.public, channel.public_key)).digest(),
        info=INFO,
    ).derive(peer._private.exchange(X25519PublicKey.from_public_bytes(channel.public_key)))
    assert not channel._key.constant_time_compare(other)


def test_peer_seals_our_receiver_opens(receiver: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = receiver
    for i, text in enumerate([b"ECG lead II summary", b"x", b"\x00" * 4096]):
        msg = peer.seal(text)
        assert msg[:8] == struct.pack(">Q", i + 1)
        assert opened_equals(channel.open(msg), text)
    assert channel.counter == 3
    with_aad = peer.seal(b"with context", aad=b"patient-episode-7")
    assert opened_equals(channel.open(with_aad, aad=b"patient-episode-7"), b"with context")


def test_our_sender_seals_peer_opens(sender: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = sender
    for i, text in enumerate([b"first", b"second", b"third" * 100]):
        msg = channel.seal(text)
        assert isinstance(msg, bytes)
        assert len(msg) == 8 + len(text) + 16
        assert peer.open(msg) == (i + 1, text)
    msg = channel.seal(b"aad bound", aad=b"ctx")
    assert peer.open(msg, aad=b"ctx") == (4, b"aad bound")
    with pytest.raises(InvalidTag):
        peer.open(msg, aad=b"other")
    assert channel.counter == 4


def test_sender_seals_a_secure_buffer_in_place(sender: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = sender
    with SecureBuffer.from_bytes(bytearray(b"secret clinical payload")) as secret:
        msg = channel.seal(secret)
    assert peer.open(msg) == (1, b"secret clinical payload")
    assert peer.open(channel.seal(bytearray(b"ba")))[1] == b"ba"
    assert peer.open(channel.seal(memoryview(b"mv")))[1] == b"mv"


def test_open_returns_a_secure_buffer(receiver: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = receiver
    buf = channel.open(peer.seal(b"payload"))
    assert isinstance(buf, SecureBuffer)
    with pytest.raises(NotCopyableError):
        bytes(buf)
    assert opened_equals(buf, b"payload")


def test_two_channels_have_distinct_keys_and_ephemeral_keys() -> None:
    peer = IndependentPeer()
    a = ClinicalChannel.establish(peer.public, "sender")
    b = ClinicalChannel.establish(peer.public, "receiver")
    try:
        assert a.public_key != b.public_key
        assert a.peer_public_key == b.peer_public_key == peer.public
        assert not a._key.constant_time_compare(b._key)
    finally:
        a.close()
        b.close()


def test_establish_leaves_only_the_channel_key_in_locked_memory() -> None:
    peer = IndependentPeer()
    before = arena().live_slots()
    channel = ClinicalChannel.establish(peer.public, "receiver")
    after = arena().live_slots()
    assert after == (before[0] + 1, before[1] + 32)  # the ephemeral key and the secret are gone
    channel.close()
    assert arena().live_slots() == before


# -- replay, reorder, tampering -----------------------------------------------------------------


def test_replay_refused(receiver: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = receiver
    msg = peer.seal(b"once")
    assert opened_equals(channel.open(msg), b"once")
    with pytest.raises(ClinicalChannelError, match="replay"):
        channel.open(msg)
    assert channel.counter == 1


def test_reorder_refused_gaps_allowed(receiver: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = receiver
    m1, m2, m3 = peer.seal(b"one"), peer.seal(b"two"), peer.seal(b"three")
    assert opened_equals(channel.open(m1), b"one")
    assert opened_equals(channel.open(m3), b"three")  # m2 lost: a gap is fine
    with pytest.raises(ClinicalChannelError):
        channel.open(m2)  # late: refused
    assert channel.counter == 3
    assert opened_equals(channel.open(peer.seal(b"four")), b"four")


def test_counter_zero_refused(receiver: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = receiver
    with pytest.raises(ClinicalChannelError):
        channel.open(peer.seal(b"zero", counter=0))


@pytest.mark.parametrize("where", ["counter", "ciphertext", "tag", "aad", "truncated"])
def test_tampered_message_refused(receiver: tuple[ClinicalChannel, IndependentPeer], where: str) -> None:
    channel, peer = receiver
    msg = bytearray(peer.seal(b"a clinical message"))
    aad = b""
    if where == "counter":
        msg[7] ^= 0x02  # counter 1 -> 3: nonce and AAD change, the tag fails
    elif where == "ciphertext":
        msg[10] ^= 0x01
    elif where == "tag":
        msg[-1] ^= 0x80
    elif where == "aad":
        aad = b"not the aad"
    else:
        msg = msg[:-1]
    live_before = arena().live_slots()
    with pytest.raises(ClinicalChannelError):
        channel.open(bytes(msg), aad=aad)
    assert arena().live_slots() == live_before  # no plaintext buffer left behind
    assert channel.counter == 0
    # the genuine message still opens: a forgery does not tear the stream down
    assert opened_equals(channel.open(peer.seal(b"next", counter=1)), b"next")


def test_message_from_another_channel_refused(receiver: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, _ = receiver
    _, other_peer = pair("receiver")
    with pytest.raises(ClinicalChannelError):
        channel.open(other_peer.seal(b"wrong key"))


@pytest.mark.parametrize("size", [0, 8, 24])
def test_short_messages_refused(receiver: tuple[ClinicalChannel, IndependentPeer], size: int) -> None:
    channel, _ = receiver
    with pytest.raises(ClinicalChannelError, match="short"):
        channel.open(struct.pack(">Q", 1)[:size] + bytes(max(0, size - 8)))


def test_bad_argument_types(receiver: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, peer = receiver
    with pytest.raises(WrongTypeError):
        channel.open("text")  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        channel.open(peer.seal(b"m"), aad="text")  # type: ignore[arg-type]
    s, _ = pair("sender")
    with s:
        with pytest.raises(InvalidArgumentError):
            s.seal(b"")
        with pytest.raises(WrongTypeError):
            s.seal("text")  # type: ignore[arg-type]
        assert s.counter == 0


# -- roles ------------------------------------------------------------------------------------


def test_wrong_role_refused(
    receiver: tuple[ClinicalChannel, IndependentPeer], sender: tuple[ClinicalChannel, IndependentPeer]
) -> None:
    rx, rx_peer = receiver
    tx, _ = sender
    with pytest.raises(ClinicalChannelError, match="receiver"):
        rx.seal(b"a receiver may not seal")
    with pytest.raises(ClinicalChannelError, match="sender"):
        tx.open(rx_peer.seal(b"a sender may not open"))
    assert rx.counter == 0
    assert tx.counter == 0
    assert not rx.is_closed
    assert not tx.is_closed


@pytest.mark.parametrize("role", ["Sender", "both", "", "tx"])
def test_unknown_role_refused(role: str) -> None:
    with pytest.raises(InvalidArgumentError):
        ClinicalChannel.establish(IndependentPeer().public, role)


def test_role_must_be_str() -> None:
    with pytest.raises(WrongTypeError):
        ClinicalChannel.establish(IndependentPeer().public, None)  # type: ignore[arg-type]


# -- close, expiry ------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["close", "with"])
def test_close_zeroes_the_key(ending: str) -> None:
    channel, peer = pair("sender")
    key = channel._key
    address = key._address()
    assert read(address) == peer.key  # the address really holds the key
    if ending == "close":
        channel.close()
    else:
        with channel as entered:
            assert entered is channel
    assert read(address) == bytes(32)
    assert key.is_purged
    assert channel.is_closed
    with pytest.raises(ClinicalChannelError, match="closed"):
        channel.seal(b"after close")
    channel.close()  # idempotent
    assert channel.public_key  # public, still readable


def test_receiver_after_close_refuses() -> None:
    channel, peer = pair("receiver")
    msg = peer.seal(b"late")
    channel.close()
    with pytest.raises(ClinicalChannelError):
        channel.open(msg)


def test_expiry_after_four_hours() -> None:
    clock = ManualClock()
    channel, peer = pair("receiver", clock)
    address = channel._key._address()
    clock.advance(HOURS_4 - 1.0)
    assert opened_equals(channel.open(peer.seal(b"still in time")), b"still in time")
    clock.advance(1.0)
    with pytest.raises(ClinicalChannelError, match="lifetime"):
        channel.open(peer.seal(b"too late"))
    assert channel.is_closed
    assert read(address) == bytes(32)
    with pytest.raises(ClinicalChannelError):
        channel.open(peer.seal(b"still too late"))


def test_sender_expiry_and_custom_lifetime() -> None:
    clock = ManualClock()
    peer = IndependentPeer()
    channel = ClinicalChannel.establish(peer.public, "sender", clock=clock, lifetime_s=10)
    channel.seal(b"ok")
    clock.advance(10.0)
    with pytest.raises(ClinicalChannelError):
        channel.seal(b"expired")
    assert channel.is_closed


@pytest.mark.parametrize("lifetime", [0, -1.0, float("nan"), float("inf")])
def test_bad_lifetime_refused(lifetime: float) -> None:
    with pytest.raises(InvalidArgumentError):
        ClinicalChannel.establish(IndependentPeer().public, "sender", lifetime_s=lifetime)


# -- peer keys ------------------------------------------------------------------------------------

_P = 2**255 - 19
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    (_P - 1).to_bytes(32, "little"),
    (_P).to_bytes(32, "little"),
    (_P + 1).to_bytes(32, "little"),
]


@pytest.mark.parametrize("point", LOW_ORDER, ids=[p.hex()[:8] for p in LOW_ORDER])
@pytest.mark.parametrize("role", ["sender", "receiver"])
def test_low_order_peer_key_refused(point: bytes, role: str) -> None:
    before = arena().live_slots()
    with pytest.raises(LowOrderPointError):
        ClinicalChannel.establish(point, role)
    assert arena().live_slots() == before  # the ephemeral key was purged


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_wrong_size_peer_key_refused(size: int) -> None:
    before = arena().live_slots()
    with pytest.raises(WrongLengthError):
        ClinicalChannel.establish(b"\x09" * size, "receiver")
    assert arena().live_slots() == before


def test_peer_key_type_refused() -> None:
    with pytest.raises(WrongTypeError):
        ClinicalChannel.establish("ab" * 16, "receiver")  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        ClinicalChannel.establish(SecureBuffer(32), "receiver")  # type: ignore[arg-type]


# -- custody --------------------------------------------------------------------------------------


def test_channel_cannot_be_copied_or_pickled(sender: tuple[ClinicalChannel, IndependentPeer]) -> None:
    channel, _ = sender
    for attempt in (lambda: pickle.dumps(channel), lambda: copy.copy(channel), lambda: copy.deepcopy(channel)):
        with pytest.raises(NotCopyableError):
            attempt()
    assert "sender" in repr(channel)
    assert "live" in repr(channel)


def test_direct_construction_refused() -> None:
    with pytest.raises(CortexError):
        ClinicalChannel(b"\x09" * 32, "sender")
