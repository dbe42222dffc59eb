"""ETHOS: the consent ledger (docs/sal.md, SYSTEM.md step 8), per subject x application x scope.

One record per (subject, application): the scopes granted, the purpose, when, until when, the
wearer's capacity as the drift detector last reported it, and whether (when, why) the consent
was revoked. ``is_active(subject, scope, app)`` is true only when the scope was granted to that
application (``app=ANY_APP``: to any), the grant has not expired by ``clock.time()``, it was not
revoked and the capacity is not ``"NONE"``. The subject key is the shield's pseudonymous sensor
id (the first 16 hex of SHA-256 of ``MODEL/SERIAL``), never the raw id.

Choices the design leaves open (what a demanding caller expects):

* Expiry edge: a grant made at ``t`` with ``ttl_s`` is active while ``clock.time() <= t +
  ttl_s`` - still active exactly at the edge, expired a hair after (the same inclusive
  convention as LIMES, the router window and the bridge bounds). ``ttl_s`` defaults to
  ``thresholds.consent_ttl_s`` and must be a finite real > 0.
* ``grant`` replaces that application's consent: the scopes given are the consent in force
  (not added to earlier ones), the clock restarts and an earlier revocation is lifted. The
  capacity is a fact about the wearer, not about a consent, so it is kept across grants and
  shared by all the subject's records: a grant while the capacity is ``"NONE"`` is recorded
  but not active until the capacity is reported above ``"NONE"`` again. ``scopes`` is an
  iterable of scope names (a single ``str`` counts as one scope); it must not be empty;
  duplicates are ignored. Applications are named by :data:`APP_ID_PATTERN`; in-process use
  (no applications) records under :data:`DEFAULT_APP`.
* An unknown scope (in ``grant`` or ``is_active``) is an ``InvalidArgumentError``; an unknown
  capacity too. A scope name that is not a ``str`` is a ``WrongTypeError``.
* ``revoke`` / ``set_capacity`` / ``record`` of a subject (or application) with no record raise
  :class:`~cortex_sal.errors.ConsentError` (a typo must not pass silently); ``is_active`` of
  one is simply ``False``. Revocation is sticky until the next ``grant``; revoking twice
  keeps the first time and reason. ``set_capacity(..., "NONE")`` revokes every record of the
  subject with the reason ``"capacity NONE: ..."``; raising the capacity later does not lift
  the revocation.
* ``revoke_all(reason)`` revokes every record not yet revoked and returns how many.
* :meth:`ConsentLedger.require` is ``is_active`` that raises ``ConsentError`` with the reason.
* Every grant and every revocation gets a receipt id (a UUID4, the consent receipt's id).
* Durability: a ledger given a :class:`ConsentJournal` (the store's) hands it every change
  *before* the change takes effect in memory; if the journal raises, nothing changed. A change
  is therefore acknowledged (returned) only once the journal has made it durable. Changes made
  by another writer (``cortex-sal consent revoke`` while a gateway runs) are picked up when the
  journal reports them (:meth:`ConsentJournal.changes`), before the ledger answers a question.
* The ledger is thread-safe; records are immutable :class:`ConsentRecord` values.
"""

from __future__ import annotations

import math
import re
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ConsentError, InvalidArgumentError, WrongTypeError
from ..governance import DEFAULT_THRESHOLDS, ClinicalThresholds

SCOPES = ("biometric", "acolyte", "audio", "location", "desci", "clinical")
CAPACITIES = ("FULL", "LIMITED", "NONE")
DEFAULT_APP = "shield"  # the application of in-process use: the shield releases to its own caller
ANY_APP = None  # ``is_active(..., app=ANY_APP)``: granted to any application
APP_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
MAX_PURPOSE_LEN = 256
MAX_REASON_LEN = 256

Change = Literal["grant", "revoke", "capacity"]


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A frozen view of one subject's consent to one application at the moment it was read.

    ``scopes`` is in :data:`SCOPES` order; times are ``clock.time()`` seconds.
    """

    sensor_key: str
    scopes: tuple[str, ...]
    granted_at: float
    expires_at: float
    capacity: str = "FULL"
    revoked_at: float | None = None
    revocation_reason: str | None = None
    app: str = DEFAULT_APP
    purpose: str = ""
    receipt_id: str = ""
    revocation_receipt_id: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired_at(self, now: float) -> bool:
        """Whether the grant has expired at wall time ``now`` (the edge itself is not expired)."""
        return now > self.expires_at

    def to_dict(self) -> dict[str, object]:
        """The record as JSON-ready data (``subject`` is the pseudonymous sensor key)."""
        return {
            "subject": self.sensor_key,
            "app": self.app,
            "scopes": list(self.scopes),
            "purpose": self.purpose,
            "granted_at": self.granted_at,
            "expires_at": self.expires_at,
            "capacity": self.capacity,
            "revoked_at": self.revoked_at,
            "revocation_reason": self.revocation_reason,
            "receipt_id": self.receipt_id,
            "revocation_receipt_id": self.revocation_receipt_id,
        }

    def covers(self, scope: str, now: float) -> bool:
        """Whether this record makes ``scope`` active at wall time ``now``."""
        return scope in self.scopes and not self.expired_at(now) and self.revoked_at is None and self.capacity != "NONE"


class ConsentJournal(Protocol):
    """Where a durable ledger's changes go before they take effect (the store implements it).

    ``write`` receives the records as they will be after the change: one record for a
    ``"grant"``, the records newly revoked for a ``"revoke"`` (``revoked_at`` set), the
    subject's records for a ``"capacity"`` change. It returns only once the change is durable
    and raises (any ``CortexError``) if it cannot be made so.
    """

    def write(self, change: Change, records: Sequence[ConsentRecord]) -> None: ...

    def changes(self, *, now: bool = False) -> Sequence[ConsentRecord] | None:
        """Every record, if another writer (another process) changed them since the last call; else
        ``None``. Called on every question the ledger answers; the journal decides how often it
        really looks (the store: at most every :data:`~cortex_sal.store.sqlite.POLL_INTERVAL_S`),
        except with ``now=True`` (:meth:`ConsentLedger.sync`), when it looks at once."""
        ...


def _key(sensor_key: object) -> str:
    if not isinstance(sensor_key, str):
        raise WrongTypeError(f"sensor_key must be a str, got {type(sensor_key).__name__}")
    if not sensor_key:
        raise InvalidArgumentError("sensor_key must not be empty")
    return sensor_key


def check_app(app: object) -> str:
    """An application id: lowercase letters, digits, ``.``, ``_``, ``-``; 1 to 63 characters."""
    if not isinstance(app, str):
        raise WrongTypeError(f"an application id must be a str, got {type(app).__name__}")
    if not APP_ID_PATTERN.fullmatch(app):
        raise InvalidArgumentError(
            "an application id is 1-63 characters of lowercase letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return app


def _text(value: object, what: str, limit: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise WrongTypeError(f"a {what} must be a str, got {type(value).__name__}")
    if required and not value.strip():
        raise InvalidArgumentError(f"a {what} must not be empty")
    if len(value) > limit:
        raise InvalidArgumentError(f"a {what} is at most {limit} characters, got {len(value)}")
    if any(ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise InvalidArgumentError(f"a {what} must not hold control characters or lone surrogates")
    return value


def _scope(scope: object) -> str:
    if not isinstance(scope, str):
        raise WrongTypeError(f"a scope must be a str, got {type(scope).__name__}")
    if scope not in SCOPES:
        raise InvalidArgumentError(f"unknown consent scope {scope!r}; known scopes: {', '.join(SCOPES)}")
    return scope


def check_scopes(scopes: object) -> tuple[str, ...]:
    """Scope names (an iterable of str, or one str) as a non-empty tuple in :data:`SCOPES` order."""
    if isinstance(scopes, str):
        scopes = (scopes,)
    if not isinstance(scopes, Iterable):
        raise WrongTypeError(f"scopes must be an iterable of str, got {type(scopes).__name__}")
    given = {_scope(s) for s in scopes}
    if not given:
        raise InvalidArgumentError("a grant needs at least one scope")
    return tuple(s for s in SCOPES if s in given)


def check_ttl(ttl_s: object) -> float:
    """A lifetime in seconds: a finite real > 0."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float):
        raise WrongTypeError(f"ttl_s must be a real number of seconds, got {type(ttl_s).__name__}")
    ttl = float(ttl_s)
    if not math.isfinite(ttl) or ttl <= 0:
        raise InvalidArgumentError(f"ttl_s must be finite and > 0, got {ttl_s!r}")
    return ttl


def _reason(reason: object) -> str:
    if not isinstance(reason, str):
        raise WrongTypeError(f"a revocation reason must be a str, got {type(reason).__name__}")
    if not reason.strip():
        raise InvalidArgumentError("a revocation needs a non-empty reason")
    return _text(reason, "revocation reason", MAX_REASON_LEN, required=True)


def _index(records: Iterable[ConsentRecord]) -> tuple[dict[str, dict[str, ConsentRecord]], dict[str, str]]:
    loaded: dict[str, dict[str, ConsentRecord]] = {}
    capacity: dict[str, str] = {}
    for record in records:
        if not isinstance(record, ConsentRecord):
            raise WrongTypeError(f"restore takes ConsentRecord values, got {type(record).__name__}")
        loaded.setdefault(record.sensor_key, {})[record.app] = record
        capacity[record.sensor_key] = record.capacity
    return loaded, capacity


class ConsentLedger:
    """Per-subject, per-application consent: grant, revoke, capacity, and "is this scope active?"."""

    def __init__(
        self,
        thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS,
        clock: Clock = SYSTEM_CLOCK,
        *,
        journal: ConsentJournal | None = None,
    ) -> None:
        if not isinstance(thresholds, ClinicalThresholds):
            raise WrongTypeError(f"thresholds must be ClinicalThresholds, got {type(thresholds).__name__}")
        self._ttl = float(thresholds.consent_ttl_s)
        self._clock = clock
        self._journal = journal
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, ConsentRecord]] = {}  # subject -> application -> record
        self._capacity: dict[str, str] = {}  # subject -> the wearer's capacity last reported
        self.version = 0  # counts the changes taken, this process's and the journal's: what a cache of answers keys on

    @property
    def durable(self) -> bool:
        """Whether every change goes through a journal before it takes effect."""
        return self._journal is not None

    def _now(self) -> float:
        now = float(self._clock.time())
        if not math.isfinite(now):
            raise ConsentError(f"the clock returned a non-finite time {now!r}")
        return now

    def _commit(self, change: Change, records: Sequence[ConsentRecord]) -> None:
        """Journal first (durable, may raise: nothing changed), then memory."""
        if not records:
            return
        if self._journal is not None:
            self._journal.write(change, records)
        for record in records:
            self._records.setdefault(record.sensor_key, {})[record.app] = record
            self._capacity[record.sensor_key] = record.capacity
        self.version += 1

    def _get(self, sensor_key: str, app: str) -> ConsentRecord:
        record = self._records.get(sensor_key, {}).get(app)
        if record is None:
            if app == DEFAULT_APP:
                raise ConsentError("no consent is recorded for this sensor key")
            raise ConsentError(f"no consent is recorded for this sensor key and application {app!r}")
        return record

    def _subject(self, sensor_key: str) -> list[ConsentRecord]:
        return list(self._records.get(sensor_key, {}).values())

    def grant(
        self,
        sensor_key: str,
        scopes: Iterable[str] | str,
        ttl_s: float | None = None,
        *,
        app: str = DEFAULT_APP,
        purpose: str = "",
    ) -> ConsentRecord:
        """Record consent for ``scopes`` to ``app`` from now for ``ttl_s`` seconds; returns the record."""
        key, application = _key(sensor_key), check_app(app)
        given = check_scopes(scopes)
        why = _text(purpose, "purpose", MAX_PURPOSE_LEN, required=False)
        ttl = None if ttl_s is None else check_ttl(ttl_s)
        with self._lock:
            if ttl is None:
                ttl = self._ttl
            now = self._now()
            record = ConsentRecord(
                sensor_key=key,
                scopes=given,
                granted_at=now,
                expires_at=now + ttl,
                capacity=self._capacity.get(key, "FULL"),
                app=application,
                purpose=why,
                receipt_id=str(uuid.uuid4()),
            )
            self._commit("grant", [record])
            return record

    @property
    def ttl(self) -> float:
        """The lifetime of a grant made without ``ttl_s``, in seconds."""
        return self._ttl

    def set_ttl(self, ttl_s: float) -> None:
        """Set the lifetime of later grants made without ``ttl_s`` (a policy change).

        Grants already made keep their expiry. ``ttl_s`` must be a finite real > 0
        (``WrongTypeError`` / ``InvalidArgumentError``, nothing changed).
        """
        ttl = check_ttl(ttl_s)
        with self._lock:
            self._ttl = ttl

    def revoke(self, sensor_key: str, reason: str, *, app: str = DEFAULT_APP) -> ConsentRecord:
        """Revoke the subject's consent to ``app`` (all scopes); idempotent, the first reason is kept."""
        key, why, application = _key(sensor_key), _reason(reason), check_app(app)
        with self._lock:
            record = self._get(key, application)
            if record.revoked_at is not None:
                return record
            revoked = self._revoked(record, why, self._now())
            self._commit("revoke", [revoked])
            return revoked

    def revoke_subject(self, sensor_key: str, reason: str) -> tuple[ConsentRecord, ...]:
        """Revoke the subject's consent to every application; returns the records revoked now."""
        key, why = _key(sensor_key), _reason(reason)
        with self._lock:
            if not self._subject(key):
                raise ConsentError("no consent is recorded for this sensor key")
            now = self._now()
            revoked = [self._revoked(r, why, now) for r in self._subject(key) if r.revoked_at is None]
            self._commit("revoke", revoked)
            return tuple(revoked)

    @staticmethod
    def _revoked(record: ConsentRecord, reason: str, now: float) -> ConsentRecord:
        return replace(record, revoked_at=now, revocation_reason=reason, revocation_receipt_id=str(uuid.uuid4()))

    def set_capacity(self, sensor_key: str, capacity: str) -> tuple[ConsentRecord, ...]:
        """Record the wearer's capacity (``"FULL"``, ``"LIMITED"`` or ``"NONE"``); returns the subject's records.

        ``"NONE"`` revokes every record of the subject at once, with the reason
        ``"capacity NONE: ..."``.
        """
        return self._set_capacity(sensor_key, capacity, require_record=True)

    def report_capacity(self, sensor_key: str, capacity: str) -> tuple[ConsentRecord, ...]:
        """The drift detector's report: :meth:`set_capacity`, except that a subject with no record
        yet is not an error - its capacity is remembered (in memory) for the grants to come."""
        return self._set_capacity(sensor_key, capacity, require_record=False)

    def _set_capacity(self, sensor_key: str, capacity: str, *, require_record: bool) -> tuple[ConsentRecord, ...]:
        key = _key(sensor_key)
        if not isinstance(capacity, str):
            raise WrongTypeError(f"capacity must be a str, got {type(capacity).__name__}")
        if capacity not in CAPACITIES:
            raise InvalidArgumentError(f"unknown capacity {capacity!r}; known: {', '.join(CAPACITIES)}")
        with self._lock:
            records = self._subject(key)
            if not records:
                if require_record:
                    raise ConsentError("no consent is recorded for this sensor key")
                self._capacity[key] = capacity
                return ()
            if self._capacity.get(key) == capacity and (capacity != "NONE" or all(r.revoked for r in records)):
                return tuple(records)  # nothing changes: the per-frame call costs no write
            now = self._now()
            changed = []
            for record in records:
                new = replace(record, capacity=capacity)
                if capacity == "NONE" and new.revoked_at is None:
                    new = self._revoked(new, "capacity NONE: the wearer can no longer consent (drift)", now)
                changed.append(new)
            self._commit("revoke" if capacity == "NONE" else "capacity", changed)
            return tuple(changed)

    def _refresh(self, *, now: bool = False) -> None:
        """Take another writer's changes, if the journal reports any (called under the lock)."""
        if self._journal is not None:
            records = self._journal.changes(now=now)
            if records is not None:
                self._records, self._capacity = _index(records)
                self.version += 1

    def sync(self) -> None:
        """Take another writer's changes now, without waiting for the journal's poll interval: what
        the gateway calls before it sends anything to an application (consent enforced at sending)."""
        with self._lock:
            self._refresh(now=True)

    def _covering(self, key: str, app: str | None) -> list[ConsentRecord]:
        self._refresh()
        if app is None:
            return self._subject(key)
        record = self._records.get(key, {}).get(app)
        return [] if record is None else [record]

    def is_active(self, sensor_key: str, scope: str = "biometric", app: str | None = DEFAULT_APP) -> bool:
        """Granted for ``scope`` to ``app`` (``ANY_APP``: to any), not expired, not revoked, capacity not NONE."""
        key, sc = _key(sensor_key), _scope(scope)
        application = None if app is None else check_app(app)
        with self._lock:
            now = self._now()
            return any(r.covers(sc, now) for r in self._covering(key, application))

    def require(self, sensor_key: str, scope: str = "biometric", app: str | None = DEFAULT_APP) -> None:
        """:meth:`is_active` that raises :class:`~cortex_sal.errors.ConsentError` with the reason."""
        key, sc = _key(sensor_key), _scope(scope)
        application = None if app is None else check_app(app)
        with self._lock:
            records = self._covering(key, application)
            now = self._now()
        if any(r.covers(sc, now) for r in records):
            return
        if not records:
            raise ConsentError("no consent is recorded for this sensor key")
        record = max(records, key=lambda r: r.granted_at)  # the newest says why
        if record.revoked_at is not None:
            raise ConsentError(f"consent was revoked: {record.revocation_reason}")
        if record.capacity == "NONE":
            raise ConsentError("capacity is NONE")
        if sc not in record.scopes:
            raise ConsentError(f"consent does not cover the scope {sc!r}")
        raise ConsentError("consent expired")

    def record(self, sensor_key: str, app: str = DEFAULT_APP) -> ConsentRecord:
        """The subject's record for ``app`` as an immutable view."""
        key, application = _key(sensor_key), check_app(app)
        with self._lock:
            return self._get(key, application)

    def records(self) -> list[ConsentRecord]:
        """Every record, in no particular order."""
        with self._lock:
            return [r for apps in self._records.values() for r in apps.values()]

    def restore(self, records: Iterable[ConsentRecord]) -> None:
        """Load records read back from durable storage (no journal write); replaces what is held."""
        loaded, capacity = _index(records)
        with self._lock:
            self._records = loaded
            self._capacity = capacity
            self.version += 1

    def revoke_all(self, reason: str) -> int:
        """Revoke every record not yet revoked; returns how many were revoked now."""
        why = _reason(reason)
        with self._lock:
            now = self._now()
            held = [r for apps in self._records.values() for r in apps.values()]
            pending = [self._revoked(r, why, now) for r in held if r.revoked_at is None]
            self._commit("revoke", pending)
            return len(pending)

    def __len__(self) -> int:
        return sum(len(apps) for apps in self._records.values())

    def __contains__(self, sensor_key: object) -> bool:
        return isinstance(sensor_key, str) and sensor_key in self._records

    def __repr__(self) -> str:
        return f"<ConsentLedger {len(self)} records{', durable' if self._journal else ''}>"


__all__ = [
    "ANY_APP",
    "APP_ID_PATTERN",
    "CAPACITIES",
    "DEFAULT_APP",
    "SCOPES",
    "ConsentJournal",
    "ConsentLedger",
    "ConsentRecord",
    "check_app",
    "check_scopes",
    "check_ttl",
]
