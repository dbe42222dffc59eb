"""Refusals of every public Noise entry point: wrong types, sizes, turns and states.

A refusal for a wrong *type* changes nothing (the handshake can still complete); a protocol
failure (bad tag, wrong length, low-order key, wrong turn, oversize message) leaves the
handshake FAILED with every secret it held purged - and the caller's static key untouched.
"""

from __future__ import annotations

import copy
import gc
import os
import pickle
from collections.abc import Callable

import pytest

from cortex_sal.clock import ManualClock
from cortex_sal.crypto import X25519PrivateKey, x25519_public_key
from cortex_sal.errors import (
    CortexError,
    CryptoError,
    DecryptionError,
    HandshakeError,
    HandshakeStateError,
    InvalidArgumentError,
    LowOrderPointError,
    NotCopyableError,
    PurgedBufferError,
    SessionExpiredError,
    WrongLengthError,
    WrongTypeError,
)
from cortex_sal.keros.noise import CipherState, HandshakeState, parse_pattern
from cortex_sal.keros.noise.transport import NoiseTransport
from cortex_sal.keros.states import State
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer
from cortex_sal.securemem.arena import arena

XX = "Noise_XX_25519_ChaChaPoly_SHA256"
PROLOGUE = b"cortex-sensor-noise-v1"
# a point of order 8 on Curve25519 (RFC 7748 section 5 / libsodium's blocklist): X25519 with it is all zeros
LOW_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def live_slots() -> int:
    gc.collect()
    return arena().live_slots()[0]


class Pair:
    """An XX initiator and responder with caller-owned static keys."""

    def __init__(self) -> None:
        self.si = X25519PrivateKey.generate()
        self.sr = X25519PrivateKey.generate()
        self.i = HandshakeState(XX, True, PROLOGUE, s=self.si)
        self.r = HandshakeState(XX, False, PROLOGUE, s=self.sr)

    def finish(self) -> None:
        while not self.i.is_complete:
            writer, reader = (self.i, self.r) if self.i.is_my_turn else (self.r, self.i)
            reader.read_message(writer.write_message(b"payload"))
        assert self.r.is_complete
        assert self.i.handshake_hash == self.r.handshake_hash

    def close(self) -> None:
        for obj in (self.i, self.r):
            obj.close()
        self.si.purge()
        self.sr.purge()


@pytest.fixture
def xx() -> Pair:
    p = Pair()
    yield p  # type: ignore[misc]
    p.close()


def assert_failed_and_purged(hs: HandshakeState, secrets: list[SecureBuffer], static: X25519PrivateKey) -> None:
    assert hs.status is State.FAILED
    assert hs.failure
    assert secrets, "the handshake held secrets before failing"
    assert all(buf.is_purged for buf in secrets)
    assert hs._secret_buffers() == []
    assert not static.is_purged  # the caller's
    for call in (lambda: hs.write_message(b""), lambda: hs.read_message(b"x" * 64), hs.split, hs.get_handshake_hash):
        with pytest.raises(HandshakeError, match="FAILED"):
            call()


# -- patterns -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        (42, WrongTypeError),
        (None, WrongTypeError),
        (b"\xff\xfe", InvalidArgumentError),
        ("Noise_XX_25519_AESGCM_SHA256", InvalidArgumentError),
        ("Noise_XX_448_ChaChaPoly_SHA256", InvalidArgumentError),
        ("Noise_XX_25519_ChaChaPoly_BLAKE2s", InvalidArgumentError),
        ("Noise_XX_25519_ChaChaPoly", InvalidArgumentError),
        ("ZZ", InvalidArgumentError),
        ("XXfallback", InvalidArgumentError),
        ("NNpsk3", InvalidArgumentError),  # NN has two messages
        ("xx", InvalidArgumentError),
    ],
)
def test_parse_pattern_refusals(name: object, error: type[CortexError]) -> None:
    with pytest.raises(error):
        parse_pattern(name)  # type: ignore[arg-type]


def test_parse_pattern_accepts_names_and_modifiers() -> None:
    assert parse_pattern("XX") is parse_pattern(XX) is parse_pattern(XX.encode())
    p = parse_pattern("NNpsk0+psk2")
    assert [m.tokens for m in p.messages] == [("psk", "e"), ("e", "ee", "psk")]
    assert p.protocol_name() == "Noise_NNpsk0+psk2_25519_ChaChaPoly_SHA256"


# -- HandshakeState construction ------------------------------------------------------------------


def test_constructor_refusals_take_nothing_over() -> None:
    s = X25519PrivateKey.generate()
    e = SecureKeyBuffer()
    psk = SecureKeyBuffer()
    peer = x25519_public_key(SecureKeyBuffer())
    slots = live_slots()
    cases: list[tuple[Callable[[], object], type[CortexError]]] = [
        (lambda: HandshakeState(1, True), WrongTypeError),  # type: ignore[arg-type]
        (lambda: HandshakeState(XX, 1, s=s), WrongTypeError),  # type: ignore[arg-type]
        (lambda: HandshakeState(XX, True, "prologue", s=s), WrongTypeError),  # type: ignore[arg-type]
        (lambda: HandshakeState(XX, True, SecureBuffer(4), s=s), WrongTypeError),  # type: ignore[arg-type]
        (lambda: HandshakeState(XX, True, s=b"\x01" * 32), WrongTypeError),  # type: ignore[arg-type]
        (lambda: HandshakeState(XX, True, s=s, e=b"\x01" * 32), WrongTypeError),  # type: ignore[arg-type]
        (lambda: HandshakeState("NK", True, rs="key"), WrongTypeError),  # type: ignore[arg-type]
        (lambda: HandshakeState("NK", True, rs=peer[:31]), WrongLengthError),
        (lambda: HandshakeState("NNpsk0", True, psks=psk), WrongTypeError),  # type: ignore[arg-type]
        (lambda: HandshakeState("NNpsk0", True, psks=[b"\x00" * 32]), WrongTypeError),  # type: ignore[list-item]
        (lambda: HandshakeState(XX, True, e=e), InvalidArgumentError),  # XX needs s
        (lambda: HandshakeState("NN", True, s=s), InvalidArgumentError),  # NN uses no s
        (lambda: HandshakeState(XX, True, s=s, rs=peer), InvalidArgumentError),  # XX transmits rs
        (lambda: HandshakeState("IK", True, s=s), InvalidArgumentError),  # IK needs rs
        (lambda: HandshakeState("NN", True, re=peer), InvalidArgumentError),
        (lambda: HandshakeState("N", False, s=s, e=e), InvalidArgumentError),  # N's responder has no e
        (lambda: HandshakeState("NNpsk0", True), InvalidArgumentError),  # one psk needed
        (lambda: HandshakeState("NN", True, psks=[psk]), InvalidArgumentError),
        (lambda: HandshakeState(XX, True, s=s, e=s.key_buffer), InvalidArgumentError),
    ]
    for make, error in cases:
        with pytest.raises(error):
            make()
    assert live_slots() == slots  # nothing allocated and kept
    assert not s.is_purged and not e.is_purged and not psk.is_purged  # nothing taken over
    dead = SecureKeyBuffer()
    dead.secure_purge()
    with pytest.raises(PurgedBufferError):
        HandshakeState(XX, True, s=dead)
    for key in (s.key_buffer, e, psk):
        key.secure_purge()


# -- type refusals change nothing -----------------------------------------------------------------


def test_wrong_types_change_no_state(xx: Pair) -> None:
    for bad in (None, 12, "text", SecureBuffer(8), [b"x"]):
        with pytest.raises(WrongTypeError):
            xx.i.write_message(bad)  # type: ignore[arg-type]
        with pytest.raises(WrongTypeError):
            xx.r.read_message(bad)  # type: ignore[arg-type]
    assert xx.i.status is xx.r.status is State.HANDSHAKE
    assert xx.i.message_index == xx.r.message_index == 0
    xx.finish()  # both still complete, and agree


def test_bytearray_and_memoryview_payloads_are_accepted(xx: Pair) -> None:
    assert xx.r.read_message(xx.i.write_message(bytearray(b"abc"))) == b"abc"
    assert xx.i.read_message(memoryview(xx.r.write_message(memoryview(b"def")))) == b"def"


# -- protocol failures: FAILED and purged ------------------------------------------------------


def test_wrong_turn_fails_and_purges(xx: Pair) -> None:
    xx.r.read_message(xx.i.write_message())
    secrets = xx.i._secret_buffers()
    with pytest.raises(HandshakeError, match="out of turn"):
        xx.i.write_message(b"not my turn")
    assert_failed_and_purged(xx.i, secrets, xx.si)


def test_responder_writing_first_fails(xx: Pair) -> None:
    secrets_before = xx.r._secret_buffers()  # the workspace (ck)
    with pytest.raises(HandshakeError, match="out of turn"):
        xx.r.write_message()
    assert_failed_and_purged(xx.r, secrets_before, xx.sr)


def test_bad_tag_fails_and_purges(xx: Pair) -> None:
    xx.r.read_message(xx.i.write_message())
    message = bytearray(xx.r.write_message(b"certificate"))
    message[40] ^= 1  # inside the encrypted static key
    secrets = xx.i._secret_buffers()
    assert xx.i._e is not None and xx.i._e in secrets  # the ephemeral is held until its last DH
    with pytest.raises(DecryptionError):
        xx.i.read_message(bytes(message))
    assert_failed_and_purged(xx.i, secrets, xx.si)


def test_bad_payload_tag_in_the_last_message_fails(xx: Pair) -> None:
    xx.r.read_message(xx.i.write_message())
    xx.i.read_message(xx.r.write_message())
    last = xx.i.write_message(b"sensor certificate")
    secrets = xx.r._secret_buffers()
    with pytest.raises(DecryptionError):
        xx.r.read_message(last[:-1] + bytes([last[-1] ^ 0x40]))
    assert_failed_and_purged(xx.r, secrets, xx.sr)
    with pytest.raises(HandshakeError):
        xx.r.handshake_hash  # noqa: B018


@pytest.mark.parametrize("cut", [0, 31, 32 + 32 + 15])
def test_truncated_message_fails(xx: Pair, cut: int) -> None:
    xx.r.read_message(xx.i.write_message())
    message = xx.r.write_message()
    secrets = xx.i._secret_buffers()
    with pytest.raises(WrongLengthError, match="needs at least"):
        xx.i.read_message(message[:cut])
    assert_failed_and_purged(xx.i, secrets, xx.si)


def test_oversize_incoming_message_fails(xx: Pair) -> None:
    secrets = xx.r._secret_buffers()
    with pytest.raises(WrongLengthError, match="65535"):
        xx.r.read_message(os.urandom(65536))
    assert_failed_and_purged(xx.r, secrets, xx.sr)


def test_oversize_payload_fails_before_anything_is_written(xx: Pair) -> None:
    # message 1 of XX: e (32) + payload in clear: at most 65503 payload bytes
    ok = Pair()
    assert len(ok.i.write_message(bytes(65535 - 32))) == 65535
    ok.close()
    secrets = xx.i._secret_buffers()
    with pytest.raises(WrongLengthError, match="at most 65503 payload bytes"):
        xx.i.write_message(bytes(65535 - 31))
    assert_failed_and_purged(xx.i, secrets, xx.si)
    # message 2 of XX: e (32) + s (48) + payload + tag (16)
    p = Pair()
    p.r.read_message(p.i.write_message())
    with pytest.raises(WrongLengthError, match="at most 65439 payload bytes"):
        p.r.write_message(bytes(65440))
    p.close()


def test_low_order_ephemeral_fails(xx: Pair) -> None:
    xx.r.read_message(xx.i.write_message())
    genuine = xx.r.write_message()
    secrets = xx.i._secret_buffers()
    with pytest.raises(LowOrderPointError):
        xx.i.read_message(LOW_ORDER + genuine[32:])  # ee with a low-order re
    assert_failed_and_purged(xx.i, secrets, xx.si)


def test_low_order_first_message_fails_on_the_responder() -> None:
    static = X25519PrivateKey.generate()
    ephemeral = SecureKeyBuffer()  # injected: the handshake owns it from here on
    r = HandshakeState(XX, False, PROLOGUE, s=static, e=ephemeral)
    r.read_message(LOW_ORDER)  # message 1 has no DH: the key is only hashed
    secrets = r._secret_buffers()
    assert ephemeral in secrets
    with pytest.raises(LowOrderPointError):
        r.write_message()  # ee
    assert_failed_and_purged(r, secrets, static)
    static.purge()


def test_purged_static_key_fails_the_handshake(xx: Pair) -> None:
    xx.r.read_message(xx.i.write_message())
    xx.i.read_message(xx.r.write_message())
    secrets = xx.i._secret_buffers()
    xx.si.purge()  # the caller destroys its key mid-handshake
    with pytest.raises(PurgedBufferError):
        xx.i.write_message()
    assert xx.i.status is State.FAILED
    assert all(buf.is_purged for buf in secrets)


# -- states -----------------------------------------------------------------------------------------


def test_hash_queries_before_completion_change_nothing(xx: Pair) -> None:
    with pytest.raises(HandshakeError, match="complete"):
        xx.i.handshake_hash  # noqa: B018
    assert xx.i.get_handshake_hash() == xx.r.get_handshake_hash()  # h so far (public)
    assert xx.i.status is State.HANDSHAKE
    xx.finish()
    assert xx.i.status is State.ESTABLISHED
    c1, c2 = xx.i.split()
    assert xx.i.status is State.TRANSPORT
    with pytest.raises(HandshakeError, match="already handed over"):
        xx.i.split()
    for call in (lambda: xx.i.write_message(b""), lambda: xx.i.read_message(b"x" * 48)):
        with pytest.raises(HandshakeStateError, match="complete"):
            call()
    assert xx.i.status is State.TRANSPORT  # handed over: it holds nothing, nothing changes
    c1.close()
    c2.close()


def test_split_before_completion_is_a_call_out_of_turn(xx: Pair) -> None:
    """keros.states: once started, a call out of turn fails the handshake and purges it
    (until 2026-12 split() before the last message raised and changed nothing)."""
    xx.r.read_message(xx.i.write_message())
    secrets = xx.i._secret_buffers()
    with pytest.raises(HandshakeStateError, match="remain"):
        xx.i.split()
    assert_failed_and_purged(xx.i, secrets, xx.si)
    with pytest.raises(HandshakeStateError, match="FAILED"):
        xx.i.read_message(xx.r.write_message())


def test_close_mid_handshake_purges_and_is_terminal(xx: Pair) -> None:
    xx.r.read_message(xx.i.write_message())
    secrets = xx.i._secret_buffers()
    xx.i.close()
    assert xx.i.status is State.CLOSED
    assert secrets and all(b.is_purged for b in secrets)
    assert not xx.si.is_purged
    with pytest.raises(HandshakeError, match="closed"):
        xx.i.read_message(xx.r.write_message())


def test_abort_by_the_caller_fails_and_purges(xx: Pair) -> None:
    xx.r.read_message(xx.i.write_message())
    payload = xx.i.read_message(xx.r.write_message(b"gateway certificate"))
    assert payload == b"gateway certificate" and xx.i.remote_static == xx.sr.public_bytes()
    assert xx.i.local_static == xx.si.public_bytes()
    secrets = xx.i._secret_buffers()
    with pytest.raises(WrongTypeError):
        xx.i.abort(42)  # type: ignore[arg-type]
    assert xx.i.status is State.HANDSHAKE
    xx.i.abort("certificate for another key")  # what a certificate check would do
    assert xx.i.failure == "certificate for another key"
    assert_failed_and_purged(xx.i, secrets, xx.si)


def test_close_after_completion_purges_untaken_cipherstates(xx: Pair) -> None:
    xx.finish()
    keys = xx.i._secret_buffers()
    assert len(keys) == 2
    xx.i.close()
    assert all(k.is_purged for k in keys)
    assert xx.i.status is State.CLOSED  # completed, then its leftovers dropped
    assert xx.i.handshake_hash == xx.r.handshake_hash  # public, still there
    with pytest.raises(HandshakeStateError, match="closed"):
        xx.i.split()  # a call after close: FAILED (it held nothing any more)
    assert xx.i.status is State.FAILED and xx.i._secret_buffers() == []


@pytest.mark.parametrize("make", ["handshake", "cipherstate", "transport"])
def test_secret_holders_refuse_pickling_and_copying(make: str) -> None:
    p = Pair()
    if make == "handshake":
        obj: object = p.i
    elif make == "cipherstate":
        obj = CipherState(SecureKeyBuffer())
    else:
        p.finish()
        obj = NoiseTransport.from_handshake(p.i)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(NotCopyableError):
            attempt(obj)
    obj.close()  # type: ignore[attr-defined]
    p.close()


# -- CipherState ------------------------------------------------------------------------------------


def test_cipherstate_refusals() -> None:
    with pytest.raises(WrongTypeError):
        CipherState(b"\x00" * 32)  # type: ignore[arg-type]
    cs = CipherState(SecureKeyBuffer())
    n = cs.n
    for call, error in [
        (lambda: cs.encrypt_with_ad("ad", b"x"), WrongTypeError),
        (lambda: cs.encrypt_with_ad(b"", 12), WrongTypeError),
        (lambda: cs.encrypt_with_ad(SecureBuffer(4), b"x"), WrongTypeError),
        (lambda: cs.encrypt_with_ad(b"", bytes(65520)), WrongLengthError),
        (lambda: cs.decrypt_with_ad(b"", b"short"), WrongLengthError),
        (lambda: cs.decrypt_with_ad(b"", bytes(65536)), WrongLengthError),
        (lambda: cs.decrypt_with_ad(b"", SecureBuffer(32)), WrongTypeError),
        (lambda: cs.decrypt_with_ad(b"", bytes(32)), DecryptionError),
        (lambda: cs.decrypt_into(b"", bytes(32), bytearray(16)), WrongTypeError),  # type: ignore[arg-type]
        (lambda: cs.decrypt_into(b"", bytes(48), SecureBuffer(16)), WrongLengthError),
        (lambda: cs.decrypt_into(b"", bytes(20), SecureBuffer(16), offset=-1), InvalidArgumentError),
        (lambda: cs.set_nonce(-1), InvalidArgumentError),
        (lambda: cs.set_nonce(2**64), InvalidArgumentError),
        (lambda: cs.set_nonce(1.5), WrongTypeError),
        (lambda: cs.initialize_key(b"\x00" * 32), WrongTypeError),
    ]:
        with pytest.raises(error):
            call()
        assert cs.n == n
    empty = CipherState()
    assert not empty.has_key()
    assert empty.encrypt_with_ad(b"ad", b"clear") == b"clear"  # the spec: no key, no encryption
    with pytest.raises(WrongTypeError, match="in clear"):
        empty.encrypt_with_ad(b"", SecureBuffer(4))
    with pytest.raises(CryptoError, match="needs a key"):
        empty.rekey()
    key = cs._k
    cs.close()
    assert key is not None and key.is_purged
    for call in (lambda: cs.encrypt_with_ad(b"", b"x"), lambda: cs.decrypt_with_ad(b"", bytes(16)), cs.rekey):
        with pytest.raises(SessionExpiredError, match="closed"):
            call()


def test_cipherstate_rekey_matches_the_spec_oracle() -> None:
    """REKEY(k) = first 32 bytes of ENCRYPT(k, 2^64-1, empty, zeros), checked with cryptography."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    raw = os.urandom(32)  # a test key, known to the oracle
    cs = CipherState(SecureKeyBuffer(raw))
    old = cs._k
    cs.rekey()
    assert old is not None and old.is_purged
    new_raw = ChaCha20Poly1305(raw).encrypt(b"\x00" * 4 + b"\xff" * 8, bytes(32), b"")[:32]
    nonce = b"\x00" * 4 + (0).to_bytes(8, "little")
    assert cs.encrypt_with_ad(b"ad", b"msg") == ChaCha20Poly1305(new_raw).encrypt(nonce, b"msg", b"ad")
    cs.close()


# -- NoiseTransport -----------------------------------------------------------------------------------


def test_transport_constructor_refusals() -> None:
    p = Pair()
    p.finish()
    c1, c2 = p.i.split()
    cases: list[tuple[Callable[[], object], type[CortexError]]] = [
        (lambda: NoiseTransport(b"k", c2), WrongTypeError),  # type: ignore[arg-type]
        (lambda: NoiseTransport(None, None), InvalidArgumentError),
        (lambda: NoiseTransport(c1, c1), InvalidArgumentError),
        (lambda: NoiseTransport(c1, c2, lossy=1), WrongTypeError),  # type: ignore[arg-type]
        (lambda: NoiseTransport(c1, c2, window=1023), InvalidArgumentError),
        (lambda: NoiseTransport(c1, c2, window="1024"), WrongTypeError),  # type: ignore[arg-type]
        (lambda: NoiseTransport(c1, c2, rekey_every=0), InvalidArgumentError),
        (lambda: NoiseTransport(c1, c2, lossy=True, rekey_every=100), InvalidArgumentError),
        (lambda: NoiseTransport(c1, c2, rekey_interval_s=0), InvalidArgumentError),
        (lambda: NoiseTransport(c1, c2, rekey_interval_s="1"), WrongTypeError),  # type: ignore[arg-type]
        (lambda: NoiseTransport(c1, c2, max_epoch_skip=0), InvalidArgumentError),
        (lambda: NoiseTransport(c1, c2, rekey_grace_s=-1.0), InvalidArgumentError),
        (lambda: NoiseTransport(c1, c2, clock=object()), WrongTypeError),  # type: ignore[arg-type]
    ]
    for make, error in cases:
        with pytest.raises(error):
            make()
        assert not c1.is_closed and not c2.is_closed  # not taken over
    c1.encrypt_with_ad(b"", b"used")
    with pytest.raises(InvalidArgumentError, match="n == 0"):
        NoiseTransport(c1, c2)
    c1.close()
    with pytest.raises(InvalidArgumentError, match="keyed and open"):
        NoiseTransport(c1, c2)
    c2.close()
    with pytest.raises(WrongTypeError):
        NoiseTransport.from_handshake("handshake")  # type: ignore[arg-type]
    q = Pair()
    with pytest.raises(InvalidArgumentError, match="not complete"):
        NoiseTransport.from_handshake(q.i)
    q.finish()
    keys = q.i._secret_buffers()
    with pytest.raises(InvalidArgumentError):
        NoiseTransport.from_handshake(q.i, window=5)  # refused: the split keys are purged, not leaked
    assert all(k.is_purged for k in keys)
    q.close()
    p.close()


@pytest.mark.parametrize("lossy_mode", [False, True])
def test_transport_call_refusals_change_nothing(lossy_mode: bool) -> None:
    p = Pair()
    p.finish()
    a = NoiseTransport.from_handshake(p.i, lossy=lossy_mode, clock=ManualClock())
    b = NoiseTransport.from_handshake(p.r, lossy=lossy_mode, clock=ManualClock())
    wire = a.encrypt(b"hello")
    out = SecureBuffer(4)
    for call, error in [
        (lambda: a.encrypt(12), WrongTypeError),
        (lambda: a.encrypt(b"x", ad="ad"), WrongTypeError),
        (lambda: a.encrypt(b"x", ad=SecureBuffer(2)), WrongTypeError),
        (lambda: b.decrypt("wire"), WrongTypeError),
        (lambda: b.decrypt(SecureBuffer(32)), WrongTypeError),
        (lambda: b.decrypt(wire, ad=3), WrongTypeError),
        (lambda: b.decrypt_into(wire, bytearray(8)), WrongTypeError),
        (lambda: b.decrypt_into(wire, out, offset=-1), InvalidArgumentError),
        (lambda: b.decrypt_into(wire, out, offset=True), InvalidArgumentError),
        (lambda: b.decrypt_into(wire, out), WrongLengthError),  # 5 bytes do not fit 4
    ]:
        before = (a.send_nonce, b.recv_nonce, b.recv_highest)
        with pytest.raises(error):
            call()  # type: ignore[no-untyped-call]
        assert (a.send_nonce, b.recv_nonce, b.recv_highest) == before
    assert b.decrypt(bytearray(wire)) == b"hello"  # bytes-like is fine
    out.secure_purge()
    a.close()
    b.close()
    p.close()
