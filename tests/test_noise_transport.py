"""``NoiseTransport``: ordered and lossy modes, the replay window, rekeying, size limits, close.

The lossy mode is checked against a reference model of its documented rule (accept a nonce iff
it was not accepted before and is not more than ``window`` behind the highest accepted) over
hypothesis-generated schedules of reordering, loss and duplication, with and without rekeying.
Key changes are checked against ``noiseprotocol`` (an independent Noise implementation) where the
wire allows it; secrets are checked by the purge state of their buffers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection

from cortex_sal.clock import ManualClock
from cortex_sal.errors import (
    FrameAuthError,
    FrameFormatError,
    InvalidArgumentError,
    ReplayAttackError,
    SensorBusError,
    SessionExpiredError,
    WrongLengthError,
)
from cortex_sal.keros.noise import MAX_NONCE, CipherState, HandshakeState
from cortex_sal.keros.noise.transport import NoiseTransport
from cortex_sal.securemem import SecureBuffer, SecureKeyBuffer
from hypothesis_profiles import examples

XX = "Noise_XX_25519_ChaChaPoly_SHA256"
PROLOGUE = b"cortex-sensor-noise-v1"
W = 1024


def _handshake(protocol: str = XX) -> tuple[HandshakeState, HandshakeState, list[SecureKeyBuffer]]:
    si, sr = SecureKeyBuffer(), SecureKeyBuffer()
    rs = None
    if protocol.split("_")[1] in ("N", "K", "X"):
        from cortex_sal.crypto import x25519_public_key

        rs = x25519_public_key(sr)
    kw_i = {"s": si} if protocol.split("_")[1] in ("K", "X", "XX") else {}
    ini = HandshakeState(protocol, True, PROLOGUE, rs=rs, **kw_i)  # type: ignore[arg-type]
    res = HandshakeState(protocol, False, PROLOGUE, s=sr)
    while not ini.is_complete:
        writer, reader = (ini, res) if ini.is_my_turn else (res, ini)
        reader.read_message(writer.write_message())
    return ini, res, [si, sr]


def pair(**options: object) -> tuple[NoiseTransport, NoiseTransport]:
    """(initiator, responder) transports over a fresh XX handshake."""
    ini, res, statics = _handshake()
    for key in statics:
        key.secure_purge()
    return NoiseTransport.from_handshake(ini, **options), NoiseTransport.from_handshake(res, **options)


@pytest.fixture
def ordered() -> Iterator[tuple[NoiseTransport, NoiseTransport]]:
    a, b = pair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def lossy() -> Iterator[tuple[NoiseTransport, NoiseTransport]]:
    a, b = pair(lossy=True)
    yield a, b
    a.close()
    b.close()


def _state(t: NoiseTransport) -> tuple[object, ...]:
    """Everything a message may change on the receiving side."""
    cur, prev = t._cur, t._prev
    return (
        t._rn,
        t._recv_epoch,
        id(t._rk),
        (cur.index, cur.highest, cur.seen, id(cur.key)) if cur else None,
        (prev.index, prev.highest, prev.seen, id(prev.key)) if prev else None,
    )


# -- ordered mode ------------------------------------------------------------------------------


def test_ordered_round_trips_both_ways(ordered: tuple[NoiseTransport, NoiseTransport]) -> None:
    a, b = ordered
    for size in (0, 1, 100, 1024, 8192, 65519):
        message = os.urandom(size)
        wire = a.encrypt(message)
        assert len(wire) == size + 16  # plain Noise: ciphertext || tag, implicit nonce
        assert b.decrypt(wire) == message
        assert a.decrypt(b.encrypt(message[::-1])) == message[::-1]
    assert a.send_nonce == b.recv_nonce == 6
    assert b.send_nonce == a.recv_nonce == 6


def test_ordered_refuses_out_of_order_and_tampered_without_changing_state(
    ordered: tuple[NoiseTransport, NoiseTransport],
) -> None:
    a, b = ordered
    first, second = a.encrypt(b"first"), a.encrypt(b"second")
    before = _state(b)
    with pytest.raises(FrameAuthError):
        b.decrypt(second)  # expects nonce 0
    tampered = bytes([first[0] ^ 1]) + first[1:]
    with pytest.raises(FrameAuthError):
        b.decrypt(tampered)
    with pytest.raises(FrameAuthError):
        b.decrypt(first, ad=b"other ad")
    assert _state(b) == before
    assert b.decrypt(first) == b"first"
    assert b.decrypt(second) == b"second"
    with pytest.raises(FrameAuthError):
        b.decrypt(first)  # a replay in ordered mode: the nonce has moved on


def test_associated_data_is_bound(ordered: tuple[NoiseTransport, NoiseTransport]) -> None:
    a, b = ordered
    wire = a.encrypt(b"payload", ad=b"frame header")
    with pytest.raises(FrameAuthError):
        b.decrypt(wire)
    assert b.decrypt(wire, ad=b"frame header") == b"payload"


def test_secret_plaintext_in_and_out_of_locked_memory(ordered: tuple[NoiseTransport, NoiseTransport]) -> None:
    a, b = ordered
    sample = SecureBuffer.random(512)
    out = SecureBuffer(600)
    wire = a.encrypt(sample)  # read in place
    assert b.decrypt_into(wire, out, offset=40) == 512
    with out._view() as got, sample._view() as expected:
        assert bytes(got[40:552]) == bytes(expected)  # test-only comparison of a random sample
    # a failed tag changes no nonce; the next genuine message still lands
    wire2 = a.encrypt(sample)
    with pytest.raises(FrameAuthError):
        b.decrypt_into(wire2[:-1] + bytes([wire2[-1] ^ 0x80]), out)
    assert b.decrypt_into(wire2, out) == 512
    for buf in (sample, out):
        buf.secure_purge()


# -- lossy mode ----------------------------------------------------------------------------------


def test_lossy_wire_format_is_big_endian_nonce_then_noise_message(
    lossy: tuple[NoiseTransport, NoiseTransport],
) -> None:
    """The body is the Noise message under nonce n: noiseprotocol, given the same n, opens it."""
    a, b = lossy
    for n in range(3):
        wire = a.encrypt(b"x" * 10)
        assert len(wire) == 8 + 10 + 16
        assert int.from_bytes(wire[:8], "big") == n
    assert b.decrypt(wire) == b"x" * 10  # nonce 2 first: fine in lossy mode


class _Model:
    """The documented acceptance rule, written independently of the implementation."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.highest = -1
        self.seen: set[int] = set()

    def accepts(self, n: int) -> bool:
        if n in self.seen or self.highest - n > self.window:
            return False
        self.seen.add(n)
        self.highest = max(self.highest, n)
        return True


@st.composite
def schedules(draw: st.DrawFn, min_count: int = 1, max_count: int = 3000) -> list[int]:
    """Indices of sent messages in delivery order: reordering up to ``depth`` places (beyond the
    window at times), losses, duplicates and late stragglers. Hypothesis draws the parameters and
    the seed of the shuffles."""
    count = draw(st.integers(min_count, max_count))
    rng = random.Random(draw(st.integers(0, 2**32)))
    depth = draw(st.sampled_from([0, 3, 50, 1000, 1500]))
    loss = draw(st.integers(0, 30)) / 100
    dup = draw(st.integers(0, 20)) / 100
    keyed = sorted(range(count), key=lambda i: i + rng.uniform(0, depth))  # bounded displacement
    out: list[int] = []
    for i in keyed:
        if rng.random() < loss:
            continue
        out.append(i)
        if rng.random() < dup:
            out.insert(rng.randrange(len(out)), i)  # a copy, delivered earlier or later
    for _ in range(draw(st.integers(0, 5))):  # stragglers from anywhere
        out.append(rng.randrange(count))
    return out or [0]


def _run_against_model(a: NoiseTransport, b: NoiseTransport, schedule: list[int]) -> None:
    sent = [a.encrypt(i.to_bytes(4, "big")) for i in range(max(schedule) + 1)]
    model = _Model(W)
    for i in schedule:
        if model.accepts(i):
            assert b.decrypt(sent[i]) == i.to_bytes(4, "big")
        else:
            before = _state(b)
            with pytest.raises(ReplayAttackError):
                b.decrypt(sent[i])
            assert _state(b) == before  # a refused message changes nothing
    assert b.recv_highest == model.highest


@settings(max_examples=examples(40), deadline=None)
@given(schedules())
def test_lossy_reorder_drop_duplicate_against_the_model(schedule: list[int]) -> None:
    a, b = pair(lossy=True)
    try:
        _run_against_model(a, b, schedule)
    finally:
        a.close()
        b.close()


@settings(max_examples=examples(25), deadline=None)
@given(schedules(min_count=2 * W, max_count=5 * W))
def test_lossy_with_rekeying_against_the_model(schedule: list[int]) -> None:
    """Epochs of 1024 nonces: reordering across epoch boundaries still follows the model."""
    a, b = pair(lossy=True, rekey_every=W)
    try:
        _run_against_model(a, b, schedule)
        assert b.recv_epoch == b.recv_highest // W
    finally:
        a.close()
        b.close()


def test_window_edge(lossy: tuple[NoiseTransport, NoiseTransport]) -> None:
    a, b = lossy
    sent = [a.encrypt(b"%d" % i) for i in range(1600)]
    assert b.decrypt(sent[1500]) == b"1500"
    assert b.recv_highest == 1500
    assert b.decrypt(sent[1500 - W]) == b"%d" % (1500 - W)  # exactly 1024 behind: accepted
    with pytest.raises(ReplayAttackError, match="behind"):
        b.decrypt(sent[1500 - W - 1])  # 1025 behind: refused
    with pytest.raises(ReplayAttackError, match="already accepted"):
        b.decrypt(sent[1500 - W])  # at most once
    assert b.decrypt(sent[1499]) == b"1499"
    assert b.decrypt(sent[1501]) == b"1501"  # the window slides: 477 is now 1024 behind
    assert b.decrypt(sent[1501 - W]) == b"%d" % (1501 - W)
    with pytest.raises(ReplayAttackError):
        b.decrypt(sent[1500 - W])


def test_forged_messages_leave_the_window_and_keys_unchanged() -> None:
    a, b = pair(lossy=True, rekey_every=W)
    try:
        sent = [a.encrypt(b"m%d" % i) for i in range(3 * W)]
        assert b.decrypt(sent[10]) == b"m10"
        before = _state(b)
        genuine = sent[2 * W + 5]  # two epochs ahead
        forgeries = [
            genuine[:-1] + bytes([genuine[-1] ^ 1]),  # tampered tag
            (10**6).to_bytes(8, "big") + sent[11][8:],  # a far-ahead nonce on a real body
            (W + 3).to_bytes(8, "big") + sent[11][8:],  # next epoch's nonce: tentative key, no switch
            (20 * W).to_bytes(8, "big") + os.urandom(40),  # beyond max_epoch_skip
            sent[12][:8] + os.urandom(len(sent[12]) - 8),  # right nonce, garbage body
        ]
        for forged in forgeries:
            with pytest.raises(FrameAuthError):
                b.decrypt(forged)
            assert _state(b) == before
        assert b.decrypt(sent[11]) == b"m11"  # all genuine messages still open
        assert b.decrypt(sent[12]) == b"m12"
        assert b.decrypt(genuine) == b"m%d" % (2 * W + 5)
    finally:
        a.close()
        b.close()


def test_lossy_body_matches_spec_rekey_in_noiseprotocol() -> None:
    """Lossy messages of epoch j are Noise messages under k_j = REKEY^j(k_0): noiseprotocol,
    rekeyed the same number of times and set to the explicit nonce, opens them."""
    ours = HandshakeState(XX, True, PROLOGUE, s=(static := SecureKeyBuffer()))
    theirs = NoiseConnection.from_name(XX.encode())
    theirs.set_as_responder()
    theirs.set_prologue(PROLOGUE)
    theirs.set_keypair_from_private_bytes(Keypair.STATIC, os.urandom(32))
    theirs.start_handshake()
    theirs.read_message(ours.write_message())
    ours.read_message(bytes(theirs.write_message()))
    theirs.read_message(ours.write_message())
    t = NoiseTransport.from_handshake(ours, lossy=True, rekey_every=W)
    cipher = theirs.noise_protocol.cipher_state_decrypt
    epoch = 0
    for i in range(3 * W + 7):
        wire = t.encrypt(b"p%d" % i)
        n = int.from_bytes(wire[:8], "big")
        while epoch < n // W:
            theirs.rekey_inbound_cipher()
            epoch += 1
        if i % 97 == 0 or i % W in (0, W - 1):
            cipher.n = n
            assert bytes(cipher.decrypt_with_ad(b"", wire[8:])) == b"p%d" % i
    t.close()
    static.secure_purge()


# -- rekeying ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lossy_mode", [False, True])
def test_count_rekey_keeps_both_ends_in_sync_and_purges_old_keys(lossy_mode: bool) -> None:
    every = W if lossy_mode else 5
    a, b = pair(lossy=lossy_mode, rekey_every=every)
    try:
        old_send, old_recv = a._sk, b._rk
        for i in range(3 * every + 1):
            assert b.decrypt(a.encrypt(b"%d" % i)) == b"%d" % i
        assert a.send_epoch == b.recv_epoch == 3
        assert old_send is not None and old_send.is_purged  # the epoch-0 key, gone
        if not lossy_mode:
            assert old_recv is not None and old_recv.is_purged
        # the other direction did not move
        assert b.send_epoch == a.recv_epoch == 0
        assert a.decrypt(b.encrypt(b"back")) == b"back"
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("lossy_mode", [False, True])
def test_clock_rekey_sender_skips_to_next_epoch_receiver_follows(lossy_mode: bool) -> None:
    clock = ManualClock()
    a, b = pair(lossy=lossy_mode, rekey_interval_s=60.0, clock=clock)
    try:
        epoch_len = a.rekey_every
        for i in range(5):
            assert b.decrypt(a.encrypt(b"%d" % i)) == b"%d" % i
        old_key = a._sk
        clock.advance(59.0)
        assert b.decrypt(a.encrypt(b"before")) == b"before"
        assert a.send_epoch == 0
        clock.advance(1.0)
        wire = a.encrypt(b"after")
        assert a.send_epoch == 1 and a.send_nonce == epoch_len + 1  # skipped to the next epoch
        assert old_key is not None and old_key.is_purged
        assert b.decrypt(wire) == b"after"
        assert b.recv_epoch == 1
        for i in range(3):
            assert b.decrypt(a.encrypt(b"%d" % i)) == b"%d" % i
        clock.advance(61.0)
        assert b.decrypt(a.encrypt(b"again")) == b"again"
        assert a.send_epoch == b.recv_epoch == 2
    finally:
        a.close()
        b.close()


def test_a_receiver_without_a_clock_rule_follows_a_sender_with_one() -> None:
    clock = ManualClock()
    ini, res, statics = _handshake()
    a = NoiseTransport.from_handshake(ini, rekey_interval_s=1.0, clock=clock)
    b = NoiseTransport.from_handshake(res)  # same (default) rekey_every, no interval
    clock.advance(2.0)
    assert b.decrypt(a.encrypt(b"hello")) == b"hello"
    assert a.send_epoch == b.recv_epoch == 1
    for t in (a, b):
        t.close()
    for key in statics:
        key.secure_purge()


def test_lossy_previous_epoch_key_kept_briefly_for_late_messages() -> None:
    clock = ManualClock()
    a, b = pair(lossy=True, rekey_every=W, clock=clock)
    try:
        sent = [a.encrypt(b"%d" % i) for i in range(W + 20)]
        for i in range(W - 10):
            b.decrypt(sent[i])
        assert b.decrypt(sent[W + 5]) == b"%d" % (W + 5)  # epoch 1 starts
        assert b.recv_epoch == 1 and b.has_previous_epoch_key
        assert b.decrypt(sent[W - 3]) == b"%d" % (W - 3)  # late, epoch 0: still accepted
        clock.advance(5.0)  # rekey_grace_s
        with pytest.raises(ReplayAttackError, match="retired"):
            b.decrypt(sent[W - 2])
        assert b.has_previous_epoch_key  # only an authenticated message purges it
        prev_key = b._prev.key  # type: ignore[union-attr]
        assert b.decrypt(sent[W + 6]) == b"%d" % (W + 6)
        assert not b.has_previous_epoch_key and prev_key.is_purged
    finally:
        a.close()
        b.close()


def test_lossy_previous_epoch_expires_after_a_window_of_the_new_one() -> None:
    a, b = pair(lossy=True, rekey_every=W)
    try:
        sent = [a.encrypt(b"%d" % i) for i in range(2 * W + 10)]
        b.decrypt(sent[W - 1])
        b.decrypt(sent[W])
        assert b.has_previous_epoch_key
        b.decrypt(sent[2 * W - 1])  # W - 1 past the epoch start: still kept
        assert b.has_previous_epoch_key
        b.decrypt(sent[2 * W])  # epoch 2 starts: epoch 0 goes, epoch 1 becomes the previous one
        assert b.recv_epoch == 2 and b._prev is not None and b._prev.index == 1
    finally:
        a.close()
        b.close()


def test_lossy_skipping_whole_epochs_within_the_limit() -> None:
    a, b = pair(lossy=True, rekey_every=W, max_epoch_skip=3)
    try:
        sent = [a.encrypt(b"%d" % i) for i in range(8 * W)]
        assert b.decrypt(sent[3 * W + 1]) == b"%d" % (3 * W + 1)  # 3 epochs ahead: derived
        assert b.decrypt(sent[3 * W - 1]) == b"%d" % (3 * W - 1)  # epoch 2 kept for late ones
        before = _state(b)
        with pytest.raises(FrameAuthError, match="epochs ahead"):
            b.decrypt(sent[7 * W + 1])  # 4 epochs ahead: refused before any derivation
        assert _state(b) == before
        assert b.decrypt(sent[6 * W]) == b"%d" % (6 * W)  # 3 ahead again: fine
        assert b.recv_epoch == 6
    finally:
        a.close()
        b.close()


# -- sizes and nonces ----------------------------------------------------------------------------


@pytest.mark.parametrize("lossy_mode", [False, True])
def test_65535_byte_noise_messages_both_ways(lossy_mode: bool) -> None:
    a, b = pair(lossy=lossy_mode)
    head = 8 if lossy_mode else 0
    try:
        big = os.urandom(65519)
        wire = a.encrypt(big)
        assert len(wire) == head + 65535  # tag included
        assert b.decrypt(wire) == big
        for too_big in (65520, 65535, 70000):
            nonce = a.send_nonce
            with pytest.raises(WrongLengthError, match="65519"):
                a.encrypt(os.urandom(too_big))
            assert a.send_nonce == nonce  # refused before anything was encrypted
            with pytest.raises(WrongLengthError):
                a.encrypt(SecureBuffer(too_big))
        before = _state(b)
        with pytest.raises(FrameFormatError, match="65535"):
            b.decrypt(os.urandom(head + 65536))
        with pytest.raises(FrameFormatError, match="truncated"):
            b.decrypt(os.urandom(head + 15))
        assert _state(b) == before
    finally:
        a.close()
        b.close()


def test_cipherstate_nonce_exhaustion() -> None:
    ini, res, statics = _handshake()
    c1, c2 = ini.split()
    r1, r2 = res.split()
    c1.set_nonce(MAX_NONCE - 1)
    r1.set_nonce(MAX_NONCE - 1)
    assert r1.decrypt_with_ad(b"", c1.encrypt_with_ad(b"", b"last")) == b"last"  # n = 2^64-2 is usable
    with pytest.raises(SessionExpiredError, match="exhausted"):
        c1.encrypt_with_ad(b"", b"one more")
    with pytest.raises(SessionExpiredError, match="exhausted"):
        r1.decrypt_with_ad(b"", os.urandom(20))
    c1.rekey()  # Rekey() does not reset n
    with pytest.raises(SessionExpiredError):
        c1.encrypt_with_ad(b"", b"still exhausted")
    for cs in (c1, c2, r1, r2):
        cs.close()
    for key in statics:
        key.secure_purge()


@pytest.mark.parametrize("lossy_mode", [False, True])
def test_transport_nonce_exhaustion(lossy_mode: bool) -> None:
    a, b = pair(lossy=lossy_mode)
    try:
        last = MAX_NONCE - 1
        # white-box: put both ends at the last usable nonce (its epoch keys would take 2^32 rekeys)
        a._sn, a._send_epoch = last, last // a.rekey_every
        a._set_limits()
        wire = a.encrypt(b"final")
        assert a.send_nonce == MAX_NONCE
        with pytest.raises(SessionExpiredError, match="exhausted"):
            a.encrypt(b"beyond")
        if lossy_mode:
            with pytest.raises(FrameFormatError, match="reserved"):
                b.decrypt(MAX_NONCE.to_bytes(8, "big") + wire[8:])
        else:
            b._rn = MAX_NONCE
            with pytest.raises(SessionExpiredError, match="exhausted"):
                b.decrypt(wire)
    finally:
        a.close()
        b.close()


# -- one-way patterns, close -------------------------------------------------------------------


def test_one_way_pattern_transport_sends_initiator_to_responder_only() -> None:
    ini, res, statics = _handshake("Noise_X_25519_ChaChaPoly_SHA256")
    a, b = NoiseTransport.from_handshake(ini), NoiseTransport.from_handshake(res)
    assert b.decrypt(a.encrypt(b"one way")) == b"one way"
    with pytest.raises(SensorBusError, match="only sends"):
        a.decrypt(os.urandom(20))
    with pytest.raises(SensorBusError, match="only receives"):
        b.encrypt(b"reply")
    for t in (a, b):
        t.close()
    for key in statics:
        key.secure_purge()


@pytest.mark.parametrize("lossy_mode", [False, True])
def test_close_purges_every_key_and_refuses_every_call(lossy_mode: bool) -> None:
    a, b = pair(lossy=lossy_mode, rekey_every=W)
    sent = [a.encrypt(b"x") for _ in range(W + 2)]
    if lossy_mode:
        b.decrypt(sent[W - 1])
        b.decrypt(sent[W + 1])  # a previous-epoch key is held too
    else:
        for wire in sent[: W + 1]:
            b.decrypt(wire)
    keys = b._secret_buffers()
    assert len(keys) == (3 if lossy_mode else 2)
    b.close()
    b.close()  # idempotent
    assert all(k.is_purged for k in keys)
    out = SecureBuffer(16)
    for call in (lambda: b.encrypt(b"x"), lambda: b.decrypt(sent[-1]), lambda: b.decrypt_into(sent[-1], out)):
        with pytest.raises(SessionExpiredError, match="closed"):
            call()
    assert b.is_closed
    out.secure_purge()
    a.close()


def test_from_handshake_closes_the_unused_cipherstate_of_a_one_way_pattern() -> None:
    ini, res, statics = _handshake("Noise_N_25519_ChaChaPoly_SHA256")
    pair_i = ini._split
    assert pair_i is not None
    unused = pair_i[1]
    t = NoiseTransport.from_handshake(ini)
    assert unused.is_closed and unused._k is None
    assert isinstance(pair_i[0], CipherState) and pair_i[0].is_closed  # taken over by the transport
    t.close()
    res.close()
    for key in statics:
        key.secure_purge()


def test_protocol_md_states_the_limits_the_code_enforces() -> None:
    """docs/protocol.md is the transport's contract (the module docstring points there): every
    limit it names is the one in force, so neither can change without the other."""
    from pathlib import Path

    from cortex_sal.keros.noise import transport as t
    from cortex_sal.keros.noise.state import MAX_MESSAGE, MAX_PLAINTEXT

    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = " ".join(doc[doc.index("## Transport\n") : doc.index("## Downgrade\n")].split())  # wrapping aside
    stated = [
        f"at most {MAX_MESSAGE} bytes",
        f"at most {MAX_PLAINTEXT} bytes",
        f"`window` (lossy mode): {t.MIN_WINDOW} to {t.MAX_WINDOW}, default {t.DEFAULT_WINDOW}",
        f"`max_epoch_skip`: 1 to {t.MAX_EPOCH_SKIP}, default {t.DEFAULT_MAX_EPOCH_SKIP}",
        f"`rekey_grace_s`: default {t.DEFAULT_REKEY_GRACE_S:g} s",
        f"`rekey_every`: 1 to `2**{t.DEFAULT_EPOCH.bit_length() - 1}`",
        f"Nonce `2**{MAX_NONCE.bit_length()} - 1` is reserved",
    ]
    missing = [text for text in stated if text not in section]
    assert not missing, f"protocol.md does not state the limits in force: {missing}"
    # and the constants are the limits the constructor enforces, at both edges
    for option, low, high in (("window", t.MIN_WINDOW, t.MAX_WINDOW), ("max_epoch_skip", 1, t.MAX_EPOCH_SKIP)):
        for value, accepted in ((low, True), (high, True), (low - 1, False), (high + 1, False)):
            kwargs = {option: value, "lossy": True, "rekey_every": 2**20}
            if accepted:
                NoiseTransport(None, CipherState(SecureKeyBuffer()), **kwargs).close()
            else:
                with pytest.raises(InvalidArgumentError, match=option):
                    NoiseTransport(None, CipherState(SecureKeyBuffer()), **kwargs)
