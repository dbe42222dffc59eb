"""Consent receipts (``cortex_sal.sal.receipts``): JWS EdDSA over RFC 8785 JSON in the Kantara shape.

The oracles are independent of the code under test: RFC 8037's Ed25519 JWS example (A.4/A.5),
and a verifier written here from ``cryptography``'s Ed25519 and the stdlib's ``base64``,
``hashlib`` and ``json``. Malformed documents are forged with ``cryptography`` so that their
signature is valid and the refusal comes from the check under test, not from the signature.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from cortex_sal.crypto import Ed25519SigningKey
from cortex_sal.errors import InvalidArgumentError, ReceiptError, WrongLengthError, WrongTypeError
from cortex_sal.governance.quorum import canonical_json
from cortex_sal.sal.consent import SCOPES
from cortex_sal.sal.receipts import (
    MAX_RECEIPT_SIZE,
    ConsentReceipt,
    issue_receipt,
    jws_sign,
    jws_verify,
    key_id,
    new_receipt_id,
    verify_receipt,
)
from cortex_sal.securemem import SecureKeyBuffer
from hypothesis_profiles import examples

# --- RFC 8037 Appendix A: the Ed25519 key (A.1) and the JWS example (A.4, A.5) -----------------
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_PAYLOAD = b"Example of Ed25519 signing"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)

SEED = bytes(range(32))  # the test's own oracle key (public test data)
OTHER_SEED = bytes(range(32, 64))
T0 = 1_800_000_000.0
SUBJECT = "a1b2c3d4e5f60718"


def b64d(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(header: bytes, payload: bytes, seed: bytes = SEED) -> str:
    """A JWS with a valid signature over arbitrary header and payload bytes (the oracle's key)."""
    signing_input = f"{b64e(header)}.{b64e(payload)}"
    signature = Ed25519PrivateKey.from_private_bytes(seed).sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64e(signature)}"


def oracle_public(seed: bytes = SEED) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def oracle_header(seed: bytes = SEED) -> dict[str, Any]:
    public = oracle_public(seed)
    return {
        "alg": "EdDSA",
        "typ": "JWT",
        "kid": hashlib.sha256(public).hexdigest()[:16],
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64e(public)},
    }


def jcs(value: object) -> bytes:
    """Canonical JSON for the ASCII-keyed objects of these tests, from the stdlib (RFC 8785 agrees
    with ``sort_keys`` on ASCII keys, and with ``json`` on ints and on these floats)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def independent_verify(document: str, public: bytes | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a receipt with cryptography and the stdlib only; returns (header, payload)."""
    header_b64, payload_b64, signature_b64 = document.split(".")
    header = json.loads(b64d(header_b64))
    assert set(header) == {"alg", "typ", "kid", "jwk"}
    assert header["alg"] == "EdDSA" and header["typ"] == "JWT"
    assert header["jwk"] == {"kty": "OKP", "crv": "Ed25519", "x": header["jwk"]["x"]}
    x = b64d(header["jwk"]["x"])
    assert header["kid"] == hashlib.sha256(x).hexdigest()[:16]
    if public is not None:
        assert x == public
    Ed25519PublicKey.from_public_bytes(x).verify(b64d(signature_b64), f"{header_b64}.{payload_b64}".encode("ascii"))
    payload_bytes = b64d(payload_b64)
    payload = json.loads(payload_bytes)
    assert jcs(payload) == payload_bytes, "the payload is canonical JSON"
    assert jcs(header) == b64d(header_b64), "the header is canonical JSON"
    return header, payload


@pytest.fixture
def signing() -> Iterator[Ed25519SigningKey]:
    with SecureKeyBuffer(SEED) as seed, Ed25519SigningKey(seed) as key:
        yield key


@pytest.fixture
def other() -> Iterator[Ed25519SigningKey]:
    with SecureKeyBuffer(OTHER_SEED) as seed, Ed25519SigningKey(seed) as key:
        yield key


def grant(**overrides: Any) -> ConsentReceipt:
    fields: dict[str, Any] = {
        "timestamp": T0,
        "jurisdiction": "EU",
        "controller": "cortex-gateway-01",
        "subject": SUBJECT,
        "app": "org.example.focus",
        "purpose": "Attention features for the focus timer",
        "scopes": ["audio", "biometric"],
        "ttl_s": 3600,
        "language": "en",
        "receipt_id": "0b6f3c9e-8a41-4c57-9d2e-5f1a7b3c8d90",
    }
    fields.update(overrides)
    return ConsentReceipt.grant(**fields)


# --- RFC 8037 -----------------------------------------------------------------------------------


def test_rfc8037_a4_signing_reproduces_the_example_exactly() -> None:
    with SecureKeyBuffer(b64d(RFC8037_D)) as seed, Ed25519SigningKey(seed) as key:  # the RFC's key: the oracle
        assert key.public_key() == b64d(RFC8037_X)
        assert jws_sign(key, RFC8037_PAYLOAD) == RFC8037_JWS
        assert jws_sign(key, RFC8037_PAYLOAD, header={"alg": "EdDSA"}) == RFC8037_JWS


def test_rfc8037_a5_verification_of_the_example() -> None:
    verified = jws_verify(RFC8037_JWS, b64d(RFC8037_X))
    assert verified.header == {"alg": "EdDSA"}
    assert verified.payload == RFC8037_PAYLOAD
    assert jws_verify(RFC8037_JWS.encode("ascii"), b64d(RFC8037_X)).payload == RFC8037_PAYLOAD


def test_rfc8037_example_refused_under_another_key_or_altered() -> None:
    with pytest.raises(ReceiptError, match="does not verify"):
        jws_verify(RFC8037_JWS, oracle_public())
    header, _, signature = RFC8037_JWS.split(".")
    altered = f"{header}.{b64e(b'Example of Ed25519 signinG')}.{signature}"
    with pytest.raises(ReceiptError, match="does not verify"):
        jws_verify(altered, b64d(RFC8037_X))


def test_jws_verify_refuses_other_algorithms_and_critical_extensions() -> None:
    for header in ({"alg": "none"}, {"alg": "HS256"}, {}, {"alg": "EdDSA", "crit": ["b64"], "b64": False}):
        document = forge(json.dumps(header).encode(), RFC8037_PAYLOAD)
        with pytest.raises(ReceiptError, match=r"alg|crit"):
            jws_verify(document, oracle_public())


def test_jws_sign_refuses_a_header_without_eddsa(signing: Ed25519SigningKey) -> None:
    with pytest.raises(InvalidArgumentError, match="alg"):
        jws_sign(signing, b"x", header={"alg": "HS256"})
    with pytest.raises(InvalidArgumentError, match="canonical"):
        jws_sign(signing, b"x", header={"alg": "EdDSA", "n": float("nan")})
    with pytest.raises(WrongTypeError):
        jws_sign(signing, "text", header=None)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        jws_sign(object(), b"x")  # type: ignore[arg-type]


# --- receipts: the independent verifier, the round trip ------------------------------------------


def test_key_id_is_the_sha256_prefix_of_the_public_key(signing: Ed25519SigningKey) -> None:
    assert key_id(signing.public_key()) == hashlib.sha256(oracle_public()).hexdigest()[:16]
    with pytest.raises(WrongLengthError):
        key_id(b"short")


def test_new_receipt_id_is_uuid4_text() -> None:
    import uuid

    ids = {new_receipt_id() for _ in range(50)}
    assert len(ids) == 50
    for text in ids:
        assert str(uuid.UUID(text)) == text and uuid.UUID(text).version == 4


def test_independent_verifier_accepts_a_grant_and_reads_the_kantara_fields(signing: Ed25519SigningKey) -> None:
    receipt = grant()
    document = issue_receipt(signing, receipt)
    assert document.isascii() and "\n" not in document and document.count(".") == 2
    header, payload = independent_verify(document, oracle_public())
    # deterministic Ed25519: the signature is exactly the oracle key's
    signing_input, _, signature = document.rpartition(".")
    assert b64d(signature) == Ed25519PrivateKey.from_private_bytes(SEED).sign(signing_input.encode())
    assert header["kid"] == hashlib.sha256(oracle_public()).hexdigest()[:16]
    assert payload == {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": "EU",
        "consentTimestamp": 1_800_000_000,
        "collectionMethod": "Cortex SAL gateway consent ledger",
        "consentReceiptID": "0b6f3c9e-8a41-4c57-9d2e-5f1a7b3c8d90",
        "language": "en",
        "piiPrincipalId": SUBJECT,
        "piiControllers": [{"piiController": "cortex-gateway-01"}],
        "services": [
            {
                "service": "org.example.focus",
                "purposes": [
                    {
                        "purpose": "Attention features for the focus timer",
                        "purposeCategory": ["Core Function"],
                        "consentType": "EXPLICIT",
                        "termination": "on withdrawal, or at expiry (cortexSal.expiresAt)",
                        "primaryPurpose": True,
                        "thirdPartyDisclosure": False,
                    }
                ],
            }
        ],
        "sensitive": True,
        "spiCat": ["biometric", "audio"],
        "state": "active",
        "cortexSal": {
            "appId": "org.example.focus",
            "scopes": ["biometric", "audio"],
            "ttlSeconds": 3600,
            "expiresAt": 1_800_003_600,
        },
    }


def test_grant_and_withdrawal_round_trip(signing: Ed25519SigningKey) -> None:
    kid = key_id(signing.public_key())
    first = grant()
    assert first.scopes == ("biometric", "audio") and first.expires_at == T0 + 3600 and first.key_id is None
    read = verify_receipt(issue_receipt(signing, first), public_key=signing.public_key())
    assert read == dataclasses.replace(first, key_id=kid)
    assert verify_receipt(issue_receipt(signing, first).encode("ascii")) == read
    assert issue_receipt(signing, read) == issue_receipt(signing, first)  # key_id matching: accepted

    withdrawal = first.withdraw(timestamp=T0 + 120.25, reason="the wearer withdrew consent in the app")
    assert withdrawal.state == "withdrawn" and withdrawal.refers_to == first.receipt_id
    assert withdrawal.receipt_id != first.receipt_id
    assert withdrawal.ttl_s is None and withdrawal.expires_at is None
    document = issue_receipt(signing, withdrawal)
    _, payload = independent_verify(document)
    assert payload["state"] == "withdrawn" and payload["refersTo"] == first.receipt_id
    assert payload["consentTimestamp"] == T0 + 120.25
    assert payload["cortexSal"] == {
        "appId": "org.example.focus",
        "scopes": ["biometric", "audio"],
        "withdrawalReason": "the wearer withdrew consent in the app",
    }
    assert verify_receipt(document, public_key=signing.public_key()) == dataclasses.replace(withdrawal, key_id=kid)


def test_withdraw_is_checked() -> None:
    first = grant()
    with pytest.raises(InvalidArgumentError, match="precede"):
        first.withdraw(timestamp=T0 - 1, reason="x")
    withdrawal = first.withdraw(timestamp=T0, reason="x")
    with pytest.raises(InvalidArgumentError, match="only a grant"):
        withdrawal.withdraw(timestamp=T0, reason="x")
    with pytest.raises(InvalidArgumentError, match="reason"):
        first.withdraw(timestamp=T0, reason="  ")


def test_issue_refuses_a_receipt_naming_another_key(signing: Ed25519SigningKey, other: Ed25519SigningKey) -> None:
    read = verify_receipt(issue_receipt(other, grant()))
    with pytest.raises(InvalidArgumentError, match="names key"):
        issue_receipt(signing, read)
    with pytest.raises(WrongTypeError):
        issue_receipt(signing, {"receipt": 1})  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        issue_receipt(SEED, grant())  # type: ignore[arg-type]


def test_wrong_key_is_refused(signing: Ed25519SigningKey, other: Ed25519SigningKey) -> None:
    document = issue_receipt(other, grant())
    assert verify_receipt(document).key_id == key_id(other.public_key())  # self-consistent: verifies alone
    with pytest.raises(ReceiptError, match="not by the expected key"):
        verify_receipt(document, public_key=signing.public_key())
    # our header with the other key's signature: the signature check refuses it
    header_b64, payload_b64, _ = issue_receipt(signing, grant()).split(".")
    spliced = f"{header_b64}.{payload_b64}.{document.split('.')[2]}"
    with pytest.raises(ReceiptError, match="does not verify"):
        verify_receipt(spliced)
    with pytest.raises(WrongLengthError):
        verify_receipt(document, public_key=b"\x00" * 31)
    with pytest.raises(WrongTypeError):
        verify_receipt(document, public_key="key")  # type: ignore[arg-type]


def test_a_flipped_bit_anywhere_is_refused(signing: Ed25519SigningKey) -> None:
    receipt = grant()
    document = issue_receipt(signing, receipt.withdraw(timestamp=T0 + 5, reason="flip")).encode("ascii")
    verify_receipt(document)
    for position in range(len(document)):
        for mask in (0x01, 0x02, 0x20, 0x80):
            altered = bytearray(document)
            altered[position] ^= mask
            with pytest.raises(ReceiptError):
                verify_receipt(bytes(altered))


def test_a_replaced_character_anywhere_is_refused(signing: Ed25519SigningKey) -> None:
    document = issue_receipt(signing, grant())
    alphabet = "AQgw_-."
    for position in range(len(document)):
        for replacement in alphabet:
            if replacement == document[position]:
                continue
            with pytest.raises(ReceiptError):
                verify_receipt(document[:position] + replacement + document[position + 1 :])


def _with_last_char_bumped(part: str) -> str:
    """``part`` with the unused low bit of its last base64url character set: the same bytes to a
    lenient decoder, but not the canonical encoding."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(part[-1])
    assert last & 1 == 0
    bumped = part[:-1] + alphabet[last | 1]
    assert b64d(bumped) == b64d(part)  # stdlib decoding ignores the unused bits
    return bumped


def test_non_canonical_base64url_in_any_part_is_refused(signing: Ed25519SigningKey) -> None:
    covered = set()
    for purpose in ("p", "pu", "pur", "purp"):  # four payload lengths: every residue mod 4 is met
        document = issue_receipt(signing, grant(purpose=purpose))
        for index in range(3):
            parts = document.split(".")
            if len(parts[index]) % 4 == 0:  # no unused bits in this part
                continue
            covered.add(index)
            parts[index] = _with_last_char_bumped(parts[index])
            with pytest.raises(ReceiptError, match="not canonical base64url"):
                verify_receipt(".".join(parts))
    assert covered == {1, 2}
    # the receipt header's length is fixed (a multiple of 3 bytes): a header one byte longer
    parts = forge(jcs(oracle_header()) + b" ", PAYLOAD).split(".")
    assert len(parts[0]) % 4 != 0
    parts[0] = _with_last_char_bumped(parts[0])
    with pytest.raises(ReceiptError, match="not canonical base64url"):
        verify_receipt(".".join(parts))


def test_the_signature_part_has_unused_bits_and_they_must_be_zero(signing: Ed25519SigningKey) -> None:
    document = issue_receipt(signing, grant())
    signing_input, _, signature = document.rpartition(".")
    assert len(signature) == 86  # 64 bytes: 4 unused low bits in the last character
    with pytest.raises(ReceiptError, match="not canonical base64url"):
        verify_receipt(f"{signing_input}.{_with_last_char_bumped(signature)}")
    with pytest.raises(ReceiptError, match="not canonical base64url"):
        jws_verify(f"{signing_input}.{_with_last_char_bumped(signature)}", signing.public_key())


# --- malformed documents (structure) ----------------------------------------------------------


def _good() -> str:
    with SecureKeyBuffer(SEED) as seed, Ed25519SigningKey(seed) as key:
        return issue_receipt(key, grant())


GOOD = _good()
H, P, S = GOOD.split(".")

STRUCTURE_CASES: list[tuple[str, object, str]] = [
    ("two parts", f"{H}.{P}", "3 parts"),
    ("four parts", f"{H}.{P}.{S}.{S}", "3 parts"),
    ("empty header", f".{P}.{S}", "header is empty"),
    ("empty payload", f"{H}..{S}", "payload is empty"),
    ("empty signature", f"{H}.{P}.", "signature is empty"),
    ("padding", f"{H}.{P}.{S}==", "not unpadded base64url"),
    ("standard alphabet +", f"{H}.{P}.{S[:10]}+{S[11:]}", "not unpadded base64url"),
    ("standard alphabet /", f"{H}.{P[:10]}/{P[11:]}.{S}", "not unpadded base64url"),
    ("trailing newline", f"{GOOD}\n", "not unpadded base64url"),
    ("leading space", f" {GOOD}", "not unpadded base64url"),
    ("non-ASCII text", f"{GOOD}\u00e9", "not ASCII"),
    ("non-ASCII bytes", GOOD.encode() + b"\xff", "not ASCII"),
    ("impossible length", f"{H}.{P}.{S}AAA", "impossible base64url length"),
    ("short signature", f"{H}.{P}.{S[:84]}", "signature is 64 bytes"),
    ("oversize text", "A" * (MAX_RECEIPT_SIZE + 1), "more than the 16384"),
    ("oversize bytes", b"A" * (MAX_RECEIPT_SIZE + 1), "more than the 16384"),
    ("not text", 12345, "must be str or bytes"),
    ("bytearray", bytearray(GOOD.encode()), "must be str or bytes"),
    ("None", None, "must be str or bytes"),
]


@pytest.mark.parametrize(("case", "document", "message"), STRUCTURE_CASES, ids=[c[0] for c in STRUCTURE_CASES])
def test_malformed_structure_is_refused(case: str, document: object, message: str) -> None:
    with pytest.raises(ReceiptError, match=message) as info:
        verify_receipt(document)  # type: ignore[arg-type]
    assert len(str(info.value)) < 200, "a message quotes at most a short excerpt"


def test_the_size_bound_is_checked_before_parsing() -> None:
    garbage = "." * (MAX_RECEIPT_SIZE + 1)
    with pytest.raises(ReceiptError, match="more than"):
        verify_receipt(garbage)
    with pytest.raises(ReceiptError, match="more than"):
        jws_verify(garbage, oracle_public())


# --- malformed headers (validly signed by the oracle key) ---------------------------------------

PAYLOAD = b64d(P)


def _header_case(change: Callable[[dict[str, Any]], object]) -> bytes:
    header = oracle_header()
    change(header)
    return jcs(header)


def _set(path: tuple[str, ...], value: object) -> Callable[[dict[str, Any]], object]:
    def change(obj: dict[str, Any]) -> None:
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = value

    return change


def _drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], object]:
    def change(obj: dict[str, Any]) -> None:
        for key in path[:-1]:
            obj = obj[key]
        del obj[path[-1]]

    return change


_X = oracle_header()["jwk"]["x"]
HEADER_CASES: list[tuple[str, bytes, str]] = [
    ("alg none", _header_case(_set(("alg",), "none")), "alg must be 'EdDSA'"),
    ("alg HS256", _header_case(_set(("alg",), "HS256")), "alg must be 'EdDSA'"),
    ("alg not a string", _header_case(_set(("alg",), 1)), "alg must be 'EdDSA'"),
    ("alg missing", _header_case(_drop(("alg",))), "lacks the member"),
    ("typ missing", _header_case(_drop(("typ",))), "lacks the member"),
    ("typ other", _header_case(_set(("typ",), "jwt")), "typ must be 'JWT'"),
    ("crit", _header_case(_set(("crit",), ["exp"])), "unexpected member"),
    ("kid missing", _header_case(_drop(("kid",))), "lacks the member"),
    ("kid of another key", _header_case(_set(("kid",), "0123456789abcdef")), "not the id of its jwk"),
    ("kid uppercase", _header_case(lambda h: h.update(kid=h["kid"].upper())), "16 lowercase hex"),
    ("kid not a string", _header_case(_set(("kid",), 7)), "16 lowercase hex"),
    ("jwk missing", _header_case(_drop(("jwk",))), "lacks the member"),
    ("jwk not an object", _header_case(_set(("jwk",), _X)), "must be a JSON object"),
    ("jwk kty EC", _header_case(_set(("jwk", "kty"), "EC")), "Ed25519 key"),
    ("jwk crv Ed448", _header_case(_set(("jwk", "crv"), "Ed448")), "Ed25519 key"),
    ("jwk with the private d", _header_case(_set(("jwk", "d"), _X)), "unexpected member"),
    ("jwk x missing", _header_case(_drop(("jwk", "x"))), "lacks the member"),
    ("jwk x not a string", _header_case(_set(("jwk", "x"), 5)), "must be a string"),
    ("jwk x 31 bytes", _header_case(_set(("jwk", "x"), b64e(bytes(31)))), "32-byte key"),
    ("jwk x padded", _header_case(_set(("jwk", "x"), _X + "=")), "not unpadded base64url"),
    ("jwk x non-canonical", _header_case(_set(("jwk", "x"), _with_last_char_bumped(_X))), "not canonical"),
    ("not canonical: spaces", json.dumps(oracle_header()).encode(), "not RFC 8785 canonical"),
    ("not canonical: order", json.dumps(oracle_header(), separators=(",", ":")).encode(), "not RFC 8785 canonical"),
    ("duplicate key", b'{"alg":"EdDSA",' + jcs(oracle_header())[1:], "duplicate JSON key"),
    ("NaN", jcs(oracle_header())[:-1] + b',"z":NaN}', "NaN is not valid JSON"),
    ("an array", b'["EdDSA"]', "must be a JSON object"),
    ("not JSON", b"alg=EdDSA", "not valid JSON"),
    ("not UTF-8", b'{"alg":"\xff"}', "not valid JSON|not UTF-8"),
    ("lone surrogate", jcs(oracle_header())[:-1] + b',"z":"\\ud800"}', "canonically"),
]


@pytest.mark.parametrize(("case", "header", "message"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_malformed_header_is_refused(case: str, header: bytes, message: str) -> None:
    with pytest.raises(ReceiptError, match=message) as info:
        verify_receipt(forge(header, PAYLOAD))
    assert len(str(info.value)) < 300


def test_a_header_naming_another_key_than_the_signer_is_refused(signing: Ed25519SigningKey) -> None:
    # header claims the other key, signature by the oracle key: refused by the signature check
    document = forge(jcs(oracle_header(OTHER_SEED)), PAYLOAD)
    with pytest.raises(ReceiptError, match="does not verify"):
        verify_receipt(document)


# --- malformed payloads (validly signed, with a valid header) ----------------------------------


def _payload_case(change: Callable[[dict[str, Any]], object], *, withdrawal: bool = False) -> bytes:
    with SecureKeyBuffer(SEED) as seed, Ed25519SigningKey(seed) as key:
        receipt = grant()
        if withdrawal:
            receipt = receipt.withdraw(timestamp=T0 + 1, reason="ended", receipt_id=new_receipt_id())
        payload = json.loads(b64d(issue_receipt(key, receipt).split(".")[1]))
    change(payload)
    return canonical_json(payload)


def _purpose(key: str, value: object) -> Callable[[dict[str, Any]], object]:
    return lambda p: p["services"][0]["purposes"][0].__setitem__(key, value)


PAYLOAD_CASES: list[tuple[str, bytes, str]] = [
    ("version missing", _payload_case(_drop(("version",))), "lacks the member\\(s\\) 'version'"),
    ("version 1.0", _payload_case(_set(("version",), "KI-CR-v1.0.0")), "'version' is not what"),
    ("extra member", _payload_case(_set(("policyUrl",), "https://example.org")), "unexpected member"),
    ("extra namespaced member", _payload_case(_set(("cortexSal", "x"), 1)), "cortexSal has unexpected"),
    ("extra controller member", _payload_case(lambda p: p["piiControllers"][0].update(email="a@b")), "unexpected"),
    ("two controllers", _payload_case(lambda p: p["piiControllers"].append({"piiController": "x"})), "exactly one"),
    ("no service", _payload_case(_set(("services",), [])), "exactly one"),
    ("services an object", _payload_case(_set(("services",), {})), "must be a JSON array"),
    ("sensitive false", _payload_case(_set(("sensitive",), False)), "'sensitive' is not what"),
    ("sensitive 1", _payload_case(_set(("sensitive",), 1)), "'sensitive' is not what"),
    ("spiCat differs", _payload_case(_set(("spiCat",), ["biometric"])), "'spiCat' is not what"),
    ("service differs from appId", _payload_case(lambda p: p["services"][0].update(service="x")), "'services'"),
    ("termination changed", _payload_case(_purpose("termination", "never")), "'services'"),
    ("third party disclosure", _payload_case(_purpose("thirdPartyDisclosure", True)), "'services'"),
    ("purpose missing", _payload_case(lambda p: p["services"][0]["purposes"][0].pop("purpose")), "lacks the member"),
    ("purpose too long", _payload_case(_purpose("purpose", "p" * 513)), "purpose must be at most 512"),
    ("purpose with a newline", _payload_case(_purpose("purpose", "a\nb")), "control"),
    ("collection method", _payload_case(_set(("collectionMethod",), "web form")), "'collectionMethod'"),
    ("subject uppercase", _payload_case(_set(("piiPrincipalId",), SUBJECT.upper())), "subject must be"),
    ("subject 15 hex", _payload_case(_set(("piiPrincipalId",), SUBJECT[:15])), "subject must be"),
    ("subject a number", _payload_case(_set(("piiPrincipalId",), 1234)), "subject must be a str"),
    ("receipt id not uuid4", _payload_case(_set(("consentReceiptID",), "not-a-uuid")), "receipt_id must be"),
    ("receipt id uuid1", _payload_case(_set(("consentReceiptID",), "0b6f3c9e-8a41-1c57-9d2e-5f1a7b3c8d90")), "UUID"),
    ("timestamp a string", _payload_case(_set(("consentTimestamp",), "2027-01-15")), "timestamp must be a real"),
    ("timestamp a bool", _payload_case(_set(("consentTimestamp",), True)), "timestamp must be a real"),
    ("timestamp negative", _payload_case(_set(("consentTimestamp",), -1)), "timestamp must be finite"),
    ("timestamp huge int", _payload_case(_set(("consentTimestamp",), 2**53 - 1)), "timestamp must be"),
    ("state unknown", _payload_case(_set(("state",), "expired")), "state must be 'active' or 'withdrawn'"),
    ("state missing", _payload_case(_drop(("state",))), "lacks the member 'state'"),
    ("grant with refersTo", _payload_case(_set(("refersTo",), "0b6f3c9e-8a41-4c57-9d2e-5f1a7b3c8d91")), "unexpected"),
    ("grant with a reason", _payload_case(_set(("cortexSal", "withdrawalReason"), "x")), "unexpected"),
    ("ttl missing", _payload_case(_drop(("cortexSal", "ttlSeconds"))), "lacks the member 'ttlSeconds'"),
    ("ttl zero", _payload_case(_set(("cortexSal", "ttlSeconds"), 0)), "ttl_s must be finite"),
    ("expiry inconsistent", _payload_case(_set(("cortexSal", "expiresAt"), T0 + 3601)), "expires_at must be"),
    ("scopes out of order", _payload_case(_set(("cortexSal", "scopes"), ["audio", "biometric"])), "SCOPES order"),
    ("scope unknown", _payload_case(_set(("cortexSal", "scopes"), ["telepathy"])), "unknown consent scope"),
    ("scopes empty", _payload_case(_set(("cortexSal", "scopes"), [])), "must not be empty"),
    ("scopes repeated", _payload_case(_set(("cortexSal", "scopes"), ["audio", "audio"])), "repeat"),
    ("scopes a string", _payload_case(_set(("cortexSal", "scopes"), "audio")), "must be a JSON array"),
    ("namespace missing", _payload_case(_drop(("cortexSal",))), "lacks the member 'cortexSal'"),
    ("language invalid", _payload_case(_set(("language",), "English")), "language must be"),
    ("language null", _payload_case(_set(("language",), None)), "unexpected member"),
    ("controller empty", _payload_case(lambda p: p["piiControllers"][0].update(piiController="")), "controller must"),
    ("bidi override", _payload_case(_set(("jurisdiction",), "EU\u202e")), "control"),
    (
        "withdrawal without reason",
        _payload_case(_drop(("cortexSal", "withdrawalReason")), withdrawal=True),
        "lacks the member 'withdrawalReason'",
    ),
    ("withdrawal without refersTo", _payload_case(_drop(("refersTo",)), withdrawal=True), "lacks the member"),
    (
        "withdrawal of itself",
        _payload_case(lambda p: p.update(refersTo=p["consentReceiptID"]), withdrawal=True),
        "refer to itself",
    ),
    (
        "withdrawal with an expiry",
        _payload_case(_set(("cortexSal", "expiresAt"), T0), withdrawal=True),
        "unexpected member",
    ),
]

RAW_PAYLOAD_CASES: list[tuple[str, bytes, str]] = [
    ("not canonical: spaces", json.dumps(json.loads(PAYLOAD)).encode(), "not RFC 8785 canonical"),
    ("not canonical: float form", PAYLOAD.replace(b":1800000000,", b":1800000000.0,"), "not RFC 8785 canonical"),
    ("not canonical: escaped", PAYLOAD.replace(b'"EU"', b'"\\u0045U"'), "not RFC 8785 canonical"),
    ("BOM", b"\xef\xbb\xbf" + PAYLOAD, "not RFC 8785 canonical|not valid JSON"),
    ("duplicate key", b'{"state":"active",' + PAYLOAD[1:], "duplicate JSON key 'state'"),
    ("NaN", PAYLOAD[:-1] + b',"z":NaN}', "NaN is not valid JSON"),
    ("Infinity", PAYLOAD.replace(b":1800000000,", b":Infinity,"), "Infinity is not valid JSON"),
    ("an array", b"[1]", "must be a JSON object"),
    ("a string", b'"receipt"', "must be a JSON object"),
    ("not JSON", b"Example of Ed25519 signing", "not valid JSON"),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, "not valid JSON|nested"),
    ("huge int literal", PAYLOAD.replace(b":1800000000,", b":" + b"9" * 5000 + b","), "not valid JSON|canonically"),
    ("lone surrogate", PAYLOAD.replace(b'"EU"', b'"\\ud800"'), "canonically"),
]


@pytest.mark.parametrize(("case", "payload", "message"), PAYLOAD_CASES, ids=[c[0] for c in PAYLOAD_CASES])
def test_malformed_payload_is_refused(case: str, payload: bytes, message: str) -> None:
    with pytest.raises(ReceiptError, match=message) as info:
        verify_receipt(forge(jcs(oracle_header()), payload))
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(("case", "payload", "message"), RAW_PAYLOAD_CASES, ids=[c[0] for c in RAW_PAYLOAD_CASES])
def test_malformed_raw_payload_is_refused(case: str, payload: bytes, message: str) -> None:
    document = forge(jcs(oracle_header()), payload)
    if len(document) > MAX_RECEIPT_SIZE:
        message = "more than"
    with pytest.raises(ReceiptError, match=message) as info:
        verify_receipt(document)
    assert len(str(info.value)) < 300


def test_the_forged_payload_cases_start_from_a_payload_that_verifies() -> None:
    # the forging itself is sound: unchanged, the oracle-signed documents verify
    verify_receipt(forge(jcs(oracle_header()), _payload_case(lambda p: None)))
    verify_receipt(forge(jcs(oracle_header()), _payload_case(lambda p: None, withdrawal=True)))
    assert forge(jcs(oracle_header()), PAYLOAD) == GOOD


# --- construction --------------------------------------------------------------------------


def _fields(**overrides: Any) -> dict[str, Any]:
    base = dataclasses.asdict(grant())
    base.update(overrides)
    return base


CONSTRUCTION_CASES: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("receipt id int", _fields(receipt_id=1), WrongTypeError, "receipt_id must be a str"),
    ("receipt id uppercase", _fields(receipt_id=new_receipt_id().upper()), InvalidArgumentError, "receipt_id"),
    ("timestamp NaN", _fields(timestamp=float("nan")), InvalidArgumentError, "timestamp must be finite"),
    ("timestamp inf", _fields(timestamp=float("inf")), InvalidArgumentError, "timestamp must be finite"),
    ("timestamp year 10000", _fields(timestamp=253_402_300_800.0), InvalidArgumentError, "timestamp"),
    ("timestamp str", _fields(timestamp="now"), WrongTypeError, "timestamp must be a real"),
    ("jurisdiction empty", _fields(jurisdiction=""), InvalidArgumentError, "jurisdiction must not be empty"),
    ("jurisdiction padded", _fields(jurisdiction=" EU"), InvalidArgumentError, "white space"),
    ("controller None", _fields(controller=None), WrongTypeError, "controller must be a str"),
    ("controller too long", _fields(controller="g" * 129), InvalidArgumentError, "at most 128"),
    ("subject 17 hex", _fields(subject=SUBJECT + "0"), InvalidArgumentError, "16 lowercase hex"),
    ("subject bytes", _fields(subject=SUBJECT.encode()), WrongTypeError, "subject must be a str"),
    ("app tab", _fields(app="a\tb"), InvalidArgumentError, "control"),
    ("purpose 513", _fields(purpose="x" * 513), InvalidArgumentError, "at most 512"),
    ("purpose surrogate", _fields(purpose="a\ud800"), InvalidArgumentError, "surrogate"),
    ("purpose line separator", _fields(purpose="a\u2028b"), InvalidArgumentError, "separator"),
    ("scopes list", _fields(scopes=["biometric"]), WrongTypeError, "tuple"),
    ("scopes empty", _fields(scopes=()), InvalidArgumentError, "must not be empty"),
    ("scopes unknown", _fields(scopes=("mind",)), InvalidArgumentError, "unknown consent scope"),
    ("scopes order", _fields(scopes=("audio", "biometric")), InvalidArgumentError, "SCOPES order"),
    ("scopes int", _fields(scopes=(1,)), WrongTypeError, "a scope must be a str"),
    ("state other", _fields(state="paused"), InvalidArgumentError, "state must be"),
    ("state int", _fields(state=1), WrongTypeError, "state must be a str"),
    ("ttl None", _fields(ttl_s=None), InvalidArgumentError, "needs ttl_s"),
    ("ttl negative", _fields(ttl_s=-1.0, expires_at=T0 - 1), InvalidArgumentError, "ttl_s must be finite"),
    ("ttl eleven years", _fields(ttl_s=11 * 365 * 86400.0), InvalidArgumentError, "ttl_s"),
    ("ttl bool", _fields(ttl_s=True), WrongTypeError, "ttl_s must be a real"),
    ("expiry off", _fields(expires_at=T0 + 3599), InvalidArgumentError, "expires_at must be timestamp"),
    ("grant with a reason", _fields(reason="x"), InvalidArgumentError, "a grant has no reason"),
    ("grant with refers_to", _fields(refers_to=new_receipt_id()), InvalidArgumentError, "refers to no receipt"),
    ("language odd", _fields(language="en_US"), InvalidArgumentError, "language"),
    ("key id short", _fields(key_id="abc"), InvalidArgumentError, "key_id"),
    (
        "withdrawal with ttl",
        _fields(state="withdrawn", reason="r", refers_to=new_receipt_id()),
        InvalidArgumentError,
        "a withdrawal has no ttl_s",
    ),
    (
        "withdrawal without reason",
        _fields(state="withdrawn", ttl_s=None, expires_at=None, refers_to=new_receipt_id()),
        InvalidArgumentError,
        "needs a reason",
    ),
    (
        "withdrawal without refers_to",
        _fields(state="withdrawn", ttl_s=None, expires_at=None, reason="r"),
        InvalidArgumentError,
        "needs refers_to",
    ),
    (
        "withdrawal reason int",
        _fields(state="withdrawn", ttl_s=None, expires_at=None, reason=3, refers_to=new_receipt_id()),
        WrongTypeError,
        "reason must be a str",
    ),
]


@pytest.mark.parametrize(
    ("case", "fields", "error", "message"), CONSTRUCTION_CASES, ids=[c[0] for c in CONSTRUCTION_CASES]
)
def test_construction_validates_every_field(
    case: str, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ConsentReceipt(**fields)


def test_grant_builder_checks_its_scopes() -> None:
    assert grant(scopes="clinical").scopes == ("clinical",)
    assert grant(scopes=[*reversed(SCOPES), "audio"]).scopes == SCOPES
    with pytest.raises(WrongTypeError, match="iterable"):
        grant(scopes=5)
    with pytest.raises(WrongTypeError, match="a scope must be a str"):
        grant(scopes=[b"audio"])
    with pytest.raises(InvalidArgumentError, match="unknown consent scope"):
        grant(scopes=["x" * 1000])
    with pytest.raises(InvalidArgumentError, match="must not be empty"):
        grant(scopes=[])


def test_an_int_timestamp_is_kept_as_float() -> None:
    receipt = ConsentReceipt(**_fields(timestamp=1_800_000_000, ttl_s=60, expires_at=1_800_000_060))
    assert type(receipt.timestamp) is float and type(receipt.ttl_s) is float and type(receipt.expires_at) is float


def test_messages_quote_only_a_bounded_excerpt() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        ConsentReceipt(**_fields(subject="f" * 10_000))
    assert len(str(info.value)) < 200


# --- properties -------------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Co", "Zl", "Zp", "Zs")), min_size=1, max_size=40
)


@settings(max_examples=examples(60), deadline=None)
@given(
    timestamp=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    ttl=st.floats(min_value=1e-3, max_value=3e8, allow_nan=False),
    scopes=st.sets(st.sampled_from(SCOPES), min_size=1),
    subject=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    purpose=_TEXT,
    controller=_TEXT,
    reason=_TEXT,
    language=st.none() | st.sampled_from(["en", "fr-CA", "de", "pt-BR"]),
)
def test_any_valid_receipt_round_trips_and_the_independent_verifier_agrees(
    timestamp: float,
    ttl: float,
    scopes: set[str],
    subject: str,
    purpose: str,
    controller: str,
    reason: str,
    language: str | None,
) -> None:
    with SecureKeyBuffer(SEED) as seed, Ed25519SigningKey(seed) as key:
        first = ConsentReceipt.grant(
            timestamp=timestamp,
            jurisdiction="EU",
            controller=controller,
            subject=subject,
            app="app",
            purpose=purpose,
            scopes=scopes,
            ttl_s=ttl,
            language=language,
        )
        withdrawal = first.withdraw(timestamp=timestamp + 1, reason=reason)
        for receipt in (first, withdrawal):
            document = issue_receipt(key, receipt)
            _, payload = independent_verify(document, oracle_public())
            assert payload["consentReceiptID"] == receipt.receipt_id
            assert payload["piiControllers"] == [{"piiController": controller}]
            assert payload["consentTimestamp"] == receipt.timestamp
            read = verify_receipt(document, public_key=oracle_public())
            assert read == dataclasses.replace(receipt, key_id=key_id(oracle_public()))


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_is_only_ever_refused_with_receipt_error(document: bytes | str) -> None:
    with pytest.raises(ReceiptError):
        verify_receipt(document)


@settings(max_examples=examples(200), deadline=None)
@given(position=st.integers(min_value=0), replacement=st.sampled_from("AEIMQUYcgkosw048-_.="))
def test_any_single_character_substitution_is_refused(position: int, replacement: str) -> None:
    position %= len(GOOD)
    if GOOD[position] == replacement:
        return
    with pytest.raises(ReceiptError):
        verify_receipt(GOOD[:position] + replacement + GOOD[position + 1 :])


def test_the_oracle_verifier_itself_refuses_a_bad_signature() -> None:
    header_b64, payload_b64, signature_b64 = GOOD.split(".")
    bad = bytearray(b64d(signature_b64))
    bad[0] ^= 1
    with pytest.raises(InvalidSignature):
        independent_verify(f"{header_b64}.{payload_b64}.{b64e(bytes(bad))}")
