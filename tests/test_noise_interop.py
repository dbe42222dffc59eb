"""Interoperation with an independent Noise implementation: ``noiseprotocol`` 0.3.1 (import name
``noise``; pure Python over ``cryptography``; a test-only dependency).

Our initiator against its responder and its initiator against our responder, for
Noise_XX_25519_ChaChaPoly_SHA256 with a prologue and non-empty handshake payloads, then several
transport messages both ways through our ``NoiseTransport`` (ordered mode: the wire is plain
Noise) against its ``encrypt``/``decrypt``; the handshake hashes and the remote static keys
must agree. A few more patterns (pre-known keys, psk) and the count-based rekey rule (our
epochs against its ``rekey_*_cipher()`` called at the same points) run the same way.

noiseprotocol 0.3.1 emits no DeprecationWarning under ``-W error`` (checked at import by
the ``pytest -W error`` run of this module), so no warning filter is needed here.
"""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519
from noise.connection import Keypair, NoiseConnection

from cortex_sal.keros.noise import HandshakeState
from cortex_sal.keros.noise.transport import NoiseTransport
from cortex_sal.keros.states import State
from cortex_sal.securemem import SecureKeyBuffer

PROLOGUE = b"cortex-sensor-noise-v1"
XX = "Noise_XX_25519_ChaChaPoly_SHA256"


def _pub(private: bytes) -> bytes:
    return c_x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


class Peer:
    """One side's keys, as raw bytes for noiseprotocol and as a SecureKeyBuffer for us."""

    def __init__(self) -> None:
        self.private = os.urandom(32)  # test keys: bytes are fine here
        self.public = _pub(self.private)

    def buffer(self) -> SecureKeyBuffer:
        return SecureKeyBuffer(self.private)


def _theirs(protocol: str, initiator: bool, *, s: Peer | None, rs: Peer | None, psks: list[bytes]) -> NoiseConnection:
    conn = NoiseConnection.from_name(protocol.encode())
    conn.set_as_initiator() if initiator else conn.set_as_responder()
    conn.set_prologue(PROLOGUE)
    if s is not None:
        conn.set_keypair_from_private_bytes(Keypair.STATIC, s.private)
    if rs is not None:
        conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, rs.public)
    if psks:
        conn.set_psks(psks=psks)
    conn.start_handshake()
    return conn


def _ours(
    protocol: str, initiator: bool, *, s: Peer | None, rs: Peer | None, psks: list[bytes]
) -> tuple[HandshakeState, list[SecureKeyBuffer]]:
    owned = [s.buffer()] if s is not None else []
    psk_buffers = [SecureKeyBuffer(p) for p in psks]
    hs = HandshakeState(
        protocol,
        initiator,
        PROLOGUE,
        s=owned[0] if owned else None,
        rs=rs.public if rs is not None else None,
        psks=psk_buffers or None,
    )
    return hs, owned + psk_buffers


# (protocol, initiator static, responder static, initiator pre-knows rs, responder pre-knows rs, psks)
CASES = [
    (XX, True, True, False, False, 0),
    ("Noise_NN_25519_ChaChaPoly_SHA256", False, False, False, False, 0),
    ("Noise_NK_25519_ChaChaPoly_SHA256", False, True, True, False, 0),
    ("Noise_IK_25519_ChaChaPoly_SHA256", True, True, True, False, 0),
    ("Noise_KK_25519_ChaChaPoly_SHA256", True, True, True, True, 0),
    ("Noise_XXpsk3_25519_ChaChaPoly_SHA256", True, True, False, False, 1),
    ("Noise_NNpsk0+psk2_25519_ChaChaPoly_SHA256", False, False, False, False, 2),
]


def _run(case: tuple[str, bool, bool, bool, bool, int], ours_initiates: bool) -> None:
    protocol, i_static, r_static, i_knows, r_knows, n_psk = case
    initiator, responder = Peer(), Peer()
    psks = [os.urandom(32) for _ in range(n_psk)]
    i_opts = {"s": initiator if i_static else None, "rs": responder if i_knows else None, "psks": psks}
    r_opts = {"s": responder if r_static else None, "rs": initiator if r_knows else None, "psks": psks}
    if ours_initiates:
        ours, owned = _ours(protocol, True, **i_opts)  # type: ignore[arg-type]
        theirs = _theirs(protocol, False, **r_opts)  # type: ignore[arg-type]
    else:
        ours, owned = _ours(protocol, False, **r_opts)  # type: ignore[arg-type]
        theirs = _theirs(protocol, True, **i_opts)  # type: ignore[arg-type]

    index = 0
    while ours.status is State.HANDSHAKE:
        payload = f"handshake payload {index}".encode() * (index + 1)
        if ours.is_my_turn:
            assert bytes(theirs.read_message(ours.write_message(payload))) == payload
        else:
            assert ours.read_message(bytes(theirs.write_message(payload))) == payload
        index += 1
    assert theirs.handshake_finished
    assert ours.handshake_hash == theirs.get_handshake_hash()
    peer = responder if ours_initiates else initiator
    if r_static if ours_initiates else i_static:
        assert ours.remote_static == peer.public

    transport = NoiseTransport.from_handshake(ours)
    for k in range(8):
        message = os.urandom(k * 37)
        assert bytes(theirs.decrypt(transport.encrypt(message))) == message
        reply = os.urandom(1 + k * 53)
        assert transport.decrypt(bytes(theirs.encrypt(reply))) == reply
    transport.close()
    for buf in owned:
        assert not buf.is_purged  # the caller's static key and psks are never purged by us
        buf.secure_purge()


@pytest.mark.parametrize("case", CASES, ids=[c[0].split("_")[1] for c in CASES])
def test_our_initiator_against_their_responder(case: tuple[str, bool, bool, bool, bool, int]) -> None:
    _run(case, ours_initiates=True)


@pytest.mark.parametrize("case", CASES, ids=[c[0].split("_")[1] for c in CASES])
def test_their_initiator_against_our_responder(case: tuple[str, bool, bool, bool, bool, int]) -> None:
    _run(case, ours_initiates=False)


def test_xx_prologue_mismatch_fails_on_both_implementations() -> None:
    initiator, responder = Peer(), Peer()
    ours, owned = _ours(XX, True, s=initiator, rs=None, psks=[])
    theirs = NoiseConnection.from_name(XX.encode())
    theirs.set_as_responder()
    theirs.set_prologue(b"another prologue")
    theirs.set_keypair_from_private_bytes(Keypair.STATIC, responder.private)
    theirs.start_handshake()
    theirs.read_message(ours.write_message())  # message 1 is not encrypted: the mismatch shows later
    from cortex_sal.errors import DecryptionError

    with pytest.raises(DecryptionError):
        ours.read_message(bytes(theirs.write_message()))
    assert ours.status is State.FAILED
    owned[0].secure_purge()


@pytest.mark.parametrize("every", [1, 3, 10])
def test_count_rekey_matches_spec_rekey_in_noiseprotocol(every: int) -> None:
    """Ordered mode with ``rekey_every=E``: our sender and receiver change keys exactly where a
    spec Rekey() after every E messages (noiseprotocol's rekey_*_cipher) does."""
    initiator, responder = Peer(), Peer()
    ours, owned = _ours(XX, True, s=initiator, rs=None, psks=[])
    theirs = _theirs(XX, False, s=responder, rs=None, psks=[])
    theirs.read_message(ours.write_message())
    ours.read_message(bytes(theirs.write_message()))
    theirs.read_message(ours.write_message())
    transport = NoiseTransport.from_handshake(ours, rekey_every=every)
    for k in range(1, 4 * every + 3):
        message = os.urandom(k)
        assert bytes(theirs.decrypt(transport.encrypt(message))) == message
        reply = os.urandom(k + 1)
        assert transport.decrypt(bytes(theirs.encrypt(reply))) == reply
        if k % every == 0:  # E messages went each way: both directions rekey on their side
            theirs.rekey_inbound_cipher()
            theirs.rekey_outbound_cipher()
    last_nonce = 4 * every + 1  # epochs change lazily, with the first message of the new epoch
    assert transport.send_epoch == transport.recv_epoch == last_nonce // every
    transport.close()
    owned[0].secure_purge()
