"""The KEROS seal: fails closed without a TPM; with a software Ed25519 attestation key the
signature is checked independently with ``cryptography``; every verification check can
refuse, and only a seal that passed all of them consumes its nonce."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Iterator

import numpy as np
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from cortex_sal.clock import ManualClock
from cortex_sal.crypto import Ed25519SigningKey
from cortex_sal.errors import SealError, TPMUnavailableError, WrongTypeError
from cortex_sal.keros.seal import Ed25519AttestationKey, KerosSeal, Seal, tensor_hash, tpm_attestation_key
from cortex_sal.securemem import SecureKeyBuffer

T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def key() -> Iterator[Ed25519AttestationKey]:
    k = Ed25519AttestationKey()
    yield k
    k.purge()


@pytest.fixture
def sealer(key: Ed25519AttestationKey, clock: ManualClock) -> KerosSeal:
    return KerosSeal(key, clock=clock)


def tensor(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(5)


def oracle_message(t: np.ndarray, nonce: bytes, ts: float) -> bytes:
    return hashlib.sha256(np.ascontiguousarray(t).tobytes()).digest() + nonce + struct.pack(">d", ts)


# -- fail closed -------------------------------------------------------------------------------


def test_seal_without_a_key_fails_closed() -> None:
    with pytest.raises(TPMUnavailableError):
        KerosSeal().seal(tensor())
    with pytest.raises(TPMUnavailableError):
        KerosSeal(clock=ManualClock()).seal(np.zeros(5))
    assert issubclass(TPMUnavailableError, SealError)


def test_tpm_attestation_key_fails_closed() -> None:
    with pytest.raises(TPMUnavailableError, match="TPM"):
        tpm_attestation_key()


def test_verify_without_any_public_key_fails_closed(key: Ed25519AttestationKey, clock: ManualClock) -> None:
    seal = KerosSeal(key, clock=clock).seal(tensor())
    with pytest.raises(TPMUnavailableError):
        KerosSeal(clock=clock).verify(tensor(), seal)


# -- seal and verify ----------------------------------------------------------------------------


def test_seal_verifies(sealer: KerosSeal) -> None:
    t = tensor()
    seal = sealer.seal(t)
    sealer.verify(t, seal)
    assert sealer.nonces_held == 1


def test_signature_verifies_with_cryptography(key: Ed25519AttestationKey, sealer: KerosSeal) -> None:
    t = tensor(7)
    seal = sealer.seal(t)
    assert seal.tensor_hash == hashlib.sha256(t.tobytes()).digest()
    assert len(seal.nonce) == 16 and seal.timestamp == T0
    assert len(seal.signature) == 64
    public = Ed25519PublicKey.from_public_bytes(key.public_key())
    public.verify(seal.signature, oracle_message(t, seal.nonce, seal.timestamp))  # raises if wrong
    with pytest.raises(InvalidSignature):  # the oracle check itself can fail
        public.verify(seal.signature, oracle_message(t, seal.nonce, seal.timestamp + 1))
    assert seal.signed_message() == oracle_message(t, seal.nonce, seal.timestamp)


def test_signature_matches_an_oracle_key_deterministically(clock: ManualClock) -> None:
    seed = bytes(range(32))
    c_priv = Ed25519PrivateKey.from_private_bytes(seed)
    with Ed25519SigningKey(SecureKeyBuffer(seed)) as signing:
        sealer = KerosSeal(Ed25519AttestationKey(signing), clock=clock)
        t = tensor(3)
        seal = sealer.seal(t)
        # Ed25519 is deterministic: our signature is exactly the oracle's
        assert seal.signature == c_priv.sign(oracle_message(t, seal.nonce, seal.timestamp))
        assert Ed25519AttestationKey(signing).public_key() == c_priv.public_key().public_bytes_raw()


def test_verify_with_a_public_key_only(key: Ed25519AttestationKey, clock: ManualClock) -> None:
    seal = KerosSeal(key, clock=clock).seal(tensor())
    verifier = KerosSeal(verify_key=key.public_key(), clock=clock)
    verifier.verify(tensor(), seal)
    other = KerosSeal(verify_key=Ed25519PrivateKey.generate().public_key().public_bytes_raw(), clock=clock)
    with pytest.raises(SealError):
        other.verify(tensor(), KerosSeal(key, clock=clock).seal(tensor()))


def test_nonces_are_fresh(sealer: KerosSeal) -> None:
    nonces = {sealer.seal(tensor()).nonce for _ in range(50)}
    assert len(nonces) == 50


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t + 1e-12,
        lambda t: t[::-1].copy(),
        lambda t: t[:4],
        lambda t: np.concatenate([t, [0.0]]),
        lambda t: t.astype(np.float32),
    ],
)
def test_changed_tensor_refused(sealer: KerosSeal, change: object) -> None:
    t = tensor()
    seal = sealer.seal(t)
    with pytest.raises(SealError, match="hash"):
        sealer.verify(change(t), seal)  # type: ignore[operator]
    assert sealer.nonces_held == 0


@pytest.mark.parametrize("position", [0, 1, 31, 32, 63])
def test_flipped_signature_refused(sealer: KerosSeal, position: int) -> None:
    t = tensor()
    seal = sealer.seal(t)
    sig = bytearray(seal.signature)
    sig[position] ^= 0x01
    with pytest.raises(SealError):
        sealer.verify(t, dataclasses.replace(seal, signature=bytes(sig)))
    assert sealer.nonces_held == 0


@pytest.mark.parametrize(
    "field",
    ["nonce", "timestamp", "tensor_hash", "short signature", "empty signature", "short nonce"],
)
def test_tampered_fields_refused(sealer: KerosSeal, field: str) -> None:
    t = tensor()
    seal = sealer.seal(t)
    if field == "nonce":
        bad = dataclasses.replace(seal, nonce=bytes(16))
    elif field == "timestamp":
        bad = dataclasses.replace(seal, timestamp=seal.timestamp + 0.001)
    elif field == "tensor_hash":
        bad = dataclasses.replace(seal, tensor_hash=bytes(32))
    elif field == "short signature":
        bad = dataclasses.replace(seal, signature=seal.signature[:63])
    elif field == "empty signature":
        bad = dataclasses.replace(seal, signature=b"")
    else:
        bad = dataclasses.replace(seal, nonce=seal.nonce[:15])
    with pytest.raises(SealError):
        sealer.verify(t, bad)
    assert sealer.nonces_held == 0
    sealer.verify(t, seal)  # the genuine seal is untouched by the failed attempt


def test_wrong_types_refused(sealer: KerosSeal) -> None:
    seal = sealer.seal(tensor())
    with pytest.raises(WrongTypeError):
        sealer.verify(tensor(), {"nonce": seal.nonce})  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        sealer.verify(list(tensor()), seal)
    with pytest.raises(WrongTypeError):
        sealer.seal([1.0, 2.0])


@pytest.mark.parametrize(("age", "fresh"), [(0.0, True), (4.9, True), (5.0, True), (5.01, False), (60.0, False)])
def test_freshness_window(sealer: KerosSeal, clock: ManualClock, age: float, fresh: bool) -> None:
    t = tensor()
    seal = sealer.seal(t)
    clock.advance(age)
    if fresh:
        sealer.verify(t, seal)
    else:
        with pytest.raises(SealError, match="stale"):
            sealer.verify(t, seal)
        assert sealer.nonces_held == 0


def test_seal_from_the_future_refused(key: Ed25519AttestationKey, clock: ManualClock) -> None:
    ahead = KerosSeal(key, clock=ManualClock(T0 + 6))
    t = tensor()
    with pytest.raises(SealError, match="stale"):
        KerosSeal(key, clock=clock).verify(t, ahead.seal(t))


def test_replay_refused(sealer: KerosSeal) -> None:
    t = tensor()
    seal = sealer.seal(t)
    sealer.verify(t, seal)
    with pytest.raises(SealError, match="already used"):
        sealer.verify(t, seal)
    with pytest.raises(SealError, match="already used"):
        sealer.verify(t.copy(), dataclasses.replace(seal))
    assert sealer.nonces_held == 1


def test_failed_check_does_not_consume_the_nonce(sealer: KerosSeal) -> None:
    t = tensor()
    seal = sealer.seal(t)
    with pytest.raises(SealError):
        sealer.verify(tensor(1), seal)  # wrong tensor
    forged = dataclasses.replace(seal, signature=bytes(64))
    with pytest.raises(SealError):
        sealer.verify(t, forged)  # a forgery that reuses the genuine nonce
    assert sealer.nonces_held == 0
    sealer.verify(t, seal)  # the genuine seal still verifies
    assert sealer.nonces_held == 1


# -- the nonce store --------------------------------------------------------------------------------


def test_nonce_store_is_pruned_by_age(sealer: KerosSeal, clock: ManualClock) -> None:
    t = tensor()
    old = [sealer.seal(t) for _ in range(3)]
    for seal in old:
        sealer.verify(t, seal)
    assert sealer.nonces_held == 3
    clock.advance(4.0)
    recent = sealer.seal(t)
    sealer.verify(t, recent)
    assert sealer.nonces_held == 4  # nothing is old enough yet
    clock.advance(1.5)  # the first three are now 5.5 s old, `recent` 1.5 s
    newest = sealer.seal(t)
    sealer.verify(t, newest)
    assert sealer.nonces_held == 2
    # a pruned nonce is still refused: its seal is stale by now
    with pytest.raises(SealError, match="stale"):
        sealer.verify(t, old[0])
    # and one still held is refused as a replay
    with pytest.raises(SealError, match="already used"):
        sealer.verify(t, recent)


def test_a_failed_verify_also_prunes(sealer: KerosSeal, clock: ManualClock) -> None:
    t = tensor()
    sealer.verify(t, sealer.seal(t))
    assert sealer.nonces_held == 1
    clock.advance(10.0)
    with pytest.raises(SealError):
        sealer.verify(tensor(5), sealer.seal(t))
    assert sealer.nonces_held == 0


def test_tensor_hash_is_sha256_of_the_c_order_bytes() -> None:
    t = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert tensor_hash(t) == hashlib.sha256(t.tobytes()).digest()
    assert tensor_hash(t.T) == hashlib.sha256(np.ascontiguousarray(t.T).tobytes()).digest()
    assert tensor_hash(t.T) != tensor_hash(t)
    with pytest.raises(WrongTypeError):
        tensor_hash(b"bytes")


def test_seal_is_immutable(sealer: KerosSeal) -> None:
    seal = sealer.seal(tensor())
    assert isinstance(seal, Seal)
    with pytest.raises(dataclasses.FrozenInstanceError):
        seal.nonce = bytes(16)  # type: ignore[misc]


# -- malformed seals (e.g. decoded from the wire) are refused with SealError -------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"nonce": None},
        {"nonce": "n" * 16},
        {"nonce": list(range(16))},
        {"timestamp": "now"},
        {"timestamp": None},
        {"timestamp": True},
        {"signature": None},
        {"signature": "s" * 64},
        {"tensor_hash": None},
    ],
)
def test_malformed_seal_fields_refused_with_seal_error(sealer: KerosSeal, fields: dict[str, object]) -> None:
    t = tensor()
    seal = sealer.seal(t)
    with pytest.raises(SealError):
        sealer.verify(t, dataclasses.replace(seal, **fields))
    assert sealer.nonces_held == 0
    sealer.verify(t, seal)


@pytest.mark.parametrize("ts", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_timestamp_is_never_fresh(
    key: Ed25519AttestationKey, sealer: KerosSeal, clock: ManualClock, ts: float
) -> None:
    """Even a seal genuinely signed over a NaN timestamp must not pass the freshness check."""
    t = tensor()
    unsigned = Seal(hashlib.sha256(t.tobytes()).digest(), b"\x42" * 16, ts, b"")
    signed = dataclasses.replace(unsigned, signature=key.sign(unsigned.signed_message()))
    Ed25519PublicKey.from_public_bytes(key.public_key()).verify(signed.signature, signed.signed_message())
    clock.advance(1_000_000)
    with pytest.raises(SealError):
        sealer.verify(t, signed)
    assert sealer.nonces_held == 0
