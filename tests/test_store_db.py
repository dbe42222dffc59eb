"""The embedded store (docs/store.md): consent with receipts and audit, policy in force, registry and
revocation lists, kept releases, the subject's export, and a shield started from the store.

Failure modes (kill -9, corrupt files, full disk, locks) are in test_store_durability.py and
test_store_bad_inputs.py.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from cortex_sal.clock import ManualClock
from cortex_sal.errors import (
    CertificateError,
    ConsentError,
    InvalidArgumentError,
    PolicyVerificationError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreSchemaError,
)
from cortex_sal.governance import DEFAULT_THRESHOLDS
from cortex_sal.governance.audit import check_details
from cortex_sal.governance.policy import AppliedBundle
from cortex_sal.governance.quorum import EnactedBundle, NodeRegistry
from cortex_sal.keros.certificate import CertificateAuthority, CertificateReason, TrustStore
from cortex_sal.keros.registry import SensorModel
from cortex_sal.sal.receipts import verify_receipt
from cortex_sal.sal.results import RefusalReason, Refused, Released
from cortex_sal.store.base import subject_of
from cortex_sal.store.runtime import durable_ledger, open_shield
from cortex_sal.store.sqlite import DATABASE_FILE, RECEIPT_KEY_FILE, SCHEMA_VERSION, SqliteStore
from service_world import enacted_bundle

SENSOR = "eeg_fp1_certified_v1/SN1"
SUBJECT = subject_of(SENSOR)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _bundle(content: dict[str, object], now: float) -> tuple[EnactedBundle, NodeRegistry]:
    bundle, registry, _ = enacted_bundle(content, now)
    return bundle, registry


# --- the directory ---------------------------------------------------------------------------------


def test_a_new_store_is_private_and_names_its_controller(data_dir: Path) -> None:
    with SqliteStore(data_dir, controller="gw-berlin", jurisdiction="DE") as store:
        assert (store.controller, store.jurisdiction) == ("gw-berlin", "DE")
        key = store.receipt_public_key()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / DATABASE_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((data_dir / RECEIPT_KEY_FILE).stat().st_mode) == 0o600
    with SqliteStore(data_dir) as again:  # reopened: the same identity and key
        assert again.controller == "gw-berlin" and again.receipt_public_key() == key
    with pytest.raises(InvalidArgumentError, match="created for the controller 'gw-berlin'"):
        SqliteStore(data_dir, controller="another")
    db = sqlite3.connect(data_dir / DATABASE_FILE)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_a_data_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "open"
    d.mkdir(mode=0o777)
    d.chmod(0o777)
    with pytest.raises(StoreError, match="writable by group or others"):
        SqliteStore(d)
    assert not (d / DATABASE_FILE).exists()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        SqliteStore(f)


def test_one_exclusive_owner_at_a_time(data_dir: Path) -> None:
    owner = SqliteStore(data_dir, exclusive=True)
    with pytest.raises(StoreLockedError, match="in use by another process"):
        SqliteStore(data_dir, exclusive=True)
    with SqliteStore(data_dir) as reader:  # the command line does not take the lock
        assert reader.consent_records() == []
    owner.close()
    SqliteStore(data_dir, exclusive=True).close()


def test_a_newer_schema_is_refused_and_left_untouched(data_dir: Path) -> None:
    SqliteStore(data_dir).close()
    db = sqlite3.connect(data_dir / DATABASE_FILE)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    before = (data_dir / DATABASE_FILE).read_bytes()
    with pytest.raises(StoreSchemaError, match="newer than this cortex-sal supports"):
        SqliteStore(data_dir)
    assert (data_dir / DATABASE_FILE).read_bytes() == before


# --- consent ------------------------------------------------------------------------------------


def test_grants_and_revocations_are_durable_with_receipts_and_audit(data_dir: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    with SqliteStore(data_dir, controller="gw", jurisdiction="DE", clock=clock) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS, clock)
        grant = ledger.grant(SUBJECT, ["biometric", "audio"], 600, app="focus-app", purpose="focus feedback")
        other = ledger.grant(SUBJECT, ["biometric"], 600, app="sleep-app", purpose="sleep staging")
        clock.advance(5)
        revoked = ledger.revoke(SUBJECT, "withdrawn", app="focus-app")
        key = store.receipt_public_key()
    with SqliteStore(data_dir, clock=clock) as store:  # a new process would see the same
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS, clock)
        assert not ledger.is_active(SUBJECT, "biometric", "focus-app")
        assert ledger.is_active(SUBJECT, "biometric", "sleep-app")
        assert ledger.record(SUBJECT, "focus-app") == revoked
        assert ledger.record(SUBJECT, "sleep-app") == other
        receipts = store.receipts(SUBJECT)
        entries = store.audit_entries()
        assert store.verify_audit().ok
    assert [r.kind for r in receipts] == ["grant", "grant", "withdrawal"]
    read = [verify_receipt(r.document, public_key=key) for r in receipts]
    assert read[0].receipt_id == grant.receipt_id and read[0].scopes == ("biometric", "audio")
    assert read[0].controller == "gw" and read[0].jurisdiction == "DE" and read[0].subject == SUBJECT
    assert read[2].state == "withdrawn" and read[2].refers_to == grant.receipt_id and read[2].reason == "withdrawn"
    assert [e.event for e in entries] == ["consent_granted", "consent_granted", "consent_revoked"]
    for e in entries:
        assert check_details(dict(e.details)) is None and e.details["subject_hash"] == SUBJECT
        assert SENSOR not in json.dumps(dict(e.details))
    raw = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith(DATABASE_FILE))
    assert SENSOR.encode() not in raw  # the store holds the pseudonym only


def test_a_change_the_store_cannot_make_durable_does_not_happen(data_dir: Path) -> None:
    store = SqliteStore(data_dir)
    ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
    ledger.grant(SUBJECT, ["biometric"], 600, app="a", purpose="p")
    store.close()  # the journal can no longer write
    with pytest.raises(StoreError, match="closed"):
        ledger.grant(SUBJECT, ["audio"], 600, app="b", purpose="p")
    with pytest.raises(StoreError, match="closed"):
        ledger.revoke(SUBJECT, "gone", app="a")
    assert ledger.is_active(SUBJECT, "biometric", "a")  # memory unchanged: nothing half-done
    with pytest.raises(ConsentError):
        ledger.record(SUBJECT, "b")


def test_capacity_none_revokes_every_app_durably(data_dir: Path) -> None:
    with SqliteStore(data_dir) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
        for app in ("a", "b"):
            ledger.grant(SUBJECT, ["biometric"], 600, app=app, purpose="p")
        ledger.set_capacity(SUBJECT, "LIMITED")
        ledger.set_capacity(SUBJECT, "LIMITED")  # unchanged: no write
        ledger.set_capacity(SUBJECT, "NONE")
        events = [e.event for e in store.audit_entries()]
    assert (
        events
        == ["consent_granted", "consent_granted", "consent_capacity", "consent_capacity"] + ["consent_revoked"] * 2
    )
    with SqliteStore(data_dir) as store:
        records = store.consent_records()
    assert all(r.revoked and r.capacity == "NONE" and "capacity NONE" in (r.revocation_reason or "") for r in records)


# --- policy in force --------------------------------------------------------------------------------


def test_the_policy_in_force_is_replayed_at_its_recorded_time(data_dir: Path) -> None:
    enacted_at = time.time() - 40 * 86400  # the proposal expired long ago: "now" would refuse it
    bundle, registry = _bundle({"bridge_max_std": 0.45, "min_snr_db": 35.0}, enacted_at)
    with SqliteStore(data_dir) as store:
        assert store.policy_in_force().origin is None
        with open_shield(store) as shield:
            new = shield.apply_policy(bundle, registry, now=enacted_at)
            assert shield.policy.origin is not None
            store.record_policy(shield.policy.origin)
        with pytest.raises(PolicyVerificationError, match="already part of the stored policy"):
            store.record_policy(AppliedBundle(bundle, registry, enacted_at, new))
        entry = store.audit_entries()[-1]
    assert entry.event == "policy_applied" and entry.details["proposal_hash"] == bundle.proposal.digest().hex()
    with SqliteStore(data_dir) as store, open_shield(store) as shield:  # "restarted"
        assert shield.thresholds == new and shield.thresholds.bridge_max_std == 0.45
        assert shield.registry.min_snr_db == 35.0
        origin = shield.policy.origin
        assert origin is not None and origin.digest_hex == bundle.proposal.digest().hex()
        assert bundle.proposal.digest().hex() in shield.policy.describe()
        with pytest.raises(Exception, match="already enacted"):
            shield.apply_policy(bundle, registry, now=enacted_at)  # no replay after a restart either


def test_a_stored_policy_that_does_not_verify_refuses_to_start(data_dir: Path) -> None:
    now = time.time()
    bundle, registry = _bundle({"bridge_max_std": 0.45}, now)
    with SqliteStore(data_dir) as store:
        store.record_policy(AppliedBundle(bundle, registry, now, DEFAULT_THRESHOLDS.__class__(bridge_max_std=0.45)))
    db = sqlite3.connect(data_dir / DATABASE_FILE)
    db.execute("UPDATE policy SET verified_at = verified_at + 31 * 86400")  # outside the validity window
    db.commit()
    db.close()
    with SqliteStore(data_dir) as store:
        with pytest.raises(PolicyVerificationError, match="does not verify against its recorded registry"):
            open_shield(store)
        assert store.check().policy.startswith("policy does not verify")
        assert not store.check().ok


# --- registry and revocation lists ------------------------------------------------------------------


def test_sensor_models_and_revocations_reach_the_shield(data_dir: Path) -> None:
    with SqliteStore(data_dir) as store:
        store.save_sensor_models([SensorModel("cyton_v3", "OpenBCI", 40.0, 24)])
        store.revoke_sensor("cyton_v3/BAD", "stolen")
        with open_shield(store) as shield:
            assert [m.model_id for m in shield.registry.models()] == ["cyton_v3"]
            with pytest.raises(Exception, match="revoked"):
                shield.registry.admit("cyton_v3/BAD")
            shield.registry.admit("cyton_v3/GOOD")
        assert [e.event for e in store.audit_entries()] == ["registry_models_stored", "sensor_revoked"]
        assert "cyton_v3/BAD" not in json.dumps([dict(e.details) for e in store.audit_entries()])


def test_a_revocation_list_never_rolls_back(data_dir: Path) -> None:
    ca = CertificateAuthority.generate("manufacturer", "Acme devices")
    other = CertificateAuthority.generate("manufacturer", "Mallory")
    older = ca.revocation_list(["A"], issued_at=100)
    newer = ca.revocation_list(["A", "B"], issued_at=200)
    forged = other.revocation_list(["A"], issued_at=300)
    forged_as_ca = bytearray(ca.revocation_list([], issued_at=300))
    forged_as_ca[-1] ^= 1
    with SqliteStore(data_dir) as store:
        trust = TrustStore([ca.root])
        assert store.save_revocation_list(older, trust) == 100
        assert store.save_revocation_list(newer, TrustStore([ca.root])) == 200
        with pytest.raises(CertificateError) as stale:
            store.save_revocation_list(older, TrustStore([ca.root]))
        assert stale.value.reason is CertificateReason.STALE
        with pytest.raises(CertificateError) as unknown:
            store.save_revocation_list(forged, TrustStore([ca.root]))
        assert unknown.value.reason is CertificateReason.UNKNOWN_ISSUER
        with pytest.raises(CertificateError) as bad:
            store.save_revocation_list(bytes(forged_as_ca), TrustStore([ca.root]))
        assert bad.value.reason is CertificateReason.BAD_SIGNATURE
        fresh = TrustStore([ca.root])
        assert store.load_revocation_lists(fresh) == 1
        assert fresh.is_revoked(ca.root.key_id, "B")
    ca.purge()
    other.purge()


# --- kept releases and the subject's export -----------------------------------------------------------


def test_releases_are_kept_only_with_retention_and_pruned_by_age(data_dir: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    with SqliteStore(data_dir, clock=clock) as store:
        assert not store.record_release(SUBJECT, "biometric", 1, {"state": "ventral_vagal"})  # off by default
        store.set_retention("biometric", 1.0)
        assert store.record_release(SUBJECT, "biometric", 2, {"state": "ventral_vagal", "marker": "PRUNE-ME-7f3a"})
        clock.advance(86400 + 1)
        assert store.record_release(SUBJECT, "biometric", 3, {"state": "sympathetic"})
        on_disk = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith(DATABASE_FILE))
        assert b"PRUNE-ME-7f3a" in on_disk  # the control: the kept release is on disk
        assert store.prune_releases() == 1
        assert [r.seq for r in store.releases(SUBJECT)] == [3]
        on_disk = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith(DATABASE_FILE))
        assert b"PRUNE-ME-7f3a" not in on_disk  # overwritten (secure_delete), the WAL cut
        with pytest.raises(InvalidArgumentError):
            store.set_retention("biometric", float("nan"))
        with pytest.raises(InvalidArgumentError):
            store.record_release(SUBJECT, "biometric", 4, {"x": float("inf")})


def test_the_subject_export_holds_what_is_theirs_only(data_dir: Path) -> None:
    other = subject_of("eeg_fp1_certified_v1/SN2")
    with SqliteStore(data_dir) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
        ledger.grant(SUBJECT, ["biometric"], 600, app="a", purpose="p")
        ledger.grant(other, ["biometric"], 600, app="a", purpose="p")
        store.set_retention("biometric", 30)
        store.record_release(SUBJECT, "biometric", 1, {"state": "ventral_vagal"})
        doc = store.export_subject(SENSOR)
    assert doc["subject"] == SUBJECT and len(doc["receipts"]) == 1 and len(doc["consent"]) == 1
    assert [e["event"] for e in doc["audit"]] == ["consent_granted"]
    assert doc["releases"][0]["values"] == {"state": "ventral_vagal"}
    assert verify_receipt(doc["receipts"][0], public_key=bytes.fromhex(doc["receipt_public_key"])).subject == SUBJECT
    json.dumps(doc, allow_nan=False)


# --- the shield started from the store ----------------------------------------------------------------


def _eeg(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(256) / 128.0
    return 20.0 * np.sin(2 * np.pi * 10 * t) + rng.normal(0, 2.0, 256)


def test_the_shield_releases_only_under_stored_consent_and_revocation_is_durable(data_dir: Path) -> None:
    with SqliteStore(data_dir) as store, open_shield(store) as shield:
        shield.register_sensor(SENSOR, 40.0, 16)
        first = shield.ingest_raw_data(SENSOR, _eeg(1))
        assert isinstance(first, Refused) and first.reason is RefusalReason.CONSENT_INACTIVE  # no self-grant
        ledger = shield.consent
        ledger.grant(SUBJECT, ["biometric"], 600, app="focus-app", purpose="focus feedback")
        assert isinstance(shield.ingest_raw_data(SENSOR, _eeg(2)), Released)
        ledger.revoke(SUBJECT, "withdrawn", app="focus-app")
        after = shield.ingest_raw_data(SENSOR, _eeg(3))  # the very next frame
        assert isinstance(after, Refused) and after.reason is RefusalReason.CONSENT_INACTIVE
    with SqliteStore(data_dir) as store:  # destroying the session did not revoke the wearer's consent
        (record,) = store.consent_records()
        assert record.revocation_reason == "withdrawn"


def test_a_revocation_by_another_process_reaches_a_running_shield(data_dir: Path) -> None:
    """Another connection (``cortex-sal consent revoke`` while a gateway runs) is seen within the poll interval."""
    from cortex_sal.store.sqlite import POLL_INTERVAL_S

    with SqliteStore(data_dir, exclusive=True) as store, open_shield(store) as shield:
        shield.register_sensor(SENSOR, 40.0, 16)
        with SqliteStore(data_dir) as cli_store:  # a second connection: as another process would be
            durable_ledger(cli_store, DEFAULT_THRESHOLDS).grant(SUBJECT, ["biometric"], 600, app="a", purpose="p")
        time.sleep(POLL_INTERVAL_S * 1.5)
        assert isinstance(shield.ingest_raw_data(SENSOR, _eeg(4)), Released)
        with SqliteStore(data_dir) as cli_store:
            durable_ledger(cli_store, DEFAULT_THRESHOLDS).revoke(SUBJECT, "withdrawn", app="a")
        time.sleep(POLL_INTERVAL_S * 1.5)
        after = shield.ingest_raw_data(SENSOR, _eeg(5))
        assert isinstance(after, Refused) and after.reason is RefusalReason.CONSENT_INACTIVE


def test_admissions_and_refusals_are_audited_and_an_unauditable_admission_is_undone(data_dir: Path) -> None:
    store = SqliteStore(data_dir)
    shield = open_shield(store)
    assert shield.register_sensor(SENSOR, 40.0, 16).__class__.__name__ == "Registered"
    refused = shield.register_sensor("unknown_model/X", 40.0, 16)
    assert isinstance(refused, Refused) and refused.reason is RefusalReason.NOT_CERTIFIED
    entries = [(e.event, dict(e.details)) for e in store.audit_entries()]
    assert entries == [
        ("sensor_admitted", {"subject_hash": SUBJECT, "model": "eeg_fp1_certified_v1"}),
        ("sensor_refused", {"subject_hash": subject_of("unknown_model/X"), "reason": "not_certified"}),
    ]
    store.close()  # the audit sink can no longer write
    with pytest.raises(StoreError, match="closed"):
        shield.register_sensor("eeg_fp1_certified_v1/SN9", 40.0, 16)
    assert "eeg_fp1_certified_v1/SN9" not in shield._sensors  # detached again: no unaudited admission
    shield.close()


def test_capacity_none_after_one_app_was_revoked_issues_one_receipt_per_withdrawal(data_dir: Path) -> None:
    """Found by the residue row's author: the already revoked grant got a second withdrawal receipt
    under the same id (UNIQUE constraint) and the frame path raised."""
    with SqliteStore(data_dir) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
        ledger.grant(SUBJECT, ["biometric"], 600, app="one", purpose="p")
        ledger.revoke(SUBJECT, "withdrawn", app="one")
        ledger.grant(SUBJECT, ["biometric"], 600, app="two", purpose="p")
        ledger.set_capacity(SUBJECT, "NONE")
        kinds = [(r.app, r.kind) for r in store.receipts(SUBJECT)]
        events = [e.event for e in store.audit_entries()]
        records = {r.app: r for r in store.consent_records()}
    assert kinds == [("one", "grant"), ("one", "withdrawal"), ("two", "grant"), ("two", "withdrawal")]
    assert events[-2:] in (["consent_capacity", "consent_revoked"], ["consent_revoked", "consent_capacity"])
    assert records["one"].revocation_reason == "withdrawn" and records["one"].capacity == "NONE"
    assert records["two"].revoked and "capacity NONE" in (records["two"].revocation_reason or "")


def test_a_multichannel_model_comes_back_whole_and_a_version_2_store_migrates(data_dir: Path) -> None:
    """Schema 3 keeps a model's frame shape (channels, labels, native rate, the source of its figures):
    a 16-channel model saved is the model read, and its frames are that size in a shield started from
    the store. A version-2 database (one-channel rows, no shape) is migrated forward in place."""
    from cortex_sal.keros.registry import SensorRegistry

    models = SensorRegistry.default().models()
    with SqliteStore(data_dir) as store:
        store.save_sensor_models(models)
        assert store.sensor_models() == sorted(models, key=lambda m: m.model_id)
        board = {m.model_id: m for m in store.sensor_models()}["brainflow_synthetic_v1"]
        assert board.channels == 16 and board.labels[:3] == ("Fz", "C3", "Cz") and board.synthetic
    # a version-2 store as it was: the table without the shape column, a row of one channel
    old = data_dir.parent / "v2"
    with SqliteStore(old) as store:
        store.save_sensor_models([SensorModel("eeg_fp1_certified_v1", "NeuroStandard", 35.0, 16)])
    db = sqlite3.connect(old / DATABASE_FILE)
    db.execute("ALTER TABLE sensor_models DROP COLUMN shape")
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    with SqliteStore(old) as store:
        assert store.check().schema_version == SCHEMA_VERSION == 3
        (model,) = store.sensor_models()
        assert model == SensorModel("eeg_fp1_certified_v1", "NeuroStandard", 35.0, 16)
    db = sqlite3.connect(old / DATABASE_FILE)  # a shape that is not a model's: refused as corrupt
    db.execute("UPDATE sensor_models SET shape = '{\"channels\": 0}'")
    db.commit()
    db.close()
    with SqliteStore(old) as store, pytest.raises(StoreCorruptError, match="eeg_fp1_certified_v1"):
        store.sensor_models()
