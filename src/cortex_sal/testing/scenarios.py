"""Residue scenarios: a child side that runs a real code path, and a parent side that
feeds it, talks to it, and knows every secret it must not leave behind.

The parent computes the secrets with ``cryptography``/``hmac`` (independent of the code
under test) and declares them with ``peer.know(...)``; ``peer.checkpoint(name,
session_live=...)`` then scans the child. Add a scenario for every code path that
touches a secret.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..crypto import X25519PrivateKey
    from ..keros.noise.transport import NoiseTransport
    from .child import Context
    from .noise_oracle import IndependentNoiseXX
    from .residue import Peer

HANDSHAKE_INFO = b"cortex-sensor-ecdh-handshake-v1"
SENSOR_ID = "eeg_fp1_certified_v1"


@dataclass(frozen=True)
class Scenario:
    """A residue row: ``parent`` drives and knows the secrets, ``child`` runs the code under test.

    ``registry`` is the module whose ``SCENARIOS`` dict holds it: the child process imports that
    module to find its side. Layers above ``testing`` (the ``cli``) keep their scenarios in their
    own module and name it here, so that ``testing`` never imports them.
    """

    name: str
    parent: Callable[[Peer], None]
    child: Callable[[Context], None]
    registry: str = __name__


# -- X25519 + HKDF + HMAC ACK: the crypto layer alone ------------------------------------


def _x25519_hkdf_parent(peer: Peer) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    sensor_priv, gateway_priv, challenge = os.urandom(32), os.urandom(32), os.urandom(32)
    peer.send(sensor_priv + gateway_priv + challenge)
    sensor = X25519PrivateKey.from_private_bytes(sensor_priv)
    gateway = X25519PrivateKey.from_private_bytes(gateway_priv)
    shared = sensor.exchange(gateway.public_key())
    peer.know(
        sensor_private=sensor_priv,
        gateway_private=gateway_priv,
        shared_secret=shared,
        hkdf_prk=hmac.digest(challenge, shared, "sha256"),
        session_key=HKDF(hashes.SHA256(), 32, challenge, HANDSHAKE_INFO).derive(shared),
    )
    peer.checkpoint("session", session_live=True)
    peer.checkpoint("after_purge", session_live=False)


def _x25519_hkdf_child(ctx: Context) -> None:
    from ..crypto import hkdf_sha256, hmac_sha256, x25519_public_key, x25519_shared_secret

    sensor = ctx.read_key()
    gateway = ctx.read_key()
    challenge = ctx.read_public(32)
    shared = x25519_shared_secret(sensor, x25519_public_key(gateway))
    shared_other_side = x25519_shared_secret(gateway, x25519_public_key(sensor))
    session = hkdf_sha256(shared, salt=challenge, info=HANDSHAKE_INFO)
    hmac_sha256(session, challenge)  # a public tag: the one-shot HMAC path
    if not shared.constant_time_compare(shared_other_side):
        raise RuntimeError("the two sides disagree")
    ctx.checkpoint("session")
    for buf in (sensor, gateway, shared, shared_other_side, session):
        buf.secure_purge()
    ctx.checkpoint("after_purge")


# -- the control: a path that leaks on purpose, so the harness is seen to find leaks ------

_kept: list[object] = []


def _leak_control_parent(peer: Peer) -> None:
    key = os.urandom(32)
    peer.send(key)
    peer.know(leaked_key=key)
    peer.checkpoint("session", session_live=True)
    peer.checkpoint("after_purge", session_live=False)


def _leak_control_child(ctx: Context) -> None:
    key = ctx.read_key()
    with key.export_bytearray() as lent:
        _kept.append(bytes(lent))  # the mistake the custody rules forbid
        _kept.append(lent.hex())
    ctx.checkpoint("session")
    key.secure_purge()
    ctx.checkpoint("after_purge")


# -- KEROS v1: our gateway in the child, an independent sensor in the parent ------------

FRAMES_EACH_WAY = 100
FRAME_PAYLOAD = 1024  # 256 float32 samples: the size of a real frame


class IndependentV1Sensor:
    """A v1 sensor written only with ``cryptography`` + ``hmac`` + ``hashlib`` (an oracle)."""

    def __init__(self, sensor_id: str = SENSOR_ID) -> None:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        self.id_hash = hashlib.sha256(sensor_id.encode()).digest()
        self.private = X25519PrivateKey.generate()
        self.public = self.private.public_key().public_bytes_raw()
        self.seq = 0
        self.last_seen = 0

    def hello(self, now: float | None = None) -> bytes:
        ms = int((time.time() if now is None else now) * 1000)
        return self.id_hash + self.public + struct.pack(">Q", ms)

    def receive_tee_hello(self, tee_hello: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand

        assert len(tee_hello) == 96
        gateway_public, challenge = tee_hello[32:64], tee_hello[64:96]
        self.shared = self.private.exchange(X25519PublicKey.from_public_bytes(gateway_public))
        self.prk = hmac.digest(challenge, self.shared, "sha256")
        self.session_key = HKDF(hashes.SHA256(), 32, challenge, HANDSHAKE_INFO).derive(self.shared)
        self.s2g = HKDFExpand(hashes.SHA256(), 32, b"cortex-sensor-frames-v1 sensor->gateway").derive(self.session_key)
        self.g2s = HKDFExpand(hashes.SHA256(), 32, b"cortex-sensor-frames-v1 gateway->sensor").derive(self.session_key)
        self.session_id = hashlib.sha256(
            b"cortex-sensor-session-v1" + self.id_hash + self.public + gateway_public + challenge
        ).digest()
        return hmac.digest(self.session_key, challenge, "sha256")

    def frame(self, payload: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self.seq += 1
        header = struct.pack(">II", self.seq, len(payload))
        nonce = struct.pack(">Q", self.seq) + self.session_id[:4]
        return header + nonce + ChaCha20Poly1305(self.s2g).encrypt(nonce, payload, header)

    def open(self, frame: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        seq, length = struct.unpack(">II", frame[:8])
        nonce = frame[8:20]
        if seq <= self.last_seen or nonce != struct.pack(">Q", seq) + self.session_id[:4]:
            raise ValueError("replayed or malformed frame")
        plaintext = ChaCha20Poly1305(self.g2s).decrypt(nonce, frame[20:], frame[:8])
        if len(plaintext) != length:
            raise ValueError("length mismatch")
        self.last_seen = seq
        return plaintext

    def secrets(self) -> dict[str, bytes]:
        return {
            "shared_secret": self.shared,
            "hkdf_prk": self.prk,
            "session_key": self.session_key,
            "frame_key_s2g": self.s2g,
            "frame_key_g2s": self.g2s,
        }


def _keros_v1_parent(peer: Peer) -> None:
    gateway_ephemeral = os.urandom(32)
    peer.send(gateway_ephemeral)
    sensor = IndependentV1Sensor()
    peer.send(sensor.hello())
    peer.send(sensor.receive_tee_hello(peer.receive()))
    payloads = [os.urandom(FRAME_PAYLOAD) for _ in range(FRAMES_EACH_WAY)]
    peer.know(gateway_ephemeral=gateway_ephemeral, **sensor.secrets())
    middle = FRAMES_EACH_WAY // 2
    peer.know(first_samples=payloads[0], middle_samples=payloads[middle], last_samples=payloads[-1])
    peer.checkpoint("handshake", session_live=True)
    for i, payload in enumerate(payloads):
        frame = sensor.frame(payload)
        peer.send(struct.pack(">I", len(frame)) + frame)
        if i == middle:  # the child holds this frame's samples, decrypted, right now
            report = peer.checkpoint("mid_session", session_live=True)
            if not report.counts["middle_samples"]["arena"]["exact"]:
                raise RuntimeError("the decrypted samples should be in the arena at mid_session")
        reply = sensor.open(peer.receive())
        if reply != hashlib.sha256(payload).digest():
            raise RuntimeError(f"gateway reply {i} does not match")
    peer.checkpoint("after_close", session_live=False)


def _keros_v1_child(ctx: Context) -> None:
    from ..crypto import X25519PrivateKey
    from ..keros import GatewayHandshake

    gateway = GatewayHandshake(
        "residue-gateway", sensor_ids=[SENSOR_ID], ephemeral_key=X25519PrivateKey(ctx.read_key())
    )
    ctx.send_public(gateway.receive_sensor_hello(ctx.read_public(72)))
    gateway.receive_sensor_ack(ctx.read_public(32))
    session = gateway.session()
    ctx.checkpoint("handshake")
    for i in range(FRAMES_EACH_WAY):
        (size,) = struct.unpack(">I", ctx.read_public(4))
        with session.decrypt_frame(ctx.read_public(size)) as samples:
            if i == FRAMES_EACH_WAY // 2:
                ctx.checkpoint("mid_session")
            with samples._view() as view:
                digest = hashlib.sha256(view).digest()  # a public function of the samples
        ctx.send_public(session.encrypt_frame(digest))
    session.close()
    ctx.checkpoint("after_close")


# -- the shield: raw samples through the whole pipeline --------------------------------

SHIELD_FRAMES = 3


def _shield_parent(peer: Peer) -> None:
    import numpy as np

    from ..sources import synthetic_eeg

    frames = [np.asarray(x, dtype="<f4") for x in synthetic_eeg(SHIELD_FRAMES, seed=9).frames]
    peer.know(**{f"samples_{i}": bytes(f.data) for i, f in enumerate(frames)})
    for i, frame in enumerate(frames):
        peer.send(bytes(frame.data))
        if i == 0:  # the child holds frame 0 in locked memory now
            held = peer.checkpoint("frame_held", session_live=True)
            if not held.counts["samples_0"]["arena"]["exact"]:
                raise RuntimeError("the samples the child holds should be found in the arena")
    peer.checkpoint("after_frames", session_live=True)
    peer.checkpoint("after_destroy", session_live=False)


def _shield_child(ctx: Context) -> None:
    import numpy as np

    from ..clock import ManualClock
    from ..sal.results import Refused
    from ..sal.shield import CognitiveShield
    from ..securemem import SecureTensorBuffer

    clock = ManualClock()
    shield = CognitiveShield(clock=clock)
    shield.register_sensor(SENSOR_ID, 35.0, 16)
    for i in range(SHIELD_FRAMES):
        with SecureTensorBuffer((256,), np.dtype("<f4")) as incoming:
            ctx.read_into(incoming)
            if i == 0:
                ctx.checkpoint("frame_held")
            if i < SHIELD_FRAMES - 1:
                result = shield.ingest_raw_data(SENSOR_ID, incoming.array)
            else:  # the last frame through the batch path (its own locked copy, Phase B and liveness in batch)
                (result,) = shield.ingest_batch([SENSOR_ID], incoming.array.reshape(1, -1))
        if isinstance(result, Refused):
            raise RuntimeError(f"frame refused: {result.detail}")
        clock.advance(2.0)
    ctx.checkpoint("after_frames")
    shield.close()
    ctx.checkpoint("after_destroy")


# -- Ed25519 signing key -------------------------------------------------------------------


def _ed25519_parent(peer: Peer) -> None:
    seed = os.urandom(32)
    peer.send(seed)
    expanded = bytearray(hashlib.sha512(seed).digest())  # RFC 8032 5.1.5: scalar || prefix
    expanded[0] &= 248
    expanded[31] &= 127
    expanded[31] |= 64
    peer.know(ed25519_seed=seed, ed25519_scalar=bytes(expanded[:32]), ed25519_prefix=bytes(expanded[32:]))
    peer.checkpoint("signing", session_live=True)
    peer.checkpoint("after_purge", session_live=False)


def _ed25519_child(ctx: Context) -> None:
    from ..crypto import Ed25519SigningKey, ed25519_verify

    seed = ctx.read_key()
    key = Ed25519SigningKey(seed)
    seed.secure_purge()
    for i in range(20):
        message = b"governance proposal %d" % i
        ed25519_verify(key.public_key(), message, key.sign(message))
    ctx.checkpoint("signing")
    key.purge()
    ctx.checkpoint("after_purge")


# -- KEROS v1 failures: a wrong ACK, a tampered frame ---------------------------------------


def _v1_handshake_parent(peer: Peer, *, bad_ack: bool) -> IndependentV1Sensor:
    gateway_ephemeral = os.urandom(32)
    peer.send(gateway_ephemeral)
    sensor = IndependentV1Sensor()
    peer.send(sensor.hello())
    ack = sensor.receive_tee_hello(peer.receive())
    peer.send(bytes(32) if bad_ack else ack)
    peer.know(gateway_ephemeral=gateway_ephemeral, **sensor.secrets())
    return sensor


def _bad_ack_parent(peer: Peer) -> None:
    _v1_handshake_parent(peer, bad_ack=True)
    peer.checkpoint("after_refusal", session_live=False)


def _bad_ack_child(ctx: Context) -> None:
    from ..crypto import X25519PrivateKey
    from ..errors import HandshakeError
    from ..keros import GatewayHandshake

    gateway = GatewayHandshake(
        "residue-gateway", sensor_ids=[SENSOR_ID], ephemeral_key=X25519PrivateKey(ctx.read_key())
    )
    ctx.send_public(gateway.receive_sensor_hello(ctx.read_public(72)))
    try:
        gateway.receive_sensor_ack(ctx.read_public(32))
    except HandshakeError:
        pass
    else:
        raise RuntimeError("a wrong ACK was accepted")
    ctx.checkpoint("after_refusal")


def _tampered_frame_parent(peer: Peer) -> None:
    sensor = _v1_handshake_parent(peer, bad_ack=False)
    payload = os.urandom(FRAME_PAYLOAD)
    peer.know(samples=payload)
    frame = bytearray(sensor.frame(payload))
    frame[-1] ^= 0x01
    peer.send(struct.pack(">I", len(frame)) + bytes(frame))
    peer.checkpoint("after_compromise", session_live=False)


def _tampered_frame_child(ctx: Context) -> None:
    from ..crypto import X25519PrivateKey
    from ..errors import FrameAuthError
    from ..keros import GatewayHandshake

    gateway = GatewayHandshake(
        "residue-gateway", sensor_ids=[SENSOR_ID], ephemeral_key=X25519PrivateKey(ctx.read_key())
    )
    ctx.send_public(gateway.receive_sensor_hello(ctx.read_public(72)))
    gateway.receive_sensor_ack(ctx.read_public(32))
    session = gateway.session()
    (size,) = struct.unpack(">I", ctx.read_public(4))
    try:
        session.decrypt_frame(ctx.read_public(size))
    except FrameAuthError:
        pass
    else:
        raise RuntimeError("a tampered frame was accepted")
    ctx.checkpoint("after_compromise")


# -- AEAD alone: key and plaintexts in locked memory, both directions ----------------------

AEAD_MESSAGE = 1024


def _chacha20_blocks(key: bytes, nonce: bytes, size: int) -> bytes:
    """RFC 8439 ChaCha20 keystream from block 0: block 0 starts with the one-time Poly1305
    key (2.6), blocks 1.. are the keystream that the plaintext is XORed with (2.8)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    encryptor = Cipher(algorithms.ChaCha20(key, bytes(4) + nonce), mode=None).encryptor()
    return encryptor.update(bytes(size))


def _aead_parent(peer: Peer) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    key, outgoing, incoming = os.urandom(32), os.urandom(AEAD_MESSAGE), os.urandom(AEAD_MESSAGE)
    peer.send(key + outgoing)
    nonce_out, nonce_in = b"\x00" * 11 + b"\x01", b"\x00" * 11 + b"\x02"
    peer.know(
        aead_key=key,
        plaintext_out=outgoing,
        plaintext_in=incoming,
        poly1305_key_out=_chacha20_blocks(key, nonce_out, 32),
        poly1305_key_in=_chacha20_blocks(key, nonce_in, 32),
        # keystream XOR the public ciphertext is the plaintext: a spilled keystream is a leak too
        keystream_out=_chacha20_blocks(key, nonce_out, 64 + AEAD_MESSAGE)[64:],
        keystream_in=_chacha20_blocks(key, nonce_in, 64 + AEAD_MESSAGE)[64:],
    )
    peer.send(ChaCha20Poly1305(key).encrypt(nonce_in, incoming, b"in"))
    # the child encrypts last: an encryption's spills must be gone as a decryption's are
    if ChaCha20Poly1305(key).decrypt(nonce_out, peer.receive(), b"out") != outgoing:
        raise RuntimeError("the child's ciphertext does not open with the independent library")
    held = peer.checkpoint("session", session_live=True)
    if not held.counts["plaintext_in"]["arena"]["exact"]:
        raise RuntimeError("the decrypted plaintext should be in the arena while it is held")
    peer.checkpoint("after_purge", session_live=False)


def _aead_child(ctx: Context) -> None:
    from ..crypto import aead_decrypt, aead_encrypt

    key = ctx.read_key()
    outgoing = ctx.read_secret(AEAD_MESSAGE)
    incoming = aead_decrypt(key, b"\x00" * 11 + b"\x02", ctx.read_public(AEAD_MESSAGE + 16), b"in")
    ctx.send_public(aead_encrypt(key, b"\x00" * 11 + b"\x01", outgoing, b"out"))
    ctx.checkpoint("session")
    for buf in (key, outgoing, incoming):
        buf.secure_purge()
    ctx.checkpoint("after_purge")


# -- HMAC: a 32-byte key, a 64-byte key (pads = key XOR 0x36/0x5c) and a long key -----------


def _hmac_parent(peer: Peer) -> None:
    key32, key64, key100 = os.urandom(32), os.urandom(64), os.urandom(100)
    message = os.urandom(200)
    peer.send(key32 + key64 + key100 + message)
    peer.know(
        hmac_key32=key32,
        hmac_key64=key64,
        hmac_key100=key100,
        hashed_key100=hashlib.sha256(key100).digest(),  # RFC 2104: a key longer than the block is hashed
        # the secret outputs are over another message than the public tags
        mac_into_32=hmac.digest(key32, message[::-1], "sha256"),
        mac_into_64=hmac.digest(key64, message[::-1], "sha256"),
        mac_into_100=hmac.digest(key100, message[::-1], "sha256"),
    )
    tags = [peer.receive() for _ in range(3)]
    if tags != [hmac.digest(k, message, "sha256") for k in (key32, key64, key100)]:
        raise RuntimeError("the child's HMAC tags differ from the independent library's")
    many = b"".join(hmac.digest(key32, message[i : i + 50], "sha256") for i in range(0, 200, 50))
    if peer.receive() != many:
        raise RuntimeError("the child's batch of HMAC tags differs from the independent library's")
    peer.checkpoint("session", session_live=True)
    peer.checkpoint("after_purge", session_live=False)


def _hmac_child(ctx: Context) -> None:
    from ..crypto import hmac_sha256, hmac_sha256_into, hmac_sha256_many, hmac_sha256_verify
    from ..securemem import SecureKeyBuffer

    key32 = ctx.read_key()
    keys = [key32, ctx.read_secret(64), ctx.read_secret(100)]
    message = ctx.read_public(200)
    outs = []
    for key in keys:
        tag = hmac_sha256(key, message)  # a public tag
        if not hmac_sha256_verify(key, tag, message):
            raise RuntimeError("a tag did not verify")
        ctx.send_public(tag)
        out = SecureKeyBuffer.allocate()
        reverse = message[::-1]
        hmac_sha256_into(key, out, reverse[:100], reverse[100:])  # a secret output, in two parts
        outs.append(out)
    ctx.send_public(hmac_sha256_many(key32, message, 50))  # the batch path: four tags under one key
    ctx.checkpoint("session")
    for buf in keys + outs:
        buf.secure_purge()
    ctx.checkpoint("after_purge")


# -- LIMES: the liveness master ------------------------------------------------------------


def _limes_parent(peer: Peer) -> None:
    master = os.urandom(32)
    peer.send(master)
    peer.know(limes_master=master)
    proof = peer.receive()
    features, nonce, timestamp = proof[:40], proof[40:56], proof[56:64]
    expected = hmac.digest(master, hashlib.sha256(features).digest() + nonce + timestamp, "sha256")
    if peer.receive() != expected:
        raise RuntimeError("the child's LIMES proof differs from the independent HMAC")
    peer.checkpoint("session", session_live=True)
    peer.checkpoint("after_purge", session_live=False)


def _limes_child(ctx: Context) -> None:
    from ..clock import ManualClock
    from ..sal.liveness import LivenessProver, features_be

    clock = ManualClock()
    prover = LivenessProver(ctx.read_key(), clock=clock)
    features = [0.1, 0.2, 0.3, 0.4, 0.5]
    for _ in range(50):
        proof = prover.prove(features)
        if not prover.verify(features, proof):
            raise RuntimeError("a fresh proof did not verify")
        clock.advance(0.5)
    if prover.prove_and_verify_batch([features] * 8) != [True] * 8:  # the batch path under the same master
        raise RuntimeError("a batch of fresh proofs did not verify")
    ctx.send_public(features_be(features) + proof.nonce + struct.pack(">d", proof.timestamp))
    ctx.send_public(proof.proof)
    ctx.checkpoint("session")
    prover.purge()
    ctx.checkpoint("after_purge")


# -- the clinical channel: shared secret and channel key, both roles ------------------------

CLINICAL_MESSAGES = 20


def _clinical_parent(peer: Peer) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from ..sal.clinical import INFO, channel_salt

    clinician = X25519PrivateKey.generate()
    clinician_public = clinician.public_key().public_bytes_raw()
    peer.send(clinician_public)
    keys = {}
    for role in ("sender", "receiver"):
        child_public = peer.receive()
        shared = clinician.exchange(X25519PublicKey.from_public_bytes(child_public))
        key = HKDF(hashes.SHA256(), 32, channel_salt(child_public, clinician_public), INFO).derive(shared)
        keys[role] = key
        peer.know(**{f"{role}_shared_secret": shared, f"{role}_channel_key": key})
    features = [os.urandom(40) for _ in range(CLINICAL_MESSAGES)]
    peer.know(**{f"clinical_in_{i}": f for i, f in enumerate(features)})
    for i, payload in enumerate(features):
        counter = struct.pack(">Q", i + 1)
        sealed = ChaCha20Poly1305(keys["receiver"]).encrypt(bytes(4) + counter, payload, counter)
        peer.send(counter + sealed)
    for i in range(CLINICAL_MESSAGES):
        message = peer.receive()
        counter = message[:8]
        opened = ChaCha20Poly1305(keys["sender"]).decrypt(bytes(4) + counter, message[8:], counter)
        if opened != hashlib.sha256(features[i]).digest():
            raise RuntimeError(f"clinical message {i} does not match")
    peer.checkpoint("session", session_live=True)
    peer.checkpoint("after_close", session_live=False)


def _clinical_child(ctx: Context) -> None:
    from ..sal.clinical import ClinicalChannel

    clinician_public = ctx.read_public(32)
    sender = ClinicalChannel.establish(clinician_public, "sender")
    ctx.send_public(sender.public_key)
    receiver = ClinicalChannel.establish(clinician_public, "receiver")
    ctx.send_public(receiver.public_key)
    digests = []
    for _ in range(CLINICAL_MESSAGES):
        with receiver.open(ctx.read_public(8 + 40 + 16)) as features, features._view() as view:
            digests.append(hashlib.sha256(view).digest())  # a public function of the features
    for digest in digests:
        ctx.send_public(sender.seal(digest))
    ctx.checkpoint("session")
    sender.close()
    receiver.close()
    ctx.checkpoint("after_close")


# -- KEROS v2 (Noise XX, certified keys): our side in the child, an independent peer in the parent

V2_FRAMES = 50
V2_MODEL = "eeg_fp1_certified_v1"
SHIELD_V2_SEED = 12345  # synthetic EEG whose 50 frames all pass the default policy


def _send_chunk(peer: Peer, data: bytes) -> None:
    peer.send(struct.pack(">I", len(data)) + data)


def _read_chunk(ctx: Context) -> bytes:
    (size,) = struct.unpack(">I", ctx.read_public(4))
    return ctx.read_public(size)


def _v2_parent_handshake(peer: Peer, *, child_is_gateway: bool) -> IndependentNoiseXX:
    """The parent's side of a v2 handshake with the child: certificates, the three messages,
    every Noise secret made known to the scan, checkpoint ``handshake``. Returns the oracle."""
    import json

    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as OracleKey

    from ..keros.certificate import CertificateAuthority
    from ..keros.v2 import PROLOGUE
    from .noise_oracle import IndependentNoiseXX

    now = int(time.time())
    child_static, child_ephemeral = os.urandom(32), os.urandom(32)
    oracle = IndependentNoiseXX(child_is_gateway, os.urandom(32), os.urandom(32), PROLOGUE)
    child_public = OracleKey.from_private_bytes(child_static).public_key().public_bytes_raw()
    sensor_public, gateway_public = (oracle.s_pub, child_public) if child_is_gateway else (child_public, oracle.s_pub)
    with CertificateAuthority.generate("manufacturer", "Residue Devices") as maker, \
            CertificateAuthority.generate("site", "Residue Ward") as site:  # fmt: skip
        sensor_cert = maker.issue_sensor(sensor_public, model_id=V2_MODEL, serial="SN-1", not_before=now - 60,
                                         not_after=now + 3600)  # fmt: skip
        gateway_cert = site.issue_gateway(gateway_public, gateway_name="gw", serial="GW-1", not_before=now - 60,
                                          not_after=now + 3600)  # fmt: skip
        roots = [maker.root.to_json(), site.root.to_json()]
    peer.send(child_static + child_ephemeral)
    child_cert = gateway_cert if child_is_gateway else sensor_cert
    _send_chunk(peer, json.dumps({"roots": roots, "certificate": child_cert.hex()}).encode())
    if child_is_gateway:
        _send_chunk(peer, oracle.write_1())
        if oracle.read_2(peer.receive()) != gateway_cert:
            raise RuntimeError("the gateway did not send its certificate")
        _send_chunk(peer, oracle.write_3(sensor_cert))
    else:
        oracle.read_1(peer.receive())
        _send_chunk(peer, oracle.write_2(gateway_cert))
        if oracle.read_3(peer.receive()) != sensor_cert:
            raise RuntimeError("the sensor did not send its certificate")
    secrets = oracle.secrets()
    own = {f"peer_{k}": secrets.pop(k) for k in ("static_private", "ephemeral_private")}  # the parent's own keys
    peer.know(child_static_private=child_static, child_ephemeral_private=child_ephemeral, **own, **secrets)
    peer.checkpoint("handshake", session_live=True)
    return oracle


def _v2_parent(peer: Peer, *, child_is_gateway: bool) -> None:
    oracle = _v2_parent_handshake(peer, child_is_gateway=child_is_gateway)
    payloads = [os.urandom(FRAME_PAYLOAD) for _ in range(V2_FRAMES)]
    peer.know(first_samples=payloads[0], middle_samples=payloads[V2_FRAMES // 2], last_samples=payloads[-1])
    for i, payload in enumerate(payloads):
        _send_chunk(peer, oracle.encrypt(payload))
        if i == V2_FRAMES // 2:
            report = peer.checkpoint("mid_session", session_live=True)
            if not report.counts["middle_samples"]["arena"]["exact"]:
                raise RuntimeError("the decrypted samples should be in the arena at mid_session")
        if oracle.decrypt(peer.receive()) != hashlib.sha256(payload).digest():
            raise RuntimeError(f"reply {i} does not match")
    peer.checkpoint("after_close", session_live=False)


def _v2_child_handshake(ctx: Context, *, gateway_side: bool) -> tuple[X25519PrivateKey, NoiseTransport, Any]:
    """The child's side of :func:`_v2_parent_handshake`: (static key, transport, verified peer)."""
    import json

    from ..crypto import X25519PrivateKey
    from ..keros.certificate import RootCA, TrustStore
    from ..keros.v2 import GatewayV2, SensorV2

    static, ephemeral = X25519PrivateKey(ctx.read_key()), X25519PrivateKey(ctx.read_key())
    setup = json.loads(_read_chunk(ctx))
    trust = TrustStore([RootCA.from_json(r) for r in setup["roots"]])
    certificate = bytes.fromhex(setup["certificate"])
    party: GatewayV2 | SensorV2
    if gateway_side:
        party = GatewayV2(static, certificate, trust, ephemeral=ephemeral)
        ctx.send_public(party.receive_sensor_hello(_read_chunk(ctx)))
        party.receive_sensor_finish(_read_chunk(ctx))
    else:
        party = SensorV2(static, certificate, trust, ephemeral=ephemeral)
        ctx.send_public(party.start())
        ctx.send_public(party.receive_gateway_hello(_read_chunk(ctx)))
    transport = party.transport()
    ctx.checkpoint("handshake")
    return static, transport, party.peer


def _v2_child(ctx: Context, *, gateway_side: bool) -> None:
    from ..securemem import SecureBuffer

    static, transport, _ = _v2_child_handshake(ctx, gateway_side=gateway_side)
    with SecureBuffer(FRAME_PAYLOAD) as samples:
        for i in range(V2_FRAMES):
            transport.decrypt_into(_read_chunk(ctx), samples)
            if i == V2_FRAMES // 2:
                ctx.checkpoint("mid_session")
            with samples._view() as view:
                digest = hashlib.sha256(view).digest()  # a public function of the samples
            ctx.send_public(transport.encrypt(digest))
    transport.close()
    static.purge()  # the caller's long-term key: this scenario's session is its whole life
    ctx.checkpoint("after_close")


# -- the shield on a v2 channel: an attached transport, frames decrypted into the frame's buffer


def _shield_v2_parent(peer: Peer) -> None:
    import numpy as np

    from ..sources import synthetic_eeg

    oracle = _v2_parent_handshake(peer, child_is_gateway=True)
    # a fixed seed: the same 50 frames every run, each one released by the policy (some seeds
    # drop capacity part-way, which would send later frames down the refusal path instead)
    frames = [np.asarray(x, "<f4").tobytes() for x in synthetic_eeg(V2_FRAMES, seed=SHIELD_V2_SEED).frames]
    peer.know(first_samples=frames[0], middle_samples=frames[V2_FRAMES // 2], last_samples=frames[-1])
    for i, payload in enumerate(frames):
        _send_chunk(peer, oracle.encrypt(payload))
        status = peer.receive()
        if status != b"ok":
            raise RuntimeError(f"frame {i} was not released through the pipeline: {status!r}")
        if i == V2_FRAMES // 2:
            report = peer.checkpoint("mid_session", session_live=True)
            if report.counts["middle_samples"]["arena"]["exact"]:
                raise RuntimeError("a processed frame's samples should be zeroed, in the arena too")
    peer.checkpoint("after_close", session_live=False)


def _shield_v2_child(ctx: Context) -> None:
    from ..clock import ManualClock
    from ..sal.results import Refused
    from ..sal.shield import CognitiveShield

    static, transport, verified = _v2_child_handshake(ctx, gateway_side=True)
    clock = ManualClock()
    shield = CognitiveShield(clock=clock)
    attached = shield.attach_sensor(transport, verified)
    if isinstance(attached, Refused):
        raise RuntimeError(f"sensor refused: {attached.detail}")
    for i in range(V2_FRAMES):
        result = shield.ingest_frame(attached.sensor_id, _read_chunk(ctx))
        ctx.send_public(b"refused" if isinstance(result, Refused) else b"ok")
        if i == V2_FRAMES // 2:
            ctx.checkpoint("mid_session")
        clock.advance(2.0)
    shield.close()  # destroy_session purges the attached transport
    static.purge()
    ctx.checkpoint("after_close")


# -- the Noise transport alone: a key from the pipe, messages decrypted straight into the arena

NOISE_MESSAGES = 8
# public, of a frame's size: it takes libsodium's wide ChaCha20 loops, those that spill broadcast key words
_NOTICE = bytes(range(256)) * (FRAME_PAYLOAD // 256)


def _noise_transport_parent(peer: Peer) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    ordered_key, lossy_key = os.urandom(32), os.urandom(32)
    peer.send(ordered_key + lossy_key)
    samples = [os.urandom(FRAME_PAYLOAD) for _ in range(2 * NOISE_MESSAGES)]
    peer.know(ordered_key=ordered_key, lossy_key=lossy_key, **{f"samples_{i}": x for i, x in enumerate(samples)})
    for n in range(NOISE_MESSAGES):  # ordered: the implicit nonce n
        nonce = bytes(4) + struct.pack("<Q", n)
        _send_chunk(peer, ChaCha20Poly1305(ordered_key).encrypt(nonce, samples[n], b""))
    for n in reversed(range(NOISE_MESSAGES)):  # lossy: explicit nonce, out of order
        nonce = bytes(4) + struct.pack("<Q", n)
        sealed = ChaCha20Poly1305(lossy_key).encrypt(nonce, samples[NOISE_MESSAGES + n], b"")
        _send_chunk(peer, struct.pack(">Q", n) + sealed)
    last = peer.checkpoint("decrypted", session_live=True)
    if not last.counts[f"samples_{NOISE_MESSAGES}"]["arena"]["exact"]:
        raise RuntimeError("the last decrypted samples should be in the arena")
    # Every other use of a secret key leaves ChaCha20's spills as a decryption does; each is
    # the last use before a scan: an encryption, a decryption of a public plaintext, a REKEY.
    send_key, open_key, rekey_key = os.urandom(32), os.urandom(32), os.urandom(32)
    # REKEY(k) (Noise section 4.2): the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zeros)
    rekeyed_key = ChaCha20Poly1305(rekey_key).encrypt(bytes(4) + b"\xff" * 8, bytes(32), b"")[:32]
    peer.know(send_key=send_key, open_key=open_key, rekey_key=rekey_key, rekeyed_key=rekeyed_key)
    peer.send(send_key + open_key + rekey_key)
    nonce0, notice = bytes(12), _NOTICE
    if ChaCha20Poly1305(send_key).decrypt(nonce0, peer.receive(), b"") != notice:
        raise RuntimeError("the child's transport message does not open with the independent library")
    peer.checkpoint("encrypted", session_live=True)
    _send_chunk(peer, ChaCha20Poly1305(open_key).encrypt(nonce0, notice, b""))
    if peer.receive() != notice:
        raise RuntimeError("the child opened the public message to something else")
    peer.checkpoint("opened_public", session_live=True)
    peer.checkpoint("rekeyed", session_live=True)
    if ChaCha20Poly1305(rekeyed_key).decrypt(nonce0, peer.receive(), b"") != notice:
        raise RuntimeError("the child's message after REKEY does not open under the independent REKEY(k)")
    peer.checkpoint("encrypted_after_rekey", session_live=True)
    peer.checkpoint("after_close", session_live=False)


def _noise_transport_child(ctx: Context) -> None:
    from ..keros.noise import CipherState
    from ..keros.noise.transport import NoiseTransport
    from ..securemem import SecureBuffer

    ordered = NoiseTransport(None, CipherState(ctx.read_key()))
    lossy = NoiseTransport(None, CipherState(ctx.read_key()), lossy=True)
    held = []
    for transport in (ordered, lossy):
        for _ in range(NOISE_MESSAGES):
            out = SecureBuffer(FRAME_PAYLOAD)
            transport.decrypt_into(_read_chunk(ctx), out)
            held.append(out)
    ctx.checkpoint("decrypted")  # right after the last decrypt: nothing else ran in between
    sender = NoiseTransport(CipherState(ctx.read_key()), None)
    opener = NoiseTransport(None, CipherState(ctx.read_key()))
    rekeyed = CipherState(ctx.read_key())
    notice = _NOTICE
    ctx.send_public(sender.encrypt(notice))
    ctx.checkpoint("encrypted")
    ctx.send_public(opener.decrypt(_read_chunk(ctx)))
    ctx.checkpoint("opened_public")
    rekeyed.rekey()
    ctx.checkpoint("rekeyed")
    ctx.send_public(rekeyed.encrypt_with_ad(b"", notice))
    ctx.checkpoint("encrypted_after_rekey")
    rekeyed.close()
    for transport in (ordered, lossy, sender, opener):
        transport.close()
    for out in held:
        out.secure_purge()
    ctx.checkpoint("after_close")


# -- the store's consent receipts: a signing key the parent wrote, read from disk into the arena

STORE_SENSOR = f"{V2_MODEL}/SN-1"


def _ed25519_expansion(seed: bytes) -> dict[str, bytes]:
    """RFC 8032 5.1.5: SHA-512(seed) = h[:32] (clamped into the scalar) || h[32:] (the nonce prefix)."""
    digest = hashlib.sha512(seed).digest()
    scalar = bytearray(digest[:32])
    scalar[0] &= 248
    scalar[31] &= 127
    scalar[31] |= 64
    return {"sha512_low": digest[:32], "scalar": bytes(scalar), "prefix": digest[32:]}


def _verify_receipts(documents: list[str], public_key: bytes, kinds: list[str]) -> None:
    """Each JWS verified with ``cryptography`` under the key of the parent's seed; states in order."""
    import base64
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    verifier = Ed25519PublicKey.from_public_bytes(public_key)
    states = []
    for document in documents:
        header, payload, signature = document.split(".")
        if unb64(json.loads(unb64(header))["jwk"]["x"]) != public_key:
            raise RuntimeError("a receipt names another key than the one of the parent's seed")
        verifier.verify(unb64(signature), f"{header}.{payload}".encode("ascii"))  # raises if forged
        states.append(json.loads(unb64(payload))["state"])
    if states != kinds:
        raise RuntimeError(f"the child's receipts are {states}, expected {kinds}")


def _store_receipts_parent(peer: Peer) -> None:
    import json
    import shutil
    import tempfile

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ..store.sqlite import RECEIPT_KEY_FILE

    seed = os.urandom(32)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    directory = tempfile.mkdtemp(prefix="cortex-sal-residue-")  # 0700
    try:
        fd = os.open(os.path.join(directory, RECEIPT_KEY_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, seed)
        finally:
            os.close(fd)
        peer.know(receipt_seed=seed, **{f"receipt_{k}": v for k, v in _ed25519_expansion(seed).items()})
        _send_chunk(peer, directory.encode())
        # the store created with the parent's key: two grants, two revocations, each receipt signed
        _verify_receipts(json.loads(peer.receive()), public, ["active", "withdrawn"] * 2)
        peer.checkpoint("created", session_live=True)
        peer.checkpoint("after_first_close", session_live=False)
        # reopened: the key is loaded again at the first signature; a capacity drop revokes (signed)
        _verify_receipts(json.loads(peer.receive()), public, ["active", "withdrawn"] * 3)
        peer.checkpoint("signing", session_live=True)
        peer.checkpoint("after_close", session_live=False)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _store_receipts_child(ctx: Context) -> None:
    import json

    from ..clock import ManualClock
    from ..governance import DEFAULT_THRESHOLDS
    from ..store.base import subject_of
    from ..store.runtime import durable_ledger
    from ..store.sqlite import SqliteStore

    directory = _read_chunk(ctx).decode()
    subject = subject_of(STORE_SENSOR)
    clock = ManualClock()
    store = SqliteStore(directory, exclusive=True, controller="residue-gateway", jurisdiction="DE", clock=clock)
    ledger = durable_ledger(store, DEFAULT_THRESHOLDS, clock)
    for app in ("app-one", "app-two"):
        ledger.grant(subject, ("biometric",), 3600, app=app, purpose="residue row")
        clock.advance(1.0)
        ledger.revoke(subject, "withdrawn by the wearer", app=app)
    ctx.send_public(json.dumps([r.document for r in store.receipts()]).encode())
    ctx.checkpoint("created")
    store.close()
    ctx.checkpoint("after_first_close")
    store = SqliteStore(directory, exclusive=True, clock=clock)
    ledger = durable_ledger(store, DEFAULT_THRESHOLDS, clock)
    clock.advance(1.0)
    # a subject with no revoked record: a capacity drop of one holding a revoked record re-issues its
    # withdrawal receipt id and the store refuses it (UNIQUE receipts.receipt_id), an open bug
    other = subject_of(f"{V2_MODEL}/SN-2")
    ledger.grant(other, ("biometric", "acolyte"), 600, app="app-three", purpose="residue row, reopened")
    ledger.set_capacity(other, "NONE")  # revokes its one active record: a signed withdrawal
    ctx.send_public(json.dumps([r.document for r in store.receipts()]).encode())
    ctx.checkpoint("signing")
    store.close()
    ctx.checkpoint("after_close")


# -- the gateway over TCP: our asyncio Gateway in the child, an independent sensor in the parent
#
# The child runs the real gateway process (Gateway on 127.0.0.1:0, a SqliteStore in a temporary data
# directory where the sensor's consent is granted); the parent connects over TCP and plays the
# sensor with its own Noise XX (IndependentNoiseXX), its own record framing and the certificates it
# issued. It made the gateway's static key, its ephemeral (the Gateway's ``ephemeral_keys`` hook)
# and the store's receipt signing key, and sent each through the pipe (read straight into locked
# memory), so it knows every secret of the session without asking the code under test. Between the
# TCP steps it drives the child through the pipe: ``_gw_command`` (a JSON chunk; the child's
# control task answers, or pauses the loop for a checkpoint).

GATEWAY_FRAMES = 30
GATEWAY_SENSOR = f"{V2_MODEL}/SN-1"  # the sensor certificate's id: model/serial
# the secrets the gateway holds for its whole life (not one connection's): in the arena while it
# runs, gone once it is shut down
GATEWAY_LIFETIME = ("gateway_static", "receipt_seed", "receipt_sha512_low", "receipt_scalar", "receipt_prefix")
# the record layer on the wire (docs/protocol.md, "Records on a byte stream"), written out here
# rather than taken from keros.framing: type (u8) || length (u16 BE) || body
_REC_HANDSHAKE, _REC_DATA, _REC_CLOSE = 1, 2, 3
_CLOSE_NORMAL, _CLOSE_REFUSED = 0, 2


class _WireSensor:
    """The parent's TCP end: blocking socket on 127.0.0.1, records framed by hand, bounded waits."""

    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        self._buffer = b""
        self.sent = 0  # bytes written: the gateway's bytes_received must reach it

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.sent += len(data)

    def record(self, kind: int, body: bytes) -> None:
        self.send(struct.pack(">BH", kind, len(body)) + body)

    def read_record(self) -> tuple[int, bytes] | None:
        """The gateway's next record, or None at EOF (between records)."""
        while True:
            if len(self._buffer) >= 3:
                kind, length = struct.unpack(">BH", self._buffer[:3])
                if len(self._buffer) >= 3 + length:
                    body, self._buffer = self._buffer[3 : 3 + length], self._buffer[3 + length :]
                    return kind, body
            chunk = self.sock.recv(65536)
            if not chunk:
                if self._buffer:
                    raise RuntimeError(f"the gateway's stream ended inside a record ({len(self._buffer)} bytes)")
                return None
            self._buffer += chunk

    def reset(self) -> None:
        """Close with a RST (SO_LINGER 0): the connection is cut, not ended."""
        import socket

        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _gw_command(peer: Peer, op: str, **args: object) -> dict[str, Any]:
    """One command to the child's control task; its JSON answer (``checkpoint`` answers by pausing)."""
    import json

    _send_chunk(peer, json.dumps({"op": op, **args}).encode())
    if op in ("checkpoint", "shutdown"):
        return {}
    answer: dict[str, Any] = json.loads(peer.receive())
    if answer.get("timeout"):
        raise RuntimeError(f"the gateway did not get there in time ({op} {args}): {answer}")
    return answer


def _gw_checkpoint(peer: Peer, name: str, *, connection_live: bool) -> None:
    """A checkpoint while the gateway runs. During the connection every secret may sit only in the
    arena; after it, the connection's secrets must be gone from everywhere while the gateway's own
    (:data:`GATEWAY_LIFETIME`) still may sit in the arena: two scans of one pause of the child."""
    if connection_live:
        _gw_command(peer, "checkpoint", name=name)
        peer.checkpoint(name, session_live=True)
        return
    _gw_command(peer, "checkpoint", name=name, split=True)
    every = dict(peer.secrets)
    try:
        peer.secrets = {k: v for k, v in every.items() if k not in GATEWAY_LIFETIME}
        peer.checkpoint(name, session_live=False)
        peer.secrets = {k: v for k, v in every.items() if k in GATEWAY_LIFETIME}
        held = peer.checkpoint(f"{name}:gateway", session_live=True)
    finally:
        peer.secrets = every
    if not held.counts["gateway_static"]["arena"]["exact"]:
        raise RuntimeError("the running gateway's static key should be in the arena")


def _gateway_tcp_parent(peer: Peer, *, ending: str) -> None:
    """``ending``: ``close`` (the sensor ends the stream), ``cut`` (half a DATA record, then a
    RST), ``revoked`` (the sensor's certificate revoked in the store mid-session)."""
    import json
    import shutil
    import tempfile

    import numpy as np
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as OracleKey

    from ..keros.certificate import CertificateAuthority
    from ..keros.v2 import PROLOGUE
    from ..sources import synthetic_eeg
    from ..store.sqlite import RECEIPT_KEY_FILE
    from .noise_oracle import IndependentNoiseXX

    now = int(time.time())
    gateway_static, gateway_ephemeral, receipt_seed = os.urandom(32), os.urandom(32), os.urandom(32)
    oracle = IndependentNoiseXX(True, os.urandom(32), os.urandom(32), PROLOGUE)  # the sensor: initiator
    gateway_public = OracleKey.from_private_bytes(gateway_static).public_key().public_bytes_raw()
    with CertificateAuthority.generate("manufacturer", "Residue Devices") as maker, \
            CertificateAuthority.generate("site", "Residue Ward") as site:  # fmt: skip
        sensor_cert = maker.issue_sensor(oracle.s_pub, model_id=V2_MODEL, serial="SN-1", not_before=now - 60,
                                         not_after=now + 3600)  # fmt: skip
        gateway_cert = site.issue_gateway(gateway_public, gateway_name="gw-residue", serial="GW-1",
                                          not_before=now - 60, not_after=now + 3600)  # fmt: skip
        roots = [maker.root.to_json(), site.root.to_json()]
    # a fixed seed: frames the default policy releases, so each goes the whole way through the shield
    frames = [np.asarray(x, "<f4").tobytes() for x in synthetic_eeg(V2_FRAMES, seed=SHIELD_V2_SEED).frames]
    frames = frames[:GATEWAY_FRAMES]
    directory = tempfile.mkdtemp(prefix="cortex-sal-residue-gw-")  # 0700
    wire: _WireSensor | None = None
    try:
        fd = os.open(os.path.join(directory, RECEIPT_KEY_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, receipt_seed)
        finally:
            os.close(fd)
        peer.know(gateway_static=gateway_static, gateway_ephemeral=gateway_ephemeral, receipt_seed=receipt_seed,
                  **{f"receipt_{k}": v for k, v in _ed25519_expansion(receipt_seed).items()})  # fmt: skip
        streamed = GATEWAY_FRAMES if ending == "close" else GATEWAY_FRAMES // 3
        # three frames whole (every encoding), and every frame sent (the one cut in half too) as one
        # string: its 8-byte fragments are every frame's, so any leaked run of 15 bytes of any frame
        # is counted, at the cost of one secret's exact/hex/b64 passes instead of thirty
        peer.know(samples_first=frames[0], samples_middle=frames[streamed // 2], samples_last=frames[streamed - 1],
                  samples_all=b"".join(frames[: streamed + 1]))  # fmt: skip
        peer.send(gateway_static + gateway_ephemeral)
        setup = {"roots": roots, "certificate": gateway_cert.hex(), "directory": directory, "sensor": GATEWAY_SENSOR}
        _send_chunk(peer, json.dumps(setup).encode())
        port = int(json.loads(peer.receive())["port"])

        wire = _WireSensor(port)
        wire.record(_REC_HANDSHAKE, oracle.write_1())
        got = wire.read_record()
        if got is None or got[0] != _REC_HANDSHAKE:
            raise RuntimeError(f"expected Noise message 2 from the gateway, got {got!r}")
        if oracle.read_2(got[1]) != gateway_cert:
            raise RuntimeError("the gateway did not send the certificate of the key the parent made")

        def know_noise() -> None:
            secrets = oracle.secrets()
            own = {f"sensor_{k}": secrets.pop(k) for k in ("static_private", "ephemeral_private")}  # never sent
            peer.know(**own, **secrets)

        know_noise()
        # message 2 sent, message 3 awaited: the gateway holds its ephemeral and ck_2 (the arena only)
        _gw_checkpoint(peer, "handshake", connection_live=True)
        wire.record(_REC_HANDSHAKE, oracle.write_3(sensor_cert))
        know_noise()  # ck_3, k_3, dh_se, the split and both transport keys
        for payload in frames[:streamed]:
            wire.record(_REC_DATA, oracle.encrypt(payload))
        status = _gw_command(peer, "wait", frames=streamed, sent=wire.sent)
        if status["released"] != streamed:
            raise RuntimeError(f"{streamed} frames should have been released through the shield: {status}")
        _gw_checkpoint(peer, "mid_session", connection_live=True)
        report = peer.reports[-1][0]
        for name in ("transport_i2r", "transport_r2i"):
            if not report.counts[name]["arena"]["exact"]:
                raise RuntimeError(f"the session's {name} should be in the arena mid-session")
        if any(sum(report.counts[name]["arena"].values()) for name in report.counts if name.startswith("samples")):
            raise RuntimeError("a processed frame's samples should be zeroed, in the arena too")

        if ending == "close":
            wire.record(_REC_CLOSE, bytes([_CLOSE_NORMAL]) + b"done")
            if wire.read_record() is not None:  # the gateway answers a CLOSE with EOF
                raise RuntimeError("the gateway should end the connection after the sensor's CLOSE")
            expect = "normal"
        elif ending == "cut":
            record = oracle.encrypt(frames[streamed])
            whole = struct.pack(">BH", _REC_DATA, len(record)) + record
            wire.send(whole[: len(whole) // 2])  # half a DATA record...
            _gw_command(peer, "wait", sent=wire.sent)  # ...that the gateway has read
            _gw_checkpoint(peer, "mid_frame", connection_live=True)
            wire.reset()  # then the connection is cut
            expect = "record"  # the stream ended inside a record
        else:
            answer = _gw_command(peer, "revoke", sensor=GATEWAY_SENSOR)
            if answer["elapsed"] >= 1.0:
                raise RuntimeError(f"the gateway took {answer['elapsed']:.3f} s to end a revoked sensor's connection")
            got = wire.read_record()
            if got is None or got[0] != _REC_CLOSE or got[1][:1] != bytes([_CLOSE_REFUSED]):
                raise RuntimeError(f"expected the gateway's CLOSE REFUSED, got {got!r}")
            if wire.read_record() is not None:
                raise RuntimeError("the gateway should close the connection after its CLOSE")
            expect = "revoked"
        status = _gw_command(peer, "wait", connections=0)
        if status["closed"] != {expect: 1}:
            raise RuntimeError(f"the connection should have ended as {expect!r}: {status}")
        wire.close()
        _gw_checkpoint(peer, f"after_{ending}", connection_live=False)
        _gw_command(peer, "shutdown")  # then the harness's "end": after the shutdown, 0 of anything anywhere
    finally:
        if wire is not None:
            wire.close()
        shutil.rmtree(directory, ignore_errors=True)


def _gateway_tcp_child(ctx: Context) -> None:
    import asyncio
    import json

    from ..crypto import X25519PrivateKey

    static = X25519PrivateKey(ctx.read_key())
    ephemerals = [X25519PrivateKey(ctx.read_key())]  # the first connection's, then drawn by the gateway
    setup = json.loads(_read_chunk(ctx))
    try:
        asyncio.run(_gateway_serve(ctx, static, ephemerals, setup))
    finally:
        for key in ephemerals:  # one no connection took
            key.purge()
        static.purge()  # the caller's key, as `cortex-sal gateway` purges it after the shutdown


async def _gateway_serve(
    ctx: Context, static: X25519PrivateKey, ephemerals: list[X25519PrivateKey], setup: dict[str, Any]
) -> None:
    import asyncio
    import json

    from ..gateway.server import Gateway, GatewayLimits
    from ..governance import DEFAULT_THRESHOLDS
    from ..keros.certificate import RootCA, TrustStore
    from ..store.base import subject_of
    from ..store.runtime import durable_ledger
    from ..store.sqlite import SqliteStore

    directory, sensor = str(setup["directory"]), str(setup["sensor"])
    with SqliteStore(directory, controller="residue-gateway", jurisdiction="DE") as admin:
        durable_ledger(admin, DEFAULT_THRESHOLDS).grant(subject_of(sensor), ["biometric"], 3600, app="residue",
                                                        purpose="residue row")  # fmt: skip
    trust = TrustStore([RootCA.from_json(r) for r in setup["roots"]])
    store = SqliteStore(directory, exclusive=True)
    # deadlines far beyond a scan's pause (the loop stands still while the parent reads memory)
    limits = GatewayLimits(handshake_timeout_s=120.0, idle_timeout_s=120.0, write_timeout_s=30.0)
    try:
        gateway = Gateway(store=store, static_key=static, certificate=bytes.fromhex(setup["certificate"]),
                          trust=trust, limits=limits,
                          ephemeral_keys=lambda: ephemerals.pop() if ephemerals else None)  # fmt: skip
    except BaseException:
        store.close()
        raise
    try:
        _, port = await gateway.start("127.0.0.1", 0)
        ctx.send_public(json.dumps({"port": port}).encode())
        while True:
            command = json.loads(await asyncio.to_thread(_read_chunk, ctx))  # one read at a time
            op = command.pop("op")
            if op == "shutdown":
                break
            if op == "checkpoint":  # the loop stands still: nothing moves while the parent scans
                ctx.checkpoint(command["name"])
                if command.get("split"):
                    ctx.checkpoint(f"{command['name']}:gateway")
            elif op == "wait":
                ctx.send_public(json.dumps(await _gateway_wait(gateway, **command)).encode())
            elif op == "revoke":
                with SqliteStore(directory) as other:  # another connection, as `cortex-sal store` would be
                    other.revoke_sensor(command["sensor"], "stolen")
                revoked_at = time.monotonic()
                answer = await _gateway_wait(gateway, connections=0)
                answer["elapsed"] = time.monotonic() - revoked_at
                ctx.send_public(json.dumps(answer).encode())
            else:
                raise RuntimeError(f"unknown command {op!r}")
    finally:
        await gateway.shutdown()  # every connection ended, every key of the shield purged, the store closed


async def _gateway_wait(
    gateway: Any, *, frames: int | None = None, sent: int | None = None, connections: int | None = None
) -> dict[str, Any]:
    """Wait (10 s at most) until the gateway handled ``frames`` frames, read ``sent`` bytes, holds
    ``connections`` connections; its counts then (``timeout`` if it did not get there)."""
    import asyncio

    def counts() -> dict[str, Any]:
        by_name: dict[str, dict[str, float]] = {"frames": {}, "closed": {}}
        for metric in gateway.metrics.registry.collect():
            key = {"cortex_sal_frames": ("frames", "outcome"), "cortex_sal_connections_closed": ("closed", "reason")}
            if metric.name in key:
                which, label = key[metric.name]
                for sample in metric.samples:
                    if sample.name.endswith("_total") and sample.value:
                        by_name[which][sample.labels[label]] = int(sample.value)
        return {
            "handled": sum(by_name["frames"].values()),
            "released": by_name["frames"].get("released", 0),
            "closed": by_name["closed"],
            "bytes": int(gateway.metrics.value("cortex_sal_bytes_received_total")),
            "connections": gateway.connections,
        }

    deadline = time.monotonic() + 10.0
    while True:
        now = counts()
        if (
            (frames is None or now["handled"] >= frames)
            and (sent is None or now["bytes"] >= sent)
            and (connections is None or now["connections"] == connections)
        ):
            return now
        if time.monotonic() > deadline:
            return {**now, "timeout": True}
        await asyncio.sleep(0.002)


# -- the applications' API: the pairwise-id key, the app's key, the clinical stream's key --------

API_APP = "residue-app"


def _api_parent(peer: Peer) -> None:
    """A gateway with its API, a sensor streaming and an app subscribed to ``features`` and
    ``clinical``, all in the child. The parent made the store's pairwise-id key and the app's key
    (files, 0600) and holds the clinician's private key: it derives the clinical stream's key from
    the gateway's public key the subscription names (X25519 + HKDF with ``cryptography``)."""
    import hashlib
    import json
    import shutil
    import tempfile

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey as OracleKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from ..store.sqlite import PAIRWISE_KEY_FILE

    pairwise, app_seed = os.urandom(32), os.urandom(32)
    clinician = OracleKey.generate()
    clinician_public = clinician.public_key().public_bytes_raw()
    app_public = Ed25519PrivateKey.from_private_bytes(app_seed).public_key().public_bytes_raw()
    directory = tempfile.mkdtemp(prefix="cortex-sal-residue-api-")  # 0700
    try:
        os.mkdir(os.path.join(directory, "data"), 0o700)
        for path, secret in ((os.path.join("data", PAIRWISE_KEY_FILE), pairwise), (f"{API_APP}.key", app_seed)):
            fd = os.open(os.path.join(directory, path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secret)
            finally:
                os.close(fd)
        with open(os.path.join(directory, f"{API_APP}.json"), "w") as fh:
            json.dump({"app_id": API_APP, "public_key": app_public.hex()}, fh)
        peer.know(pairwise_key=pairwise, app_seed=app_seed,
                  **{f"app_{k}": v for k, v in _ed25519_expansion(app_seed).items()})  # fmt: skip
        _send_chunk(peer, json.dumps({"directory": directory, "clinician": clinician_public.hex()}).encode())
        got = json.loads(peer.receive())
        gateway_public = bytes.fromhex(got["gateway_public_key"])
        shared = clinician.exchange(X25519PublicKey.from_public_bytes(gateway_public))
        salt = hashlib.sha256(min(gateway_public, clinician_public) + max(gateway_public, clinician_public)).digest()
        peer.know(clinical_key=HKDF(hashes.SHA256(), 32, salt, b"cortex-clinical-stream-v1").derive(shared))
        status = json.loads(peer.receive())
        if status["features"] < 5 or status["clinical"] < 5:
            raise RuntimeError(f"the app should have received features and clinical messages: {status}")
        peer.checkpoint("subscribed", session_live=True)
        peer.checkpoint("after_close", session_live=False)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _api_child(ctx: Context) -> None:
    import asyncio
    import json

    setup = json.loads(_read_chunk(ctx))
    asyncio.run(_api_serve(ctx, setup["directory"], bytes.fromhex(setup["clinician"])))


async def _api_serve(ctx: Context, directory: str, clinician: bytes) -> None:
    import asyncio
    import contextlib
    import json
    from pathlib import Path

    from ..client import Client, Opaque
    from ..crypto import X25519PrivateKey
    from ..gateway.sensor import run_sensor
    from ..gateway.server import Gateway
    from ..governance import DEFAULT_THRESHOLDS
    from ..keros.certificate import CertificateAuthority, TrustStore
    from ..sources import synthetic_eeg
    from ..store.base import subject_of
    from ..store.runtime import durable_ledger
    from ..store.sqlite import SqliteStore

    root, data = Path(directory), Path(directory) / "data"
    now = int(time.time())
    app_public = bytes.fromhex(json.loads((root / f"{API_APP}.json").read_text())["public_key"])
    with SqliteStore(data, controller="residue-gateway", jurisdiction="DE") as admin:
        admin.add_app(API_APP, app_public)
        durable_ledger(admin, DEFAULT_THRESHOLDS).grant(subject_of(GATEWAY_SENSOR), ["biometric", "clinical"], 3600,
                                                        app=API_APP, purpose="residue row")  # fmt: skip
    gateway_key, sensor_key = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    with CertificateAuthority.generate("manufacturer", "Residue Devices") as maker, \
            CertificateAuthority.generate("site", "Residue Ward") as site:  # fmt: skip
        sensor_cert = maker.issue_sensor(sensor_key.public_bytes(), model_id=V2_MODEL, serial="SN-1",
                                         not_before=now - 60, not_after=now + 3600)  # fmt: skip
        gateway_cert = site.issue_gateway(gateway_key.public_bytes(), gateway_name="gw-residue", serial="GW-1",
                                          not_before=now - 60, not_after=now + 3600)  # fmt: skip
        trust = TrustStore([maker.root, site.root])
    store = SqliteStore(data, exclusive=True)
    try:
        gateway = Gateway(store=store, static_key=gateway_key, certificate=gateway_cert, trust=trust)
    except BaseException:
        store.close()
        raise
    frames = synthetic_eeg(V2_FRAMES, seed=SHIELD_V2_SEED).frames
    sensor: asyncio.Task[Any] | None = None
    try:
        address = await gateway.start("127.0.0.1", 0)
        host, port = await gateway.serve_api("127.0.0.1", 0)
        streaming = run_sensor(*address, static_key=sensor_key, certificate=sensor_cert, trust=trust, frames=frames,
                               total=V2_FRAMES, rate_hz=128 * 40)  # fmt: skip
        sensor = asyncio.create_task(streaming)
        counts = {"features": 0, "clinical": 0}
        async with Client(f"ws://{host}:{port}", root / f"{API_APP}.key") as app:
            (entry,) = await app.list_sensors()
            into: asyncio.Queue[Any] = asyncio.Queue()
            subs = await app.open_subscription(entry.sensor, ["features", "clinical"], into,
                                               clinician_public_key=clinician.hex())  # fmt: skip
            (clinical,) = [s for s in subs if s.stream == "clinical"]
            ctx.send_public(json.dumps({"gateway_public_key": clinical.description["gateway_public_key"]}).encode())
            while counts["features"] < 5 or counts["clinical"] < 5:
                msg = await asyncio.wait_for(into.get(), 10.0)
                if isinstance(msg, BaseException):
                    raise msg
                counts["clinical" if isinstance(msg, Opaque) else "features"] += 1
            ctx.send_public(json.dumps(counts).encode())
            ctx.checkpoint("subscribed")
            await app.unsubscribe(entry.sensor, ["features", "clinical"])
        await sensor
    finally:
        if sensor is not None and not sensor.done():
            sensor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sensor
        await gateway.shutdown()
        gateway_key.purge()
        sensor_key.purge()
    ctx.checkpoint("after_close")


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario("x25519_hkdf", _x25519_hkdf_parent, _x25519_hkdf_child),
        Scenario("leak_control", _leak_control_parent, _leak_control_child),
        Scenario("keros_v1_gateway", _keros_v1_parent, _keros_v1_child),
        Scenario("shield_raw_samples", _shield_parent, _shield_child),
        Scenario("ed25519_signing", _ed25519_parent, _ed25519_child),
        Scenario("keros_v1_bad_ack", _bad_ack_parent, _bad_ack_child),
        Scenario("keros_v1_tampered_frame", _tampered_frame_parent, _tampered_frame_child),
        Scenario("aead", _aead_parent, _aead_child),
        Scenario("hmac", _hmac_parent, _hmac_child),
        Scenario("limes_master", _limes_parent, _limes_child),
        Scenario("clinical_channel", _clinical_parent, _clinical_child),
        Scenario("noise_transport", _noise_transport_parent, _noise_transport_child),
        Scenario("store_receipts", _store_receipts_parent, _store_receipts_child),
        Scenario(
            "keros_v2_gateway",
            functools.partial(_v2_parent, child_is_gateway=True),
            functools.partial(_v2_child, gateway_side=True),
        ),
        Scenario("shield_v2_channel", _shield_v2_parent, _shield_v2_child),
        Scenario(
            "keros_v2_sensor",
            functools.partial(_v2_parent, child_is_gateway=False),
            functools.partial(_v2_child, gateway_side=False),
        ),
        Scenario("gateway_tcp", functools.partial(_gateway_tcp_parent, ending="close"), _gateway_tcp_child),
        Scenario("gateway_tcp_cut", functools.partial(_gateway_tcp_parent, ending="cut"), _gateway_tcp_child),
        Scenario("gateway_tcp_revoked", functools.partial(_gateway_tcp_parent, ending="revoked"), _gateway_tcp_child),
        Scenario("api_subscriptions", _api_parent, _api_child),
    ]
}

__all__ = ["SCENARIOS", "IndependentV1Sensor", "Scenario"]
