"""``cortex-sal ca``: root CAs, certified static keys for sensors and gateways, revocation.

The directory layouts and their loaders are in :mod:`cortex_sal.store.keros`; the byte layouts
and a worked shell session are in ``docs/certificates.md``. Key files are created 0600 with
``O_EXCL | O_NOFOLLOW`` (never overwritten), written from locked memory.

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

from ..crypto import Ed25519SigningKey, X25519PrivateKey
from ..errors import CAFileError
from ..keros.certificate import (
    CERT_MAGIC,
    CRL_MAGIC,
    CRL_MAX_SIZE,
    CAKind,
    CertificateAuthority,
    CertificateKind,
    TrustStore,
    check_name,
    check_serial,
    parse_certificate,
    parse_revocation_list,
    verify_certificate,
)
from ..keros.registry import SensorRegistry
from ..securemem import SecureKeyBuffer
from ..store.files import Undo, create_public_file, create_secret_file, read_public_file, replace_public_file
from ..store.keros import (
    CA_KEY_FILE,
    CERT_FILE,
    CRL_FILE,
    ISSUED_DIR,
    ROOT_FILE,
    STATIC_KEY_FILE,
    load_ca,
    load_root,
    load_sensor_registry,
    load_trust,
)
from ._common import guarded, timestamp_arg

__all__ = ["add_ca_parser"]

CLOCK_SKEW_S = 300  # not_before is backdated this much: a device clock a little behind still accepts
MAX_DAYS = 36_500
_HEX_KEY_RE = re.compile(r"[0-9a-fA-F]{64}")


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
    undo = Undo()
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
            registry = load_sensor_registry(args.registry, extend=registry)
        registry.admit(f"{name}/{serial}")  # unknown, revoked or below the minima: refused here already
    out = Path(args.out)
    record = ca_dir / ISSUED_DIR / f"{serial}.cert"
    if record.exists():
        raise CAFileError(f"serial {serial} was already issued by this CA ({record})")
    _refuse_existing(out / CERT_FILE, *(() if public is not None else (out / STATIC_KEY_FILE,)))
    now = _now(args)
    not_before, not_after = max(0, now - CLOCK_SKEW_S), now + days * 86_400

    undo = Undo()
    static = None if public is not None else X25519PrivateKey.generate()
    try:
        with load_ca(ca_dir) as ca:
            subject = public if public is not None else static.public_bytes()  # type: ignore[union-attr]  # static is None only when public is given
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
