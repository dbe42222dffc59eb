"""The governance audit trail's rules: entries, their canonical encoding, the chain, the privacy rule.

Persisted by :class:`cortex_sal.store.audit.AuditTrail` (SQLite) and exported as JSONL
(:func:`cortex_sal.store.audit.verify_jsonl`); this module does no I/O.

Every governance event (a submission, a signature, an invalid signature, an enactment, a
refusal, a node registered or deactivated, a policy applied) is appended as one entry, and so
is every change the store records (a consent granted, revoked or its capacity changed, sensor
models stored, a sensor revoked, a revocation list stored, a sensor admitted or refused).
Each entry carries the hash of the one before it, so :meth:`~cortex_sal.store.audit.AuditTrail.verify` finds an
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
Entries never hold a raw identifier or a biometric value. :meth:`~cortex_sal.store.audit.AuditTrail.append`
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

:meth:`~cortex_sal.store.audit.AuditTrail.verify` walks the rows in storage order and checks, for position ``p``:
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
The same holds for an exported JSONL file (:func:`~cortex_sal.store.audit.verify_jsonl`), which carries no head.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from .. import strict_json
from ..errors import AuditError

__all__ = [
    "EVENTS",
    "FORBIDDEN_KEY_PARTS",
    "FORMAT",
    "GENESIS_HASH",
    "MAX_DETAILS",
    "MAX_STR_LEN",
    "AuditEntry",
    "AuditError",
    "AuditHead",
    "VerifyResult",
    "canonical_encoding",
    "check_details",
    "check_event",
    "dumps_details",
    "entry_hash",
    "parse_json",
    "record_to_entry",
    "truncated_hash",
    "verify_records",
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
        # the store (docs/store.md): consent, registry and revocations, admissions
        "consent_granted",
        "consent_revoked",
        "consent_capacity",
        "registry_models_stored",
        "sensor_revoked",
        "revocation_list_stored",
        "sensor_admitted",
        "sensor_refused",
        # the consumer API (docs/api.md): applications, their access, authorisations and subscriptions
        "app_added",
        "app_revoked",
        "access_requested",
        "access_approved",
        "app_authorized",
        "tokens_revoked",
        "api_refused",
        "subscribed",
        "subscription_ended",
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
FORMAT = "cortex-sal-audit/1"


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


def check_details(details: Mapping[Any, Any]) -> str | None:
    if len(details) > MAX_DETAILS:
        return f"too many details ({len(details)} > {MAX_DETAILS})"
    for key, value in details.items():
        reason = _check_detail(key, value)
        if reason is not None:
            return reason
    return None


def check_event(event: object) -> str | None:
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


def dumps_details(details: Mapping[str, Any]) -> str:
    return json.dumps(dict(details), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def parse_json(text: str) -> Any:
    """A strict JSON value (duplicate keys, NaN and Infinity refused) or :class:`AuditError`."""
    return strict_json.loads(text, AuditError, "")


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

    count: int  # type: ignore[assignment]  # the documented field name; it shadows tuple.count, never used on a head
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
    pair = tuple(expected_head) if isinstance(expected_head, Iterable) and not isinstance(expected_head, str) else ()
    if len(pair) != 2:
        raise AuditError("expected_head must be a (count, last_hash) pair")
    count, last_hash = pair
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise AuditError("expected_head count must be a non-negative int")
    if not isinstance(last_hash, str) or not _HEX64_RE.fullmatch(last_hash):
        raise AuditError("expected_head last_hash must be 64 lowercase hex digits")
    if count == 0 and last_hash != GENESIS_HASH:
        raise AuditError("an expected_head of count 0 has the genesis hash (64 zeros)")
    return AuditHead(count, last_hash)


def record_to_entry(position: int, record: object) -> tuple[AuditEntry | None, str | None]:
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
    reason = check_event(event)
    if reason is not None:
        return None, f"entry {position}: {reason}"
    if not isinstance(details, dict):
        return None, f"entry {position}: details is not an object"
    reason = check_details(details)
    if reason is not None:
        return None, f"entry {position}: {reason}"
    for name, value in (("prev_hash", prev_hash), ("entry_hash", ehash)):
        if not isinstance(value, str) or not _HEX64_RE.fullmatch(value):
            return None, f"entry {position}: {name} is not 64 lowercase hex digits"
    entry = AuditEntry(index, timestamp, event, MappingProxyType(dict(details)), prev_hash, ehash)
    return entry, None


def verify_records(
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
        entry, reason = record_to_entry(position, record)
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
        except (TypeError, ValueError) as exc:  # pragma: no cover - record_to_entry already checked types
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
