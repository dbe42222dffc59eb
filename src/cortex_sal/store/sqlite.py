"""The embedded store: one SQLite database in the data directory (docs/store.md).

One database, ``DIR/cortex-sal.db``, holds every concern (consent, receipts, policy, registry,
revocation lists, the audit chain, kept releases), so a change and its audit entry commit in
one transaction: there is never a consent without its receipt and audit entry, or an audit
entry for a change that did not happen. WAL mode with ``synchronous=FULL``: a transaction is on
disk (fsync of the WAL) before ``COMMIT`` returns, so every acknowledged write survives
``kill -9`` and power loss. Readers (``consent list``, ``store check``) see the last committed
state while a writer works.

The schema is versioned with ``PRAGMA user_version`` and migrated forward in a transaction; a
database of a newer version is refused (:class:`~cortex_sal.errors.StoreSchemaError`) and never
altered. The receipt signing key (Ed25519) lives in ``DIR/receipt-signing.key`` (0600), read
straight into locked memory when a receipt is signed and purged at :meth:`SqliteStore.close`.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import strict_json
from ..checks import public_bytes
from ..clock import SYSTEM_CLOCK, Clock
from ..crypto import hmac_sha256
from ..crypto.ed25519 import SEED_SIZE, Ed25519SigningKey
from ..errors import (
    AuditError,
    CertificateError,
    CortexError,
    InvalidArgumentError,
    PolicyVerificationError,
    StoreCorruptError,
    StoreError,
    StoreSchemaError,
    WrongTypeError,
)
from ..governance.audit import AuditEntry, AuditHead, VerifyResult, truncated_hash
from ..governance.policy import AppliedBundle, PolicyInForce, replay_policy
from ..governance.quorum import EnactedBundle, NodeRegistry
from ..governance.thresholds import ClinicalThresholds
from ..keros.certificate import CertificateReason, TrustStore, parse_revocation_list
from ..keros.registry import SensorModel, model_of
from ..sal.consent import SCOPES, Change, ConsentJournal, ConsentRecord, check_app, check_scopes
from ..sal.receipts import ConsentReceipt, issue_receipt
from ..securemem import SecureKeyBuffer
from .audit import SCHEMA as AUDIT_SCHEMA
from .audit import append_entry, entries_of, prepare_entry, read_snapshot, verify_rows
from .base import AccessRequest, AppRecord, CheckReport, Release, Store, StoredReceipt, subject_of
from .datadir import DataDirLock, prepare_data_dir
from .files import create_secret_file, read_secret_file

__all__ = ["DATABASE_FILE", "PAIRWISE_KEY_FILE", "RECEIPT_KEY_FILE", "SCHEMA_VERSION", "SqliteStore"]

DATABASE_FILE = "cortex-sal.db"
RECEIPT_KEY_FILE = "receipt-signing.key"
PAIRWISE_KEY_FILE = "pairwise.key"  # the key of the applications' pairwise sensor ids (HMAC-SHA256)
_PAIRWISE_CONTEXT = b"cortex-sal pairwise sensor id v1\x00"
BUSY_TIMEOUT_MS = 10_000
POLL_INTERVAL_S = 0.2  # a durable ledger sees another process's consent change within this (+ one frame)

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consent (
    subject TEXT NOT NULL,
    app TEXT NOT NULL,
    scopes TEXT NOT NULL,
    purpose TEXT NOT NULL,
    granted_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    capacity TEXT NOT NULL CHECK (capacity IN ('FULL', 'LIMITED', 'NONE')),
    revoked_at REAL,
    revocation_reason TEXT,
    receipt_id TEXT NOT NULL,
    revocation_receipt_id TEXT,
    PRIMARY KEY (subject, app)
);
CREATE TABLE IF NOT EXISTS receipts (
    receipt_id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    app TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'withdrawal')),
    issued_at REAL NOT NULL,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS receipts_by_subject ON receipts (subject, issued_at);
CREATE TABLE IF NOT EXISTS policy (
    step INTEGER PRIMARY KEY,
    proposal_hash TEXT NOT NULL UNIQUE,
    bundle TEXT NOT NULL,
    registry TEXT NOT NULL,
    verified_at REAL NOT NULL,
    thresholds TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sensor_models (
    model_id TEXT PRIMARY KEY,
    manufacturer TEXT NOT NULL,
    snr_db REAL NOT NULL,
    bits INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sensor_revocations (
    sensor TEXT PRIMARY KEY,
    revoked_at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revocation_lists (
    issuer_key_id TEXT PRIMARY KEY,
    sequence INTEGER NOT NULL,
    data BLOB NOT NULL,
    stored_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS retention (scope TEXT PRIMARY KEY, days REAL NOT NULL CHECK (days > 0));
CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    scope TEXT NOT NULL,
    seq INTEGER NOT NULL,
    released_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS releases_by_subject ON releases (subject, id);
CREATE INDEX IF NOT EXISTS releases_by_age ON releases (scope, released_at);
"""

# version 2: the consumer API's applications, their access requests and their tokens (hashes only)
_V2 = """
CREATE TABLE IF NOT EXISTS apps (
    app_id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS access_requests (
    id INTEGER PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (app_id),
    scopes TEXT NOT NULL,
    purpose TEXT NOT NULL,
    requested_at REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved'))
);
CREATE INDEX IF NOT EXISTS access_requests_by_app ON access_requests (app_id, status);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
    app_id TEXT NOT NULL REFERENCES apps (app_id),
    issued_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS tokens_by_app ON tokens (app_id);
"""

# version 3: a sensor model's frame shape (channels, labels, native rate, its figures' source), as JSON;
# NULL for the rows of before, which are one-channel models
_V3 = """
ALTER TABLE sensor_models ADD COLUMN shape TEXT;
"""

# version N is reached by running _MIGRATIONS[N - 1] on a database at version N - 1
_MIGRATIONS: tuple[str, ...] = (AUDIT_SCHEMA + _V1, _V2, _V3)
SCHEMA_VERSION = len(_MIGRATIONS)

_SHAPE_FIELDS = ("channels", "labels", "native_rate_hz", "source", "synthetic")  # SensorModel's, beyond the figures

_CONSENT_COLUMNS = (
    "subject, app, scopes, purpose, granted_at, expires_at, capacity, revoked_at, revocation_reason, "
    "receipt_id, revocation_receipt_id"
)


_SQLITE_IOERR_WRITE = 778  # SQLITE_IOERR | (3 << 8)


def _classify(exc: BaseException, what: str) -> StoreError:
    """A specific StoreError for an sqlite3 (or decoding) error: full disk, read-only, corrupt, busy."""
    if isinstance(exc, OSError):
        text = exc.strerror or str(exc)
    else:
        text = str(exc)
    lowered = text.lower()
    if "disk is full" in lowered or "no space left" in lowered or ("disk i/o" in lowered and "full" in lowered):
        return StoreError(f"cannot {what}: the disk is full (nothing was changed)")
    # SQLite reports a write refused for the file size limit (EFBIG) as SQLITE_IOERR_WRITE, not SQLITE_FULL
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and (
        getattr(exc, "sqlite_errorcode", None) == _SQLITE_IOERR_WRITE or "file too large" in lowered
    ):
        return StoreError(
            f"cannot {what}: the disk is full for this process: a write went past its file size limit "
            f"(RLIMIT_FSIZE, {limit} bytes) (nothing was changed)"
        )
    if "readonly" in lowered or "read-only" in lowered or "attempt to write" in lowered or "permission" in lowered:
        return StoreError(f"cannot {what}: the data directory or database is read-only (nothing was changed)")
    if "not a database" in lowered or "malformed" in lowered or isinstance(exc, UnicodeDecodeError):
        return StoreCorruptError(f"cannot {what}: the database is corrupt ({text})")
    if "locked" in lowered or "busy" in lowered:
        return StoreError(f"cannot {what}: the database stayed locked by another process for {BUSY_TIMEOUT_MS} ms")
    if "unable to open" in lowered:
        return StoreError(f"cannot {what}: the database cannot be opened ({text})")
    return StoreError(f"cannot {what}: {text}")


def _record_row(r: ConsentRecord) -> tuple[Any, ...]:
    return (
        r.sensor_key,
        r.app,
        ",".join(r.scopes),
        r.purpose,
        r.granted_at,
        r.expires_at,
        r.capacity,
        r.revoked_at,
        r.revocation_reason,
        r.receipt_id,
        r.revocation_receipt_id,
    )


def _row_record(row: tuple[Any, ...]) -> ConsentRecord:
    (subject, app, scopes, purpose, granted_at, expires_at, capacity, revoked_at, reason, receipt, revocation) = row
    scope_list = tuple(scopes.split(",")) if isinstance(scopes, str) and scopes else ()
    if not scope_list or any(s not in SCOPES for s in scope_list):
        raise StoreCorruptError(f"a stored consent record holds unknown scopes {scopes!r}")
    return ConsentRecord(
        sensor_key=subject,
        scopes=scope_list,
        granted_at=float(granted_at),
        expires_at=float(expires_at),
        capacity=capacity,
        revoked_at=None if revoked_at is None else float(revoked_at),
        revocation_reason=reason,
        app=app,
        purpose=purpose,
        receipt_id=receipt,
        revocation_receipt_id=revocation,
    )


class SqliteStore(Store):
    """The embedded store in ``data_dir`` (created 0700 if missing).

    ``exclusive=True`` (the gateway) takes the directory's lock for the store's lifetime: a
    second exclusive opener is refused with :class:`~cortex_sal.errors.StoreLockedError`.
    ``controller`` and ``jurisdiction`` name the gateway in consent receipts; they are recorded
    when the store is created and must not contradict it later.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        exclusive: bool = False,
        controller: str | None = None,
        jurisdiction: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._mutex = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._signer: Ed25519SigningKey | None = None
        self._pairwise_key: SecureKeyBuffer | None = None
        self._pairwise: dict[tuple[str, str], str] = {}
        self.directory = prepare_data_dir(data_dir)
        self.path = self.directory / DATABASE_FILE
        self._lock = DataDirLock(self.directory) if exclusive else None
        try:
            self._open()
            self._ensure_identity(controller, jurisdiction)
        except BaseException:
            self.close()
            raise

    # --- opening ---------------------------------------------------------------------------

    def _open(self) -> None:
        try:  # created 0600 before SQLite opens it: its -wal and -shm files take the same mode
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600))
        except OSError as exc:
            raise _classify(exc, f"open {self.path}") from None
        try:
            conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
        except (sqlite3.Error, ValueError) as exc:
            raise _classify(exc, f"open {self.path}") from None
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreSchemaError(
                    f"{self.path} has schema version {version}, newer than this cortex-sal supports "
                    f"({SCHEMA_VERSION}); upgrade cortex-sal - the database was not altered"
                )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = ON")  # a deleted row's bytes are overwritten, not left in free pages
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate(conn, version)
        except sqlite3.Error as exc:
            raise _classify(exc, f"open {self.path}") from None

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
            for target in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _statements(_MIGRATIONS[target - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _ensure_identity(self, controller: str | None, jurisdiction: str | None) -> None:
        for value, what in ((controller, "controller"), (jurisdiction, "jurisdiction")):
            if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 64):
                raise InvalidArgumentError(f"the {what} is a non-empty name of at most 64 characters")
        meta = self._meta()
        key_path = self.directory / RECEIPT_KEY_FILE
        if "receipt_public_key" not in meta:
            self._create_key_file(key_path, "receipt signing key")
            public = self._load_signer().public_key()
            with self._write("create the store"):
                for name, value in (
                    ("controller", controller or "cortex-sal"),
                    ("jurisdiction", jurisdiction or "unspecified"),
                    ("created_at", repr(float(self._clock.time()))),
                    ("receipt_public_key", public.hex()),
                ):
                    self._db().execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (name, value))
            meta = self._meta()
        for value, name in ((controller, "controller"), (jurisdiction, "jurisdiction")):
            if value is not None and meta.get(name) != value:
                raise InvalidArgumentError(
                    f"this store was created for the {name} {meta.get(name)!r}, not {value!r}; "
                    "one data directory serves one gateway"
                )
        self._meta_cache = meta

    def _create_key_file(self, key_path: Path, what: str) -> None:
        """A random 32-byte key file (0600), created if missing: whole or absent, never half.

        The key is written and fsynced under a temporary name, then linked into place (exclusive)
        and the directory fsynced: a ``kill -9`` or power loss mid-creation leaves no key file or a
        whole one, never an empty one that would refuse every later open. A key file already there
        (a creation that stopped before its commit, or a racing one that linked first) is used.
        """
        if not key_path.exists():
            tmp = key_path.with_name(f".{key_path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.unlink(missing_ok=True)  # our own pid's leftover from before a restart (pids are reused)
            with SecureKeyBuffer() as seed:
                create_secret_file(tmp, seed, what, StoreError)
            try:
                os.link(tmp, key_path, follow_symlinks=False)
            except FileExistsError:
                pass  # a racing creator linked its key first: use that one
            except FileNotFoundError:  # our temporary removed as stale by a racing creator that linked first
                if not key_path.exists():
                    raise StoreError(f"cannot create {key_path}: its temporary file vanished") from None
            except OSError as exc:
                raise _classify(exc, f"create {key_path}") from None
            finally:
                tmp.unlink(missing_ok=True)
            try:
                fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise _classify(exc, f"create {key_path}") from None
        for stale in self.directory.glob(f".{key_path.name}.*.tmp"):  # left by a creator killed before its link
            stale.unlink(missing_ok=True)

    def _meta(self) -> dict[str, str]:
        rows = self._read(lambda db: db.execute("SELECT key, value FROM meta").fetchall(), "read the store's identity")
        return {str(k): str(v) for k, v in rows}

    # --- plumbing ---------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One durable write transaction: committed (fsync) when the block ends, else rolled back."""
        with self._mutex:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _classify(exc, what) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the connection is gone: SQLite rolls back the journal on the next open
                if isinstance(exc, sqlite3.Error | UnicodeDecodeError):
                    raise _classify(exc, what) from None
                raise

    def _read(self, query: Any, what: str) -> Any:
        """Run ``query(conn)`` in one read transaction (a consistent snapshot)."""
        with self._mutex:
            conn = self._db()
            try:
                conn.execute("BEGIN")
                try:
                    return query(conn)
                finally:
                    conn.execute("COMMIT")
            except (sqlite3.Error, UnicodeDecodeError) as exc:
                raise _classify(exc, what) from None

    def _audit_in(self, conn: sqlite3.Connection, event: str, details: dict[str, Any]) -> AuditEntry:
        timestamp, frozen = prepare_entry(self._clock, event, details)
        return append_entry(conn, timestamp, event, frozen)

    def _load_signer(self) -> Ed25519SigningKey:
        if self._signer is None:
            seed = read_secret_file(self.directory / RECEIPT_KEY_FILE, SEED_SIZE, "receipt signing key", StoreError)
            self._signer = Ed25519SigningKey(seed)
        return self._signer

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._mutex:
            if self._signer is not None:
                self._signer.purge()
                self._signer = None
            if self._pairwise_key is not None:
                self._pairwise_key.secure_purge()
                self._pairwise_key = None
            self._pairwise.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock is not None:
                self._lock.release()

    @property
    def controller(self) -> str:
        return self._meta_cache["controller"]

    @property
    def jurisdiction(self) -> str:
        return self._meta_cache["jurisdiction"]

    def receipt_public_key(self) -> bytes:
        return bytes.fromhex(self._meta_cache["receipt_public_key"])

    # --- consent ------------------------------------------------------------------------------

    def consent_records(self) -> list[ConsentRecord]:
        rows = self._read(
            lambda db: db.execute(f"SELECT {_CONSENT_COLUMNS} FROM consent ORDER BY subject, app").fetchall(),
            "read consent",
        )
        try:
            return [_row_record(tuple(r)) for r in rows]
        except (CortexError, TypeError, ValueError) as exc:
            raise StoreCorruptError(f"a stored consent record is malformed: {exc}") from None

    def consent_journal(self) -> ConsentJournal:
        return _Journal(self)

    def _write_consent(self, change: Change, records: Sequence[ConsentRecord]) -> None:
        """One transaction: the records, a signed receipt per grant or new withdrawal, an audit entry each.

        A ``"revoke"`` may carry records revoked earlier whose capacity changes (capacity NONE
        revokes the subject's other grants): those get no second receipt, and are audited as a
        capacity change."""
        signer = self._load_signer() if change in ("grant", "revoke") else None
        with self._write(f"record a consent {change}") as db:
            for r in records:
                new_withdrawal = False
                if change == "revoke":
                    assert r.revocation_receipt_id is not None and r.revoked_at is not None
                    held = db.execute("SELECT 1 FROM receipts WHERE receipt_id = ?", (r.revocation_receipt_id,))
                    new_withdrawal = held.fetchone() is None
                db.execute(
                    f"INSERT OR REPLACE INTO consent ({_CONSENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    _record_row(r),
                )
                details: dict[str, Any] = {"subject_hash": r.sensor_key, "app": r.app}
                receipt: tuple[Any, ...] | None
                if change == "grant":
                    document = issue_receipt(signer, self._receipt(r, withdrawal=False))  # type: ignore[arg-type]
                    receipt = (r.receipt_id, "grant", r.granted_at, document)
                    event = "consent_granted"
                    details.update(scopes=",".join(r.scopes), ttl_s=r.expires_at - r.granted_at)
                    details["receipt_hash"] = truncated_hash(r.receipt_id)
                elif new_withdrawal:
                    document = issue_receipt(signer, self._receipt(r, withdrawal=True))  # type: ignore[arg-type]
                    receipt = (r.revocation_receipt_id, "withdrawal", r.revoked_at, document)
                    event = "consent_revoked"
                    details["receipt_hash"] = truncated_hash(r.revocation_receipt_id or "")
                    details["capacity"] = r.capacity
                else:
                    receipt = None
                    event = "consent_capacity"
                    details["capacity"] = r.capacity
                if receipt is not None:
                    db.execute(
                        "INSERT INTO receipts (receipt_id, subject, app, kind, issued_at, document)"
                        " VALUES (?,?,?,?,?,?)",
                        (receipt[0], r.sensor_key, r.app, receipt[1], receipt[2], receipt[3]),
                    )
                self._audit_in(db, event, details)

    def _receipt(self, r: ConsentRecord, *, withdrawal: bool) -> ConsentReceipt:
        grant = ConsentReceipt.grant(
            receipt_id=r.receipt_id,
            timestamp=r.granted_at,
            jurisdiction=self.jurisdiction,
            controller=self.controller,
            subject=r.sensor_key,
            app=r.app,
            purpose=r.purpose,
            scopes=r.scopes,
            ttl_s=r.expires_at - r.granted_at,
        )
        if not withdrawal:
            return grant
        assert r.revoked_at is not None and r.revocation_reason is not None
        return grant.withdraw(timestamp=r.revoked_at, reason=r.revocation_reason, receipt_id=r.revocation_receipt_id)

    def receipts(self, subject: str | None = None) -> list[StoredReceipt]:
        sql = "SELECT receipt_id, subject, app, kind, issued_at, document FROM receipts"
        args: tuple[Any, ...] = ()
        if subject is not None:
            sql += " WHERE subject = ?"
            args = (subject,)
        rows = self._read(lambda db: db.execute(sql + " ORDER BY issued_at, rowid", args).fetchall(), "read receipts")
        return [StoredReceipt(*row) for row in rows]

    def consent_version(self) -> int:
        return self._data_version()

    def _data_version(self) -> int:
        """SQLite's ``data_version``: changes when another connection commits (never for our own)."""
        with self._mutex:
            try:
                return int(self._db().execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise _classify(exc, "poll the store") from None

    # --- policy ---------------------------------------------------------------------------------

    def record_policy(self, applied: AppliedBundle) -> None:
        if not isinstance(applied, AppliedBundle):
            raise WrongTypeError(f"expected an AppliedBundle, got {type(applied).__name__}")
        digest = applied.digest_hex
        with self._write("record the policy in force") as db:
            if db.execute("SELECT 1 FROM policy WHERE proposal_hash = ?", (digest,)).fetchone():
                raise PolicyVerificationError(
                    f"proposal {digest} is already part of the stored policy: a bundle applies once"
                )
            step = db.execute("SELECT COALESCE(MAX(step) + 1, 0) FROM policy").fetchone()[0]
            db.execute(
                "INSERT INTO policy (step, proposal_hash, bundle, registry, verified_at, thresholds)"
                " VALUES (?,?,?,?,?,?)",
                (
                    step,
                    digest,
                    applied.bundle.to_json(),
                    applied.registry.to_json(),
                    applied.verified_at,
                    json.dumps(_thresholds_dict(applied.thresholds), sort_keys=True, allow_nan=False),
                ),
            )
            self._audit_in(
                db,
                "policy_applied",
                {"proposal_hash": digest, "signer_count": applied.signer_count, "step": step},
            )

    def policy_history(self) -> list[AppliedBundle]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT step, bundle, registry, verified_at, thresholds FROM policy ORDER BY step"
            ).fetchall(),
            "read the stored policy",
        )
        history = []
        for step, bundle, registry, verified_at, thresholds in rows:
            try:
                values = strict_json.loads(thresholds, StoreCorruptError, "stored thresholds")
                history.append(
                    AppliedBundle(
                        EnactedBundle.from_json(bundle),
                        NodeRegistry.from_json(registry),
                        float(verified_at),
                        ClinicalThresholds(**values),
                    )
                )
            except (CortexError, TypeError, ValueError) as exc:
                raise PolicyVerificationError(f"stored policy step {step} is malformed: {exc}") from None
        return history

    def policy_in_force(self) -> PolicyInForce:
        return replay_policy(self.policy_history())

    # --- registry and revocations -----------------------------------------------------------------

    def sensor_models(self) -> list[SensorModel]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT model_id, manufacturer, snr_db, bits, shape FROM sensor_models ORDER BY model_id"
            ).fetchall(),
            "read the sensor models",
        )
        models = []
        for m, f, snr, b, shape in rows:
            try:
                extra = {} if shape is None else strict_json.loads(shape, StoreCorruptError, "a sensor model's shape")
                if not isinstance(extra, dict) or set(extra) - set(_SHAPE_FIELDS):
                    raise StoreCorruptError(f"the stored shape of sensor model {m!r} is malformed")
                if "labels" in extra:
                    extra["labels"] = tuple(extra["labels"])
                models.append(SensorModel(str(m), str(f), float(snr), int(b), **extra))
            except (CortexError, TypeError, ValueError) as exc:
                raise StoreCorruptError(f"the stored sensor model {m!r} is malformed: {exc}") from None
        return models

    def save_sensor_models(self, models: Sequence[SensorModel]) -> None:
        if isinstance(models, str | bytes) or not isinstance(models, Sequence):
            raise WrongTypeError(f"models must be a sequence of SensorModel, got {type(models).__name__}")
        for m in models:
            if not isinstance(m, SensorModel):
                raise WrongTypeError(f"models must be SensorModel values, got {type(m).__name__}")
        rows = []
        for m in models:
            shape = {name: getattr(m, name) for name in _SHAPE_FIELDS}
            shape["labels"] = list(m.labels)
            rows.append((m.model_id, m.manufacturer, m.snr_db, m.bits, json.dumps(shape, sort_keys=True)))
        with self._write("store the sensor models") as db:
            db.execute("DELETE FROM sensor_models")
            db.executemany(
                "INSERT INTO sensor_models (model_id, manufacturer, snr_db, bits, shape) VALUES (?,?,?,?,?)", rows
            )
            self._audit_in(db, "registry_models_stored", {"model_count": len(models)})

    def revoke_sensor(self, sensor_id: str, reason: str) -> None:
        model_of(sensor_id)  # WrongTypeError for a non-str or empty id
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 256:
            raise InvalidArgumentError("a sensor revocation needs a reason of 1 to 256 characters")
        with self._write("revoke a sensor") as db:
            db.execute(
                "INSERT OR IGNORE INTO sensor_revocations (sensor, revoked_at, reason) VALUES (?,?,?)",
                (sensor_id, float(self._clock.time()), reason),
            )
            self._audit_in(db, "sensor_revoked", {"subject_hash": subject_of(sensor_id)})

    def revoked_sensors(self) -> list[str]:
        rows = self._read(
            lambda db: db.execute("SELECT sensor FROM sensor_revocations ORDER BY sensor").fetchall(),
            "read revocations",
        )
        return [str(r[0]) for r in rows]

    def save_revocation_list(self, data: bytes, trust: TrustStore) -> int:
        if not isinstance(trust, TrustStore):
            raise WrongTypeError(f"trust must be a TrustStore, got {type(trust).__name__}")
        crl = parse_revocation_list(data)
        issuer = crl.issuer_key_id.hex()
        with self._write("store a revocation list") as db:
            row = db.execute(
                "SELECT sequence, data FROM revocation_lists WHERE issuer_key_id = ?", (issuer,)
            ).fetchone()
            if row is not None:
                if bytes(row[1]) == data:
                    return crl.issued_at
                if crl.issued_at <= int(row[0]):
                    raise CertificateError(
                        CertificateReason.STALE,
                        f"revocation list of issuer {issuer[:16]} with sequence {crl.issued_at} is not newer than "
                        f"the stored one ({row[0]}): a revocation list is never rolled back",
                    )
                trust.add_revocation_list(bytes(row[1]))  # the stored one first: the trust store then refuses older
            trust.add_revocation_list(data)  # verifies the signature against the trusted root
            db.execute(
                "INSERT OR REPLACE INTO revocation_lists (issuer_key_id, sequence, data, stored_at) VALUES (?,?,?,?)",
                (issuer, crl.issued_at, data, float(self._clock.time())),
            )
            self._audit_in(
                db,
                "revocation_list_stored",
                {"issuer_hash": issuer[:16], "sequence": crl.issued_at, "serial_count": len(crl.serials)},
            )
        return crl.issued_at

    def load_revocation_lists(self, trust: TrustStore) -> int:
        rows = self._read(
            lambda db: db.execute("SELECT data FROM revocation_lists").fetchall(), "read revocation lists"
        )
        for (data,) in rows:
            trust.add_revocation_list(bytes(data))
        return len(rows)

    # --- audit ------------------------------------------------------------------------------------

    def audit(self, event: str, **details: str | int | float | bool) -> AuditEntry:
        with self._write(f"audit {event!r}" if isinstance(event, str) else "audit") as db:
            return self._audit_in(db, event, dict(details))

    def _audit_snapshot(self) -> tuple[AuditHead, list[tuple[Any, ...]]]:
        """The head and every audit row in one read transaction on this connection (no write lock)."""
        try:
            result: tuple[AuditHead, list[tuple[Any, ...]]] = self._read(read_snapshot, "read the audit trail")
        except AuditError as exc:
            raise StoreCorruptError(f"the audit trail is damaged: {exc}") from None
        return result

    def audit_entries(self) -> list[AuditEntry]:
        try:
            return list(entries_of(self._audit_snapshot()[1]))
        except AuditError as exc:
            raise StoreCorruptError(f"the audit trail is damaged: {exc}") from None

    def audit_head(self) -> AuditHead:
        count, last = self._read(
            lambda db: db.execute("SELECT count, last_hash FROM audit_head WHERE id = 0").fetchone(),
            "read the audit head",
        )
        return AuditHead(count, last)

    def verify_audit(self, expected_head: AuditHead | None = None) -> VerifyResult:
        stored, rows = self._audit_snapshot()
        return verify_rows(stored, rows, expected_head)

    # --- released features --------------------------------------------------------------------------

    def set_retention(self, scope: str, days: float | None) -> None:
        if scope not in SCOPES:
            raise InvalidArgumentError(f"unknown scope {scope!r}; known scopes: {', '.join(SCOPES)}")
        if days is not None and (
            isinstance(days, bool) or not isinstance(days, int | float) or not math.isfinite(days) or days <= 0
        ):
            raise InvalidArgumentError(f"retention is a finite number of days > 0 (or off), got {days!r}")
        with self._write("set retention") as db:
            if days is None:
                db.execute("DELETE FROM retention WHERE scope = ?", (scope,))
                db.execute("DELETE FROM releases WHERE scope = ?", (scope,))
            else:
                db.execute("INSERT OR REPLACE INTO retention (scope, days) VALUES (?, ?)", (scope, float(days)))

    def retention(self) -> dict[str, float]:
        rows = self._read(lambda db: db.execute("SELECT scope, days FROM retention").fetchall(), "read retention")
        return {str(s): float(d) for s, d in rows}

    def record_release(self, subject: str, scope: str, seq: int, values: Mapping[str, Any]) -> bool:
        try:
            payload = json.dumps(dict(values), sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"released values must be plain JSON data: {exc}") from None
        with self._write("keep a released result") as db:
            if db.execute("SELECT 1 FROM retention WHERE scope = ?", (scope,)).fetchone() is None:
                return False
            db.execute(
                "INSERT INTO releases (subject, scope, seq, released_at, payload) VALUES (?,?,?,?,?)",
                (subject, scope, int(seq), float(self._clock.time()), payload),
            )
        return True

    def releases(self, subject: str) -> list[Release]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT subject, scope, seq, released_at, payload FROM releases WHERE subject = ? ORDER BY id",
                (subject,),
            ).fetchall(),
            "read kept releases",
        )
        return [
            Release(s, sc, q, t, strict_json.loads(p, StoreCorruptError, "a kept release")) for s, sc, q, t, p in rows
        ]

    def prune_releases(self) -> int:
        now = float(self._clock.time())
        with self._write("prune kept releases") as db:
            removed = 0
            for scope, days in db.execute("SELECT scope, days FROM retention").fetchall():
                cur = db.execute(
                    "DELETE FROM releases WHERE scope = ? AND released_at < ?", (scope, now - days * 86400.0)
                )
                removed += cur.rowcount
            db.execute("DELETE FROM releases WHERE scope NOT IN (SELECT scope FROM retention)")
        self._truncate_wal()  # the WAL still holds the pruned rows' old pages: checkpoint and cut it
        return removed

    def _truncate_wal(self) -> None:
        with self._mutex:
            try:
                self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                raise _classify(exc, "checkpoint the WAL") from None

    # --- the whole ---------------------------------------------------------------------------------

    # --- applications (the consumer API) ------------------------------------------------------

    def add_app(self, app_id: str, public_key: bytes) -> AppRecord:
        app = check_app(app_id)
        key = public_bytes(public_key, "an application's public key", 32)
        now = float(self._clock.time())
        with self._write(f"register the application {app!r}") as db:
            if db.execute("SELECT 1 FROM apps WHERE app_id = ?", (app,)).fetchone():
                raise InvalidArgumentError(f"the application {app!r} is already registered (ids are never reused)")
            db.execute("INSERT INTO apps (app_id, public_key, created_at) VALUES (?,?,?)", (app, key, now))
            self._audit_in(db, "app_added", {"app": app, "key_hash": truncated_hash(key.hex())})
        return AppRecord(app, key, now)

    def apps(self) -> list[AppRecord]:
        rows = self._read(
            lambda db: db.execute("SELECT app_id, public_key, created_at, revoked_at FROM apps ORDER BY app_id")
            .fetchall(), "read the applications")  # fmt: skip
        return [AppRecord(str(a), bytes(k), float(c), None if r is None else float(r)) for a, k, c, r in rows]

    def app(self, app_id: str) -> AppRecord | None:
        app = check_app(app_id)
        row = self._read(
            lambda db: db.execute("SELECT app_id, public_key, created_at, revoked_at FROM apps WHERE app_id = ?",
                                  (app,)).fetchone(), "read an application")  # fmt: skip
        if row is None:
            return None
        return AppRecord(str(row[0]), bytes(row[1]), float(row[2]), None if row[3] is None else float(row[3]))

    def revoke_app(self, app_id: str) -> AppRecord:
        app = check_app(app_id)
        now = float(self._clock.time())
        with self._write(f"revoke the application {app!r}") as db:
            row = db.execute("SELECT revoked_at FROM apps WHERE app_id = ?", (app,)).fetchone()
            if row is None:
                raise InvalidArgumentError(f"no application {app!r} is registered")
            if row[0] is None:
                db.execute("UPDATE apps SET revoked_at = ? WHERE app_id = ?", (now, app))
                tokens = db.execute(
                    "UPDATE tokens SET revoked_at = ? WHERE app_id = ? AND revoked_at IS NULL", (now, app)
                ).rowcount
                self._audit_in(db, "app_revoked", {"app": app, "tokens": int(tokens)})
        record = self.app(app)
        assert record is not None
        return record

    def request_access(self, app_id: str, scopes: Sequence[str], purpose: str) -> AccessRequest:
        app, wanted = check_app(app_id), check_scopes(scopes)
        if not isinstance(purpose, str) or not purpose.strip() or len(purpose) > 256:
            raise InvalidArgumentError("a purpose is a non-empty text of at most 256 characters")
        text = ",".join(wanted)
        now = float(self._clock.time())
        with self._write("record an access request") as db:
            row = db.execute("SELECT revoked_at FROM apps WHERE app_id = ?", (app,)).fetchone()
            if row is None or row[0] is not None:
                raise InvalidArgumentError(f"the application {app!r} is not registered (cortex-sal apps add)")
            held = db.execute(
                "SELECT id, requested_at FROM access_requests WHERE app_id = ? AND scopes = ? AND purpose = ?"
                " AND status = 'pending'", (app, text, purpose)).fetchone()  # fmt: skip
            if held is not None:
                return AccessRequest(int(held[0]), app, wanted, purpose, float(held[1]), "pending")
            cur = db.execute(
                "INSERT INTO access_requests (app_id, scopes, purpose, requested_at, status) VALUES (?,?,?,?,?)",
                (app, text, purpose, now, "pending"),
            )
            self._audit_in(db, "access_requested", {"app": app, "scopes": text})
            assert cur.lastrowid is not None
            return AccessRequest(int(cur.lastrowid), app, wanted, purpose, now, "pending")

    def access_requests(self, app_id: str | None = None) -> list[AccessRequest]:
        sql = "SELECT id, app_id, scopes, purpose, requested_at, status FROM access_requests"
        args: tuple[Any, ...] = ()
        if app_id is not None:
            sql, args = sql + " WHERE app_id = ?", (check_app(app_id),)
        rows = self._read(lambda db: db.execute(sql + " ORDER BY id", args).fetchall(), "read access requests")
        return [AccessRequest(int(i), str(a), tuple(str(sc).split(",")), str(p), float(t), str(st))
                for i, a, sc, p, t, st in rows]  # fmt: skip

    def approve_requests(self, app_id: str) -> int:
        app = check_app(app_id)
        with self._write("approve access requests") as db:
            n = db.execute(
                "UPDATE access_requests SET status = 'approved' WHERE app_id = ? AND status = 'pending'", (app,)
            ).rowcount
            if n:
                self._audit_in(db, "access_approved", {"app": app, "requests": int(n)})
        return int(n)

    def issue_token(self, app_id: str, token_hash: bytes, expires_at: float) -> None:
        app = check_app(app_id)
        digest = public_bytes(token_hash, "a token hash", 32)
        now = float(self._clock.time())
        if isinstance(expires_at, bool) or not isinstance(expires_at, int | float) or not expires_at > now:
            raise InvalidArgumentError("a token must expire after it is issued")
        with self._write("record an authorisation") as db:
            row = db.execute("SELECT revoked_at FROM apps WHERE app_id = ?", (app,)).fetchone()
            if row is None or row[0] is not None:
                raise InvalidArgumentError(f"the application {app!r} is not registered (cortex-sal apps add)")
            db.execute("DELETE FROM tokens WHERE expires_at < ?", (now - 86400.0,))  # bounded: a day of history
            db.execute("INSERT INTO tokens (token_hash, app_id, issued_at, expires_at) VALUES (?,?,?,?)",
                       (digest, app, now, float(expires_at)))  # fmt: skip
            self._audit_in(db, "app_authorized", {"app": app, "token_hash": truncated_hash(digest.hex()),
                                                  "ttl_s": float(expires_at) - now})  # fmt: skip

    def token_app(self, token_hash: bytes) -> str | None:
        digest = public_bytes(token_hash, "a token hash", 32)
        now = float(self._clock.time())
        row = self._read(
            lambda db: db.execute(
                "SELECT t.app_id FROM tokens t JOIN apps a ON a.app_id = t.app_id WHERE t.token_hash = ?"
                " AND t.revoked_at IS NULL AND a.revoked_at IS NULL AND t.expires_at > ?", (digest, now)
            ).fetchone(), "check a token")  # fmt: skip
        return None if row is None else str(row[0])

    def revoke_tokens(self, app_id: str) -> int:
        app = check_app(app_id)
        now = float(self._clock.time())
        with self._write("revoke tokens") as db:
            n = db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE app_id = ? AND revoked_at IS NULL AND expires_at > ?",
                (now, app, now),
            ).rowcount
            self._audit_in(db, "tokens_revoked", {"app": app, "tokens": int(n)})
        return int(n)

    def pairwise_id(self, app_id: str, subject: str) -> str:
        app = check_app(app_id)
        if not isinstance(subject, str) or not subject or len(subject) > 64:
            raise InvalidArgumentError("a subject is a non-empty pseudonym of at most 64 characters")
        cached = self._pairwise.get((app, subject))
        if cached is not None:
            return cached
        with self._mutex:
            if self._pairwise_key is None:
                path = self.directory / PAIRWISE_KEY_FILE
                self._create_key_file(path, "pairwise id key")
                self._pairwise_key = read_secret_file(path, SEED_SIZE, "pairwise id key", StoreError)
            tag = hmac_sha256(self._pairwise_key, _PAIRWISE_CONTEXT, app.encode(), b"\x00", subject.encode())
        found = tag[:16].hex()  # an output of the keyed hash, not the key: public by design
        if len(self._pairwise) > 100_000:
            self._pairwise.clear()
        self._pairwise[(app, subject)] = found
        return found

    def check(self) -> CheckReport:
        def integrity_of(db: sqlite3.Connection) -> str:
            found = db.execute("PRAGMA integrity_check").fetchall()
            return str(found[0][0]) if found else "no answer"

        def counts_of(db: sqlite3.Connection) -> dict[str, int]:
            return {
                table: int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
                for table in ("consent", "receipts", "policy", "sensor_models", "sensor_revocations",
                              "revocation_lists", "releases", "apps", "access_requests", "tokens", "audit_entries")
            }  # fmt: skip

        try:
            integrity: str = self._read(integrity_of, "check the database")
        except StoreCorruptError as exc:
            integrity = str(exc)
        try:
            counts: dict[str, int] = self._read(counts_of, "count the rows")
        except StoreCorruptError as exc:
            counts = {}
            if integrity == "ok":
                integrity = str(exc)
        if integrity != "ok":
            version = int(self._read(lambda db: db.execute("PRAGMA user_version").fetchone()[0], "read the version"))
            failed = VerifyResult(False, None, "not verified: the database fails its integrity check")
            return CheckReport(version, integrity, failed, AuditHead(0, "0" * 64), counts, self._sizes(),
                               "not checked: the database fails its integrity check")  # fmt: skip
        audit = self.verify_audit()
        try:
            policy = self.policy_in_force().describe()
        except PolicyVerificationError as exc:
            policy = f"policy does not verify: {exc}"
        version = int(self._read(lambda db: db.execute("PRAGMA user_version").fetchone()[0], "read the schema version"))
        return CheckReport(version, integrity, audit, self.audit_head(), counts, self._sizes(), policy)

    def _sizes(self) -> dict[str, int]:
        sizes = {}
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                sizes[p.name] = p.stat().st_size
        return sizes

    def export_subject(self, sensor_id: str) -> dict[str, Any]:
        subject = subject_of(sensor_id)
        consent = [r for r in self.consent_records() if r.sensor_key == subject]
        entries = [e for e in self.audit_entries() if e.details.get("subject_hash") == subject]
        return {
            "format": "cortex-sal/subject-export/1",
            "subject": subject,
            "controller": self.controller,
            "jurisdiction": self.jurisdiction,
            "exported_at": float(self._clock.time()),
            "receipt_public_key": self.receipt_public_key().hex(),
            "consent": [r.to_dict() for r in consent],
            "receipts": [r.document for r in self.receipts(subject)],
            "audit": [e.to_record() for e in entries],
            "releases": [
                {"scope": r.scope, "seq": r.seq, "released_at": r.released_at, "values": dict(r.values)}
                for r in self.releases(subject)
            ],
        }


class _Journal:
    """The store as a ConsentLedger's journal: writes through, and reports other writers' changes."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._version = store._data_version()
        self._checked = time.monotonic()

    def write(self, change: Change, records: Sequence[ConsentRecord]) -> None:
        self._store._write_consent(change, records)

    def changes(self, *, now: bool = False) -> Sequence[ConsentRecord] | None:
        t = time.monotonic()
        if not now and t - self._checked < POLL_INTERVAL_S:
            return None
        self._checked = t
        version = self._store._data_version()
        if version == self._version:
            return None
        self._version = version
        return self._store.consent_records()


def _thresholds_dict(t: ClinicalThresholds) -> dict[str, Any]:
    return {name: getattr(t, name) for name in t.__dataclass_fields__}


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (triggers keep their ``BEGIN ... END;`` body)."""
    out: list[str] = []
    buf = ""
    for part in script.split(";"):
        buf += part
        if sqlite3.complete_statement(buf + ";"):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
        else:
            buf += ";"
    return out
