"""Every official Noise test vector of the ``25519_ChaChaPoly_SHA256`` suite, both roles.

The vectors are the Cacophony project's (public domain), copied from
``../shared/data/noise/cacophony.txt`` into ``tests/data/noise/`` (see the README there):
59 vectors - the one-way, fundamental, psk and deferred patterns. Each runs once per role and
per API (``split()``'s CipherStates, and ``NoiseTransport`` in ordered mode, whose wire format is
plain Noise): 236 runs. Each role runs alone against the vector: the messages it writes must be
byte-exact, the messages it reads are the vector's ciphertexts and must give back the payloads,
the handshake hash must match, and so must every transport message after the handshake.

A vector that cannot run fails (``test_every_vector_of_the_suite_is_here`` and the
parametrisation over all of them): nothing is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519 as c_x25519

from cortex_sal.keros.noise import CipherState, HandshakeState, parse_pattern
from cortex_sal.keros.noise.transport import NoiseTransport
from cortex_sal.keros.states import State
from cortex_sal.securemem import SecureKeyBuffer

VECTORS_FILE = Path(__file__).parent / "data" / "noise" / "cacophony_25519_ChaChaPoly_SHA256.json"
EXPECTED_COUNT = 59  # every *_25519_ChaChaPoly_SHA256 vector of cacophony.txt


def _load() -> list[dict[str, Any]]:
    with VECTORS_FILE.open() as fh:
        vectors: list[dict[str, Any]] = json.load(fh)["vectors"]
    return vectors


VECTORS = _load()


def test_every_vector_of_the_suite_is_here() -> None:
    names = [v["protocol_name"] for v in VECTORS]
    assert len(VECTORS) == EXPECTED_COUNT
    assert len(set(names)) == EXPECTED_COUNT  # one vector per pattern
    assert all(name.endswith("_25519_ChaChaPoly_SHA256") for name in names)
    for name in names:  # every pattern of the file is supported: none can be left out
        parse_pattern(name)
    bases = {parse_pattern(n).base for n in names}
    assert {"N", "K", "X", "NN", "NK", "NX", "XN", "XK", "XX", "KN", "KK", "KX", "IN", "IK", "IX"} <= bases
    assert {"NK1", "XX1", "X1K1", "I1X1"} <= bases  # deferred patterns too
    assert any(parse_pattern(n).is_psk for n in names)


def _public_of(private_hex: str) -> bytes:
    """The X25519 public key, computed by the independent oracle (``cryptography``)."""
    key = c_x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(private_hex))
    return key.public_key().public_bytes_raw()


def _handshake(vector: dict[str, Any], role: str) -> HandshakeState:
    options: dict[str, Any] = {}
    if f"{role}_static" in vector:
        options["s"] = SecureKeyBuffer(bytes.fromhex(vector[f"{role}_static"]))  # public test data
    if f"{role}_ephemeral" in vector:
        options["e"] = SecureKeyBuffer(bytes.fromhex(vector[f"{role}_ephemeral"]))
    if f"{role}_remote_static" in vector:
        options["rs"] = bytes.fromhex(vector[f"{role}_remote_static"])
    if f"{role}_psks" in vector:
        options["psks"] = [SecureKeyBuffer(bytes.fromhex(p)) for p in vector[f"{role}_psks"]]
    return HandshakeState(vector["protocol_name"], role == "init", bytes.fromhex(vector[f"{role}_prologue"]), **options)


@pytest.mark.parametrize("api", ["cipherstate", "transport"])
@pytest.mark.parametrize("role", ["init", "resp"])
@pytest.mark.parametrize("vector", VECTORS, ids=[v["protocol_name"] for v in VECTORS])
def test_vector(vector: dict[str, Any], role: str, api: str) -> None:
    initiator = role == "init"
    hs = _handshake(vector, role)
    messages = vector["messages"]
    pattern = hs.pattern
    n_handshake = len(pattern.messages)
    assert len(messages) > n_handshake  # every vector has transport messages after the handshake

    for i in range(n_handshake):
        payload = bytes.fromhex(messages[i]["payload"])
        ciphertext = bytes.fromhex(messages[i]["ciphertext"])
        from_initiator = i % 2 == 0
        assert hs.is_my_turn == (from_initiator == initiator)
        if hs.is_my_turn:
            assert hs.write_message(payload) == ciphertext, f"handshake message {i} differs"
        else:
            assert hs.read_message(ciphertext) == payload, f"handshake message {i}: payload differs"

    assert hs.status is State.ESTABLISHED
    assert hs.handshake_hash == bytes.fromhex(vector["handshake_hash"])
    peer = "resp" if initiator else "init"
    if f"{peer}_static" in vector:  # the peer's static key is known (pre-message or received)
        assert hs.remote_static == _public_of(vector[f"{peer}_static"])
    else:
        assert hs.remote_static is None

    # transport: a one-way pattern sends initiator -> responder only; otherwise the turns go on
    if api == "cipherstate":
        c1, c2 = hs.split()
        send, recv = (c1, c2) if initiator else (c2, c1)
    else:
        transport = NoiseTransport.from_handshake(hs)
    assert hs._secret_buffers() == []  # ck, k, e, psk copies: all gone at Split
    for i in range(n_handshake, len(messages)):
        payload = bytes.fromhex(messages[i]["payload"])
        ciphertext = bytes.fromhex(messages[i]["ciphertext"])
        from_initiator = pattern.one_way or i % 2 == 0
        if from_initiator == initiator:
            got = send.encrypt_with_ad(b"", payload) if api == "cipherstate" else transport.encrypt(payload)
            assert got == ciphertext, f"transport message {i} differs"
        else:
            got = recv.decrypt_with_ad(b"", ciphertext) if api == "cipherstate" else transport.decrypt(ciphertext)
            assert got == payload, f"transport message {i}: payload differs"
    if api == "cipherstate":
        for cs in (c1, c2):
            cs.close()
            assert cs._k is None
    else:
        keys = transport._secret_buffers()
        transport.close()
        assert keys and all(k.is_purged for k in keys)


def test_vector_keys_are_purged_with_the_handshake() -> None:
    """The injected ephemeral and the psk copies are wiped the line after their last use; the
    caller's static key and psks are left alone."""
    vector = next(v for v in VECTORS if v["protocol_name"] == "Noise_XXpsk3_25519_ChaChaPoly_SHA256")
    static = SecureKeyBuffer(bytes.fromhex(vector["init_static"]))
    ephemeral = SecureKeyBuffer(bytes.fromhex(vector["init_ephemeral"]))
    psk = SecureKeyBuffer(bytes.fromhex(vector["init_psks"][0]))
    hs = HandshakeState(
        vector["protocol_name"], True, bytes.fromhex(vector["init_prologue"]), s=static, e=ephemeral, psks=[psk]
    )
    messages = vector["messages"]
    hs.write_message(bytes.fromhex(messages[0]["payload"]))
    assert not ephemeral.is_purged  # ee and es still to come
    hs.read_message(bytes.fromhex(messages[1]["ciphertext"]))
    assert ephemeral.is_purged  # es was the initiator ephemeral's last DH (message 2)
    hs.write_message(bytes.fromhex(messages[2]["payload"]))
    assert hs.handshake_hash == bytes.fromhex(vector["handshake_hash"])
    assert hs._secret_buffers() != []  # the two transport keys, not yet handed over
    c1, c2 = hs.split()
    assert hs._secret_buffers() == []
    assert not static.is_purged and not psk.is_purged  # the caller's
    for buf in (c1, c2, static, psk):
        buf.close() if isinstance(buf, CipherState) else buf.secure_purge()
