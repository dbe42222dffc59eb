"""Consent receipts: signed, offline-verifiable evidence of a wearer's grant or withdrawal.

A receipt is a JWS compact serialization (RFC 7515) signed with the gateway's Ed25519 key
(``alg`` ``EdDSA``, RFC 8037). Its protected header carries the public key itself (``jwk``)
and its key id (``kid``: the first 16 hex digits of SHA-256 of the raw public key), so anyone
can verify it offline; a verifier that knows the gateway's key passes ``public_key`` and then a
receipt signed by any other key is refused. The payload is the RFC 8785 (JCS) canonical JSON of
the receipt's fields, in the shape of the Kantara Consent Receipt v1.1 with what ISO/IEC TS
27560 adds (the record's state, the record a withdrawal ends) and our own fields under the
``cortexSal`` member. ``docs/consent-receipts.md`` maps every field to its source.

Pure: no file, network or clock access (the caller gives the timestamp). The signing key stays
in locked memory (:class:`~cortex_sal.crypto.Ed25519SigningKey`); nothing here copies it.

Verification is strict and every refusal is a :class:`~cortex_sal.errors.ReceiptError` whose
message says what was wrong, quoting at most a short excerpt of the input:

* at most :data:`MAX_RECEIPT_SIZE` bytes of ASCII, checked before anything is parsed;
* exactly three non-empty parts of canonical unpadded base64url (decoded and re-encoded, it
  must give the same text: unused low bits of the last character must be zero);
* the header: strict JSON (no duplicate key, no NaN), canonical (RFC 8785), exactly ``alg``
  ``EdDSA``, ``typ`` ``JWT``, ``kid`` and ``jwk`` (``kty`` ``OKP``, ``crv`` ``Ed25519``, ``x``),
  the ``kid`` that of ``x``;
* the signature over ``header.payload`` under the embedded key (and that key the one expected);
* the payload: strict JSON, canonical, exactly the members of its state, every field valid and
  the whole equal to what the receipt it describes encodes to.

:func:`jws_sign` / :func:`jws_verify` are the same JWS on arbitrary payloads (RFC 8037's
example applies to them).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import math
import re
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .. import strict_json
from ..checks import public_bytes
from ..crypto import Ed25519SigningKey, ed25519_verify
from ..crypto.ed25519 import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from ..errors import (
    InvalidArgumentError,
    InvalidSignatureError,
    ProposalError,
    ReceiptError,
    WrongTypeError,
)
from ..governance.quorum import canonical_json
from .consent import SCOPES

__all__ = [
    "ACTIVE",
    "KANTARA_VERSION",
    "MAX_PURPOSE_LENGTH",
    "MAX_RECEIPT_SIZE",
    "STATES",
    "WITHDRAWN",
    "ConsentReceipt",
    "VerifiedJws",
    "issue_receipt",
    "jws_sign",
    "jws_verify",
    "key_id",
    "new_receipt_id",
    "verify_receipt",
]

#: The largest document :func:`verify_receipt` and :func:`jws_verify` parse (bytes / ASCII characters).
MAX_RECEIPT_SIZE = 16 * 1024
KANTARA_VERSION = "KI-CR-v1.1.0"
ACTIVE = "active"
WITHDRAWN = "withdrawn"
STATES = (ACTIVE, WITHDRAWN)

MAX_PURPOSE_LENGTH = 512
MAX_NAME_LENGTH = 128  # controller, app
MAX_JURISDICTION_LENGTH = 64
MAX_REASON_LENGTH = 256
#: 9999-12-31T23:59:59Z: no timestamp or expiry beyond it.
MAX_TIME = 253_402_300_799.0
#: Ten years of 365 days: no grant lasts longer.
MAX_TTL_S = 10 * 365 * 86_400.0

COLLECTION_METHOD = "Cortex SAL gateway consent ledger"
PURPOSE_CATEGORY = ("Core Function",)
CONSENT_TYPE = "EXPLICIT"
TERMINATION_GRANT = "on withdrawal, or at expiry (cortexSal.expiresAt)"
TERMINATION_WITHDRAWN = "withdrawn: this receipt ends the consent receipt named by refersTo"
JWS_ALG = "EdDSA"
JWS_TYP = "JWT"
NAMESPACE = "cortexSal"

_EXCERPT = 24
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Zl", "Zp"})
_PREFIX = "consent receipt: "


def _excerpt(text: str) -> str:
    """A short, bounded ``repr`` of part of the input, for messages."""
    return repr(text[:_EXCERPT]) + ("..." if len(text) > _EXCERPT else "")


# --- field checks (WrongTypeError / InvalidArgumentError) ------------------------------------


def new_receipt_id() -> str:
    """A fresh receipt id: a random UUID (version 4) as lowercase text, as Kantara uses."""
    return str(uuid.uuid4())


def key_id(public_key: bytes) -> str:
    """The key id of an Ed25519 public key: the first 16 hex digits of its SHA-256."""
    pk = public_bytes(public_key, "Ed25519 public key", PUBLIC_KEY_SIZE)
    return hashlib.sha256(pk).hexdigest()[:16]


def _text(value: object, what: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise WrongTypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value or not value.strip():
        raise InvalidArgumentError(f"{what} must not be empty")
    if len(value) > max_length:
        raise InvalidArgumentError(f"{what} must be at most {max_length} characters, got {len(value)}")
    if value != value.strip():
        raise InvalidArgumentError(f"{what} must not start or end with white space")
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _BIDI_CONTROLS:
            raise InvalidArgumentError(
                f"{what} must not hold control, separator or surrogate characters (U+{ord(ch):04X})"
            )
    return value


def _pattern(value: object, what: str, pattern: re.Pattern[str], description: str) -> str:
    if not isinstance(value, str):
        raise WrongTypeError(f"{what} must be a str, got {type(value).__name__}")
    if pattern.fullmatch(value) is None:
        raise InvalidArgumentError(f"{what} must be {description}, got {_excerpt(value)}")
    return value


def _uuid4(value: object, what: str) -> str:
    return _pattern(value, what, _UUID4, "a lowercase UUID version 4 (8-4-4-4-12 hex digits)")


def _real(value: object, what: str, low: float, high: float, *, low_inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongTypeError(f"{what} must be a real number of seconds, got {type(value).__name__}")
    if isinstance(value, int) and abs(value) > 2**53:
        raise InvalidArgumentError(f"{what} must be between {low} and {high}, got {value}")
    number = float(value)
    above_low = number >= low if low_inclusive else number > low
    if not math.isfinite(number) or not above_low or number > high:
        bound = "" if low_inclusive else " (exclusive)"
        raise InvalidArgumentError(f"{what} must be finite and between {low}{bound} and {high}, got {value!r}")
    return number


def _scopes(value: object) -> tuple[str, ...]:
    if not isinstance(value, tuple):
        raise WrongTypeError(f"scopes must be a tuple of scope names, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentError("scopes must not be empty")
    for scope in value:
        if not isinstance(scope, str):
            raise WrongTypeError(f"a scope must be a str, got {type(scope).__name__}")
        if scope not in SCOPES:
            raise InvalidArgumentError(f"unknown consent scope {_excerpt(scope)}; known scopes: {', '.join(SCOPES)}")
    if len(set(value)) != len(value):
        raise InvalidArgumentError("scopes must not repeat a scope")
    ordered = tuple(s for s in SCOPES if s in value)
    if value != ordered:
        raise InvalidArgumentError(f"scopes must be in SCOPES order ({', '.join(ordered)})")
    return value


@dataclass(frozen=True, slots=True)
class ConsentReceipt:
    """One consent receipt's fields, every one validated at construction.

    * ``receipt_id``: a lowercase UUID4 (:func:`new_receipt_id`);
    * ``timestamp``: when consent was granted or withdrawn, epoch seconds (finite, 0 to
      :data:`MAX_TIME`; an ``int`` is kept as ``float``);
    * ``jurisdiction``, ``controller`` (the gateway's name), ``app`` (the app id) and
      ``purpose`` (at most :data:`MAX_PURPOSE_LENGTH` characters): non-empty text without
      control, line-separator, surrogate or bidirectional-override characters or surrounding
      white space;
    * ``subject``: the pseudonymous subject id, exactly 16 lowercase hex digits;
    * ``scopes``: a non-empty tuple of known scopes in :data:`~cortex_sal.sal.consent.SCOPES`
      order, none repeated;
    * ``state``: ``"active"`` (a grant) or ``"withdrawn"`` (a withdrawal);
    * a grant has ``ttl_s`` (finite, > 0, at most :data:`MAX_TTL_S`) and ``expires_at``
      (exactly ``timestamp + ttl_s``, at most :data:`MAX_TIME`), and no ``reason`` or
      ``refers_to``;
    * a withdrawal has ``reason`` (non-empty text) and ``refers_to`` (the id of the grant
      receipt it ends, not its own id), and no ``ttl_s`` or ``expires_at``;
    * ``language``: ``None`` or a BCP 47 language tag such as ``"en"`` or ``"fr-CA"``;
    * ``key_id``: ``None`` when built, the signer's key id when read back by
      :func:`verify_receipt`.

    A wrong type is a ``WrongTypeError``, a wrong value an ``InvalidArgumentError``.
    :meth:`grant` and :meth:`withdraw` build receipts with the derived fields filled in.
    """

    receipt_id: str
    timestamp: float
    jurisdiction: str
    controller: str
    subject: str
    app: str
    purpose: str
    scopes: tuple[str, ...]
    state: str = ACTIVE
    ttl_s: float | None = None
    expires_at: float | None = None
    reason: str | None = None
    refers_to: str | None = None
    language: str | None = None
    key_id: str | None = None

    def __post_init__(self) -> None:
        _uuid4(self.receipt_id, "receipt_id")
        object.__setattr__(self, "timestamp", _real(self.timestamp, "timestamp", 0.0, MAX_TIME))
        _text(self.jurisdiction, "jurisdiction", MAX_JURISDICTION_LENGTH)
        _text(self.controller, "controller", MAX_NAME_LENGTH)
        _pattern(self.subject, "subject", _HEX16, "a pseudonymous id of exactly 16 lowercase hex digits")
        _text(self.app, "app", MAX_NAME_LENGTH)
        _text(self.purpose, "purpose", MAX_PURPOSE_LENGTH)
        _scopes(self.scopes)
        if not isinstance(self.state, str):
            raise WrongTypeError(f"state must be a str, got {type(self.state).__name__}")
        if self.state not in STATES:
            raise InvalidArgumentError(f"state must be 'active' or 'withdrawn', got {_excerpt(self.state)}")
        if self.state == ACTIVE:
            self._check_grant()
        else:
            self._check_withdrawal()
        if self.language is not None:
            _pattern(self.language, "language", _LANGUAGE, "None or a BCP 47 language tag such as 'en' or 'fr-CA'")
        if self.key_id is not None:
            _pattern(self.key_id, "key_id", _HEX16, "None or 16 lowercase hex digits")

    def _check_grant(self) -> None:
        if self.reason is not None:
            raise InvalidArgumentError("a grant has no reason (only a withdrawal does)")
        if self.refers_to is not None:
            raise InvalidArgumentError("a grant refers to no receipt (only a withdrawal does)")
        if self.ttl_s is None or self.expires_at is None:
            raise InvalidArgumentError("a grant needs ttl_s and expires_at")
        ttl = _real(self.ttl_s, "ttl_s", 0.0, MAX_TTL_S, low_inclusive=False)
        expires = _real(self.expires_at, "expires_at", 0.0, MAX_TIME)
        if expires != self.timestamp + ttl:
            raise InvalidArgumentError(
                f"expires_at must be timestamp + ttl_s ({self.timestamp + ttl!r}), got {self.expires_at!r}"
            )
        object.__setattr__(self, "ttl_s", ttl)
        object.__setattr__(self, "expires_at", expires)

    def _check_withdrawal(self) -> None:
        if self.ttl_s is not None or self.expires_at is not None:
            raise InvalidArgumentError("a withdrawal has no ttl_s or expires_at (only a grant does)")
        if self.reason is None:
            raise InvalidArgumentError("a withdrawal needs a reason")
        _text(self.reason, "reason", MAX_REASON_LENGTH)
        if self.refers_to is None:
            raise InvalidArgumentError("a withdrawal needs refers_to, the id of the grant receipt it ends")
        _uuid4(self.refers_to, "refers_to")
        if self.refers_to == self.receipt_id:
            raise InvalidArgumentError("a withdrawal cannot refer to itself (refers_to == receipt_id)")

    @classmethod
    def grant(
        cls,
        *,
        timestamp: float,
        jurisdiction: str,
        controller: str,
        subject: str,
        app: str,
        purpose: str,
        scopes: Iterable[str] | str,
        ttl_s: float,
        language: str | None = None,
        receipt_id: str | None = None,
    ) -> ConsentReceipt:
        """A grant receipt: ``scopes`` in any order (a single ``str`` is one scope, duplicates
        ignored), ``expires_at = timestamp + ttl_s``, a fresh id unless ``receipt_id`` is given."""
        if isinstance(scopes, str):
            scopes = (scopes,)
        try:
            given = list(scopes)
        except TypeError:
            raise WrongTypeError(f"scopes must be an iterable of str, got {type(scopes).__name__}") from None
        for scope in given:
            if not isinstance(scope, str):
                raise WrongTypeError(f"a scope must be a str, got {type(scope).__name__}")
            if scope not in SCOPES:
                raise InvalidArgumentError(
                    f"unknown consent scope {_excerpt(scope)}; known scopes: {', '.join(SCOPES)}"
                )
        start = _real(timestamp, "timestamp", 0.0, MAX_TIME)
        ttl = _real(ttl_s, "ttl_s", 0.0, MAX_TTL_S, low_inclusive=False)
        return cls(
            receipt_id=new_receipt_id() if receipt_id is None else receipt_id,
            timestamp=start,
            jurisdiction=jurisdiction,
            controller=controller,
            subject=subject,
            app=app,
            purpose=purpose,
            scopes=tuple(s for s in SCOPES if s in given),
            state=ACTIVE,
            ttl_s=ttl,
            expires_at=start + ttl,
            language=language,
        )

    def withdraw(self, *, timestamp: float, reason: str, receipt_id: str | None = None) -> ConsentReceipt:
        """The withdrawal receipt that ends this grant: same subject, controller, app, purpose,
        scopes, jurisdiction and language; ``refers_to`` this receipt's id. ``timestamp`` must
        not be before the grant's."""
        if self.state != ACTIVE:
            raise InvalidArgumentError("only a grant (state 'active') can be withdrawn")
        when = _real(timestamp, "timestamp", 0.0, MAX_TIME)
        if when < self.timestamp:
            raise InvalidArgumentError(f"a withdrawal at {when!r} cannot precede its grant at {self.timestamp!r}")
        return dataclasses.replace(
            self,
            receipt_id=new_receipt_id() if receipt_id is None else receipt_id,
            timestamp=when,
            state=WITHDRAWN,
            ttl_s=None,
            expires_at=None,
            reason=reason,
            refers_to=self.receipt_id,
            key_id=None,
        )


# --- the payload -----------------------------------------------------------------------------


def _payload(receipt: ConsentReceipt) -> dict[str, Any]:
    """The receipt's payload object (before canonical encoding); docs/consent-receipts.md."""
    own: dict[str, Any] = {"appId": receipt.app, "scopes": list(receipt.scopes)}
    if receipt.state == ACTIVE:
        own["ttlSeconds"] = receipt.ttl_s
        own["expiresAt"] = receipt.expires_at
        termination = TERMINATION_GRANT
    else:
        own["withdrawalReason"] = receipt.reason
        termination = TERMINATION_WITHDRAWN
    payload: dict[str, Any] = {
        "version": KANTARA_VERSION,
        "jurisdiction": receipt.jurisdiction,
        "consentTimestamp": receipt.timestamp,
        "collectionMethod": COLLECTION_METHOD,
        "consentReceiptID": receipt.receipt_id,
        "piiPrincipalId": receipt.subject,
        "piiControllers": [{"piiController": receipt.controller}],
        "services": [
            {
                "service": receipt.app,
                "purposes": [
                    {
                        "purpose": receipt.purpose,
                        "purposeCategory": list(PURPOSE_CATEGORY),
                        "consentType": CONSENT_TYPE,
                        "termination": termination,
                        "primaryPurpose": True,
                        "thirdPartyDisclosure": False,
                    }
                ],
            }
        ],
        "sensitive": True,
        "spiCat": list(receipt.scopes),
        "state": receipt.state,
        NAMESPACE: own,
    }
    if receipt.language is not None:
        payload["language"] = receipt.language
    if receipt.refers_to is not None:
        payload["refersTo"] = receipt.refers_to
    return payload


def _canonical(value: object, what: str) -> bytes:
    try:
        return canonical_json(value)
    except ProposalError as exc:
        raise ReceiptError(f"{_PREFIX}{what} cannot be encoded canonically: {exc}") from None


def _member(obj: object, key: str, what: str) -> Any:
    if not isinstance(obj, dict):
        raise ReceiptError(f"{_PREFIX}{what} must be a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise ReceiptError(f"{_PREFIX}{what} lacks the member {key!r}")
    return obj[key]


def _only(value: object, what: str) -> Any:
    """The one element of a one-element JSON array."""
    if not isinstance(value, list):
        raise ReceiptError(f"{_PREFIX}{what} must be a JSON array, got {type(value).__name__}")
    if len(value) != 1:
        raise ReceiptError(f"{_PREFIX}{what} must hold exactly one element, got {len(value)}")
    return value[0]


def _same_keys(obj: object, expected: Mapping[str, object], what: str) -> None:
    if not isinstance(obj, dict):
        raise ReceiptError(f"{_PREFIX}{what} must be a JSON object, got {type(obj).__name__}")
    missing = sorted(set(expected) - set(obj))
    extra = sorted(set(obj) - set(expected))
    if missing:
        raise ReceiptError(f"{_PREFIX}{what} lacks the member(s) {', '.join(repr(k) for k in missing)}")
    if extra:
        names = ", ".join(_excerpt(k) for k in extra[:3])
        raise ReceiptError(f"{_PREFIX}{what} has unexpected member(s) {names}")


def _receipt_from(payload: object, signer: str) -> ConsentReceipt:
    """Read the fields out of a parsed payload, then check it is exactly what they encode to."""
    if not isinstance(payload, dict):
        raise ReceiptError(f"{_PREFIX}the payload must be a JSON object, got {type(payload).__name__}")
    state = _member(payload, "state", "the payload")
    if state not in STATES:
        got = _excerpt(state) if isinstance(state, str) else type(state).__name__
        raise ReceiptError(f"{_PREFIX}state must be 'active' or 'withdrawn', got {got}")
    own = _member(payload, NAMESPACE, "the payload")
    scopes = _member(own, "scopes", NAMESPACE)
    if not isinstance(scopes, list):
        raise ReceiptError(f"{_PREFIX}{NAMESPACE}.scopes must be a JSON array, got {type(scopes).__name__}")
    controller = _only(_member(payload, "piiControllers", "the payload"), "piiControllers")
    purpose = _only(
        _member(_only(_member(payload, "services", "the payload"), "services"), "purposes", "services[0]"),
        "services[0].purposes",
    )
    grant = state == ACTIVE
    try:
        receipt = ConsentReceipt(
            receipt_id=_member(payload, "consentReceiptID", "the payload"),
            timestamp=_member(payload, "consentTimestamp", "the payload"),
            jurisdiction=_member(payload, "jurisdiction", "the payload"),
            controller=_member(controller, "piiController", "piiControllers[0]"),
            subject=_member(payload, "piiPrincipalId", "the payload"),
            app=_member(own, "appId", NAMESPACE),
            purpose=_member(purpose, "purpose", "services[0].purposes[0]"),
            scopes=tuple(scopes),
            state=state,
            ttl_s=_member(own, "ttlSeconds", NAMESPACE) if grant else None,
            expires_at=_member(own, "expiresAt", NAMESPACE) if grant else None,
            reason=None if grant else _member(own, "withdrawalReason", NAMESPACE),
            refers_to=None if grant else _member(payload, "refersTo", "the payload"),
            language=payload.get("language"),
            key_id=signer,
        )
    except (WrongTypeError, InvalidArgumentError) as exc:
        raise ReceiptError(f"{_PREFIX}a field is invalid: {exc}") from None
    expected = _payload(receipt)
    _same_keys(payload, expected, "the payload")
    _same_keys(own, expected[NAMESPACE], NAMESPACE)
    _same_keys(controller, expected["piiControllers"][0], "piiControllers[0]")
    _same_keys(payload["services"][0], expected["services"][0], "services[0]")
    _same_keys(purpose, expected["services"][0]["purposes"][0], "services[0].purposes[0]")
    for key in sorted(expected):
        if _canonical(payload[key], key) != _canonical(expected[key], key):
            raise ReceiptError(f"{_PREFIX}the member {key!r} is not what the receipt's fields give")
    return receipt


# --- JWS (RFC 7515 compact, RFC 8037 EdDSA) -------------------------------------------------


class VerifiedJws(NamedTuple):
    """What :func:`jws_verify` returns once the signature verified: the header and the payload."""

    header: dict[str, Any]
    payload: bytes


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(part: str, what: str) -> bytes:
    """Canonical unpadded base64url only: decoding then re-encoding gives ``part`` back."""
    if not part:
        raise ReceiptError(f"{_PREFIX}the {what} is empty")
    if _B64URL.fullmatch(part) is None:
        raise ReceiptError(f"{_PREFIX}the {what} is not unpadded base64url (A-Z a-z 0-9 - _): {_excerpt(part)}")
    if len(part) % 4 == 1:
        raise ReceiptError(f"{_PREFIX}the {what} has an impossible base64url length ({len(part)})")
    try:
        data = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        raise ReceiptError(f"{_PREFIX}the {what} is not base64url") from None
    if _b64encode(data) != part:
        raise ReceiptError(f"{_PREFIX}the {what} is not canonical base64url (non-zero unused low bits)")
    return data


class _Parts(NamedTuple):
    signing_input: bytes
    header_bytes: bytes
    payload: bytes
    signature: bytes


def _split(document: object, max_size: int) -> _Parts:
    if isinstance(document, bytes):
        if len(document) > max_size:
            raise ReceiptError(f"{_PREFIX}the document is {len(document)} bytes, more than the {max_size} allowed")
        try:
            text = document.decode("ascii")
        except UnicodeDecodeError:
            raise ReceiptError(f"{_PREFIX}the document is not ASCII") from None
    elif isinstance(document, str):
        if len(document) > max_size:
            raise ReceiptError(f"{_PREFIX}the document is {len(document)} characters, more than the {max_size} allowed")
        if not document.isascii():
            raise ReceiptError(f"{_PREFIX}the document is not ASCII")
        text = document
    else:
        raise ReceiptError(f"{_PREFIX}the document must be str or bytes, got {type(document).__name__}")
    parts = text.split(".")
    if len(parts) != 3:
        raise ReceiptError(f"{_PREFIX}a JWS compact serialization has 3 parts separated by '.', got {len(parts)}")
    header_b64, payload_b64, signature_b64 = parts
    header = _b64decode(header_b64, "header")
    payload = _b64decode(payload_b64, "payload")
    signature = _b64decode(signature_b64, "signature")
    if len(signature) != SIGNATURE_SIZE:
        raise ReceiptError(f"{_PREFIX}an Ed25519 signature is {SIGNATURE_SIZE} bytes, got {len(signature)}")
    return _Parts(f"{header_b64}.{payload_b64}".encode("ascii"), header, payload, signature)


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    value = strict_json.loads(data, ReceiptError, f"consent receipt {what}")
    if not isinstance(value, dict):
        raise ReceiptError(f"{_PREFIX}the {what} must be a JSON object, got {type(value).__name__}")
    return value


def _check_signature(public_key: bytes, parts: _Parts) -> None:
    try:
        ed25519_verify(public_key, parts.signing_input, parts.signature)
    except InvalidSignatureError:
        raise ReceiptError(f"{_PREFIX}the Ed25519 signature does not verify") from None


def jws_sign(signing_key: Ed25519SigningKey, payload: bytes, *, header: Mapping[str, object] | None = None) -> str:
    """The JWS compact serialization of ``payload`` signed with ``signing_key`` (RFC 7515, RFC 8037).

    ``header`` (default ``{"alg": "EdDSA"}``) is the protected header; it must hold ``alg``
    ``EdDSA`` and is encoded as RFC 8785 canonical JSON. Returns one line of ASCII.
    """
    if not isinstance(signing_key, Ed25519SigningKey):
        raise WrongTypeError(f"signing_key must be an Ed25519SigningKey, got {type(signing_key).__name__}")
    body = public_bytes(payload, "JWS payload")
    protected: Mapping[str, object] = {"alg": JWS_ALG} if header is None else header
    if not isinstance(protected, Mapping):
        raise WrongTypeError(f"header must be a mapping, got {type(protected).__name__}")
    if protected.get("alg") != JWS_ALG:
        raise InvalidArgumentError(f"the header's alg must be {JWS_ALG!r}")
    try:
        header_bytes = canonical_json(protected)
    except ProposalError as exc:
        raise InvalidArgumentError(f"the header cannot be encoded as canonical JSON: {exc}") from None
    signing_input = f"{_b64encode(header_bytes)}.{_b64encode(body)}"
    signature = signing_key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{_b64encode(signature)}"


def jws_verify(document: str | bytes, public_key: bytes, *, max_size: int = MAX_RECEIPT_SIZE) -> VerifiedJws:
    """Verify a JWS compact serialization signed with EdDSA under ``public_key``.

    Strict as :func:`verify_receipt` on the encoding (size, three canonical base64url parts, a
    strict-JSON object as header with ``alg`` ``EdDSA`` and no ``crit``), but the header need
    not be canonical and may hold other members. Refusals are ``ReceiptError``; a
    ``public_key`` that is not 32 bytes is ``WrongTypeError`` / ``WrongLengthError``.
    """
    pk = public_bytes(public_key, "Ed25519 public key", PUBLIC_KEY_SIZE)
    parts = _split(document, max_size)
    header = _json_object(parts.header_bytes, "header")
    if header.get("alg") != JWS_ALG:
        raise ReceiptError(f"{_PREFIX}the header's alg must be {JWS_ALG!r}")
    if "crit" in header:
        raise ReceiptError(f"{_PREFIX}the header names critical extensions (crit), none of which is understood")
    _check_signature(pk, parts)
    return VerifiedJws(header, parts.payload)


# --- receipts ----------------------------------------------------------------------------------


def _header(public_key: bytes) -> dict[str, Any]:
    return {
        "alg": JWS_ALG,
        "typ": JWS_TYP,
        "kid": key_id(public_key),
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": _b64encode(public_key)},
    }


def issue_receipt(signing_key: Ed25519SigningKey, receipt: ConsentReceipt) -> str:
    """The receipt as a JWS signed by the gateway's key (ASCII, one line); see the module doc."""
    if not isinstance(signing_key, Ed25519SigningKey):
        raise WrongTypeError(f"signing_key must be an Ed25519SigningKey, got {type(signing_key).__name__}")
    if not isinstance(receipt, ConsentReceipt):
        raise WrongTypeError(f"receipt must be a ConsentReceipt, got {type(receipt).__name__}")
    public = signing_key.public_key()
    header = _header(public)
    if receipt.key_id is not None and receipt.key_id != header["kid"]:
        raise InvalidArgumentError(f"the receipt names key {receipt.key_id}, but this signing key is {header['kid']}")
    try:
        payload = canonical_json(_payload(receipt))
    except ProposalError as exc:  # pragma: no cover - every field was validated
        raise InvalidArgumentError(f"the receipt cannot be encoded: {exc}") from None
    return jws_sign(signing_key, payload, header=header)


_HEADER_MEMBERS = dict.fromkeys(("alg", "typ", "kid", "jwk"))
_JWK_MEMBERS = dict.fromkeys(("kty", "crv", "x"))


def _embedded_key(header: dict[str, Any]) -> bytes:
    _same_keys(header, _HEADER_MEMBERS, "the header")
    if header["alg"] != JWS_ALG:
        got = _excerpt(header["alg"]) if isinstance(header["alg"], str) else type(header["alg"]).__name__
        raise ReceiptError(f"{_PREFIX}the header's alg must be {JWS_ALG!r}, got {got}")
    if header["typ"] != JWS_TYP:
        raise ReceiptError(f"{_PREFIX}the header's typ must be {JWS_TYP!r}")
    jwk = header["jwk"]
    _same_keys(jwk, _JWK_MEMBERS, "the header's jwk")
    if jwk["kty"] != "OKP" or jwk["crv"] != "Ed25519":
        raise ReceiptError(f"{_PREFIX}the header's jwk must be an Ed25519 key (kty 'OKP', crv 'Ed25519')")
    x = jwk["x"]
    if not isinstance(x, str):
        raise ReceiptError(f"{_PREFIX}the header's jwk.x must be a string, got {type(x).__name__}")
    public = _b64decode(x, "header's jwk.x")
    if len(public) != PUBLIC_KEY_SIZE:
        raise ReceiptError(f"{_PREFIX}the header's jwk.x must be a {PUBLIC_KEY_SIZE}-byte key, got {len(public)}")
    kid = header["kid"]
    if not isinstance(kid, str) or _HEX16.fullmatch(kid) is None:
        raise ReceiptError(f"{_PREFIX}the header's kid must be 16 lowercase hex digits")
    if kid != key_id(public):
        raise ReceiptError(f"{_PREFIX}the header's kid {kid} is not the id of its jwk ({key_id(public)})")
    return public


def verify_receipt(document: str | bytes, *, public_key: bytes | None = None) -> ConsentReceipt:
    """Verify a receipt and return its fields (with ``key_id`` the signer's); see the module doc.

    Every refusal of the document is a ``ReceiptError``. With ``public_key`` (32 bytes; else
    ``WrongTypeError`` / ``WrongLengthError``), a receipt signed by any other key is refused.
    """
    expected_key = None if public_key is None else public_bytes(public_key, "Ed25519 public key", PUBLIC_KEY_SIZE)
    parts = _split(document, MAX_RECEIPT_SIZE)
    header = _json_object(parts.header_bytes, "header")
    if _canonical(header, "the header") != parts.header_bytes:
        raise ReceiptError(f"{_PREFIX}the header is not RFC 8785 canonical JSON")
    public = _embedded_key(header)
    if expected_key is not None and not hmac.compare_digest(public, expected_key):
        raise ReceiptError(f"{_PREFIX}signed by key {key_id(public)}, not by the expected key {key_id(expected_key)}")
    _check_signature(public, parts)
    payload = _json_object(parts.payload, "payload")
    if _canonical(payload, "the payload") != parts.payload:
        raise ReceiptError(f"{_PREFIX}the payload is not RFC 8785 canonical JSON")
    receipt = _receipt_from(payload, key_id(public))
    if canonical_json(_payload(receipt)) != parts.payload:  # pragma: no cover - the member checks above
        raise ReceiptError(f"{_PREFIX}the payload is not what the receipt's fields give")
    return receipt
