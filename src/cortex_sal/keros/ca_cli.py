"""``cortex-sal ca``: root CAs, certified static keys for sensors and gateways, revocation.

Files (``docs/certificates.md`` has the byte layouts and a worked shell session):

* a CA directory (``ca init``): ``ca.key`` (the 32-byte Ed25519 seed, mode 0600), ``root.json``
  (public: kind, name, Ed25519 public key), ``revoked.crl`` (the CA's signed revocation list, empty
  at first) and ``issued/SERIAL.cert`` (a copy of every certificate it issued: a serial is issued
  once);
* an identity directory (``ca issue-sensor`` / ``issue-gateway``): ``static.key`` (the 32-byte
  X25519 static private key, mode 0600; absent with ``--public-key``) and ``static.cert``.

A key file on disk is outside the custody promise of the secure arena (locked, dump-excluded
memory): whoever can read ``ca.key`` can certify any key. Keep CA directories offline or on a
token. Key files are created 0600 with ``O_EXCL | O_NOFOLLOW`` (never overwritten), written from
locked memory and read back straight into it; a key file that others can read is refused.

Library loaders for the gateway and the sensor: :func:`load_identity` (the static key in locked
memory, and its certificate), :func:`load_trust` (roots and their revocation lists),
:func:`load_ca`.

Every command exits 0 on success and 2 with a one-line message on bad input or a refusal; a
refused command leaves no file behind.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from .._keyfiles import (
    create_public_file,
    create_secret_file,
    guarded,
    read_public_file,
    read_secret_file,
    replace_public_file,
    timestamp_arg,
)
from ..crypto import Ed25519SigningKey, X25519PrivateKey
from ..crypto.ed25519 import SEED_SIZE
from ..errors import CAFileError, CertificateError, InvalidArgumentError
from ..securemem import SecureKeyBuffer
from .certificate import (
    CERT_MAGIC,
    CERT_MAX_SIZE,
    CRL_MAGIC,
    CRL_MAX_SIZE,
    CAKind,
    CertificateAuthority,
    CertificateKind,
    RootCA,
    TrustStore,
    check_name,
    check_serial,
    parse_certificate,
    parse_revocation_list,
    verify_certificate,
)
from .registry import SensorRegistry

__all__ = [
    "CA_KEY_FILE",
    "CERT_FILE",
    "CRL_FILE",
    "ISSUED_DIR",
    "ROOT_FILE",
    "STATIC_KEY_FILE",
    "CAFileError",
    "add_ca_parser",
    "load_ca",
    "load_identity",
    "load_root",
    "load_trust",
]

CA_KEY_FILE = "ca.key"
ROOT_FILE = "root.json"
CRL_FILE = "revoked.crl"
ISSUED_DIR = "issued"
STATIC_KEY_FILE = "static.key"
CERT_FILE = "static.cert"

CLOCK_SKEW_S = 300  # not_before is backdated this much: a device clock a little behind still accepts
MAX_DAYS = 36_500
ROOT_MAX_SIZE = 4096
_HEX_KEY_RE = re.compile(r"[0-9a-fA-F]{64}")


# --- loaders (library API) ------------------------------------------------------------------------


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


# --- helpers ----------------------------------------------------------------------------------------


class _Undo:
    """Paths created so far by one command, removed (newest first) if the command fails."""

    def __init__(self) -> None:
        self._paths: list[Path] = []

    def mkdir(self, path: Path) -> None:
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._paths.extend(reversed(missing))

    def created(self, path: Path) -> None:
        self._paths.append(path)

    def rollback(self) -> None:
        for p in reversed(self._paths):
            try:
                if p.is_dir() and not p.is_symlink():
                    p.rmdir()
                else:
                    p.unlink(missing_ok=True)
            except OSError:
                pass
        self._paths.clear()


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _utc(t: int | float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"{t} (epoch seconds)"


def _now(args: argparse.Namespace) -> int:
    return int(time.time() if args.now is None else args.now)


def _check_days(days: int) -> int:
    if not 1 <= days <= MAX_DAYS:
        raise CAFileError(f"--days must be between 1 and {MAX_DAYS}, got {days}")
    return days


def _public_key_arg(text: str) -> bytes:
    if _HEX_KEY_RE.fullmatch(text) is None:
        raise CAFileError("--public-key must be 64 hex digits (a 32-byte X25519 public key)")
    return bytes.fromhex(text)


def _refuse_existing(*paths: Path) -> None:
    for p in paths:
        if p.exists() or p.is_symlink():
            raise CAFileError(f"{p} already exists; refusing to overwrite it")


def _ca_dir(path: str) -> Path:
    d = Path(path)
    if not (d / ROOT_FILE).is_file():
        raise CAFileError(f"{d} is not a CA directory (no {ROOT_FILE}); create one with 'cortex-sal ca init'")
    return d


# --- commands -----------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, console: Console) -> int:
    kind = CAKind(args.kind)
    name = check_name(args.name, "CA name")
    out = Path(args.out)
    _refuse_existing(out / CA_KEY_FILE, out / ROOT_FILE, out / CRL_FILE, out / ISSUED_DIR)
    undo = _Undo()
    try:
        undo.mkdir(out)
        with SecureKeyBuffer() as seed:
            create_secret_file(out / CA_KEY_FILE, seed, "CA key file", CAFileError)
            undo.created(out / CA_KEY_FILE)
            key = Ed25519SigningKey(seed)
        try:
            ca = CertificateAuthority(key, kind, name)
        except BaseException:
            key.purge()
            raise
        with ca:
            crl = ca.revocation_list([], issued_at=_now(args))
            root = ca.root
        create_public_file(out / ROOT_FILE, (root.to_json() + "\n").encode("utf-8"), "CA root file", CAFileError)
        undo.created(out / ROOT_FILE)
        create_public_file(out / CRL_FILE, crl, "revocation list", CAFileError)
        undo.created(out / CRL_FILE)
        undo.mkdir(out / ISSUED_DIR)
    except BaseException:
        undo.rollback()
        raise
    _say(console, f"{kind.value} CA {name!r}, key id {root.key_id.hex()[:16]}")
    _say(console, f"public root: {out / ROOT_FILE}  (give it to whoever verifies {kind.issues.name.lower()}s)")
    _say(console, f"revocation list: {out / CRL_FILE}  (empty)")
    _say(console, f"signing key (secret, mode 0600): {out / CA_KEY_FILE}")
    return 0


def _issue(args: argparse.Namespace, console: Console, kind: CertificateKind, name: str, serial: str) -> int:
    ca_dir = _ca_dir(args.ca)
    root = load_root(ca_dir / ROOT_FILE)
    if root.kind.issues is not kind:
        raise CAFileError(
            f"{ca_dir} is the {root.kind.value} CA {root.name!r}: it issues {root.kind.issues.name.lower()} "
            f"certificates, not {kind.name.lower()} certificates"
        )
    days = _check_days(args.days)
    public = None if args.public_key is None else _public_key_arg(args.public_key)
    registry = None
    if kind is CertificateKind.SENSOR:
        registry = SensorRegistry.default()
        if args.registry is not None:
            registry = SensorRegistry.from_file(args.registry, extend=registry)
        registry.admit(f"{name}/{serial}")  # unknown, revoked or below the minima: refused here already
    out = Path(args.out)
    record = ca_dir / ISSUED_DIR / f"{serial}.cert"
    if record.exists():
        raise CAFileError(f"serial {serial} was already issued by this CA ({record})")
    _refuse_existing(out / CERT_FILE, *(() if public is not None else (out / STATIC_KEY_FILE,)))
    now = _now(args)
    not_before, not_after = max(0, now - CLOCK_SKEW_S), now + days * 86_400

    undo = _Undo()
    static = None if public is not None else X25519PrivateKey.generate()
    try:
        with load_ca(ca_dir) as ca:
            subject = public if public is not None else static.public_bytes()  # type: ignore[union-attr]
            if kind is CertificateKind.SENSOR:
                cert = ca.issue_sensor(
                    subject, model_id=name, serial=serial, not_before=not_before, not_after=not_after, registry=registry
                )
            else:
                cert = ca.issue_gateway(
                    subject, gateway_name=name, serial=serial, not_before=not_before, not_after=not_after
                )
        undo.mkdir(ca_dir / ISSUED_DIR)
        create_public_file(record, cert, "issued certificate", CAFileError)  # reserves the serial
        undo.created(record)
        undo.mkdir(out)
        if static is not None:
            create_secret_file(out / STATIC_KEY_FILE, static.key_buffer, "static key file", CAFileError)
            undo.created(out / STATIC_KEY_FILE)
        create_public_file(out / CERT_FILE, cert, "certificate", CAFileError)
        undo.created(out / CERT_FILE)
    except BaseException:
        undo.rollback()
        raise
    finally:
        if static is not None:
            static.purge()
    what = f"sensor {name}/{serial}" if kind is CertificateKind.SENSOR else f"gateway {name!r} (serial {serial})"
    _say(console, f"certified {what} by {root.kind.value} CA {root.name!r}")
    _say(console, f"valid {_utc(not_before)} .. {_utc(not_after)}")
    _say(console, f"static public key: {subject.hex()}")
    _say(console, f"certificate ({len(cert)} bytes): {out / CERT_FILE}")
    if static is not None:
        _say(console, f"static private key (secret, mode 0600): {out / STATIC_KEY_FILE}")
    return 0


def cmd_issue_sensor(args: argparse.Namespace, console: Console) -> int:
    serial = check_serial(args.serial)
    model = check_name(args.model, "model id")
    return _issue(args, console, CertificateKind.SENSOR, model, serial)


def cmd_issue_gateway(args: argparse.Namespace, console: Console) -> int:
    serial = check_serial(args.serial) if args.serial is not None else f"gw-{os.urandom(8).hex()}"
    name = check_name(args.name, "gateway name")
    return _issue(args, console, CertificateKind.GATEWAY, name, serial)


def cmd_revoke(args: argparse.Namespace, console: Console) -> int:
    ca_dir = _ca_dir(args.ca)
    serials = {check_serial(s) for s in args.serial}
    for serial in sorted(serials):
        if not (ca_dir / ISSUED_DIR / f"{serial}.cert").is_file():
            raise CAFileError(f"serial {serial} was never issued by the CA in {ca_dir}")
    trust = load_trust(ca_dir)  # the current list, verified against the CA's own root
    root = load_root(ca_dir / ROOT_FILE)
    current = trust.revocation_list(root.key_id)
    if current is None:  # cannot happen: load_trust requires and verifies the directory's list
        raise CAFileError(f"{ca_dir / CRL_FILE} holds no revocation list of this CA")
    already = serials & current.serials
    if already:
        raise CAFileError(f"already revoked: {', '.join(sorted(already))}")
    issued_at = max(_now(args), current.issued_at + 1)  # a newer list is always dated later
    with load_ca(ca_dir) as ca:
        crl = ca.revocation_list(current.serials | serials, issued_at=issued_at)
    TrustStore([root]).add_revocation_list(crl)  # what we write, we can verify
    replace_public_file(ca_dir / CRL_FILE, crl, "revocation list", CAFileError)
    _say(
        console,
        f"revoked {', '.join(sorted(serials))} (CA {root.name!r} now revokes {len(current.serials) + len(serials)})",
    )
    _say(console, f"revocation list {ca_dir / CRL_FILE} issued {_utc(issued_at)}: distribute it to every verifier")
    return 0


def _show_file(path: Path, trust: TrustStore | None, now: float | None, console: Console) -> None:
    if path.is_dir():
        path = path / (ROOT_FILE if (path / ROOT_FILE).exists() else CERT_FILE)
    data = read_public_file(path, "file", CAFileError, CRL_MAX_SIZE)
    if data.startswith(CERT_MAGIC):
        cert = parse_certificate(data)
        what = "model" if cert.kind is CertificateKind.SENSOR else "gateway"
        _say(console, f"{path}: {cert.kind.name.lower()} certificate, {len(data)} bytes")
        _say(console, f"  serial {cert.serial}, {what} {cert.name}")
        _say(console, f"  static public key {cert.subject_key.hex()}")
        _say(console, f"  valid {_utc(cert.not_before)} .. {_utc(cert.not_after)}")
        _say(console, f"  issuer key id {cert.issuer_key_id.hex()}")
        if trust is not None:
            v = verify_certificate(data, remote_static=cert.subject_key, kind=cert.kind, trust=trust, now=now)
            _say(console, f"  verified: issued by {v.issuer_name!r}, signature, kind, window, revocation ok")
            _say(console, "  (the key binding is checked against the Noise static key during the handshake)")
    elif data.startswith(CRL_MAGIC):
        crl = parse_revocation_list(data)
        _say(console, f"{path}: revocation list issued {_utc(crl.issued_at)} by key id {crl.issuer_key_id.hex()}")
        _say(console, f"  {len(crl.serials)} revoked: {', '.join(sorted(crl.serials)) or '-'}")
        if trust is not None:
            TrustStore(trust.roots()).add_revocation_list(data)
            _say(console, "  signature verified")
    else:
        root = load_root(path)
        _say(
            console, f"{path}: {root.kind.value} CA {root.name!r}, issues {root.kind.issues.name.lower()} certificates"
        )
        _say(console, f"  Ed25519 public key {root.public_key.hex()}")
        _say(console, f"  key id {root.key_id.hex()}")


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    trust = load_trust(*args.trust) if args.trust else None
    for path in args.paths:
        _show_file(Path(path), trust, args.now, console)
    return 0


# --- parser ---------------------------------------------------------------------------------------------


def _guarded(func: Callable[[argparse.Namespace, Console], int]) -> Callable[[argparse.Namespace, Console], int]:
    return guarded(func, CAFileError)


def add_ca_parser(sub: Any) -> None:
    """Register ``ca`` and its subcommands on the top-level subparsers ``sub``."""
    ca = sub.add_parser("ca", help="root CAs, sensor and gateway certificates, revocation")
    csub = ca.add_subparsers(dest="ca_command", required=True)

    p = csub.add_parser("init", help="create a root CA: ca.key (secret, 0600), root.json, revoked.crl")
    p.add_argument("--kind", required=True, choices=[k.value for k in CAKind], help="manufacturer (sensors) or site")
    p.add_argument("--name", required=True, help="the CA's name (1-64 bytes of UTF-8)")
    p.add_argument("--out", required=True, help="directory to create the CA in")
    p.add_argument("--now", type=timestamp_arg, help=argparse.SUPPRESS)
    p.set_defaults(func=_guarded(cmd_init))

    for command, what in (("issue-sensor", "sensor"), ("issue-gateway", "gateway")):
        p = csub.add_parser(command, help=f"certify a {what}'s X25519 static key (generated unless --public-key)")
        p.add_argument("--ca", required=True, help=f"the {'manufacturer' if what == 'sensor' else 'site'} CA directory")
        if what == "sensor":
            p.add_argument("--model", required=True, help="model id, certified in the sensor registry")
            p.add_argument("--serial", required=True, help="the sensor's serial ([A-Za-z0-9._-], 1-64)")
            p.add_argument("--registry", help="a registry file extending the packaged one")
        else:
            p.add_argument("--name", required=True, help="the gateway's name (1-64 bytes of UTF-8)")
            p.add_argument("--serial", help="certificate serial (default: random)")
        p.add_argument("--days", required=True, type=int, help=f"validity in days (1-{MAX_DAYS})")
        p.add_argument("--out", required=True, help="identity directory: static.key (0600) and static.cert")
        p.add_argument("--public-key", help="certify this X25519 public key (64 hex digits) instead of generating one")
        p.add_argument("--now", type=timestamp_arg, help="issuance time (epoch seconds; default now)")
        p.set_defaults(func=_guarded(cmd_issue_sensor if what == "sensor" else cmd_issue_gateway))

    p = csub.add_parser("revoke", help="add serials to the CA's signed revocation list")
    p.add_argument("--ca", required=True, help="the CA directory")
    p.add_argument("--serial", required=True, action="append", help="serial to revoke (repeatable)")
    p.add_argument("--now", type=timestamp_arg, help="list date (epoch seconds; default now)")
    p.set_defaults(func=_guarded(cmd_revoke))

    p = csub.add_parser("show", help="print a certificate, root or revocation list (read-only)")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a file, a CA directory or an identity directory")
    p.add_argument("--trust", action="append", metavar="CA", help="also verify against this CA dir / root / list")
    p.add_argument("--now", type=timestamp_arg, help="verification time (epoch seconds; default now)")
    p.set_defaults(func=_guarded(cmd_show))
