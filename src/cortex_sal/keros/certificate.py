"""Certified static keys: a compact binary certificate, its verification, roots and revocation lists.

A certificate binds an X25519 static public key (the Noise ``s``) to an identity (a sensor model
and serial, or a gateway name) for a validity window, signed with Ed25519 by a root CA:
*manufacturer* CAs certify sensors, *site* CAs certify gateways. There are no chains: a root
signs leaves directly. The format is fixed-layout binary (``docs/certificates.md``) so that
parsing is a handful of ``struct`` reads with exact lengths; anything malformed is refused with
:attr:`CertificateReason.MALFORMED` before any cryptography runs.

``verify_certificate`` checks, in this order, and raises :class:`CertificateError` with the first
failing reason: parse -> issuer known -> signature -> kind -> validity window -> certified key
equals the Noise remote static key -> revocation (the CA's signed list) -> the KEROS registry
(sensors: model known, at or above the capability minima, not revoked).

The CA's signing key lives in locked memory (:class:`~cortex_sal.crypto.Ed25519SigningKey`);
everything in this module is public data. No I/O here: files are :mod:`cortex_sal.store.keros`'s business.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import hmac
import json
import math
import re
import struct
import threading
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

from .. import strict_json
from ..checks import public_bytes
from ..crypto import Ed25519SigningKey, ed25519_verify, x25519_shared_secret
from ..errors import (
    CertificateError,
    CertificateReason,
    InvalidArgumentError,
    InvalidSignatureError,
    LowOrderPointError,
    SensorNotCertifiedError,
    WrongTypeError,
)
from ..securemem import SecureKeyBuffer
from .registry import SensorModel, SensorRegistry

Reason = CertificateReason

CERT_MAGIC = b"CXCT"
CRL_MAGIC = b"CXRL"
VERSION = 1
CERT_CONTEXT = b"cortex-sal certificate v1\x00"
CRL_CONTEXT = b"cortex-sal revocation list v1\x00"
ROOT_FORMAT = "cortex-sal ca root v1"

KEY_SIZE = 32
KEY_ID_SIZE = 32
SIGNATURE_SIZE = 64
MAX_SERIAL = 64
MAX_NAME = 64
MAX_U64 = 2**64 - 1
MAX_REVOKED = 1_000_000

# magic, version, kind, subject key, not_before, not_after, issuer key id, serial length
_CERT_HEAD = struct.Struct(">4sBB32sQQ32sB")
CERT_MIN_SIZE = _CERT_HEAD.size + 1 + 1 + 1 + SIGNATURE_SIZE
CERT_MAX_SIZE = _CERT_HEAD.size + MAX_SERIAL + 1 + MAX_NAME + SIGNATURE_SIZE
# magic, version, issuer key id, issued_at, count
_CRL_HEAD = struct.Struct(">4sB32sQI")
CRL_MAX_SIZE = _CRL_HEAD.size + MAX_REVOKED * (1 + MAX_SERIAL) + SIGNATURE_SIZE

_SERIAL_RE = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PRINTABLE_ASCII_RE = re.compile(rb"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class CertificateKind(IntEnum):
    """What a certificate certifies (the byte at offset 5)."""

    SENSOR = 1
    GATEWAY = 2


class CAKind(StrEnum):
    """A root's role: manufacturer CAs certify sensors, site CAs certify gateways."""

    MANUFACTURER = "manufacturer"
    SITE = "site"

    @property
    def issues(self) -> CertificateKind:
        return CertificateKind.SENSOR if self is CAKind.MANUFACTURER else CertificateKind.GATEWAY


_KIND_NAMES = {"sensor": CertificateKind.SENSOR, "gateway": CertificateKind.GATEWAY}


def key_id(public_key: bytes) -> bytes:
    """The issuer key id: SHA-256 of the CA's 32-byte Ed25519 public key."""
    return hashlib.sha256(public_bytes(public_key, "Ed25519 public key", KEY_SIZE)).digest()


# --- field rules (shared by issuing and parsing) ------------------------------------------------


def _malformed(message: str) -> CertificateError:
    return CertificateError(Reason.MALFORMED, message)


def _decode_serial(raw: bytes, what: str) -> str:
    if _SERIAL_RE.fullmatch(raw) is None:
        raise _malformed(f"{what} serial is not 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit")
    return raw.decode("ascii")


def _decode_name(raw: bytes, what: str, field: str) -> str:
    """A bounded UTF-8 name: 1-64 bytes, no control/format characters, no outer whitespace."""
    if _PRINTABLE_ASCII_RE.fullmatch(raw) is not None:  # the common case, without unicodedata
        return raw.decode("ascii")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(f"{what}{field} is not valid UTF-8") from None
    if not text or text != text.strip():
        raise _malformed(f"{what}{field} is empty or has leading/trailing whitespace")
    if any(unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in text):
        raise _malformed(f"{what}{field} contains a control or format character")
    return text


def check_serial(serial: object) -> str:
    """Validate a serial for issuing: 1-64 chars of ``[A-Za-z0-9._-]``, starting alphanumeric."""
    if not isinstance(serial, str):
        raise WrongTypeError(f"serial must be a str, got {type(serial).__name__}")
    if _SERIAL_RE.fullmatch(serial.encode("utf-8", "surrogatepass")) is None:
        raise InvalidArgumentError(
            f"serial {serial!r} must be 1-64 characters of [A-Za-z0-9._-] starting with a letter or digit"
        )
    return serial


def check_name(name: object, field: str) -> str:
    """Validate a model id, gateway or CA name for issuing (1-64 UTF-8 bytes, printable)."""
    if not isinstance(name, str):
        raise WrongTypeError(f"{field} must be a str, got {type(name).__name__}")
    raw = name.encode("utf-8", "surrogatepass")
    if not 1 <= len(raw) <= MAX_NAME:
        raise InvalidArgumentError(f"{field} must be 1-{MAX_NAME} bytes of UTF-8, got {len(raw)}")
    try:
        return _decode_name(raw, "", field)
    except CertificateError as exc:
        raise InvalidArgumentError(f"{field} {name!r} refused: {exc.message}") from None


def _check_kind(kind: object) -> CertificateKind:
    if isinstance(kind, CertificateKind):
        return kind
    if isinstance(kind, str):
        found = _KIND_NAMES.get(kind)
        if found is None:
            raise InvalidArgumentError(f"kind must be 'sensor' or 'gateway', got {kind!r}")
        return found
    raise WrongTypeError(f"kind must be a CertificateKind or 'sensor'/'gateway', got {type(kind).__name__}")


def _check_time(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WrongTypeError(f"{what} must be an int (seconds since the epoch), got {type(value).__name__}")
    if not 0 <= value <= MAX_U64:
        raise InvalidArgumentError(f"{what} must be between 0 and 2**64-1, got {value}")
    return value


# --- the certificate ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certificate:
    """A parsed, *unverified* certificate (``parse_certificate``); trust nothing in it yet."""

    kind: CertificateKind
    subject_key: bytes
    serial: str
    name: str
    not_before: int
    not_after: int
    issuer_key_id: bytes
    signature: bytes
    tbs: bytes  # the signed bytes (everything before the signature)


@dataclass(frozen=True, slots=True)
class VerifiedCertificate:
    """What ``verify_certificate`` proved: this identity owns ``subject_key`` (the Noise ``rs``)."""

    kind: CertificateKind
    serial: str
    name: str  # the sensor's model id or the gateway's name
    subject_key: bytes
    not_before: int
    not_after: int
    issuer_key_id: bytes
    issuer_name: str
    model: SensorModel | None  # the registry's certified model (sensors only)

    @property
    def model_id(self) -> str | None:
        return self.name if self.kind is CertificateKind.SENSOR else None

    @property
    def gateway_name(self) -> str | None:
        return self.name if self.kind is CertificateKind.GATEWAY else None

    @property
    def sensor_id(self) -> str | None:
        """``MODEL/SERIAL``, the registry's sensor id (sensors only)."""
        return f"{self.name}/{self.serial}" if self.kind is CertificateKind.SENSOR else None


def _parse(data: bytes) -> tuple[int, bytes, str, str, int, int, bytes, int]:
    """(kind, subject, serial, name, not_before, not_after, issuer id, end of tbs) or MALFORMED."""
    size = len(data)
    if not CERT_MIN_SIZE <= size <= CERT_MAX_SIZE:
        raise _malformed(f"certificate is {size} bytes; a certificate is {CERT_MIN_SIZE}-{CERT_MAX_SIZE} bytes")
    magic, version, kind, subject, not_before, not_after, issuer, serial_len = _CERT_HEAD.unpack_from(data)
    if magic != CERT_MAGIC:
        raise _malformed("not a cortex-sal certificate (bad magic)")
    if version != VERSION:
        raise _malformed(f"certificate version {version} is not supported (only {VERSION})")
    if kind != CertificateKind.SENSOR and kind != CertificateKind.GATEWAY:
        raise _malformed(f"certificate kind {kind} is unknown")
    if not_before >= not_after:
        raise _malformed("certificate validity window is empty (not_before >= not_after)")
    pos = _CERT_HEAD.size
    if not 1 <= serial_len <= MAX_SERIAL or pos + serial_len + 1 + SIGNATURE_SIZE >= size:
        raise _malformed(f"certificate serial length {serial_len} is out of bounds")
    serial = _decode_serial(data[pos : pos + serial_len], "certificate")
    pos += serial_len
    name_len = data[pos]
    pos += 1
    if not 1 <= name_len <= MAX_NAME or pos + name_len + SIGNATURE_SIZE != size:
        raise _malformed(f"certificate name length {name_len} disagrees with its size {size}")
    field = "model id" if kind == CertificateKind.SENSOR else "gateway name"
    name = _decode_name(data[pos : pos + name_len], "certificate ", field)
    if kind == CertificateKind.SENSOR and "/" in name:
        raise _malformed("certificate model id contains '/'")
    return kind, subject, serial, name, not_before, not_after, issuer, pos + name_len


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise WrongTypeError(f"{what} must be bytes, got {type(data).__name__}")


# Parsed certificates by their exact bytes: a party parses its own certificate on every handshake
# (a gateway presents the same one to every sensor). A Certificate is immutable; a refused one is
# not remembered. Bounded: emptied when full.
PARSE_CACHE_SIZE = 256
_parsed: dict[bytes, Certificate] = {}


def parse_certificate(data: bytes) -> Certificate:
    """Parse strictly (exact lengths, bounded strings, no trailing bytes); nothing is verified."""
    data = _as_bytes(data, "certificate")
    cert = _parsed.get(data)
    if cert is None:
        kind, subject, serial, name, not_before, not_after, issuer, end = _parse(data)
        cert = Certificate(
            CertificateKind(kind), subject, serial, name, not_before, not_after, issuer, data[end:], data[:end]
        )
        if len(_parsed) >= PARSE_CACHE_SIZE:
            _parsed.clear()
        _parsed[data] = cert
    return cert


def issue_certificate(
    signing_key: Ed25519SigningKey,
    *,
    kind: CertificateKind | str,
    subject_key: bytes,
    serial: str,
    name: str,
    not_before: int,
    not_after: int,
) -> bytes:
    """Sign a certificate (the raw primitive: it does not check the CA's role; ``CertificateAuthority`` does).

    Refuses a subject key that is a low-order X25519 point, a bad serial or name, an empty window.
    """
    if not isinstance(signing_key, Ed25519SigningKey):
        raise WrongTypeError(f"signing_key must be an Ed25519SigningKey, got {type(signing_key).__name__}")
    kind = _check_kind(kind)
    subject = public_bytes(subject_key, "subject X25519 public key", KEY_SIZE)
    _check_x25519_public(subject)
    serial_raw = check_serial(serial).encode("ascii")
    field = "model id" if kind is CertificateKind.SENSOR else "gateway name"
    name_raw = check_name(name, field).encode("utf-8")
    if kind is CertificateKind.SENSOR and "/" in name:
        raise InvalidArgumentError(f"model id {name!r} must not contain '/'")
    nb, na = _check_time(not_before, "not_before"), _check_time(not_after, "not_after")
    if nb >= na:
        raise InvalidArgumentError(f"not_before ({nb}) must be earlier than not_after ({na})")
    tbs = b"".join(
        (
            _CERT_HEAD.pack(
                CERT_MAGIC, VERSION, kind, subject, nb, na, key_id(signing_key.public_key()), len(serial_raw)
            ),
            serial_raw,
            bytes((len(name_raw),)),
            name_raw,
        )
    )
    cert = tbs + signing_key.sign(CERT_CONTEXT + tbs)
    _parse(cert)  # what we sign, we can read back
    return cert


def _check_x25519_public(subject: bytes) -> None:
    """Refuse a low-order point (all-zero DH with anyone): libsodium's own check, on a throwaway key."""
    probe = SecureKeyBuffer()
    with probe:
        try:
            x25519_shared_secret(probe, subject).secure_purge()
        except LowOrderPointError:
            raise InvalidArgumentError("subject key is a low-order X25519 point; it cannot be a static key") from None


# --- roots and the trust store --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RootCA:
    """A trusted root: its role, its name, its Ed25519 public key (and the key id derived from it)."""

    kind: CAKind
    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.kind, CAKind):
            try:
                object.__setattr__(self, "kind", CAKind(self.kind))
            except ValueError:
                raise InvalidArgumentError(f"CA kind must be 'manufacturer' or 'site', got {self.kind!r}") from None
        check_name(self.name, "CA name")
        object.__setattr__(self, "public_key", public_bytes(self.public_key, "CA public key", KEY_SIZE))

    @property
    def key_id(self) -> bytes:
        return key_id(self.public_key)

    def to_json(self) -> str:
        doc = {"format": ROOT_FORMAT, "kind": self.kind.value, "name": self.name, "public_key": self.public_key.hex()}
        return json.dumps(doc, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> RootCA:
        """Strict: exactly the four fields, the right format tag, a 64-hex-digit key."""
        doc = strict_json.loads(text, InvalidArgumentError, "CA root")
        if not isinstance(doc, dict) or set(doc) != {"format", "kind", "name", "public_key"}:
            raise InvalidArgumentError("CA root must be an object with exactly format, kind, name, public_key")
        if doc["format"] != ROOT_FORMAT:
            raise InvalidArgumentError(f"CA root format must be {ROOT_FORMAT!r}, got {doc['format']!r}")
        key_hex = doc["public_key"]
        if not isinstance(key_hex, str) or re.fullmatch(r"[0-9a-f]{64}", key_hex) is None:
            raise InvalidArgumentError("CA root public_key must be 64 lowercase hex digits")
        if not isinstance(doc["kind"], str) or not isinstance(doc["name"], str):
            raise InvalidArgumentError("CA root kind and name must be strings")
        return cls(doc["kind"], doc["name"], bytes.fromhex(key_hex))  # type: ignore[arg-type]  # __post_init__ converts the str to a CAKind (or refuses it)


@dataclass(frozen=True, slots=True)
class RevocationList:
    """A CA's signed list of revoked serials (verified when it enters a ``TrustStore``)."""

    issuer_key_id: bytes
    issued_at: int
    serials: frozenset[str]


class TrustStore:
    """Trusted roots by key id, and the newest verified revocation list of each."""

    __slots__ = ("_lists", "_revoked", "_roots")

    def __init__(self, roots: Iterable[RootCA] = ()) -> None:
        self._roots: dict[bytes, RootCA] = {}
        self._lists: dict[bytes, RevocationList] = {}
        self._revoked: dict[bytes, frozenset[str]] = {}
        for root in roots:
            self.add_root(root)

    def add_root(self, root: RootCA) -> None:
        if not isinstance(root, RootCA):
            raise WrongTypeError(f"root must be a RootCA, got {type(root).__name__}")
        kid = root.key_id
        held = self._roots.get(kid)
        if held is not None:
            if held == root:
                return
            raise InvalidArgumentError(f"a different root with key id {kid.hex()[:16]} is already trusted")
        self._roots[kid] = root

    def add_revocation_list(self, data: bytes) -> RevocationList:
        """Verify a signed revocation list against its (already trusted) CA and keep it.

        Refuses MALFORMED, UNKNOWN_ISSUER, BAD_SIGNATURE, and STALE (not newer than the one held,
        unless identical): a list can never be rolled back.
        """
        data = _as_bytes(data, "revocation list")
        crl, tbs_end = _parse_crl(data)
        root = self._roots.get(crl.issuer_key_id)
        if root is None:
            raise CertificateError(
                Reason.UNKNOWN_ISSUER, f"revocation list issuer {crl.issuer_key_id.hex()[:16]} is not a trusted root"
            )
        try:
            ed25519_verify(root.public_key, CRL_CONTEXT + data[:tbs_end], data[tbs_end:])
        except InvalidSignatureError:
            raise CertificateError(
                Reason.BAD_SIGNATURE, f"revocation list signature does not verify under CA {root.name!r}"
            ) from None
        held = self._lists.get(crl.issuer_key_id)
        if held is not None and held != crl:
            if crl.issued_at <= held.issued_at:
                raise CertificateError(
                    Reason.STALE,
                    f"revocation list of CA {root.name!r} issued at {crl.issued_at} is not newer than "
                    f"the one held (issued at {held.issued_at})",
                )
        self._lists[crl.issuer_key_id] = crl
        self._revoked[crl.issuer_key_id] = crl.serials
        return crl

    def roots(self) -> list[RootCA]:
        return list(self._roots.values())

    def root(self, issuer_key_id: bytes) -> RootCA | None:
        return self._roots.get(issuer_key_id)

    def revocation_list(self, issuer_key_id: bytes) -> RevocationList | None:
        return self._lists.get(issuer_key_id)

    def is_revoked(self, issuer_key_id: bytes, serial: str) -> bool:
        return serial in self._revoked.get(issuer_key_id, ())

    def __len__(self) -> int:
        return len(self._roots)

    def __repr__(self) -> str:
        return f"<TrustStore {len(self._roots)} roots, {len(self._lists)} revocation lists>"


# --- revocation lists ------------------------------------------------------------------------------


def _parse_crl(data: bytes) -> tuple[RevocationList, int]:
    size = len(data)
    if not _CRL_HEAD.size + SIGNATURE_SIZE <= size <= CRL_MAX_SIZE:
        raise _malformed(f"revocation list is {size} bytes, outside the bounds of the format")
    magic, version, issuer, issued_at, count = _CRL_HEAD.unpack_from(data)
    if magic != CRL_MAGIC:
        raise _malformed("not a cortex-sal revocation list (bad magic)")
    if version != VERSION:
        raise _malformed(f"revocation list version {version} is not supported (only {VERSION})")
    if count > MAX_REVOKED:
        raise _malformed(f"revocation list counts {count} serials, more than {MAX_REVOKED}")
    end = size - SIGNATURE_SIZE
    pos = _CRL_HEAD.size
    serials: list[str] = []
    previous = b""
    for _ in range(count):
        if pos >= end:
            raise _malformed("revocation list is truncated")
        n = data[pos]
        raw = data[pos + 1 : pos + 1 + n]
        if n == 0 or pos + 1 + n > end:
            raise _malformed("revocation list serial length is out of bounds")
        if raw <= previous:
            raise _malformed("revocation list serials are not in strictly ascending order")
        serials.append(_decode_serial(raw, "revocation list"))
        previous = raw
        pos += 1 + n
    if pos != end:
        raise _malformed(f"revocation list has {end - pos} unexpected bytes before its signature")
    return RevocationList(issuer, issued_at, frozenset(serials)), end


def parse_revocation_list(data: bytes) -> RevocationList:
    """Parse strictly; nothing is verified (``TrustStore.add_revocation_list`` verifies)."""
    return _parse_crl(_as_bytes(data, "revocation list"))[0]


def sign_revocation_list(signing_key: Ed25519SigningKey, serials: Iterable[str], *, issued_at: int) -> bytes:
    """The CA's signed list of revoked serials (sorted, unique), dated ``issued_at``."""
    if not isinstance(signing_key, Ed25519SigningKey):
        raise WrongTypeError(f"signing_key must be an Ed25519SigningKey, got {type(signing_key).__name__}")
    issued_at = _check_time(issued_at, "issued_at")
    raws = sorted({check_serial(s).encode("ascii") for s in serials})
    if len(raws) > MAX_REVOKED:
        raise InvalidArgumentError(f"a revocation list holds at most {MAX_REVOKED} serials")
    parts = [_CRL_HEAD.pack(CRL_MAGIC, VERSION, key_id(signing_key.public_key()), issued_at, len(raws))]
    parts.extend(bytes((len(r),)) + r for r in raws)
    tbs = b"".join(parts)
    return tbs + signing_key.sign(CRL_CONTEXT + tbs)


# --- the CA -------------------------------------------------------------------------------------------


class CertificateAuthority:
    """A root CA: its signing key (locked memory, owned: ``purge()``/``with`` zeroes it), role and name."""

    __slots__ = ("_key", "root")

    def __init__(self, signing_key: Ed25519SigningKey, kind: CAKind | str, name: str) -> None:
        if not isinstance(signing_key, Ed25519SigningKey):
            raise WrongTypeError(f"signing_key must be an Ed25519SigningKey, got {type(signing_key).__name__}")
        self.root = RootCA(kind, name, signing_key.public_key())  # type: ignore[arg-type]  # RootCA.__post_init__ converts a str kind
        self._key = signing_key

    @classmethod
    def generate(cls, kind: CAKind | str, name: str) -> CertificateAuthority:
        key = Ed25519SigningKey.generate()
        try:
            return cls(key, kind, name)
        except BaseException:
            key.purge()
            raise

    @property
    def kind(self) -> CAKind:
        return self.root.kind

    def _require(self, kind: CertificateKind) -> None:
        if self.root.kind.issues is not kind:
            raise InvalidArgumentError(
                f"CA {self.root.name!r} is a {self.root.kind.value} CA: it issues "
                f"{self.root.kind.issues.name.lower()} certificates, not {kind.name.lower()} certificates"
            )

    def issue_sensor(
        self,
        subject_key: bytes,
        *,
        model_id: str,
        serial: str,
        not_before: int,
        not_after: int,
        registry: SensorRegistry | None = None,
    ) -> bytes:
        """Certify a sensor's static key; the model must be admitted by ``registry`` (default: packaged)."""
        self._require(CertificateKind.SENSOR)
        check_name(model_id, "model id")
        check_serial(serial)
        if "/" in model_id:
            raise InvalidArgumentError(f"model id {model_id!r} must not contain '/'")
        _registry(registry).admit(f"{model_id}/{serial}")
        return issue_certificate(
            self._key,
            kind=CertificateKind.SENSOR,
            subject_key=subject_key,
            serial=serial,
            name=model_id,
            not_before=not_before,
            not_after=not_after,
        )

    def issue_gateway(
        self, subject_key: bytes, *, gateway_name: str, serial: str, not_before: int, not_after: int
    ) -> bytes:
        """Certify a gateway's static key."""
        self._require(CertificateKind.GATEWAY)
        return issue_certificate(
            self._key,
            kind=CertificateKind.GATEWAY,
            subject_key=subject_key,
            serial=serial,
            name=gateway_name,
            not_before=not_before,
            not_after=not_after,
        )

    def revocation_list(self, serials: Iterable[str], *, issued_at: int) -> bytes:
        return sign_revocation_list(self._key, serials, issued_at=issued_at)

    def purge(self) -> None:
        self._key.purge()

    def __enter__(self) -> CertificateAuthority:
        return self

    def __exit__(self, *exc: object) -> None:
        self.purge()

    def __repr__(self) -> str:
        return f"<CertificateAuthority {self.root.kind.value} {self.root.name!r} {self._key!r}>"


# --- verification -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _default_registry() -> SensorRegistry:
    return SensorRegistry.default()


def _registry(registry: SensorRegistry | None) -> SensorRegistry:
    if registry is None:
        return _default_registry()
    if not isinstance(registry, SensorRegistry):
        raise WrongTypeError(f"registry must be a SensorRegistry, got {type(registry).__name__}")
    return registry


def _check_now(now: float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, bool) or not isinstance(now, int | float):
        raise WrongTypeError(f"now must be a number of seconds since the epoch, got {type(now).__name__}")
    if not math.isfinite(now):
        raise InvalidArgumentError(f"now must be finite, got {now!r}")
    return float(now)


# Certificates whose signature verified, by (root public key, exact certificate bytes): a sensor
# reconnecting to its gateway presents the same bytes each time, and the Ed25519 verification is
# the largest part of a check. Every other check (issuer still trusted, kind, window, key binding,
# revocation, registry) still runs on every call; only a successful signature is remembered.
SIGNATURE_CACHE_SIZE = 4096
_verified_signatures: collections.OrderedDict[tuple[bytes, bytes], None] = collections.OrderedDict()
_signature_lock = threading.Lock()


def _signature_seen(root_key: bytes, data: bytes) -> bool:
    with _signature_lock:
        if (root_key, data) in _verified_signatures:
            _verified_signatures.move_to_end((root_key, data))
            return True
        return False


def _remember_signature(root_key: bytes, data: bytes) -> None:
    with _signature_lock:
        _verified_signatures[(root_key, data)] = None
        if len(_verified_signatures) > SIGNATURE_CACHE_SIZE:
            _verified_signatures.popitem(last=False)


def clear_signature_cache() -> None:
    """Forget every remembered signature (the next check of each certificate verifies it again)."""
    with _signature_lock:
        _verified_signatures.clear()


def verify_certificate(
    cert: bytes,
    *,
    remote_static: bytes,
    kind: CertificateKind | str,
    trust: TrustStore,
    now: float | None = None,
    registry: SensorRegistry | None = None,
) -> VerifiedCertificate:
    """Verify ``cert`` for the peer whose Noise static key is ``remote_static``; raise with the reason.

    Order: parse (MALFORMED) -> issuer known (UNKNOWN_ISSUER) -> signature (BAD_SIGNATURE) ->
    kind, and the issuer's role (WRONG_KIND) -> window (NOT_YET_VALID, EXPIRED; ``not_before <= now
    <= not_after``) -> certified key equals ``remote_static`` (WRONG_KEY) -> the CA's revocation list
    (REVOKED) -> sensors only: ``registry`` (default: the packaged one) admits ``MODEL/SERIAL``
    (MODEL_UNKNOWN, MODEL_BELOW_MINIMUM, MODEL_REVOKED).
    """
    data = _as_bytes(cert, "certificate")
    rs = public_bytes(remote_static, "remote static key", KEY_SIZE)
    expected = _check_kind(kind)
    if not isinstance(trust, TrustStore):
        raise WrongTypeError(f"trust must be a TrustStore, got {type(trust).__name__}")
    when = _check_now(now)
    reg = _registry(registry)

    got_kind, subject, serial, name, not_before, not_after, issuer, end = _parse(data)
    root = trust._roots.get(issuer)
    if root is None:
        raise CertificateError(Reason.UNKNOWN_ISSUER, f"certificate issuer {issuer.hex()[:16]} is not a trusted root")
    if not _signature_seen(root.public_key, data):
        try:
            ed25519_verify(root.public_key, CERT_CONTEXT + data[:end], data[end:])
        except InvalidSignatureError:
            raise CertificateError(
                Reason.BAD_SIGNATURE, f"certificate signature does not verify under CA {root.name!r}"
            ) from None
        _remember_signature(root.public_key, data)
    if got_kind != expected:
        raise CertificateError(
            Reason.WRONG_KIND,
            f"expected a {expected.name.lower()} certificate, got a {CertificateKind(got_kind).name.lower()} one",
        )
    if root.kind.issues is not expected:
        raise CertificateError(
            Reason.WRONG_KIND,
            f"{expected.name.lower()} certificate signed by the {root.kind.value} CA {root.name!r}, "
            f"which may issue only {root.kind.issues.name.lower()} certificates",
        )
    if when < not_before:
        raise CertificateError(Reason.NOT_YET_VALID, f"certificate {serial} is not valid before {not_before}")
    if when > not_after:
        raise CertificateError(Reason.EXPIRED, f"certificate {serial} expired at {not_after}")
    if not hmac.compare_digest(subject, rs):
        raise CertificateError(
            Reason.WRONG_KEY, f"certificate {serial} certifies a different static key than the peer's Noise key"
        )
    if serial in trust._revoked.get(issuer, ()):
        raise CertificateError(Reason.REVOKED, f"certificate serial {serial} is revoked by CA {root.name!r}")
    model = _admit(reg, name, serial) if expected is CertificateKind.SENSOR else None
    return VerifiedCertificate(expected, serial, name, subject, not_before, not_after, issuer, root.name, model)


def _admit(registry: SensorRegistry, model_id: str, serial: str) -> SensorModel:
    """The registry's own admission; on refusal, say which of its checks failed.

    Precedence when several fail: unknown model, then below the minima, then revoked.
    """
    sensor_id = f"{model_id}/{serial}"
    try:
        return registry.admit(sensor_id)
    except SensorNotCertifiedError as exc:
        known = {m.model_id: m for m in registry.models()}
        model = known.get(model_id)
        if model is None:
            reason = Reason.MODEL_UNKNOWN
        else:
            # the same registry without any revocation: if it refuses too, the minima are the cause
            probe = SensorRegistry([model], min_snr_db=registry.min_snr_db, min_bits=registry.min_bits)
            try:
                probe.admit(sensor_id)
                reason = Reason.MODEL_REVOKED
            except SensorNotCertifiedError:
                reason = Reason.MODEL_BELOW_MINIMUM
        raise CertificateError(reason, f"registry refuses sensor {sensor_id!r}: {exc}") from None


__all__ = [
    "CERT_CONTEXT",
    "CRL_CONTEXT",
    "CAKind",
    "Certificate",
    "CertificateAuthority",
    "CertificateError",
    "CertificateKind",
    "CertificateReason",
    "RevocationList",
    "RootCA",
    "TrustStore",
    "VerifiedCertificate",
    "check_name",
    "check_serial",
    "issue_certificate",
    "key_id",
    "parse_certificate",
    "parse_revocation_list",
    "sign_revocation_list",
    "verify_certificate",
]
