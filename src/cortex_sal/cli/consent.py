"""``cortex-sal consent`` and ``cortex-sal store``: the wearer's consent and the store around it.

* ``consent grant --sensor MODEL/SERIAL --app APP --scopes S[,S] --ttl SECONDS --purpose TEXT``:
  records the grant (durable, audited, with a signed receipt) and prints the receipt id;
* ``consent revoke --sensor ... (--app APP | --all-apps) --reason TEXT``: the withdrawal, with its receipt;
* ``consent list [--sensor ...] [--app ...] [--json]``: every record and its state now;
* ``consent receipt ID``: the signed receipt; ``consent verify FILE [--data-dir D | --key HEX]``
  verifies one offline;
* ``store check``: integrity, the audit chain, schema version, sizes, the policy in force;
* ``store export --subject MODEL/SERIAL``: the subject's receipts, audit entries and kept results;
* ``store retention --scope S (--days N | --off)``: keep released results of a scope, or not.

Every command takes ``--data-dir`` (default: :func:`~cortex_sal.store.datadir.default_data_dir`)
and exits 0 on success, 2 with a one-line message on bad input or a refusal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..crypto.ed25519 import Ed25519SigningKey
from ..errors import CliInputError, ReceiptError
from ..keros.registry import model_of
from ..sal.consent import SCOPES, ConsentRecord, check_app
from ..sal.receipts import verify_receipt
from ..securemem import SecureKeyBuffer
from ..store.base import subject_of
from ..store.files import create_public_file, create_secret_file, read_text, replace_public_file
from ..store.runtime import durable_ledger, stored_registry
from ..store.sqlite import SqliteStore
from ._common import guarded

__all__ = ["add_apps_parser", "add_consent_parser", "add_store_parser"]

MAX_RECEIPT_SIZE = 16 * 1024


def _store(args: argparse.Namespace, **options: Any) -> SqliteStore:
    return SqliteStore(args.data_dir, **options)


def _sensor(store: SqliteStore, sensor: str, *, known_model: bool) -> str:
    """The pseudonymous subject of ``sensor`` (``MODEL/SERIAL``); with ``known_model``, the model must be registered."""
    model = model_of(sensor)
    if "/" not in sensor or not sensor.split("/", 1)[1]:
        raise CliInputError(f"--sensor takes MODEL/SERIAL, got {sensor!r}")
    if known_model:
        models = {m.model_id for m in stored_registry(store, store.policy_in_force().thresholds).models()}
        if model not in models:
            raise CliInputError(f"sensor model {model!r} is not in the registry; known: {', '.join(sorted(models))}")
    return subject_of(sensor)


def _state(r: ConsentRecord, now: float) -> str:
    if r.revoked:
        return "revoked"
    if r.capacity == "NONE":
        return "capacity NONE"
    if r.expired_at(now):
        return "expired"
    return "active"


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _write_receipt(store: SqliteStore, receipt_id: str, path: str | None) -> None:
    if path is None:
        return
    (document,) = [r.document for r in store.receipts() if r.receipt_id == receipt_id]
    replace_public_file(path, (document + "\n").encode("ascii"), "receipt", CliInputError)


def cmd_grant(args: argparse.Namespace, console: Console) -> int:
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
    with _store(args, controller=args.controller, jurisdiction=args.jurisdiction) as store:
        subject = _sensor(store, args.sensor, known_model=True)
        ledger = durable_ledger(store, store.policy_in_force().thresholds)
        record = ledger.grant(subject, scopes, args.ttl, app=check_app(args.app), purpose=args.purpose)
        _write_receipt(store, record.receipt_id, args.receipt)
        approved = store.approve_requests(record.app) if store.app(record.app) is not None else 0
    console.print(f"receipt {record.receipt_id}")
    if approved:
        console.print(f"approved {approved} pending access request(s) of {record.app}")
    console.print(
        f"granted {','.join(record.scopes)} to {record.app} for subject {record.sensor_key} "
        f"until {_when(record.expires_at)}"
    )
    return 0


def cmd_revoke(args: argparse.Namespace, console: Console) -> int:
    if (args.app is None) == (not args.all_apps):
        raise CliInputError("give --app APP or --all-apps")
    with _store(args) as store:
        subject = _sensor(store, args.sensor, known_model=False)
        ledger = durable_ledger(store, store.policy_in_force().thresholds)
        if args.all_apps:
            revoked = list(ledger.revoke_subject(subject, args.reason))
        else:
            before = ledger.record(subject, check_app(args.app))
            after = ledger.revoke(subject, args.reason, app=args.app)
            revoked = [] if before.revoked else [after]
        for r in revoked:
            _write_receipt(store, r.revocation_receipt_id or "", args.receipt)
    if not revoked:
        console.print("already revoked: nothing changed")
    for r in revoked:
        console.print(f"receipt {r.revocation_receipt_id}")
        console.print(f"revoked {r.app}'s consent for subject {r.sensor_key}")
    return 0


def cmd_requests(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        requests = store.access_requests(args.app)
    if not args.all:
        requests = [r for r in requests if r.status == "pending"]
    if args.json:
        rows = [{"request": r.request_id, "app": r.app_id, "scopes": list(r.scopes), "purpose": r.purpose,
                 "requested_at": r.requested_at, "status": r.status} for r in requests]  # fmt: skip
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    if not requests:
        console.print("no pending access requests" if not args.all else "no access requests")
        return 0
    table = Table(title="access requests (approve with: cortex-sal consent grant --app APP ...)")
    for col in ("request", "app", "scopes", "purpose", "requested", "status"):
        table.add_column(col)
    for r in requests:
        table.add_row(str(r.request_id), r.app_id, ",".join(r.scopes), escape(r.purpose), _when(r.requested_at),
                      r.status)  # fmt: skip
    console.print(table)
    return 0


def cmd_apps_add(args: argparse.Namespace, console: Console) -> int:
    app = check_app(args.name)
    out = Path(args.out) if args.out else Path.cwd()
    key_path, info_path = out / f"{app}.key", out / f"{app}.json"
    with _store(args) as store:
        if store.app(app) is not None:
            raise CliInputError(f"the application {app!r} is already registered (ids are never reused)")
        with SecureKeyBuffer() as seed:  # random, drawn in locked memory and written from there
            with Ed25519SigningKey(seed) as key:
                public = key.public_key()
            create_secret_file(key_path, seed, "application key", CliInputError)
        try:
            create_public_file(info_path, (json.dumps({"app_id": app, "public_key": public.hex()}) + "\n").encode(),
                               "application file", CliInputError)  # fmt: skip
            store.add_app(app, public)
        except BaseException:
            key_path.unlink(missing_ok=True)
            info_path.unlink(missing_ok=True)
            raise
    console.print(f"app {app}: public key {public.hex()}", soft_wrap=True)
    console.print(f"private key {key_path} (0600: give it to the application, keep no copy)", soft_wrap=True)
    return 0


def cmd_apps_list(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        apps = store.apps()
    if args.json:
        rows = [{"app": a.app_id, "public_key": a.public_key.hex(), "created_at": a.created_at,
                 "revoked_at": a.revoked_at} for a in apps]  # fmt: skip
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    table = Table(title="applications")
    for col in ("app", "public key", "registered", "state"):
        table.add_column(col)
    for a in apps:
        table.add_row(a.app_id, a.public_key.hex()[:16] + "...", _when(a.created_at),
                      "active" if a.active else f"revoked {_when(a.revoked_at)}")  # fmt: skip
    console.print(table)
    return 0


def cmd_apps_revoke(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        if args.tokens_only:
            n = store.revoke_tokens(check_app(args.name))
            console.print(f"revoked {n} token(s) of {args.name}")
            return 0
        store.revoke_app(check_app(args.name))
    console.print(f"revoked the application {args.name} and its tokens")
    return 0


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        subject = None if args.sensor is None else _sensor(store, args.sensor, known_model=False)
        records = [
            r
            for r in store.consent_records()
            if (subject is None or r.sensor_key == subject) and (args.app is None or r.app == args.app)
        ]
    now = time.time()
    if args.json:
        out = [{**r.to_dict(), "state": _state(r, now)} for r in records]
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=True, allow_nan=False) + "\n")
        return 0
    table = Table(
        title=f"Consent in {escape(str(args.data_dir or 'the default data directory'))}", title_justify="left"
    )
    for col in ("subject", "app", "scopes", "state", "granted", "expires", "purpose"):
        table.add_column(col)
    for r in records:
        table.add_row(
            r.sensor_key,
            escape(r.app),
            ",".join(r.scopes),
            _state(r, now),
            _when(r.granted_at),
            _when(r.expires_at),
            escape(r.purpose),
        )
    console.print(table)
    console.print(f"{len(records)} record(s)")
    return 0


def cmd_receipt(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        documents = [r.document for r in store.receipts() if r.receipt_id == args.receipt_id]
    if not documents:
        raise CliInputError(f"no receipt {args.receipt_id!r} in this store")
    if args.out:
        replace_public_file(args.out, (documents[0] + "\n").encode("ascii"), "receipt", CliInputError)
    else:
        sys.stdout.write(documents[0] + "\n")
    return 0


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    text = read_text(args.receipt, "receipt", CliInputError).strip()
    key: bytes | None = None
    if args.key is not None:
        try:
            key = bytes.fromhex(args.key)
        except ValueError:
            raise CliInputError("--key takes the Ed25519 public key in hex") from None
    elif args.data_dir is not None:
        with SqliteStore(args.data_dir) as store:
            key = store.receipt_public_key()
    try:
        receipt = verify_receipt(text, public_key=key)
    except ReceiptError as exc:
        console.print(f"[red]receipt {escape(args.receipt)} does NOT verify:[/red] {escape(str(exc))}")
        return 2
    signer = "the store's key" if key is not None else "the key it embeds (give --data-dir or --key to pin it)"
    console.print(f"receipt {receipt.receipt_id} verifies under {signer}")
    console.print(
        f"{receipt.state}: subject {receipt.subject}, app {escape(receipt.app)}, scopes {','.join(receipt.scopes)}, "
        f"controller {escape(receipt.controller)} ({escape(receipt.jurisdiction)}), at {_when(receipt.timestamp)}"
    )
    return 0


def cmd_check(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        report = store.check()
    if args.json:
        doc = {
            "ok": report.ok,
            "schema_version": report.schema_version,
            "integrity": report.integrity,
            "audit": {
                "verified": report.audit.ok,
                "entries": report.audit_head.count,
                "head": report.audit_head.last_hash,
                "first_bad_index": report.audit.first_bad_index,
                "reason": report.audit.reason,
            },
            "counts": dict(report.counts),
            "sizes": dict(report.sizes),
            "policy": report.policy,
        }
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return 0 if report.ok else 2
    console.print(f"schema version {report.schema_version}; integrity_check: {escape(report.integrity)}")
    if report.audit.ok:
        console.print(f"audit chain verified: {report.audit_head.count} entries, head {report.audit_head.last_hash}")
    else:
        why = escape(report.audit.reason or "")
        console.print(f"[red]audit chain NOT intact[/red] at entry {report.audit.first_bad_index}: {why}")
    console.print(escape(report.policy))
    console.print("rows: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()))
    console.print("files: " + ", ".join(f"{k} {v} bytes" for k, v in report.sizes.items()))
    return 0 if report.ok else 2


def cmd_export(args: argparse.Namespace, console: Console) -> int:
    with _store(args) as store:
        _sensor(store, args.subject, known_model=False)
        doc = store.export_subject(args.subject)
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
    if args.out:
        replace_public_file(args.out, text.encode("utf-8"), "export", CliInputError)
        console.print(f"{args.out}: {len(doc['receipts'])} receipts, {len(doc['audit'])} audit entries")
    else:
        sys.stdout.write(text)
    return 0


def cmd_retention(args: argparse.Namespace, console: Console) -> int:
    if args.days is None and not args.off:
        raise CliInputError("give --days N or --off")
    with _store(args) as store:
        store.set_retention(args.scope, None if args.off else args.days)
        pruned = store.prune_releases()
    state = "off" if args.off else f"{args.days} days"
    console.print(f"retention of {args.scope} results: {state} ({pruned} pruned)")
    return 0


# --- parser ---------------------------------------------------------------------------------------


def _guarded(func: Callable[[argparse.Namespace, Console], int]) -> Callable[[argparse.Namespace, Console], int]:
    return guarded(func, CliInputError)


def _data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="the store's directory (default ~/.local/share/cortex-sal)")


def add_consent_parser(sub: Any) -> None:
    consent = sub.add_parser("consent", help="the wearer's consent per application: grant, revoke, list, verify")
    csub = consent.add_subparsers(dest="consent_command", required=True)

    p = csub.add_parser("grant", help="record a grant and print its receipt id")
    _data_dir(p)
    p.add_argument("--sensor", required=True, help="MODEL/SERIAL (stored only as a pseudonymous hash)")
    p.add_argument("--app", required=True, help="the application id")
    p.add_argument("--scopes", required=True, help=f"comma-separated: {','.join(SCOPES)}")
    p.add_argument("--ttl", type=float, required=True, help="lifetime in seconds")
    p.add_argument("--purpose", required=True, help="what the application uses the data for")
    p.add_argument("--receipt", help="also write the signed receipt to this file")
    p.add_argument("--controller", help="the gateway's name (recorded when the store is created)")
    p.add_argument("--jurisdiction", help="the controller's jurisdiction (recorded when the store is created)")
    p.set_defaults(func=_guarded(cmd_grant))

    p = csub.add_parser("revoke", help="withdraw a consent and print the withdrawal's receipt id")
    _data_dir(p)
    p.add_argument("--sensor", required=True, help="MODEL/SERIAL")
    p.add_argument("--app", help="the application whose consent ends")
    p.add_argument("--all-apps", action="store_true", help="end the subject's consent to every application")
    p.add_argument("--reason", required=True)
    p.add_argument("--receipt", help="also write the signed receipt to this file")
    p.set_defaults(func=_guarded(cmd_revoke))

    p = csub.add_parser("requests", help="applications' access requests waiting for the wearer")
    _data_dir(p)
    p.add_argument("--app", help="only this application")
    p.add_argument("--all", action="store_true", help="approved ones too")
    p.add_argument("--json", action="store_true", help="JSON on standard output")
    p.set_defaults(func=_guarded(cmd_requests))

    p = csub.add_parser("list", help="every consent record and its state now")
    _data_dir(p)
    p.add_argument("--sensor", help="only this MODEL/SERIAL")
    p.add_argument("--app", help="only this application")
    p.add_argument("--json", action="store_true", help="JSON on standard output")
    p.set_defaults(func=_guarded(cmd_list))

    p = csub.add_parser("receipt", help="print (or write) one signed receipt")
    _data_dir(p)
    p.add_argument("receipt_id")
    p.add_argument("--out", help="write it to this file")
    p.set_defaults(func=_guarded(cmd_receipt))

    p = csub.add_parser("verify", help="verify a receipt file offline")
    p.add_argument("receipt", help="the receipt file")
    p.add_argument("--data-dir", type=Path, help="pin the signer to this store's receipt key")
    p.add_argument("--key", help="pin the signer to this Ed25519 public key (hex)")
    p.set_defaults(func=_guarded(cmd_verify))


def add_apps_parser(sub: Any) -> None:
    apps = sub.add_parser("apps", help="applications of the consumer API: add (make a key), list, revoke")
    asub = apps.add_subparsers(dest="apps_command", required=True)
    p = asub.add_parser("add", help="register an application: writes NAME.key (0600) and NAME.json")
    _data_dir(p)
    p.add_argument("name", help="the application id (lowercase letters, digits, '.', '_', '-')")
    p.add_argument("--out", help="where to write the key files (default: the current directory)")
    p.set_defaults(func=_guarded(cmd_apps_add))
    p = asub.add_parser("list", help="registered applications")
    _data_dir(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_guarded(cmd_apps_list))
    p = asub.add_parser("revoke", help="end an application's registration and tokens (its subscriptions close)")
    _data_dir(p)
    p.add_argument("name")
    p.add_argument("--tokens-only", action="store_true", help="revoke its tokens, keep the registration")
    p.set_defaults(func=_guarded(cmd_apps_revoke))


def add_store_parser(sub: Any) -> None:
    store = sub.add_parser("store", help="the data directory: check, export a subject's data, retention")
    ssub = store.add_subparsers(dest="store_command", required=True)

    p = ssub.add_parser("check", help="integrity, audit chain, schema version, sizes, the policy in force")
    _data_dir(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_guarded(cmd_check))

    p = ssub.add_parser("export", help="a subject's receipts, audit entries and kept results, as JSON")
    _data_dir(p)
    p.add_argument("--subject", required=True, help="MODEL/SERIAL")
    p.add_argument("--out", help="write to this file (default: standard output)")
    p.set_defaults(func=_guarded(cmd_export))

    p = ssub.add_parser("retention", help="keep released results of a scope for N days, or stop keeping them")
    _data_dir(p)
    p.add_argument("--scope", required=True, choices=SCOPES)
    p.add_argument("--days", type=float)
    p.add_argument("--off", action="store_true")
    p.set_defaults(func=_guarded(cmd_retention))
