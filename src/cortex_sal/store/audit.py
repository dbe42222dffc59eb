"""The audit trail at rest: one SQLite file, append-only and hash-chained, and its JSONL export.

The entry format, the chain and the privacy rule are :mod:`cortex_sal.governance.audit`;
this module stores them. Two tables: ``audit_entries`` (one row per entry, in storage order
``seq``) and ``audit_head`` (one row: ``count`` and ``last_hash``, updated in the same
transaction as each append). SQLite triggers refuse UPDATE and DELETE of entries and a
shrinking head.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import AuditError
from ..governance import audit
from ..governance.audit import GENESIS_HASH, AuditEntry, AuditHead, VerifyResult, entry_hash

__all__ = [
    "SCHEMA",
    "AuditTrail",
    "append_entry",
    "entries_of",
    "jsonl_entry_count",
    "prepare_entry",
    "read_snapshot",
    "verify_jsonl",
    "verify_rows",
]


def _reason(exc: OSError | ValueError) -> str:
    """What an OS error says (its strerror), or a ValueError's text (a path holding a NUL byte)."""
    return getattr(exc, "strerror", None) or str(exc)


def _jsonl_records(path: Path) -> Iterator[tuple[object, str | None]]:
    try:
        data = path.read_bytes()
    except (OSError, ValueError) as exc:  # ValueError: a path holding a NUL byte
        raise AuditError(f"cannot read audit export {path}: {_reason(exc)}") from None
    if not data:
        return
    if not data.endswith(b"\n"):
        data += b"\n"  # a missing final newline is tolerated; a cut line fails to parse
    for line in data[:-1].split(b"\n"):
        try:
            text = line.decode("ascii")
            record = audit.parse_json(text)
        except (UnicodeDecodeError, AuditError) as exc:
            yield None, f"not a valid canonical JSON line ({exc})"
            continue
        yield record, None


def jsonl_entry_count(path: str | Path) -> int:
    """The number of non-blank lines of an exported JSONL file (read line by line)."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except (OSError, ValueError) as exc:  # ValueError: a path holding a NUL byte
        raise AuditError(f"cannot read audit export {path}: {_reason(exc)}") from None


def verify_jsonl(path: str | Path, expected_head: tuple[int, str] | AuditHead | None = None) -> VerifyResult:
    """Verify an exported JSONL file exactly as :meth:`AuditTrail.verify` verifies the database.

    An export carries no head of its own: truncation of its tail is caught only with
    ``expected_head``.
    """
    return audit.verify_records(_jsonl_records(Path(path)), stored_head=None, expected_head=expected_head)


# --- the trail ---------------------------------------------------------------------------


def prepare_entry(clock: Clock, event: str, details: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Check ``event`` and ``details`` (the privacy rule) and read the clock: ``(timestamp, details)``."""
    reason = audit.check_event(event)
    if reason is not None:
        raise AuditError(reason)
    reason = audit.check_details(details)
    if reason is not None:
        raise AuditError(reason)
    timestamp = clock.time()
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise AuditError(f"the clock returned {type(timestamp).__name__}, not a number")
    timestamp = float(timestamp)
    if not math.isfinite(timestamp):
        raise AuditError("the clock returned a non-finite time")
    return timestamp, dict(details)


def read_snapshot(conn: sqlite3.Connection) -> tuple[AuditHead, list[tuple[Any, ...]]]:
    """The recorded head and every row, inside the caller's read transaction (a consistent view)."""
    head_row = conn.execute("SELECT count, last_hash FROM audit_head WHERE id = 0").fetchone()
    rows = conn.execute(
        "SELECT idx, timestamp, event, details, prev_hash, entry_hash FROM audit_entries ORDER BY seq"
    ).fetchall()
    if head_row is None:
        raise AuditError("the audit head is missing")
    return AuditHead(head_row[0], head_row[1]), rows


def _row_record(row: tuple[Any, ...]) -> tuple[object, str | None]:
    idx, timestamp, event, details_text, prev_hash, ehash = row
    if not isinstance(details_text, str):
        return None, "details column is not text"
    try:
        details = audit.parse_json(details_text)
    except AuditError as exc:
        return None, f"details are not valid JSON ({exc})"
    record = {
        "index": idx,
        "timestamp": timestamp,
        "event": event,
        "details": details,
        "prev_hash": prev_hash,
        "entry_hash": ehash,
    }
    return record, None


def entries_of(rows: list[tuple[Any, ...]]) -> Iterator[AuditEntry]:
    """The rows of :func:`read_snapshot` as entries (not verified)."""
    for position, row in enumerate(rows):
        record, error = _row_record(row)
        entry, reason = (None, error) if error is not None else audit.record_to_entry(position, record)
        if entry is None:
            raise AuditError(f"entry {position} is malformed: {reason}")
        yield entry


def verify_rows(
    stored: AuditHead, rows: list[tuple[Any, ...]], expected_head: tuple[int, str] | AuditHead | None = None
) -> VerifyResult:
    """:meth:`AuditTrail.verify` on the rows of :func:`read_snapshot`."""
    return audit.verify_records((_row_record(row) for row in rows), stored_head=stored, expected_head=expected_head)


def append_entry(conn: sqlite3.Connection, timestamp: float, event: str, details: dict[str, Any]) -> AuditEntry:
    """Extend the chain by one entry inside the caller's open write transaction (``BEGIN IMMEDIATE``).

    The store calls it in the same transaction as the change it audits: both commit, or neither.
    ``details`` must have passed :func:`prepare_entry`.
    """
    count, last_hash = conn.execute("SELECT count, last_hash FROM audit_head WHERE id = 0").fetchone()
    last = conn.execute("SELECT idx, entry_hash FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
    consistent = (last is None and count == 0 and last_hash == GENESIS_HASH) or (
        last is not None and tuple(last) == (count - 1, last_hash)
    )
    if not consistent:
        raise AuditError("the trail's head disagrees with its last entry; refusing to append (run verify())")
    ehash = entry_hash(count, timestamp, event, details, last_hash)
    conn.execute(
        "INSERT INTO audit_entries (seq, idx, timestamp, event, details, prev_hash, entry_hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (count, count, timestamp, event, audit.dumps_details(details), last_hash, ehash),
    )
    conn.execute("UPDATE audit_head SET count = ?, last_hash = ? WHERE id = 0", (count + 1, ehash))
    return AuditEntry(count, timestamp, event, MappingProxyType(details), last_hash, ehash)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS audit_entries (
    seq INTEGER PRIMARY KEY,
    idx INTEGER NOT NULL,
    timestamp REAL NOT NULL,
    event TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    format TEXT NOT NULL,
    count INTEGER NOT NULL,
    last_hash TEXT NOT NULL
);
INSERT OR IGNORE INTO audit_head (id, format, count, last_hash) VALUES (0, '{audit.FORMAT}', 0, '{GENESIS_HASH}');
CREATE TRIGGER IF NOT EXISTS audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_no_shrink BEFORE UPDATE ON audit_head WHEN NEW.count < OLD.count
BEGIN SELECT RAISE(ABORT, 'the audit head never shrinks'); END;
CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'the audit head is never deleted'); END;
"""


class AuditTrail:
    """An append-only, hash-chained audit log in one SQLite file.

    Keeps one connection open; use it as a context manager or call :meth:`close`.
    Safe to share between threads of one process (a lock serialises access); several
    processes may append to the same file (each append is one ``BEGIN IMMEDIATE``
    transaction that reads the head and extends it).
    """

    def __init__(self, path: str | Path, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                str(self._path), isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, ValueError) as exc:  # ValueError: a path holding a NUL byte
            raise AuditError(f"cannot open audit trail {self._path!r}: {exc}") from None
        try:
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
            row = self._conn.execute("SELECT format FROM audit_head WHERE id = 0").fetchone()
        except (sqlite3.Error, UnicodeDecodeError) as exc:  # a TEXT column that is not UTF-8
            self._conn.close()
            self._conn = None
            raise AuditError(f"{self._path} is not a usable audit trail: {exc}") from None
        if row is None or row[0] != audit.FORMAT:
            self._conn.close()
            self._conn = None
            raise AuditError(f"{self._path} is not a {audit.FORMAT} audit trail")

    # --- lifecycle ---

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AuditError("the audit trail is closed")
        return self._conn

    # --- writing ---

    def append(self, event: str, **details: str | int | float | bool) -> AuditEntry:
        """Append one entry; refuse an unknown event or any detail the privacy rule forbids."""
        timestamp, frozen = prepare_entry(self._clock, event, details)
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                entry = append_entry(conn, timestamp, event, frozen)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error | UnicodeDecodeError):
                    raise AuditError(f"cannot append to the audit trail: {exc}") from None
                raise
        return entry

    # --- reading ---

    def head(self) -> AuditHead:
        """The recorded head: entry count and last entry hash (retain it to detect truncation later)."""
        with self._lock:
            try:
                count, last_hash = self._db().execute("SELECT count, last_hash FROM audit_head WHERE id = 0").fetchone()
            except (sqlite3.Error, TypeError, UnicodeDecodeError) as exc:
                raise AuditError(f"cannot read the audit head: {exc}") from None
        return AuditHead(count, last_hash)

    def _snapshot(self) -> tuple[AuditHead, list[tuple[Any, ...]]]:
        """The recorded head and every row, read in one transaction (a consistent view)."""
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN")
                try:
                    return read_snapshot(conn)
                finally:
                    conn.execute("COMMIT")
            except (sqlite3.Error, UnicodeDecodeError) as exc:
                raise AuditError(f"cannot read the audit trail: {exc}") from None

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in storage order (not verified: call :meth:`verify` for that)."""
        yield from entries_of(self._snapshot()[1])

    def __len__(self) -> int:
        return self.head().count

    def verify(self, expected_head: tuple[int, str] | AuditHead | None = None) -> VerifyResult:
        """Check the whole chain and the recorded head (and ``expected_head`` if given)."""
        stored, rows = self._snapshot()
        return verify_rows(stored, rows, expected_head)

    def export_jsonl(self, path: str | Path) -> AuditHead:
        """Write the verified trail as JSONL, one entry per line; return the head it ends at.

        Each line is ``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)``
        with the fields ``index, timestamp, event, details, prev_hash, entry_hash``. A trail that
        fails :meth:`verify` is not exported (AuditError names the first bad index).
        """
        result = self.verify()
        if not result.ok:
            raise AuditError(
                f"refusing to export a trail that fails verification at {result.first_bad_index}: {result.reason}"
            )
        entries = list(self.entries())
        lines = [
            json.dumps(e.to_record(), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
            for e in entries
        ]
        text = "".join(line + "\n" for line in lines)
        try:
            Path(path).write_text(text, encoding="ascii")
        except (OSError, ValueError) as exc:  # ValueError: a path holding a NUL byte
            raise AuditError(f"cannot write audit export {path}: {_reason(exc)}") from None
        if entries:
            return AuditHead(len(entries), entries[-1].entry_hash)
        return AuditHead(0, GENESIS_HASH)

    verify_jsonl = staticmethod(verify_jsonl)
