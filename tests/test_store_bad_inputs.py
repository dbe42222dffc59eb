"""Bad input to the embedded store (issue #12, "Reliability: bad input" and "Concurrency").

Each case gives a specific ``CortexError`` with a clear message, and nothing already stored is
lost or altered (the database file's bytes, or every record, compared before and after):

* a corrupt database file: garbage, a clobbered header, a truncated file -> StoreCorruptError
  when opening; any one page of a valid database overwritten (zeros or junk) -> StoreCorruptError
  when opening if the page holds the ``meta`` table (read at open), otherwise from ``check()``;
* a truncated WAL, cut at every commit boundary and inside frames -> the store opens, passes
  ``integrity_check`` and audit verification, and holds exactly the transactions whose commit
  frame survived whole (SQLite's WAL recovery: a prefix of the history, never half a write);
* a database of a newer schema -> StoreSchemaError, the file's bytes unchanged;
* a read-only data directory (a read-only bind mount in a private mount namespace: real
  ``EROFS``, which root cannot bypass; plain permissions when not root) -> StoreError "read-only";
* a full disk: ``RLIMIT_FSIZE`` (SIGXFSZ ignored) and a tiny tmpfs -> StoreError "disk is full",
  every acknowledged record intact after;
* two exclusive openers of one directory (the second in another process) -> StoreLockedError;
  after the first closes, or is killed with SIGKILL, a new exclusive open works;
* a consent receipt with any one byte flipped -> ReceiptError;
* a revocation list older than the stored one -> CertificateError STALE; forged (signed by
  another key, or a flipped signature byte) -> CertificateError BAD_SIGNATURE; the stored list
  and the audit trail unchanged;
* a policy row tampered in the database -> PolicyVerificationError from ``policy_in_force()``
  and ``open_shield()``, and ``check()`` says the policy does not verify;
* a reader in this process while a writer process grants and revokes: every snapshot is
  consistent (one receipt and one audit entry per consent change) and verifies.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cortex_sal.crypto.ed25519 import Ed25519SigningKey
from cortex_sal.errors import (
    CertificateError,
    CertificateReason,
    PolicyVerificationError,
    ReceiptError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    StoreSchemaError,
)
from cortex_sal.governance import DEFAULT_THRESHOLDS
from cortex_sal.governance.policy import AppliedBundle
from cortex_sal.governance.quorum import apply_bundle
from cortex_sal.keros.certificate import CRL_CONTEXT, CAKind, CertificateAuthority, TrustStore
from cortex_sal.sal.receipts import verify_receipt
from cortex_sal.store.runtime import durable_ledger, open_shield
from cortex_sal.store.sqlite import DATABASE_FILE, RECEIPT_KEY_FILE, SCHEMA_VERSION, SqliteStore
from service_world import enacted_bundle

SRC = str(Path(__file__).resolve().parents[1] / "src")
PAGE = 4096
CHILD_TIMEOUT_S = 60

# One child program, several modes (argv[1]); it prints one JSON object per line.
CHILD = r"""
import json, os, resource, signal, sys, time
from pathlib import Path

from cortex_sal.errors import CortexError
from cortex_sal.governance import DEFAULT_THRESHOLDS
from cortex_sal.store.runtime import durable_ledger
from cortex_sal.store.sqlite import SqliteStore


def say(**message):
    print(json.dumps(message, sort_keys=True), flush=True)


def fill(store, first):
    # grants and audit appends until the store refuses one; each acknowledged after it returns
    ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
    for i in range(first, first + 100_000):
        subject = f"{i:016x}"
        try:
            record = ledger.grant(subject, ["biometric"], 3600, app="app-1", purpose="p")
            say(kind="grant", subject=subject, receipt=record.receipt_id)
            entry = store.audit("sensor_admitted", subject_hash=subject)
            say(kind="audit", index=entry.index, hash=entry.entry_hash)
        except CortexError as exc:
            say(error=type(exc).__name__, message=str(exc))
            return
    say(error=None)


mode, directory = sys.argv[1], sys.argv[2]
if mode == "rlimit-fill":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    store = SqliteStore(directory, exclusive=True)
    files = [p for p in Path(directory).iterdir() if p.name.startswith("cortex-sal.db")]
    limit = max(p.stat().st_size for p in files) + int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    say(limit=limit)
    fill(store, 1000)
    store.close()
elif mode == "tmpfs-fill":  # run inside a private mount namespace with a tiny tmpfs mounted on directory
    store = SqliteStore(directory, exclusive=True)
    fill(store, 0)
    store.close()
    out = Path(sys.argv[3])
    for p in Path(directory).iterdir():
        if p.name != "lock":
            (out / p.name).write_bytes(p.read_bytes())
            os.chmod(out / p.name, 0o600)
    say(copied=sorted(p.name for p in out.iterdir()))
elif mode == "open":
    try:
        with SqliteStore(directory, exclusive=len(sys.argv) > 3) as store:
            say(ok=True, records=len(store.consent_records()))
    except CortexError as exc:
        say(error=type(exc).__name__, message=str(exc))
elif mode == "hold":
    store = SqliteStore(directory, exclusive=True)
    say(held=True)
    time.sleep(120)
elif mode == "writer":
    store = SqliteStore(directory, exclusive=True)
    ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
    say(started=True)
    for i in range(int(sys.argv[3])):
        subject = f"{i:016x}"
        ledger.grant(subject, ["biometric"], 3600, app="app-1", purpose="p")
        if i % 2:
            ledger.revoke(subject, "withdrawn", app="app-1")
        time.sleep(0.005)  # a gateway's pace, not a tight loop: readers get their turns
    store.close()
    say(done=True)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _child_argv(*args: str) -> list[str]:
    return [sys.executable, "-W", "error", "-c", CHILD, *args]


def _run(argv: list[str]) -> list[dict[str, Any]]:
    done = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=CHILD_TIMEOUT_S, check=False)
    assert done.returncode == 0, f"child {argv[-3:]} exited {done.returncode}: {done.stderr[-2000:]}"
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def popen() -> Iterator[list[subprocess.Popen[str]]]:
    """Children started by a test; each killed (by its pid) and reaped at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _populate(directory: Path, n: int = 30) -> None:
    with SqliteStore(directory) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
        for i in range(n):
            subject = f"{i:016x}"
            ledger.grant(subject, ["biometric"], 3600, app="app-1", purpose="p")
            if i % 3 == 0:
                ledger.revoke(subject, "withdrawn", app="app-1")
            store.audit("sensor_admitted", subject_hash=subject)


def _snapshot(directory: Path) -> dict[str, Any]:
    """Everything the store holds, as comparable values (and it verifies)."""
    with SqliteStore(directory) as store:
        report = store.check()
        assert report.integrity == "ok" and report.audit.ok, report
        return {
            "records": store.consent_records(),
            "receipts": store.receipts(),
            "audit": [e.entry_hash for e in store.audit_entries()],
            "head": store.audit_head(),
        }


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with consent, receipts and audit entries, closed (fully checkpointed: no WAL)."""
    directory = tmp_path_factory.mktemp("populated") / "data"
    _populate(directory)
    assert not (directory / f"{DATABASE_FILE}-wal").exists()
    return directory


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


# --- a corrupt database ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: os.urandom(len(b)), id="garbage"),
        pytest.param(lambda b: b"\x00" * 100 + b[100:], id="header-zeroed"),
        pytest.param(lambda b: b"SQLite format 2\x00" + b[16:], id="header-magic"),
        pytest.param(lambda b: b[: len(b) // 2], id="truncated-half"),
        pytest.param(lambda b: b[:PAGE], id="truncated-to-one-page"),
    ],
)
def test_a_database_that_is_not_one_is_refused_at_open_and_left_alone(populated: Path, tmp_path: Path, damage) -> None:
    directory = _copy(populated, tmp_path / "data")
    db = directory / DATABASE_FILE
    data = damage(db.read_bytes())
    db.write_bytes(data)
    with pytest.raises(StoreCorruptError, match=r"cannot open .*: the database is corrupt \("):
        SqliteStore(directory)
    assert db.read_bytes() == data, "a refused database was altered"
    assert sorted(p.name for p in directory.iterdir()) == ["cortex-sal.db", "receipt-signing.key"]


def _meta_pages(db: Path) -> set[int]:
    """The 0-based page number of the ``meta`` table (scanned by every open; its index is not read)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchall()
    conn.close()
    return {int(r[0]) - 1 for r in rows}


def test_any_page_overwritten_in_a_valid_database_is_found_at_open_or_by_check(populated: Path, tmp_path: Path) -> None:
    base = (populated / DATABASE_FILE).read_bytes()
    pages = len(base) // PAGE
    meta = _meta_pages(populated / DATABASE_FILE)
    assert pages > 20 and meta, (pages, meta)
    where_found: dict[str, list[int]] = {"open": [], "check": []}
    for page in range(1, pages):  # page 0 (the header) is the test above
        for fill in (b"\x00" * PAGE, bytes((page * 37 + i * 11) % 256 for i in range(PAGE))):
            directory = _copy(populated, tmp_path / f"p{page}-{fill[1]}")
            db = directory / DATABASE_FILE
            data = base[: page * PAGE] + fill + base[(page + 1) * PAGE :]
            db.write_bytes(data)
            try:  # the pages every open reads (meta, the schema table's own) are refused there
                store = SqliteStore(directory)
            except StoreCorruptError as exc:
                assert "the database is corrupt" in str(exc)
                where_found["open"].append(page)
            else:
                with store:  # `store check` reports it (exit 2), it does not crash
                    report = store.check()
                assert not report.ok and report.integrity != "ok", (page, report.integrity)
                assert not report.audit.ok  # nothing is claimed verified on a database that fails its check
                where_found["check"].append(page)
            assert page not in meta or page in where_found["open"], f"the meta page {page} opened"
            assert db.read_bytes() == data, f"page {page}: the corrupt database was altered"
            shutil.rmtree(directory)
    assert where_found["open"] and where_found["check"], where_found


# --- a truncated WAL ---------------------------------------------------------------------------


def test_a_truncated_wal_opens_to_a_whole_prefix_of_the_history(tmp_path: Path) -> None:
    """WAL recovery keeps the frames up to the last whole commit frame with a valid checksum chain;
    a cut anywhere loses the transactions after it, whole, never part of one."""
    directory = tmp_path / "data"
    _populate(directory, 10)  # checkpointed into the database file: the WAL starts empty
    wal = directory / f"{DATABASE_FILE}-wal"
    boundaries = []  # (WAL size, audit count, receipt ids) after each commit
    with SqliteStore(directory) as store:
        ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
        base_count = store.audit_head().count
        boundaries.append((wal.stat().st_size, base_count, {r.receipt_id for r in store.receipts()}))
        for i in range(12):
            subject = f"{100 + i:016x}"
            if i % 3 == 2:
                store.audit("sensor_admitted", subject_hash=subject)
            else:
                ledger.grant(subject, ["biometric"], 3600, app="app-2", purpose="p")
            boundaries.append((wal.stat().st_size, store.audit_head().count, {r.receipt_id for r in store.receipts()}))
        # copy the files mid-state, the writer still open: the WAL holds all 12 commits
        snapshot = tmp_path / "snapshot"
        snapshot.mkdir(mode=0o700)
        for name in (DATABASE_FILE, f"{DATABASE_FILE}-wal", RECEIPT_KEY_FILE):
            shutil.copy2(directory / name, snapshot / name)
    full_wal = (snapshot / f"{DATABASE_FILE}-wal").read_bytes()
    assert boundaries[0][0] == 0 and len(full_wal) == boundaries[-1][0] > 0
    frame = 24 + PAGE
    cuts = {0, 10, 31, 32, 33, 32 + frame - 1, len(full_wal) - 1, len(full_wal)}
    for size, _, _ in boundaries[1:]:
        cuts |= {size - 1, size, size + 1, size + 24, size + frame // 2}
    outcomes = []
    for cut in sorted(c for c in cuts if 0 <= c <= len(full_wal)):
        case = tmp_path / f"cut{cut}"
        shutil.copytree(snapshot, case)
        (case / f"{DATABASE_FILE}-wal").write_bytes(full_wal[:cut])
        # the commits wholly inside the cut survive, no other
        expected = max((b for b in boundaries if b[0] <= cut), key=lambda b: b[0])
        try:
            store = SqliteStore(case)
        except StoreCorruptError as exc:  # allowed by the issue; SQLite never needs it here
            outcomes.append((cut, f"refused: {exc}"))
            continue
        with store:
            report = store.check()
            assert report.integrity == "ok", f"cut {cut}: {report.integrity}"
            assert report.audit.ok, f"cut {cut}: {report.audit}"
            assert store.audit_head().count == expected[1], f"cut {cut}: {store.audit_head()} != {expected[1]}"
            receipts = store.receipts()
            assert {r.receipt_id for r in receipts} == expected[2], f"cut {cut}: receipts differ"
            for r in receipts:
                verify_receipt(r.document, public_key=store.receipt_public_key())
            records = store.consent_records()
            assert {r.receipt_id for r in records} <= expected[2], f"cut {cut}: a record without its receipt"
            assert len(records) == 10 + sum(1 for i in range(12) if i % 3 != 2 and boundaries[i + 1][0] <= cut)
        outcomes.append((cut, f"opened with {expected[1] - base_count} of 12 commits"))
    assert all("opened" in o for _, o in outcomes), outcomes  # what this SQLite does: every cut opens


# --- a newer schema ------------------------------------------------------------------------------


def test_a_database_of_a_newer_schema_is_refused_and_never_altered(populated: Path, tmp_path: Path) -> None:
    directory = _copy(populated, tmp_path / "data")
    db = directory / DATABASE_FILE
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    data = db.read_bytes()
    for exclusive in (False, True):
        with pytest.raises(
            StoreSchemaError, match=rf"schema version 99, newer than .* \({SCHEMA_VERSION}\).*not altered"
        ):
            SqliteStore(directory, exclusive=exclusive)
        assert db.read_bytes() == data, "a database of a newer schema was altered"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 99
    conn.close()


# --- a read-only data directory --------------------------------------------------------------------


def _read_only(directory: Path) -> None:
    directory.chmod(0o500)
    for p in directory.iterdir():
        p.chmod(0o400)


def _writable(directory: Path) -> None:
    directory.chmod(0o700)
    for p in directory.iterdir():
        p.chmod(0o600)


def test_a_read_only_data_directory_is_refused_saying_so(populated: Path, tmp_path: Path) -> None:
    """A read-only bind mount of the directory in a private mount namespace (``unshare``): the
    kernel refuses every write with EROFS, for root too (chmod alone does not stop root)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed: no private mount namespace for a read-only bind mount")
    directory = _copy(populated, tmp_path / "data")
    before = _snapshot(directory)
    data = (directory / DATABASE_FILE).read_bytes()
    _read_only(directory)
    probe = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        _writable(directory)
        pytest.skip(f"cannot create a mount namespace here (unshare: {probe.stderr.strip()})")
    # exit 77: no read-only bind mount; 78: the mount took a write (so it is not read-only)
    script = (
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" || exit 77; '
        'if touch "$0/x" 2>/dev/null; then exit 78; fi; exec "$@"'
    )
    try:
        messages = _run(["unshare", "--mount", "--map-root-user", "sh", "-c", script, str(directory),
                         *_child_argv("open", str(directory))])  # fmt: skip
        exclusive = _run(["unshare", "--mount", "--map-root-user", "sh", "-c", script, str(directory),
                          *_child_argv("open", str(directory), "exclusive")])  # fmt: skip
    finally:
        _writable(directory)
    assert not (directory / "x").exists(), "the bind mount was not read-only"
    for got in (messages, exclusive):
        assert got == [got[0]] and got[0]["error"] == "StoreError", got
        assert "read-only" in got[0]["message"], got
    assert (directory / DATABASE_FILE).read_bytes() == data
    assert _snapshot(directory) == before


def test_a_read_only_data_directory_by_permissions_is_refused_saying_so(populated: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: CAP_DAC_OVERRIDE ignores 0500/0400 (the read-only mount test covers root)")
    directory = _copy(populated, tmp_path / "data")
    data = (directory / DATABASE_FILE).read_bytes()
    _read_only(directory)
    try:
        with pytest.raises(StoreError, match="read-only"):
            SqliteStore(directory)
        with pytest.raises(StoreError, match="read-only"):
            SqliteStore(directory, exclusive=True)
    finally:
        _writable(directory)
    assert (directory / DATABASE_FILE).read_bytes() == data


# --- a full disk -------------------------------------------------------------------------------------


def _check_after_full(directory: Path, acks: list[dict[str, Any]]) -> None:
    with SqliteStore(directory) as store:
        report = store.check()
        assert report.integrity == "ok" and report.audit.ok, report
        receipts = {r.receipt_id for r in store.receipts()}
        entries = {(e.index, e.entry_hash) for e in store.audit_entries()}
        subjects = {r.sensor_key for r in store.consent_records()}
    for ack in acks:
        if ack["kind"] == "grant":
            assert ack["receipt"] in receipts and ack["subject"] in subjects, f"lost {ack}"
        else:
            assert (ack["index"], ack["hash"]) in entries, f"lost {ack}"


@pytest.mark.parametrize("margin", [100, PAGE + 1])
def test_a_full_disk_by_file_size_limit_is_refused_saying_so(populated: Path, tmp_path: Path, margin: int) -> None:
    directory = _copy(populated, tmp_path / "data")
    before = _snapshot(directory)
    messages = _run(_child_argv("rlimit-fill", str(directory), str(margin)))
    acks = [m for m in messages if "kind" in m]
    (error,) = [m for m in messages if "error" in m]
    assert error["error"] == "StoreError" and "the disk is full" in error["message"], error
    assert "nothing was changed" in error["message"]
    assert acks, "the limit left no room for a single write: the test proves nothing"
    after = _snapshot(directory)
    assert after["receipts"][: len(before["receipts"])] == before["receipts"]
    assert after["audit"][: len(before["audit"])] == before["audit"]
    _check_after_full(directory, acks)


def test_a_full_disk_on_a_tiny_filesystem_is_refused_saying_so(tmp_path: Path) -> None:
    """A real ENOSPC: a 512 KiB tmpfs mounted in a private mount namespace; the child fills it, then
    copies the files out and this test checks them."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed: no private mount namespace for a tiny tmpfs")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir(mode=0o700)
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    script = 'mount -t tmpfs -o size=512k,mode=0700 tmpfs "$0" || exit 77; exec "$@"'
    argv = ["unshare", "--mount", "--map-root-user", "sh", "-c", script, str(mount_point),
            *_child_argv("tmpfs-fill", str(mount_point), str(out))]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=_env(), timeout=CHILD_TIMEOUT_S, check=False)
    if done.returncode in (1, 77) and not done.stdout:
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    messages = [json.loads(line) for line in done.stdout.splitlines()]
    acks = [m for m in messages if "kind" in m]
    (error,) = [m for m in messages if "error" in m]
    assert error["error"] == "StoreError" and "the disk is full" in error["message"], error
    assert len(acks) > 10, messages
    assert not list(mount_point.iterdir()), "the tmpfs leaked out of its mount namespace"
    _check_after_full(out, acks)


# --- two gateways on one directory ---------------------------------------------------------------------


def test_a_second_exclusive_opener_is_refused_until_the_first_closes(populated: Path, tmp_path: Path) -> None:
    directory = _copy(populated, tmp_path / "data")
    first = SqliteStore(directory, exclusive=True)
    try:
        (refused,) = _run(_child_argv("open", str(directory), "exclusive"))
        assert refused["error"] == "StoreLockedError", refused
        assert (
            "in use by another process" in refused["message"]
            and "one gateway per data directory" in (refused["message"])
        )
        (shared,) = _run(_child_argv("open", str(directory)))  # a reader (consent list) still opens
        assert shared == {"ok": True, "records": 30}
        with pytest.raises(StoreLockedError):
            SqliteStore(directory, exclusive=True)  # a second opener in this process too
    finally:
        first.close()
    (opened,) = _run(_child_argv("open", str(directory), "exclusive"))
    assert opened == {"ok": True, "records": 30}


def test_the_lock_of_a_gateway_killed_with_sigkill_is_released(
    populated: Path, tmp_path: Path, popen: list[subprocess.Popen[str]]
) -> None:
    directory = _copy(populated, tmp_path / "data")
    before = _snapshot(directory)
    holder = subprocess.Popen(_child_argv("hold", str(directory)), stdout=subprocess.PIPE, text=True, env=_env())
    popen.append(holder)
    assert holder.stdout is not None
    assert json.loads(holder.stdout.readline()) == {"held": True}
    with pytest.raises(StoreLockedError, match="in use by another process"):
        SqliteStore(directory, exclusive=True)
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=10) == -signal.SIGKILL
    with SqliteStore(directory, exclusive=True) as store:
        assert store.consent_records() == before["records"]
    assert _snapshot(directory) == before


# --- a tampered receipt ----------------------------------------------------------------------------------


def test_a_receipt_with_any_byte_flipped_is_refused(populated: Path) -> None:
    with SqliteStore(populated) as store:
        stored = store.receipts()
        key = store.receipt_public_key()
    grant = next(r for r in stored if r.kind == "grant")
    withdrawal = next(r for r in stored if r.kind == "withdrawal")
    for receipt in (grant, withdrawal):
        document = receipt.document.encode("ascii")
        assert verify_receipt(document, public_key=key).receipt_id == receipt.receipt_id
        for i in range(len(document)):
            for flip in (0x01, 0x80):
                bad = document[:i] + bytes((document[i] ^ flip,)) + document[i + 1 :]
                with pytest.raises(ReceiptError, match="consent receipt"):
                    verify_receipt(bad, public_key=key)
                with pytest.raises(ReceiptError, match="consent receipt"):
                    verify_receipt(bad)  # offline, with the key the receipt itself names
    with SqliteStore(populated) as store:
        assert store.receipts() == stored


# --- revocation lists -----------------------------------------------------------------------------------------


def _stored_lists(directory: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{directory / DATABASE_FILE}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT issuer_key_id, sequence, data FROM revocation_lists").fetchall()
    finally:
        conn.close()


def test_an_older_or_forged_revocation_list_is_refused_and_the_stored_one_kept(populated: Path, tmp_path: Path) -> None:
    directory = _copy(populated, tmp_path / "data")
    with (
        CertificateAuthority.generate(CAKind.MANUFACTURER, "Acme Sensors") as ca,
        Ed25519SigningKey.generate() as other,
    ):
        trust = TrustStore([ca.root])
        current = ca.revocation_list(["SN1", "SN2"], issued_at=2_000)
        with SqliteStore(directory) as store:
            assert store.save_revocation_list(current, trust) == 2_000
            head = store.audit_head()
            stored = _stored_lists(directory)
            older = ca.revocation_list(["SN1"], issued_at=1_000)  # would un-revoke SN2: a rollback
            same_time = ca.revocation_list(["SN1"], issued_at=2_000)
            for data in (older, same_time):
                with pytest.raises(CertificateError, match="never rolled back") as caught:
                    store.save_revocation_list(data, TrustStore([ca.root]))
                assert caught.value.reason is CertificateReason.STALE
            tbs = ca.revocation_list(["SN1", "SN2", "SN3"], issued_at=3_000)[:-64]
            forged = [
                tbs + other.sign(CRL_CONTEXT + tbs),  # the trusted issuer's id, another key's signature
                tbs + current[-64:],  # the CA's genuine signature, of another list
            ]
            newer = ca.revocation_list(["SN1", "SN2", "SN3"], issued_at=3_000)
            forged.append(newer[:-1] + bytes((newer[-1] ^ 0x01,)))  # a flipped signature byte
            forged.append(newer[:44] + bytes((newer[44] ^ 0x01,)) + newer[45:])  # issued_at 3000 -> 3001
            for data in forged:
                with pytest.raises(CertificateError, match="does not verify") as caught:
                    store.save_revocation_list(data, TrustStore([ca.root]))
                assert caught.value.reason is CertificateReason.BAD_SIGNATURE, caught.value
            assert store.audit_head() == head, "a refused list was audited"
            assert _stored_lists(directory) == stored, "a refused list replaced the stored one"
            fresh = TrustStore([ca.root])
            assert store.load_revocation_lists(fresh) == 1
            held = fresh.revocation_list(ca.root.key_id)
            assert held is not None and (held.issued_at, held.serials) == (2_000, frozenset({"SN1", "SN2"}))
            assert store.save_revocation_list(newer, TrustStore([ca.root])) == 3_000  # the genuine newer one is taken


# --- a tampered policy ------------------------------------------------------------------------------------------


def _enacted(content: dict[str, object]) -> AppliedBundle:
    """A real bundle enacted by 5 nodes in 3 jurisdictions, as its application would be recorded."""
    bundle, registry, now = enacted_bundle(content)
    thresholds = apply_bundle(DEFAULT_THRESHOLDS, bundle, registry, now, enacted_digests=set())
    return AppliedBundle(bundle, registry, now, thresholds)


def _tamper_bundle(bundle_json: str) -> str:
    doc = json.loads(bundle_json)
    text = json.dumps(doc, sort_keys=True)
    assert "0.45" in text
    return bundle_json.replace("0.45", "0.5", 1)


@pytest.mark.parametrize(
    ("column", "tamper"),
    [
        ("thresholds", lambda t: t.replace('"bridge_max_std": 0.45', '"bridge_max_std": 0.5')),
        ("thresholds", lambda t: t.replace('"min_snr_db": ', '"min_snr_db": 1', 1)),
        ("bundle", _tamper_bundle),
        ("verified_at", lambda v: v + 40 * 86_400.0),  # after the proposal's 30-day validity
        ("registry", lambda r: r.replace('"SE"', '"DE"')),  # the signers' jurisdictions rewritten
    ],
)
def test_a_tampered_policy_refuses_to_start_the_shield(populated: Path, tmp_path: Path, column: str, tamper) -> None:
    directory = _copy(populated, tmp_path / "data")
    applied = _enacted({"bridge_max_std": 0.45})
    with SqliteStore(directory) as store:
        store.record_policy(applied)
        assert store.policy_in_force().thresholds.bridge_max_std == 0.45
        with open_shield(store) as shield:
            assert shield.policy.origin is not None
    before = _snapshot(directory)
    conn = sqlite3.connect(directory / DATABASE_FILE)
    (value,) = conn.execute(f"SELECT {column} FROM policy WHERE step = 0").fetchone()
    changed = tamper(value)
    assert changed != value
    with conn:
        conn.execute(f"UPDATE policy SET {column} = ? WHERE step = 0", (changed,))
    conn.close()
    with SqliteStore(directory) as store:
        with pytest.raises(PolicyVerificationError, match=r"(does not verify|differ|malformed)"):
            store.policy_in_force()
        with pytest.raises(PolicyVerificationError):
            open_shield(store)
        report = store.check()
        assert report.policy.startswith("policy does not verify") and not report.ok, report.policy
        assert report.integrity == "ok" and report.audit.ok
    after = _snapshot(directory)
    assert after == before, "refusing the policy changed something else"


# --- concurrency ---------------------------------------------------------------------------------------------------


def test_a_reader_during_writes_sees_consistent_snapshots(
    populated: Path, tmp_path: Path, popen: list[subprocess.Popen[str]]
) -> None:
    """A writer process grants (and revokes every other) while this process reads: in each read
    transaction, receipts == audit entries (each consent change is one receipt and one audit entry;
    the populated store holds 30 extra sensor_admitted entries), the chain verifies, integrity is ok,
    and every receipt a record names is stored."""
    directory = _copy(populated, tmp_path / "data")
    extra = 30  # sensor_admitted entries of the populated store
    writes = 120
    writer = subprocess.Popen(
        _child_argv("writer", str(directory), str(writes)), stdout=subprocess.PIPE, text=True, env=_env()
    )
    popen.append(writer)
    assert writer.stdout is not None
    assert json.loads(writer.stdout.readline()) == {"started": True}
    seen: set[int] = set()
    reads = 0
    with SqliteStore(directory) as reader:
        while writer.poll() is None or reads == 0:
            report = reader.check()
            assert report.integrity == "ok" and report.audit.ok, report
            counts = report.counts
            assert counts["receipts"] + extra == counts["audit_entries"], counts
            records = reader.consent_records()
            receipts = {r.receipt_id for r in reader.receipts()}  # a later snapshot: holds every earlier receipt
            named = {r.receipt_id for r in records} | {r.revocation_receipt_id for r in records if r.revoked_at}
            assert named <= receipts, "a consent record names a receipt that is not stored"
            seen.add(counts["receipts"])
            reads += 1
    assert writer.wait(timeout=CHILD_TIMEOUT_S) == 0
    assert json.loads(writer.stdout.readline()) == {"done": True}
    assert len(seen) >= 5, f"the reader saw only {sorted(seen)}: it did not read during the writes"
    final = _snapshot(directory)
    assert len(final["receipts"]) == 40 + writes + writes // 2
