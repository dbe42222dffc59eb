"""The governance audit trail: append-only, hash-chained, persisted to SQLite.

Every governance event (a submission, a signature, an invalid signature, an enactment, a
refusal, a node registered or deactivated, a policy applied) is appended as one entry.
Each entry carries the hash of the one before it, so :meth:`AuditTrail.verify` finds an
edited, removed, reordered, truncated or spliced entry and names the first bad index.

Entry and canonical encoding
----------------------------
An entry is ``(index, timestamp, event, details, prev_hash)`` plus ``entry_hash``:

* ``index``: int, 0 for the first entry, then 1, 2, ... with no gap;
* ``timestamp``: float, seconds since the epoch from the injected clock's ``.time()``;
* ``event``: one of :data:`EVENTS`;
* ``details``: a flat JSON object, str keys, values str / int / bool / finite float only;
* ``prev_hash``: the previous entry's ``entry_hash`` (64 lowercase hex), or
  :data:`GENESIS_HASH` (64 zeros) for entry 0;
* ``entry_hash`` = ``sha256(canonical_encoding).hexdigest()`` where::

      canonical_encoding = json.dumps(
          {"index": index, "timestamp": timestamp, "event": event,
           "details": details, "prev_hash": prev_hash},
          sort_keys=True,            # keys sorted at every level (details too)
          separators=(",", ":"),     # no whitespace
          ensure_ascii=True,         # non-ASCII as \\uXXXX escapes
          allow_nan=False,           # NaN / Infinity are refused
      ).encode("ascii")

  Floats are written by Python's ``float.__repr__`` (shortest round-trip form, e.g.
  ``1800000000.0``, ``0.1``, ``1e-07``), ints by ``int.__repr__``, booleans as
  ``true``/``false``. A timestamp is always a float (``1.0``, never ``1``); an int detail
  stays an int, so ``1`` and ``1.0`` hash differently. This is *not* RFC 8785 (whose
  number format differs); it is the rule above, nothing else.

What details may hold (privacy rule)
------------------------------------
Entries never hold a raw identifier or a biometric value. :meth:`AuditTrail.append`
refuses, with :class:`AuditError`:

* a key that names a raw identifier: ``id`` or any key ending in ``_id`` (``sensor_id``,
  ``node_id``, ``user_id``, ...). Pass identifiers as ``<name>_hash=truncated_hash(value)``;
* a key that names biometric data: any ``_``-separated part of the key among
  :data:`FORBIDDEN_KEY_PARTS` (``raw``, ``samples``, ``features``, ``coherency``, ``eeg``,
  ``signal``, ...);
* any str value longer than :data:`MAX_STR_LEN` (64) characters, any str value shaped like a
  UUID, and any hex string longer than 16 characters under a key not ending in ``_hash``;
* under a key ending in ``_hash``: anything but 16 lowercase hex (a :func:`truncated_hash`)
  or 64 lowercase hex (a full content digest such as a proposal hash);
* a value that is not str / int / bool / finite float (lists, dicts, bytes, None, NaN ...),
  an int outside the signed 64-bit range, more than :data:`MAX_DETAILS` keys.

Storage and what verification can prove
---------------------------------------
Two tables: ``audit_entries`` (one row per entry, in storage order ``seq``) and
``audit_head`` (one row: ``count`` and ``last_hash``, updated in the same transaction as
each append). SQLite triggers refuse UPDATE and DELETE of entries and a shrinking head, so
honest code cannot rewrite history by mistake; anyone with write access to the file can
drop the triggers, which is why the chain exists.

:meth:`AuditTrail.verify` walks the rows in storage order and checks, for position ``p``:
the row's index is ``p`` (removal, reordering, insertion), its fields are well formed and
obey the privacy rule, its ``prev_hash`` equals the previous ``entry_hash`` (splice from
another log, removal), and its ``entry_hash`` matches its contents (edit). It then compares
the stored head (count + last hash) with the chain.

Truncation of the tail leaves a chain that is internally perfect. It is detectable only
against a retained head: the ``audit_head`` table catches a careless truncation, but an
attacker who can rewrite the file can rewrite that table too. A caller that keeps
``head()`` somewhere else (another machine, a signed bundle, a printout) passes it as
``verify(expected_head=(count, last_hash))``: the log must then hold at least ``count``
entries and entry ``count - 1`` must have hash ``last_hash`` (a log that grew since is fine).
The same holds for an exported JSONL file (:func:`verify_jsonl`), which carries no head.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from ..errors import AuditError
from ..keros.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "EVENTS",
    "FORBIDDEN_KEY_PARTS",
    "GENESIS_HASH",
    "MAX_DETAILS",
    "MAX_STR_LEN",
    "AuditEntry",
    "AuditError",
    "AuditHead",
    "AuditTrail",
    "VerifyResult",
    "canonical_encoding",
    "entry_hash",
    "truncated_hash",
    "verify_jsonl",
]


EVENTS: frozenset[str] = frozenset(
    {
        "proposal_submitted",
        "signature_added",
        "signature_invalid",
        "proposal_enacted",
        "proposal_refused",
        "node_registered",
        "node_deactivated",
        "policy_applied",
    }
)

GENESIS_HASH = "0" * 64
MAX_STR_LEN = 64
MAX_DETAILS = 32
FORBIDDEN_KEY_PARTS: frozenset[str] = frozenset(
    {
        "raw",
        "sample",
        "samples",
        "feature",
        "features",
        "coherency",
        "coherence",
        "biometric",
        "biometrics",
        "eeg",
        "signal",
        "signals",
        "waveform",
        "reading",
        "readings",
    }
)

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_HASH_VALUE_RE = re.compile(r"[0-9a-f]{16}|[0-9a-f]{64}")
_LONG_HEX_RE = re.compile(r"[0-9a-fA-F]{17,}")
_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_RECORD_KEYS = frozenset({"index", "timestamp", "event", "details", "prev_hash", "entry_hash"})
_FORMAT = "cortex-sal-audit/1"


def truncated_hash(value: str) -> str:
    """The form an identifier takes in the audit trail: SHA-256 of its UTF-8 bytes, first 16 hex digits."""
    if not isinstance(value, str):
        raise AuditError(f"truncated_hash takes a str, not {type(value).__name__}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise AuditError("truncated_hash takes valid Unicode text (the value holds a lone surrogate)") from None
    return hashlib.sha256(raw).hexdigest()[:16]


# --- details policy ------------------------------------------------------------------


def _check_detail(key: object, value: object) -> str | None:
    """The reason a detail is refused, or None if it is allowed."""
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        return f"detail key {key!r} is not a name (letter, then letters, digits, _; at most 64)"
    low = key.lower()
    if low == "id" or low.endswith("_id"):
        return f"detail {key!r} names a raw identifier; pass <name>_hash=truncated_hash(value) instead"
    parts = set(low.split("_"))
    bad = sorted(parts & FORBIDDEN_KEY_PARTS)
    if bad:
        return f"detail {key!r} names biometric or raw data ({bad[0]!r}); the audit trail never holds it"
    if low.endswith("_hash") and not isinstance(value, str):
        return f"detail {key!r}: a *_hash value must be a str of 16 or 64 lowercase hex digits"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            return f"detail {key!r}: int out of the signed 64-bit range"
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"detail {key!r}: float must be finite"
        return None
    if isinstance(value, str):
        if len(value) > MAX_STR_LEN:
            return (
                f"detail {key!r}: str of {len(value)} chars exceeds {MAX_STR_LEN} "
                "(identifiers go in as truncated hashes, never raw)"
            )
        if low.endswith("_hash"):
            if not _HASH_VALUE_RE.fullmatch(value):
                return f"detail {key!r}: a *_hash value must be 16 or 64 lowercase hex digits"
            return None
        if _UUID_RE.fullmatch(value):
            return f"detail {key!r}: value looks like a raw identifier (UUID); pass truncated_hash(value)"
        if _LONG_HEX_RE.search(value):
            return f"detail {key!r}: value holds a long hex string; put digests under a *_hash key"
        return None
    return f"detail {key!r}: {type(value).__name__} is not allowed (str, int, bool, finite float only)"


def _check_details(details: Mapping[Any, Any]) -> str | None:
    if len(details) > MAX_DETAILS:
        return f"too many details ({len(details)} > {MAX_DETAILS})"
    for key, value in details.items():
        reason = _check_detail(key, value)
        if reason is not None:
            return reason
    return None


def _check_event(event: object) -> str | None:
    if not isinstance(event, str) or event not in EVENTS:
        return f"unknown audit event {event!r}; allowed: {', '.join(sorted(EVENTS))}"
    return None


# --- canonical encoding ------------------------------------------------------------------


def canonical_encoding(index: int, timestamp: float, event: str, details: Mapping[str, Any], prev_hash: str) -> bytes:
    """The bytes an entry's hash is taken over (see the module docstring)."""
    obj = {
        "index": index,
        "timestamp": timestamp,
        "event": event,
        "details": dict(details),
        "prev_hash": prev_hash,
    }
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def entry_hash(index: int, timestamp: float, event: str, details: Mapping[str, Any], prev_hash: str) -> str:
    """Hex SHA-256 of :func:`canonical_encoding`."""
    return hashlib.sha256(canonical_encoding(index, timestamp, event, details, prev_hash)).hexdigest()


def _dumps_details(details: Mapping[str, Any]) -> str:
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _strict_loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_strict_pairs, parse_constant=_refuse_constant)


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the trail; ``details`` is a read-only mapping."""

    index: int
    timestamp: float
    event: str
    details: Mapping[str, str | int | float | bool]
    prev_hash: str
    entry_hash: str

    def canonical_bytes(self) -> bytes:
        return canonical_encoding(self.index, self.timestamp, self.event, self.details, self.prev_hash)

    def to_record(self) -> dict[str, Any]:
        """The entry as a plain dict (the shape of a JSONL line)."""
        return {
            "index": self.index,
            "timestamp": self.timestamp,
            "event": self.event,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "entry_hash": self.entry_hash,
        }


class AuditHead(NamedTuple):
    """What a caller retains to detect truncation later: entry count and the last entry's hash."""

    count: int
    last_hash: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    first_bad_index: int | None
    reason: str | None


_OK = VerifyResult(True, None, None)


def _bad(index: int, reason: str) -> VerifyResult:
    return VerifyResult(False, index, reason)


def _coerce_head(expected_head: object) -> AuditHead:
    try:
        count, last_hash = expected_head  # type: ignore[misc]
    except (TypeError, ValueError):
        raise AuditError("expected_head must be a (count, last_hash) pair") from None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise AuditError("expected_head count must be a non-negative int")
    if not isinstance(last_hash, str) or not _HEX64_RE.fullmatch(last_hash):
        raise AuditError("expected_head last_hash must be 64 lowercase hex digits")
    if count == 0 and last_hash != GENESIS_HASH:
        raise AuditError("an expected_head of count 0 has the genesis hash (64 zeros)")
    return AuditHead(count, last_hash)


def _record_to_entry(position: int, record: object) -> tuple[AuditEntry | None, str | None]:
    """Check one record's shape, types and privacy rule; the entry or the reason it is malformed."""
    if not isinstance(record, dict):
        return None, f"entry {position}: not a JSON object"
    keys = set(record)
    if keys != _RECORD_KEYS:
        return None, f"entry {position}: fields {sorted(keys)} are not {sorted(_RECORD_KEYS)}"
    index = record["index"]
    timestamp = record["timestamp"]
    event = record["event"]
    details = record["details"]
    prev_hash = record["prev_hash"]
    ehash = record["entry_hash"]
    if isinstance(index, bool) or not isinstance(index, int):
        return None, f"entry {position}: index is not an int"
    if not isinstance(timestamp, float) or not math.isfinite(timestamp):
        return None, f"entry {position}: timestamp is not a finite float"
    reason = _check_event(event)
    if reason is not None:
        return None, f"entry {position}: {reason}"
    if not isinstance(details, dict):
        return None, f"entry {position}: details is not an object"
    reason = _check_details(details)
    if reason is not None:
        return None, f"entry {position}: {reason}"
    for name, value in (("prev_hash", prev_hash), ("entry_hash", ehash)):
        if not isinstance(value, str) or not _HEX64_RE.fullmatch(value):
            return None, f"entry {position}: {name} is not 64 lowercase hex digits"
    entry = AuditEntry(index, timestamp, event, MappingProxyType(dict(details)), prev_hash, ehash)
    return entry, None


def _verify_records(
    records: Iterable[tuple[object, str | None]],
    *,
    stored_head: AuditHead | None,
    expected_head: object,
) -> VerifyResult:
    """The one verification walk, shared by SQLite and JSONL.

    ``records`` yields ``(record, parse_error)`` in storage order.
    """
    expected = _coerce_head(expected_head) if expected_head is not None else None
    prev = GENESIS_HASH
    count = 0
    checkpoint_hash: str | None = None  # hash of entry expected.count - 1, once seen
    for position, (record, parse_error) in enumerate(records):
        if parse_error is not None:
            return _bad(position, f"entry {position}: {parse_error}")
        entry, reason = _record_to_entry(position, record)
        if entry is None:
            return _bad(position, reason or f"entry {position}: malformed")
        if entry.index != position:
            return _bad(
                position,
                f"entry {position}: holds index {entry.index} (an entry was removed, reordered or inserted)",
            )
        if entry.prev_hash != prev:
            return _bad(
                position,
                f"entry {position}: prev_hash does not match the previous entry's hash "
                "(removed entry or entry spliced from another log)",
            )
        try:
            computed = entry_hash(entry.index, entry.timestamp, entry.event, entry.details, entry.prev_hash)
        except (TypeError, ValueError) as exc:  # pragma: no cover - _record_to_entry already checked types
            return _bad(position, f"entry {position}: cannot be encoded ({exc})")
        if computed != entry.entry_hash:
            return _bad(position, f"entry {position}: entry_hash does not match its contents (edited entry)")
        prev = computed
        count += 1
        if expected is not None and count == expected.count:
            checkpoint_hash = computed
    if stored_head is not None:
        if (
            isinstance(stored_head.count, bool)
            or not isinstance(stored_head.count, int)
            or not isinstance(stored_head.last_hash, str)
        ):
            return _bad(count, "the recorded head is malformed")
        if count < stored_head.count:
            return _bad(count, f"log holds {count} entries but its head records {stored_head.count} (truncated)")
        if count > stored_head.count:
            return _bad(
                stored_head.count,
                f"log holds {count} entries but its head records {stored_head.count} (entries added outside the trail)",
            )
        if prev != stored_head.last_hash:
            return _bad(max(count - 1, 0), "the last entry's hash does not match the recorded head")
    if expected is not None:
        if count < expected.count:
            return _bad(
                count, f"log holds {count} entries, fewer than the retained head's {expected.count} (truncated)"
            )
        if expected.count > 0 and checkpoint_hash != expected.last_hash:
            return _bad(
                expected.count - 1,
                f"entry {expected.count - 1} does not have the retained head's hash "
                f"(log rewritten at or before index {expected.count - 1})",
            )
    return _OK


# --- JSONL export ------------------------------------------------------------------------


def _jsonl_records(path: Path) -> Iterator[tuple[object, str | None]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read audit export {path}: {exc.strerror or exc}") from None
    if not data:
        return
    if not data.endswith(b"\n"):
        data += b"\n"  # a missing final newline is tolerated; a cut line fails to parse
    for line in data[:-1].split(b"\n"):
        try:
            text = line.decode("ascii")
            record = _strict_loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            yield None, f"not a valid canonical JSON line ({exc})"
            continue
        yield record, None


def verify_jsonl(path: str | Path, expected_head: tuple[int, str] | AuditHead | None = None) -> VerifyResult:
    """Verify an exported JSONL file exactly as :meth:`AuditTrail.verify` verifies the database.

    An export carries no head of its own: truncation of its tail is caught only with
    ``expected_head``.
    """
    return _verify_records(_jsonl_records(Path(path)), stored_head=None, expected_head=expected_head)


# --- the trail ---------------------------------------------------------------------------

_SCHEMA = f"""
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
INSERT OR IGNORE INTO audit_head (id, format, count, last_hash) VALUES (0, '{_FORMAT}', 0, '{GENESIS_HASH}');
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
        except sqlite3.Error as exc:
            raise AuditError(f"cannot open audit trail {self._path}: {exc}") from None
        try:
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
            row = self._conn.execute("SELECT format FROM audit_head WHERE id = 0").fetchone()
        except (sqlite3.Error, UnicodeDecodeError) as exc:  # a TEXT column that is not UTF-8
            self._conn.close()
            self._conn = None
            raise AuditError(f"{self._path} is not a usable audit trail: {exc}") from None
        if row is None or row[0] != _FORMAT:
            self._conn.close()
            self._conn = None
            raise AuditError(f"{self._path} is not a {_FORMAT} audit trail")

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
        reason = _check_event(event)
        if reason is not None:
            raise AuditError(reason)
        reason = _check_details(details)
        if reason is not None:
            raise AuditError(reason)
        timestamp = self._clock.time()
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
            raise AuditError(f"the clock returned {type(timestamp).__name__}, not a number")
        timestamp = float(timestamp)
        if not math.isfinite(timestamp):
            raise AuditError("the clock returned a non-finite time")
        frozen = dict(details)
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                count, last_hash = conn.execute("SELECT count, last_hash FROM audit_head WHERE id = 0").fetchone()
                last = conn.execute("SELECT idx, entry_hash FROM audit_entries ORDER BY seq DESC LIMIT 1").fetchone()
                consistent = (last is None and count == 0 and last_hash == GENESIS_HASH) or (
                    last is not None and tuple(last) == (count - 1, last_hash)
                )
                if not consistent:
                    raise AuditError(
                        "the trail's head disagrees with its last entry; refusing to append (run verify())"
                    )
                ehash = entry_hash(count, timestamp, event, frozen, last_hash)
                conn.execute(
                    "INSERT INTO audit_entries (seq, idx, timestamp, event, details, prev_hash, entry_hash)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (count, count, timestamp, event, _dumps_details(frozen), last_hash, ehash),
                )
                conn.execute("UPDATE audit_head SET count = ?, last_hash = ? WHERE id = 0", (count + 1, ehash))
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error | UnicodeDecodeError):
                    raise AuditError(f"cannot append to the audit trail: {exc}") from None
                raise
        return AuditEntry(count, timestamp, event, MappingProxyType(frozen), last_hash, ehash)

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
                    head_row = conn.execute("SELECT count, last_hash FROM audit_head WHERE id = 0").fetchone()
                    rows = conn.execute(
                        "SELECT idx, timestamp, event, details, prev_hash, entry_hash FROM audit_entries ORDER BY seq"
                    ).fetchall()
                finally:
                    conn.execute("COMMIT")
            except (sqlite3.Error, UnicodeDecodeError) as exc:
                raise AuditError(f"cannot read the audit trail: {exc}") from None
        if head_row is None:
            raise AuditError("the audit head is missing")
        return AuditHead(head_row[0], head_row[1]), rows

    def _rows(self) -> list[tuple[Any, ...]]:
        return self._snapshot()[1]

    @staticmethod
    def _row_record(row: tuple[Any, ...]) -> tuple[object, str | None]:
        idx, timestamp, event, details_text, prev_hash, ehash = row
        if not isinstance(details_text, str):
            return None, "details column is not text"
        try:
            details = _strict_loads(details_text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
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

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry in storage order (not verified: call :meth:`verify` for that)."""
        for position, row in enumerate(self._rows()):
            record, error = self._row_record(row)
            entry, reason = (None, error) if error is not None else _record_to_entry(position, record)
            if entry is None:
                raise AuditError(f"entry {position} is malformed: {reason}")
            yield entry

    def __len__(self) -> int:
        return self.head().count

    def verify(self, expected_head: tuple[int, str] | AuditHead | None = None) -> VerifyResult:
        """Check the whole chain and the recorded head (and ``expected_head`` if given)."""
        stored, rows = self._snapshot()
        return _verify_records((self._row_record(row) for row in rows), stored_head=stored, expected_head=expected_head)

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
        except OSError as exc:
            raise AuditError(f"cannot write audit export {path}: {exc.strerror or exc}") from None
        if entries:
            return AuditHead(len(entries), entries[-1].entry_hash)
        return AuditHead(0, GENESIS_HASH)

    verify_jsonl = staticmethod(verify_jsonl)
