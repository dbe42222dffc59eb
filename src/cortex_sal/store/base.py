"""The store's interface: what the domain asks of durable state, with no SQL in it.

:class:`Store` is what the command line, the shield's start-up and the gateway use. SQLite
(:class:`cortex_sal.store.sqlite.SqliteStore`) is the embedded default; a second backend
(PostgreSQL) implements the same methods, and nothing outside :mod:`cortex_sal.store` changes.

Every write is one transaction that is durable before the method returns (an acknowledged
write survives ``kill -9`` and power loss), and every change that the audit trail records
commits in the same transaction as its audit entry: both, or neither. Nothing secret is ever
stored: no session key, no raw sample, no private key, no raw sensor identifier in consent,
receipts or audit (subjects are pseudonymous: :func:`subject_of`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self

from ..governance.audit import AuditEntry, AuditHead, VerifyResult, truncated_hash
from ..governance.policy import AppliedBundle, PolicyInForce
from ..keros.certificate import TrustStore
from ..keros.registry import SensorModel
from ..sal.consent import ConsentJournal, ConsentRecord

__all__ = ["AccessRequest", "AppRecord", "CheckReport", "Release", "Store", "StoredReceipt", "subject_of"]


def subject_of(sensor_id: str) -> str:
    """The pseudonymous subject id of a sensor (``MODEL/SERIAL``): 16 hex of SHA-256, as the shield logs it."""
    return truncated_hash(sensor_id)


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    receipt_id: str
    subject: str
    app: str
    kind: str  # "grant" | "withdrawal"
    issued_at: float
    document: str  # the signed receipt (JWS compact serialization)


@dataclass(frozen=True, slots=True)
class Release:
    """One released result kept for the subject's own export (retention on for its scope)."""

    subject: str
    scope: str
    seq: int
    released_at: float
    values: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AppRecord:
    """An application registered with ``cortex-sal apps add``: its id and its Ed25519 public key."""

    app_id: str
    public_key: bytes  # 32 bytes; the private key never reaches the store
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """An application's ``requestAccess``: what it asks for, waiting for the wearer's decision."""

    request_id: int
    app_id: str
    scopes: tuple[str, ...]
    purpose: str
    requested_at: float
    status: str  # "pending" | "approved"


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What ``cortex-sal store check`` prints: every field a fact read back from the store."""

    schema_version: int
    integrity: str  # "ok", or SQLite's first complaint
    audit: VerifyResult
    audit_head: AuditHead
    counts: Mapping[str, int]
    sizes: Mapping[str, int]  # file name -> bytes
    policy: str  # PolicyInForce.describe(), or why it does not verify

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and self.audit.ok and not self.policy.startswith("policy does not verify")


class Store(ABC):
    """Durable state of one gateway: consent, receipts, policy, registry, revocations, audit, releases."""

    # --- lifecycle ---

    @abstractmethod
    def close(self) -> None:
        """Purge the receipt key from memory, close the database, release the directory's lock."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    @abstractmethod
    def controller(self) -> str:
        """The gateway's name (the consent receipts' controller)."""

    @property
    @abstractmethod
    def jurisdiction(self) -> str: ...

    @abstractmethod
    def receipt_public_key(self) -> bytes:
        """The Ed25519 public key that signs this store's consent receipts."""

    # --- consent ---

    @abstractmethod
    def consent_records(self) -> list[ConsentRecord]:
        """Every subject x application record, as stored."""

    @abstractmethod
    def consent_journal(self) -> ConsentJournal:
        """The journal a durable :class:`~cortex_sal.sal.consent.ConsentLedger` writes through: each
        change is stored with its signed receipt and its audit entry in one transaction."""

    @abstractmethod
    def receipts(self, subject: str | None = None) -> list[StoredReceipt]:
        """The stored receipts (of one pseudonymous subject), oldest first."""

    @abstractmethod
    def consent_version(self) -> int:
        """A number that changes whenever another connection commits (cheap: poll it to reload)."""

    # --- policy ---

    @abstractmethod
    def record_policy(self, applied: AppliedBundle) -> None:
        """Store an application of a bundle (already verified by the caller) as the policy in force."""

    @abstractmethod
    def policy_history(self) -> list[AppliedBundle]:
        """Every stored application, in order (parsed, not verified)."""

    @abstractmethod
    def policy_in_force(self) -> PolicyInForce:
        """The stored history replayed and re-verified (raises PolicyVerificationError if it does not)."""

    # --- registry and revocations ---

    @abstractmethod
    def sensor_models(self) -> list[SensorModel]: ...

    @abstractmethod
    def save_sensor_models(self, models: Sequence[SensorModel]) -> None: ...

    @abstractmethod
    def revoke_sensor(self, sensor_id: str, reason: str) -> None: ...

    @abstractmethod
    def revoked_sensors(self) -> list[str]: ...

    @abstractmethod
    def save_revocation_list(self, data: bytes, trust: TrustStore) -> int:
        """Verify a CA's signed revocation list against ``trust`` and store it; returns its sequence.

        Refused unless it verifies and its sequence (issue time) is higher than the stored one's."""

    @abstractmethod
    def load_revocation_lists(self, trust: TrustStore) -> int:
        """Add every stored revocation list to ``trust`` (each verified again); returns how many."""

    # --- audit ---

    @abstractmethod
    def audit(self, event: str, **details: str | int | float | bool) -> AuditEntry:
        """Append one entry to the store's audit chain (privacy rule of governance.audit)."""

    @abstractmethod
    def audit_entries(self) -> list[AuditEntry]: ...

    @abstractmethod
    def audit_head(self) -> AuditHead: ...

    @abstractmethod
    def verify_audit(self, expected_head: AuditHead | None = None) -> VerifyResult: ...

    # --- released features ---

    @abstractmethod
    def set_retention(self, scope: str, days: float | None) -> None:
        """Keep released results of ``scope`` for ``days`` (``None``: do not keep them; the default)."""

    @abstractmethod
    def retention(self) -> dict[str, float]: ...

    @abstractmethod
    def record_release(self, subject: str, scope: str, seq: int, values: Mapping[str, Any]) -> bool:
        """Keep one released result if retention is on for ``scope``; returns whether it was kept."""

    @abstractmethod
    def releases(self, subject: str) -> list[Release]: ...

    @abstractmethod
    def prune_releases(self) -> int:
        """Delete kept results older than their scope's retention; returns how many."""

    # --- applications (the consumer API) ---

    @abstractmethod
    def add_app(self, app_id: str, public_key: bytes) -> AppRecord:
        """Register an application by its Ed25519 public key (audited); an id is registered once."""

    @abstractmethod
    def apps(self) -> list[AppRecord]: ...

    @abstractmethod
    def app(self, app_id: str) -> AppRecord | None: ...

    @abstractmethod
    def revoke_app(self, app_id: str) -> AppRecord:
        """End an application's registration and every token it holds (audited)."""

    @abstractmethod
    def request_access(self, app_id: str, scopes: Sequence[str], purpose: str) -> AccessRequest:
        """Record a pending request (audited; the same pending request is recorded once)."""

    @abstractmethod
    def access_requests(self, app_id: str | None = None) -> list[AccessRequest]: ...

    @abstractmethod
    def approve_requests(self, app_id: str) -> int:
        """Mark the app's pending requests approved (``consent grant --app``); returns how many."""

    @abstractmethod
    def issue_token(self, app_id: str, token_hash: bytes, expires_at: float) -> None:
        """Record an authorisation: only SHA-256 of the token is stored (audited)."""

    @abstractmethod
    def token_app(self, token_hash: bytes) -> str | None:
        """The application a token (by hash) is valid for now: not expired, not revoked; else ``None``."""

    @abstractmethod
    def revoke_tokens(self, app_id: str) -> int:
        """Revoke every token of an application (audited); returns how many were live."""

    @abstractmethod
    def pairwise_id(self, app_id: str, subject: str) -> str:
        """The stable id under which ``app_id`` sees ``subject``: a keyed hash, different for each app,
        so that two applications cannot link a wearer by id (the key never leaves locked memory)."""

    # --- the whole ---

    @abstractmethod
    def check(self) -> CheckReport: ...

    @abstractmethod
    def export_subject(self, sensor_id: str) -> dict[str, Any]:
        """A subject's receipts, consent records, audit entries and kept results, as JSON-ready data."""
