"""KEROS state at rest: CA directories, identity directories, trust stores, sensor registry files.

Layouts (``docs/certificates.md`` has the byte layouts and a worked shell session):

* a CA directory (``cortex-sal ca init``): ``ca.key`` (the 32-byte Ed25519 seed, mode 0600),
  ``root.json`` (public: kind, name, Ed25519 public key), ``revoked.crl`` (the CA's signed
  revocation list, empty at first) and ``issued/SERIAL.cert`` (a copy of every certificate it
  issued: a serial is issued once);
* an identity directory (``ca issue-sensor`` / ``issue-gateway``): ``static.key`` (the 32-byte
  X25519 static private key, mode 0600; absent for a public-key-only issue) and ``static.cert``.

A key file on disk is outside the custody promise of the secure arena (locked, dump-excluded
memory): whoever can read ``ca.key`` can certify any key. Keep CA directories offline or on a
token. Key files are read straight into locked memory; a key file that others can read is refused.

Loaders for the gateway and the sensor: :func:`load_identity` (the static key in locked memory,
and its certificate), :func:`load_trust` (roots and their revocation lists), :func:`load_ca`,
:func:`load_sensor_registry`.
"""

from __future__ import annotations

from pathlib import Path

from ..crypto import Ed25519SigningKey, X25519PrivateKey
from ..crypto.ed25519 import SEED_SIZE
from ..errors import CAFileError, CertificateError, InvalidArgumentError
from ..keros.certificate import (
    CERT_MAX_SIZE,
    CRL_MAGIC,
    CRL_MAX_SIZE,
    CertificateAuthority,
    RootCA,
    TrustStore,
    parse_certificate,
)
from ..keros.registry import SensorRegistry
from .files import MAX_DOCUMENT_SIZE, read_public_file, read_secret_file

__all__ = [
    "CA_KEY_FILE",
    "CERT_FILE",
    "CRL_FILE",
    "ISSUED_DIR",
    "ROOT_FILE",
    "ROOT_MAX_SIZE",
    "STATIC_KEY_FILE",
    "load_ca",
    "load_identity",
    "load_root",
    "load_sensor_registry",
    "load_trust",
]

CA_KEY_FILE = "ca.key"
ROOT_FILE = "root.json"
CRL_FILE = "revoked.crl"
ISSUED_DIR = "issued"
STATIC_KEY_FILE = "static.key"
CERT_FILE = "static.cert"
ROOT_MAX_SIZE = 4096


def load_root(path: str | Path) -> RootCA:
    """A ``root.json`` file (or a CA directory's)."""
    p = Path(path)
    if p.is_dir():
        p = p / ROOT_FILE
    data = read_public_file(p, "CA root file", CAFileError, ROOT_MAX_SIZE)
    try:
        return RootCA.from_json(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise CAFileError(f"CA root file {p} is not UTF-8 text") from None
    except InvalidArgumentError as exc:
        raise CAFileError(f"CA root file {p}: {exc}") from None


def load_ca(directory: str | Path) -> CertificateAuthority:
    """The CA of a directory made by ``ca init``: its signing key read straight into locked memory.

    The caller owns the result and purges it (``with load_ca(d) as ca: ...``).
    """
    d = Path(directory)
    if not d.is_dir():
        raise CAFileError(f"CA directory {d} does not exist")
    root = load_root(d / ROOT_FILE)
    with read_secret_file(d / CA_KEY_FILE, SEED_SIZE, "CA key file", CAFileError) as seed:
        key = Ed25519SigningKey(seed)
    try:
        if key.public_key() != root.public_key:
            raise CAFileError(f"CA key file {d / CA_KEY_FILE} does not belong to the root in {d / ROOT_FILE}")
        return CertificateAuthority(key, root.kind, root.name)
    except BaseException:
        key.purge()
        raise


def load_identity(directory: str | Path) -> tuple[X25519PrivateKey, bytes]:
    """``(static private key, certificate)`` of an identity directory made by ``ca issue-*``.

    The private key is read straight into locked memory (never ``bytes``); the certificate must
    certify exactly its public key. The caller owns the key and purges it.
    """
    d = Path(directory)
    if not d.is_dir():
        raise CAFileError(f"identity directory {d} does not exist")
    cert = read_public_file(d / CERT_FILE, "certificate", CAFileError, CERT_MAX_SIZE)
    parsed = parse_certificate(cert)  # MALFORMED before the key is even read
    key = X25519PrivateKey(read_secret_file(d / STATIC_KEY_FILE, 32, "static key file", CAFileError))
    try:
        if key.public_bytes() != parsed.subject_key:
            raise CAFileError(f"certificate {d / CERT_FILE} certifies a different key than {d / STATIC_KEY_FILE}")
    except BaseException:
        key.purge()
        raise
    return key, cert


def load_trust(*paths: str | Path) -> TrustStore:
    """A trust store from CA directories, ``root.json`` files and ``revoked.crl`` files.

    A directory contributes its ``root.json`` and its ``revoked.crl`` (both required); a file is a
    root (JSON) or a revocation list (by its magic). Roots are added first, then every list is
    verified against its root (an unsigned, forged or unknown-issuer list is refused).
    """
    if not paths:
        raise CAFileError("no trust roots given: name CA directories, root.json or revoked.crl files")
    roots: list[RootCA] = []
    lists: list[tuple[Path, bytes]] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            roots.append(load_root(p / ROOT_FILE))
            lists.append((p / CRL_FILE, read_public_file(p / CRL_FILE, "revocation list", CAFileError, CRL_MAX_SIZE)))
            continue
        data = read_public_file(p, "trust file", CAFileError, CRL_MAX_SIZE)
        if data.startswith(CRL_MAGIC):
            lists.append((p, data))
        else:
            roots.append(load_root(p))
    trust = TrustStore()
    for root in roots:
        trust.add_root(root)
    for p, data in lists:
        try:
            trust.add_revocation_list(data)
        except CertificateError as exc:
            raise CertificateError(exc.reason, f"revocation list {p}: {exc.message}") from None
    return trust


def load_sensor_registry(path: str | Path, *, extend: SensorRegistry | None = None) -> SensorRegistry:
    """A sensor registry file; with ``extend``, its models added to (a copy of) that registry."""
    data = read_public_file(path, "sensor registry", InvalidArgumentError, MAX_DOCUMENT_SIZE)
    return SensorRegistry.from_json(data, f"sensor registry {path}", extend=extend)
