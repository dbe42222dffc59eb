"""ETHOS: the consent ledger (docs/sal.md, SYSTEM.md step 8).

One record per sensor key: the scopes granted, when, until when, the wearer's capacity as
the drift detector last reported it, and whether (when, why) the consent was revoked.
``is_active(sensor_key, scope)`` is true only when the scope was granted, the grant has not
expired by ``clock.time()``, it was not revoked and the capacity is not ``"NONE"``.

Choices the design leaves open (what a demanding caller expects):

* Expiry edge: a grant made at ``t`` with ``ttl_s`` is active while ``clock.time() <= t +
  ttl_s`` - still active exactly at the edge, expired a hair after (the same inclusive
  convention as LIMES, the router window and the bridge bounds). ``ttl_s`` defaults to
  ``thresholds.consent_ttl_s`` and must be a finite real > 0.
* ``grant`` replaces the sensor's consent: the scopes given are the consent in force (not
  added to earlier ones), the clock restarts and an earlier revocation is lifted. The
  capacity is a fact about the wearer, not about the consent, so it is kept across grants:
  a grant while the capacity is ``"NONE"`` is recorded but not active until the capacity
  is reported above ``"NONE"`` again. ``scopes`` is an iterable of scope names (a single
  ``str`` counts as one scope); it must not be empty; duplicates are ignored.
* An unknown scope (in ``grant`` or ``is_active``) is an ``InvalidArgumentError``; an unknown
  capacity too. A scope name that is not a ``str`` is a ``WrongTypeError``.
* ``revoke`` / ``set_capacity`` / ``record`` of a sensor key with no record raise
  :class:`~cortex_sal.errors.ConsentError` (a typo must not pass silently); ``is_active`` of
  one is simply ``False``. Revocation is sticky until the next ``grant``; revoking twice
  keeps the first time and reason. ``set_capacity(..., "NONE")`` revokes with the reason
  ``"capacity NONE: ..."``; raising the capacity later does not lift the revocation.
* ``revoke_all(reason)`` revokes every record not yet revoked and returns how many.
* :meth:`ConsentLedger.require` is ``is_active`` that raises ``ConsentError`` with the reason.
* The ledger is thread-safe; records are immutable :class:`ConsentRecord` values.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import ConsentError, InvalidArgumentError, WrongTypeError
from ..governance import DEFAULT_THRESHOLDS, ClinicalThresholds

SCOPES = ("biometric", "acolyte", "audio", "location", "desci", "clinical")
CAPACITIES = ("FULL", "LIMITED", "NONE")


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A frozen view of one sensor's consent at the moment it was read.

    ``scopes`` is in :data:`SCOPES` order; times are ``clock.time()`` seconds.
    """

    sensor_key: str
    scopes: tuple[str, ...]
    granted_at: float
    expires_at: float
    capacity: str = "FULL"
    revoked_at: float | None = None
    revocation_reason: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired_at(self, now: float) -> bool:
        """Whether the grant has expired at wall time ``now`` (the edge itself is not expired)."""
        return now > self.expires_at

    def covers(self, scope: str, now: float) -> bool:
        """Whether this record makes ``scope`` active at wall time ``now``."""
        return scope in self.scopes and not self.expired_at(now) and self.revoked_at is None and self.capacity != "NONE"


def _key(sensor_key: object) -> str:
    if not isinstance(sensor_key, str):
        raise WrongTypeError(f"sensor_key must be a str, got {type(sensor_key).__name__}")
    if not sensor_key:
        raise InvalidArgumentError("sensor_key must not be empty")
    return sensor_key


def _scope(scope: object) -> str:
    if not isinstance(scope, str):
        raise WrongTypeError(f"a scope must be a str, got {type(scope).__name__}")
    if scope not in SCOPES:
        raise InvalidArgumentError(f"unknown consent scope {scope!r}; known scopes: {', '.join(SCOPES)}")
    return scope


def _ttl(ttl_s: object) -> float:
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
    return reason


class ConsentLedger:
    """Per-sensor consent: grant, revoke, capacity, and the question "is this scope active?"."""

    def __init__(self, thresholds: ClinicalThresholds = DEFAULT_THRESHOLDS, clock: Clock = SYSTEM_CLOCK) -> None:
        if not isinstance(thresholds, ClinicalThresholds):
            raise WrongTypeError(f"thresholds must be ClinicalThresholds, got {type(thresholds).__name__}")
        self._ttl = float(thresholds.consent_ttl_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, ConsentRecord] = {}

    def _now(self) -> float:
        now = float(self._clock.time())
        if not math.isfinite(now):
            raise ConsentError(f"the clock returned a non-finite time {now!r}")
        return now

    def _get(self, sensor_key: str) -> ConsentRecord:
        record = self._records.get(sensor_key)
        if record is None:
            raise ConsentError("no consent is recorded for this sensor key")
        return record

    def grant(self, sensor_key: str, scopes: Iterable[str] | str, ttl_s: float | None = None) -> ConsentRecord:
        """Record consent for ``scopes`` from now for ``ttl_s`` seconds; returns the record."""
        key = _key(sensor_key)
        if isinstance(scopes, str):
            scopes = (scopes,)
        try:
            given = {_scope(s) for s in scopes}
        except TypeError as exc:
            if isinstance(exc, WrongTypeError):
                raise
            raise WrongTypeError(f"scopes must be an iterable of str, got {type(scopes).__name__}") from None
        if not given:
            raise InvalidArgumentError("a grant needs at least one scope")
        ttl = None if ttl_s is None else _ttl(ttl_s)
        with self._lock:
            if ttl is None:
                ttl = self._ttl
            now = self._now()
            previous = self._records.get(key)
            record = ConsentRecord(
                sensor_key=key,
                scopes=tuple(s for s in SCOPES if s in given),
                granted_at=now,
                expires_at=now + ttl,
                capacity=previous.capacity if previous is not None else "FULL",
            )
            self._records[key] = record
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
        ttl = _ttl(ttl_s)
        with self._lock:
            self._ttl = ttl

    def revoke(self, sensor_key: str, reason: str) -> ConsentRecord:
        """Revoke the sensor's consent (all scopes); idempotent, the first reason is kept."""
        key, why = _key(sensor_key), _reason(reason)
        with self._lock:
            return self._revoke(self._get(key), why)

    def _revoke(self, record: ConsentRecord, reason: str) -> ConsentRecord:
        if record.revoked_at is not None:
            return record
        record = replace(record, revoked_at=self._now(), revocation_reason=reason)
        self._records[record.sensor_key] = record
        return record

    def set_capacity(self, sensor_key: str, capacity: str) -> ConsentRecord:
        """Record the wearer's capacity (``"FULL"``, ``"LIMITED"`` or ``"NONE"``).

        ``"NONE"`` revokes the consent at once, with the reason ``"capacity NONE: ..."``.
        """
        key = _key(sensor_key)
        if not isinstance(capacity, str):
            raise WrongTypeError(f"capacity must be a str, got {type(capacity).__name__}")
        if capacity not in CAPACITIES:
            raise InvalidArgumentError(f"unknown capacity {capacity!r}; known: {', '.join(CAPACITIES)}")
        with self._lock:
            record = self._get(key)
            if record.capacity != capacity:
                record = replace(record, capacity=capacity)
                self._records[key] = record
            if capacity == "NONE":
                record = self._revoke(record, "capacity NONE: the wearer can no longer consent (drift)")
            return record

    def is_active(self, sensor_key: str, scope: str = "biometric") -> bool:
        """Granted for ``scope``, not expired by ``clock.time()``, not revoked, capacity not NONE."""
        key, sc = _key(sensor_key), _scope(scope)
        with self._lock:
            record = self._records.get(key)
            return record is not None and record.covers(sc, self._now())

    def require(self, sensor_key: str, scope: str = "biometric") -> None:
        """:meth:`is_active` that raises :class:`~cortex_sal.errors.ConsentError` with the reason."""
        key, sc = _key(sensor_key), _scope(scope)
        with self._lock:
            record = self._records.get(key)
            now = self._now()
        if record is None:
            raise ConsentError("no consent is recorded for this sensor key")
        if record.revoked_at is not None:
            raise ConsentError(f"consent was revoked: {record.revocation_reason}")
        if record.capacity == "NONE":
            raise ConsentError("capacity is NONE")
        if sc not in record.scopes:
            raise ConsentError(f"consent does not cover the scope {sc!r}")
        if record.expired_at(now):
            raise ConsentError("consent expired")

    def record(self, sensor_key: str) -> ConsentRecord:
        """The sensor's record as an immutable view."""
        key = _key(sensor_key)
        with self._lock:
            return self._get(key)

    def revoke_all(self, reason: str) -> int:
        """Revoke every record not yet revoked; returns how many were revoked now."""
        why = _reason(reason)
        with self._lock:
            pending = [r for r in self._records.values() if r.revoked_at is None]
            for record in pending:
                self._revoke(record, why)
            return len(pending)

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, sensor_key: object) -> bool:
        return isinstance(sensor_key, str) and sensor_key in self._records

    def __repr__(self) -> str:
        return f"<ConsentLedger {len(self._records)} records>"


__all__ = ["CAPACITIES", "SCOPES", "ConsentLedger", "ConsentRecord"]
