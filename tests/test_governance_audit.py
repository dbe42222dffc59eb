"""Governance audit trail: hash chain, tamper detection in SQLite and JSONL, privacy rule, persistence.

Tampering is done the way an attacker with file access would: straight through ``sqlite3``
(dropping the append-only triggers first) or by editing the exported text file.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cortex_sal.clock import ManualClock
from cortex_sal.errors import CortexError
from cortex_sal.governance.audit import (
    EVENTS,
    GENESIS_HASH,
    AuditError,
    AuditHead,
    VerifyResult,
    truncated_hash,
)
from cortex_sal.store.audit import AuditTrail, verify_jsonl
from hypothesis_profiles import examples

N = 40
EVENT_CYCLE = sorted(EVENTS)
PROPOSAL = hashlib.sha256(b"proposal one").hexdigest()


# --- helpers ---------------------------------------------------------------------------


def independent_hash(index: int, timestamp: float, event: str, details: dict, prev_hash: str) -> str:
    """The documented canonical form, written out again here without the module's help."""
    obj = {"index": index, "timestamp": timestamp, "event": event, "details": details, "prev_hash": prev_hash}
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def fill(trail: AuditTrail, clock: ManualClock, n: int = N, tag: str = "a") -> None:
    for i in range(n):
        clock.advance(1.25)
        trail.append(
            EVENT_CYCLE[i % len(EVENT_CYCLE)],
            node_hash=truncated_hash(f"node-{tag}-{i % 9}"),
            proposal_hash=PROPOSAL,
            seq=i,
            weight=i / 7,
            valid=i % 2 == 0,
            reason=f"step {i} of {tag}",
        )


@contextlib.contextmanager
def raw_db(path: Path) -> Iterator[sqlite3.Connection]:
    """A direct connection with the append-only triggers dropped (what an attacker would do)."""
    with contextlib.closing(sqlite3.connect(str(path))) as conn:
        for name in ("audit_entries_no_update", "audit_entries_no_delete", "audit_head_no_shrink"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name}")
        yield conn
        conn.commit()


def row_values(conn: sqlite3.Connection, seq: int) -> tuple:
    return conn.execute(
        "SELECT idx, timestamp, event, details, prev_hash, entry_hash FROM audit_entries WHERE seq = ?", (seq,)
    ).fetchone()


def set_row(conn: sqlite3.Connection, seq: int, values: tuple) -> None:
    conn.execute(
        "UPDATE audit_entries SET idx=?, timestamp=?, event=?, details=?, prev_hash=?, entry_hash=? WHERE seq=?",
        (*values, seq),
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"


@pytest.fixture
def built(db: Path, clock: ManualClock) -> tuple[Path, AuditHead]:
    """A closed trail of N entries and the head retained when it was built."""
    with AuditTrail(db, clock=clock) as trail:
        fill(trail, clock)
        head = trail.head()
        assert trail.verify() == VerifyResult(True, None, None)
    return db, head


def verify_file(path: Path, expected_head: tuple[int, str] | None = None) -> VerifyResult:
    with AuditTrail(path) as trail:
        return trail.verify(expected_head=expected_head)


def assert_bad(result: VerifyResult, index: int, word: str | None = None) -> None:
    assert not result.ok
    assert result.first_bad_index == index, result
    assert result.reason
    if word is not None:
        assert word in result.reason, result.reason


# --- building and the hash chain ------------------------------------------------------------


def test_empty_trail_verifies_with_genesis_head(db: Path) -> None:
    with AuditTrail(db) as trail:
        assert trail.head() == (0, GENESIS_HASH)
        assert list(trail.entries()) == []
        assert trail.verify() == VerifyResult(True, None, None)
        assert trail.verify(expected_head=(0, GENESIS_HASH)).ok
        assert len(trail) == 0


def test_built_trail_verifies_and_head_names_last_entry(built: tuple[Path, AuditHead]) -> None:
    db, head = built
    with AuditTrail(db) as trail:
        entries = list(trail.entries())
        assert len(entries) == N == head.count
        assert [e.index for e in entries] == list(range(N))
        assert head.last_hash == entries[-1].entry_hash
        assert entries[0].prev_hash == GENESIS_HASH
        for a, b in itertools.pairwise(entries):
            assert b.prev_hash == a.entry_hash
        assert trail.verify(expected_head=head).ok


def test_entry_hash_matches_independent_computation(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    prev = GENESIS_HASH
    with AuditTrail(db) as trail:
        for e in trail.entries():
            assert e.prev_hash == prev
            assert e.entry_hash == independent_hash(e.index, e.timestamp, e.event, dict(e.details), prev)
            assert hashlib.sha256(e.canonical_bytes()).hexdigest() == e.entry_hash
            prev = e.entry_hash


def test_canonical_bytes_are_exactly_the_documented_form(db: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    with AuditTrail(db, clock=clock) as trail:
        e = trail.append("proposal_submitted", zeta="z", alpha=1, mid=0.1, tiny=1e-07, flag=True, one=1.0)
    expected = (
        '{"details":{"alpha":1,"flag":true,"mid":0.1,"one":1.0,"tiny":1e-07,"zeta":"z"},'
        '"event":"proposal_submitted","index":0,"prev_hash":"' + "0" * 64 + '","timestamp":1800000000.0}'
    ).encode("ascii")
    assert e.canonical_bytes() == expected
    assert e.entry_hash == hashlib.sha256(expected).hexdigest()


def test_int_and_float_details_hash_differently(tmp_path: Path) -> None:
    hashes = []
    for name, value in (("a", 1), ("b", 1.0)):
        with AuditTrail(tmp_path / f"{name}.sqlite", clock=ManualClock()) as trail:
            e = trail.append("policy_applied", version=value)
            hashes.append(e.entry_hash)
            assert type(next(trail.entries()).details["version"]) is type(value)
    assert hashes[0] != hashes[1]


def test_non_ascii_detail_is_escaped_in_the_encoding(db: Path) -> None:
    with AuditTrail(db, clock=ManualClock()) as trail:
        e = trail.append("proposal_refused", reason="quorum non atteinte: élu")
        assert b"\\u00e9" in e.canonical_bytes()
        assert e.entry_hash == independent_hash(
            0, e.timestamp, e.event, {"reason": "quorum non atteinte: élu"}, e.prev_hash
        )
        assert trail.verify().ok


def test_details_of_an_entry_are_read_only(db: Path) -> None:
    with AuditTrail(db, clock=ManualClock()) as trail:
        e = trail.append("node_registered", jurisdiction="FR")
        with pytest.raises(TypeError):
            e.details["jurisdiction"] = "DE"  # type: ignore[index]
        assert next(trail.entries()) == e


def test_timestamps_come_from_the_injected_clock(db: Path) -> None:
    clock = ManualClock(1_900_000_000.5)
    with AuditTrail(db, clock=clock) as trail:
        a = trail.append("node_registered", jurisdiction="DE")
        clock.advance(30.0)
        b = trail.append("node_deactivated", jurisdiction="DE")
    assert (a.timestamp, b.timestamp) == (1_900_000_000.5, 1_900_000_030.5)


# --- tampering with the SQLite file -----------------------------------------------------------


def test_triggers_refuse_plain_update_and_delete(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with contextlib.closing(sqlite3.connect(str(db))) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_entries SET event = 'policy_applied' WHERE seq = 3")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_entries WHERE seq = 3")
        with pytest.raises(sqlite3.DatabaseError, match="never shrinks"):
            conn.execute("UPDATE audit_head SET count = 1")
    assert verify_file(db).ok


def test_edited_details_value_is_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        details = json.loads(row_values(conn, 17)[3])
        details["valid"] = not details["valid"]
        conn.execute("UPDATE audit_entries SET details = ? WHERE seq = 17", (json.dumps(details),))
    assert_bad(verify_file(db), 17, "edited")


def test_edited_details_with_rehashed_entry_breaks_the_next_link(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        idx, ts, ev, details_text, prev, _ = row_values(conn, 17)
        details = json.loads(details_text)
        details["reason"] = "nothing happened"
        new_hash = independent_hash(idx, ts, ev, details, prev)
        set_row(conn, 17, (idx, ts, ev, json.dumps(details), prev, new_hash))
    assert_bad(verify_file(db), 18, "prev_hash")


def test_edited_timestamp_is_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("UPDATE audit_entries SET timestamp = timestamp - 3600 WHERE seq = 9")
    assert_bad(verify_file(db), 9, "edited")


def test_edited_event_is_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        ev = row_values(conn, 4)[2]
        other = next(e for e in EVENT_CYCLE if e != ev)
        conn.execute("UPDATE audit_entries SET event = ? WHERE seq = 4", (other,))
    assert_bad(verify_file(db), 4, "edited")


def test_unknown_event_written_into_the_file_is_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("UPDATE audit_entries SET event = 'threshold_lowered' WHERE seq = 6")
    assert_bad(verify_file(db), 6, "unknown audit event")


def test_forbidden_detail_written_into_the_file_is_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("UPDATE audit_entries SET details = ? WHERE seq = 8", (json.dumps({"sensor_id": "S-1"}),))
    assert_bad(verify_file(db), 8, "raw identifier")


def test_garbage_details_json_is_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("UPDATE audit_entries SET details = '{\"a\": NaN}' WHERE seq = 2")
    assert_bad(verify_file(db), 2, "JSON")


def test_deleted_middle_row_is_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq = 20")
    assert_bad(verify_file(db), 20, "removed")


def test_deleted_middle_row_with_renumbered_indexes_is_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq = 20")
        conn.execute("UPDATE audit_entries SET idx = idx - 1 WHERE seq > 20")
    # index 20 now holds the old entry 21: its hash no longer matches its (renumbered) contents
    assert_bad(verify_file(db), 20)


def test_swapped_rows_are_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        a, b = row_values(conn, 11), row_values(conn, 12)
        set_row(conn, 11, b)
        set_row(conn, 12, a)
    assert_bad(verify_file(db), 11, "reordered")


def test_swapped_contents_keeping_indexes_are_found(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        a, b = row_values(conn, 11), row_values(conn, 12)
        set_row(conn, 11, (11, *b[1:]))
        set_row(conn, 12, (12, *a[1:]))
    assert_bad(verify_file(db), 11)


def test_truncation_is_found_against_the_recorded_head(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq >= 35")
    assert_bad(verify_file(db), 35, "truncated")


def test_truncation_with_rewritten_head_needs_the_retained_head(built: tuple[Path, AuditHead]) -> None:
    db, retained = built
    with raw_db(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq >= 35")
        last = row_values(conn, 34)[5]
        conn.execute("UPDATE audit_head SET count = 35, last_hash = ?", (last,))
    # the file is internally consistent: only a head kept elsewhere reveals the cut
    assert verify_file(db).ok
    assert_bad(verify_file(db, expected_head=retained), 35, "truncated")


def test_retained_head_from_earlier_accepts_a_log_that_grew(built: tuple[Path, AuditHead], clock: ManualClock) -> None:
    db, retained = built
    with AuditTrail(db, clock=clock) as trail:
        fill(trail, clock, n=5, tag="later")
        assert trail.head().count == N + 5
        assert trail.verify(expected_head=retained).ok
        assert trail.verify(expected_head=(10, list(trail.entries())[9].entry_hash)).ok


def test_full_rewrite_from_an_index_is_found_only_by_the_retained_head(built: tuple[Path, AuditHead]) -> None:
    db, retained = built
    with raw_db(db) as conn:
        prev = row_values(conn, 29)[5]
        for seq in range(30, N):
            idx, ts, ev, details_text, _, _ = row_values(conn, seq)
            details = json.loads(details_text)
            details["reason"] = "rewritten"
            h = independent_hash(idx, ts, ev, details, prev)
            set_row(conn, seq, (idx, ts, ev, json.dumps(details), prev, h))
            prev = h
        conn.execute("UPDATE audit_head SET last_hash = ?", (prev,))
    assert verify_file(db).ok
    assert_bad(verify_file(db, expected_head=retained), N - 1, "retained head")


def test_entry_spliced_from_another_log_is_found(tmp_path: Path, built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    other_clock = ManualClock(1_700_000_000.0)
    other = tmp_path / "other.sqlite"
    with AuditTrail(other, clock=other_clock) as t2:
        fill(t2, other_clock, tag="b")
        assert t2.verify().ok
    with contextlib.closing(sqlite3.connect(str(other))) as conn2:
        foreign = row_values(conn2, 25)
    assert foreign[0] == 25  # the right index, and a self-consistent hash: only the chain can tell
    assert foreign[5] == independent_hash(foreign[0], foreign[1], foreign[2], json.loads(foreign[3]), foreign[4])
    with raw_db(db) as conn:
        set_row(conn, 25, foreign)
    assert_bad(verify_file(db), 25, "spliced")


def test_entry_spliced_onto_the_tail_is_found(tmp_path: Path, built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    other_clock = ManualClock(1_700_000_000.0)
    other = tmp_path / "other.sqlite"
    with AuditTrail(other, clock=other_clock) as t2:
        fill(t2, other_clock, n=N + 1, tag="b")
    with contextlib.closing(sqlite3.connect(str(other))) as conn2:
        foreign = row_values(conn2, N)
    with raw_db(db) as conn:
        conn.execute(
            "INSERT INTO audit_entries (seq, idx, timestamp, event, details, prev_hash, entry_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (N, *foreign),
        )
        conn.execute("UPDATE audit_head SET count = ?, last_hash = ?", (N + 1, foreign[5]))
    assert_bad(verify_file(db), N, "spliced")


def test_row_inserted_without_head_update_is_found(built: tuple[Path, AuditHead]) -> None:
    db, head = built
    with raw_db(db) as conn:
        ts = row_values(conn, N - 1)[1] + 1.0
        details = {"reason": "forged"}
        h = independent_hash(N, ts, "proposal_enacted", details, head.last_hash)
        conn.execute(
            "INSERT INTO audit_entries (seq, idx, timestamp, event, details, prev_hash, entry_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (N, N, ts, "proposal_enacted", json.dumps(details), head.last_hash, h),
        )
    assert_bad(verify_file(db), N, "outside the trail")


def test_first_bad_index_is_the_earliest_of_several(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq = 30")
        conn.execute("UPDATE audit_entries SET timestamp = timestamp + 1 WHERE seq = 12")
        conn.execute("DELETE FROM audit_entries WHERE seq >= 38")
    assert_bad(verify_file(db), 12)


def test_append_refuses_when_the_head_disagrees_with_the_entries(built: tuple[Path, AuditHead]) -> None:
    db, head = built
    with raw_db(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq >= 35")
    with AuditTrail(db) as trail, pytest.raises(AuditError, match="head disagrees"):
        trail.append("policy_applied", version=2)
    with raw_db(db) as conn:
        assert conn.execute("SELECT count(*) FROM audit_entries").fetchone()[0] == 35
        assert conn.execute("SELECT count, last_hash FROM audit_head").fetchone() == tuple(head)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(min_value=1, max_value=15), data=st.data())
def test_any_single_edit_is_found_at_its_index(n: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(min_value=0, max_value=n - 1))
    with tempfile.TemporaryDirectory() as d:
        db = Path(d) / "t.sqlite"
        clock = ManualClock()
        with AuditTrail(db, clock=clock) as trail:
            fill(trail, clock, n=n)
        with raw_db(db) as conn:
            conn.execute("UPDATE audit_entries SET details = ? WHERE seq = ?", (json.dumps({"seq": -1}), k))
        assert_bad(verify_file(db), k, "edited")


# --- JSONL export ------------------------------------------------------------------------------


@pytest.fixture
def exported(built: tuple[Path, AuditHead], tmp_path: Path) -> tuple[Path, AuditHead, list[str]]:
    db, head = built
    out = tmp_path / "audit.jsonl"
    with AuditTrail(db) as trail:
        assert trail.export_jsonl(out) == head
    return out, head, out.read_text(encoding="ascii").splitlines()


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="ascii")


def test_export_is_one_canonical_line_per_entry(exported: tuple[Path, AuditHead, list[str]], built) -> None:
    out, head, lines = exported
    assert len(lines) == N
    with AuditTrail(built[0]) as trail:
        entries = list(trail.entries())
    for line, e in zip(lines, entries, strict=True):
        record = json.loads(line)
        assert line == json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert record == e.to_record()
        assert set(record) == {"index", "timestamp", "event", "details", "prev_hash", "entry_hash"}
    assert verify_jsonl(out) == VerifyResult(True, None, None)
    assert verify_jsonl(out, expected_head=head).ok
    assert AuditTrail.verify_jsonl(out, head).ok


def test_export_of_empty_trail(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty.jsonl"
    with AuditTrail(db) as trail:
        assert trail.export_jsonl(out) == (0, GENESIS_HASH)
    assert out.read_bytes() == b""
    assert verify_jsonl(out, expected_head=(0, GENESIS_HASH)).ok


def edit_line(lines: list[str], i: int, **changes: object) -> None:
    record = json.loads(lines[i])
    for key, value in changes.items():
        if key.startswith("d_"):
            record["details"][key[2:]] = value
        else:
            record[key] = value
    lines[i] = json.dumps(record, sort_keys=True, separators=(",", ":"))


def test_jsonl_edited_detail_is_found(exported) -> None:
    out, _, lines = exported
    edit_line(lines, 17, d_seq=999)
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 17, "edited")


def test_jsonl_edited_timestamp_is_found(exported) -> None:
    out, _, lines = exported
    edit_line(lines, 9, timestamp=json.loads(lines[9])["timestamp"] - 60.0)
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 9, "edited")


def test_jsonl_timestamp_written_as_int_is_refused(exported) -> None:
    out, _, lines = exported
    edit_line(lines, 3, timestamp=int(json.loads(lines[3])["timestamp"]))
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 3, "timestamp")


def test_jsonl_deleted_line_is_found(exported) -> None:
    out, _, lines = exported
    del lines[20]
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 20, "removed")


def test_jsonl_swapped_lines_are_found(exported) -> None:
    out, _, lines = exported
    lines[11], lines[12] = lines[12], lines[11]
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 11, "reordered")


def test_jsonl_truncation_is_found_only_with_the_retained_head(exported) -> None:
    out, head, lines = exported
    write_lines(out, lines[:35])
    assert verify_jsonl(out).ok  # an export carries no head of its own
    assert_bad(verify_jsonl(out, expected_head=head), 35, "truncated")


def test_jsonl_cut_mid_line_is_found(exported) -> None:
    out, _, lines = exported
    text = "".join(line + "\n" for line in lines)
    out.write_text(text[: len(text) - 40], encoding="ascii")
    assert_bad(verify_jsonl(out), N - 1, "JSON")


def test_jsonl_line_spliced_from_another_export_is_found(exported, tmp_path: Path) -> None:
    out, _, lines = exported
    other_clock = ManualClock(1_700_000_000.0)
    with AuditTrail(tmp_path / "other.sqlite", clock=other_clock) as t2:
        fill(t2, other_clock, tag="b")
        t2.export_jsonl(tmp_path / "other.jsonl")
    foreign = (tmp_path / "other.jsonl").read_text(encoding="ascii").splitlines()
    lines[25] = foreign[25]
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 25, "spliced")


@pytest.mark.parametrize(
    ("bad_line", "word"),
    [
        ("not json", "JSON"),
        ("[]", "not a JSON object"),
        ('{"index":5}', "fields"),
        ("", "JSON"),
    ],
)
def test_jsonl_malformed_line_is_found(exported, bad_line: str, word: str) -> None:
    out, _, lines = exported
    lines[5] = bad_line
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 5, word)


def test_jsonl_duplicate_key_is_refused(exported) -> None:
    out, _, lines = exported
    lines[7] = lines[7][:-1] + ',"index":7}'
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 7, "duplicate")


def test_jsonl_bool_index_is_refused(exported) -> None:
    out, _, lines = exported
    edit_line(lines, 1, index=True)
    write_lines(out, lines)
    assert_bad(verify_jsonl(out), 1, "index")


def test_export_refuses_a_tampered_trail(built: tuple[Path, AuditHead], tmp_path: Path) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("DELETE FROM audit_entries WHERE seq = 3")
    with AuditTrail(db) as trail, pytest.raises(AuditError, match="fails verification at 3"):
        trail.export_jsonl(tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()


def test_verify_jsonl_missing_file_and_bad_expected_head(tmp_path: Path, exported) -> None:
    out, head, _ = exported
    with pytest.raises(AuditError, match="cannot read"):
        verify_jsonl(tmp_path / "nope.jsonl")
    for bad in [
        (1,),
        ("40", head.last_hash),
        (-1, head.last_hash),
        (N, "xyz"),
        (0, head.last_hash),
        7,
        (True, head.last_hash),
    ]:
        with pytest.raises(AuditError, match="expected_head"):
            verify_jsonl(out, expected_head=bad)  # type: ignore[arg-type]


# --- what details may hold -------------------------------------------------------------------------


def test_truncated_hash_is_sha256_prefix() -> None:
    assert truncated_hash("sensor-42") == hashlib.sha256(b"sensor-42").hexdigest()[:16]
    assert len(truncated_hash("")) == 16
    with pytest.raises(AuditError):
        truncated_hash(b"sensor-42")  # type: ignore[arg-type]


def test_accepted_details(db: Path) -> None:
    with AuditTrail(db, clock=ManualClock()) as trail:
        e = trail.append(
            "signature_added",
            node_hash=truncated_hash("node-1"),
            proposal_hash=PROPOSAL,
            jurisdiction="EU",
            count=5,
            ratio=0.5,
            ok=True,
            note="x" * 64,
        )
        assert e.details["note"] == "x" * 64
        assert trail.verify().ok


@pytest.mark.parametrize(
    "details",
    [
        {"sensor_id": "a1b2"},
        {"node_id": truncated_hash("n")},
        {"id": "7"},
        {"raw": "x"},
        {"raw_value": 1.0},
        {"samples": 3},
        {"features": "alpha"},
        {"feature_alpha": 0.3},
        {"coherency": 0.8},
        {"max_coherency": 0.8},
        {"eeg_signal": 1},
        {"biometric": "x"},
        {"note": "y" * 65},
        {"subject": "123e4567-e89b-12d3-a456-426614174000"},
        {"note": "key " + "ab" * 16},
        {"node_hash": "sensor-42"},
        {"node_hash": truncated_hash("n").upper()},
        {"node_hash": truncated_hash("n")[:15]},
        {"node_hash": 12},
        {"values": [1, 2]},
        {"meta": {"a": 1}},
        {"blob": b"abc"},
        {"nothing": None},
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": 2**63},
        {f"k{i}": i for i in range(33)},
    ],
    ids=lambda d: ",".join(d)[:30],
)
def test_forbidden_details_are_refused_and_leave_the_trail_unchanged(db: Path, details: dict) -> None:
    with AuditTrail(db, clock=ManualClock()) as trail:
        trail.append("node_registered", jurisdiction="FR")
        before = trail.head()
        with pytest.raises(AuditError) as info:
            trail.append("signature_invalid", **details)
        assert isinstance(info.value, CortexError)
        assert str(info.value)
        assert trail.head() == before
        assert trail.verify().ok


@pytest.mark.parametrize("event", ["threshold_lowered", "", "Proposal_Submitted", 5])
def test_unknown_events_are_refused(db: Path, event: object) -> None:
    with AuditTrail(db, clock=ManualClock()) as trail:
        with pytest.raises(AuditError, match="unknown audit event"):
            trail.append(event)  # type: ignore[arg-type]
        assert trail.head() == (0, GENESIS_HASH)


def test_raw_identifier_never_reaches_the_file(db: Path) -> None:
    raw = "SENSOR-SERIAL-0042-XYZ"
    with AuditTrail(db, clock=ManualClock()) as trail:
        trail.append("node_registered", sensor_hash=truncated_hash(raw))
        with pytest.raises(AuditError):
            trail.append("node_registered", sensor_id=raw)
    assert raw.encode() not in db.read_bytes()
    assert truncated_hash(raw).encode() in db.read_bytes()


def test_every_event_is_accepted(db: Path) -> None:
    with AuditTrail(db, clock=ManualClock()) as trail:
        for event in sorted(EVENTS):
            trail.append(event)
        assert [e.event for e in trail.entries()] == sorted(EVENTS)
        assert trail.verify().ok


def test_a_bad_clock_is_refused(db: Path) -> None:
    class NanClock(ManualClock):
        def time(self) -> float:
            return float("nan")

    with AuditTrail(db, clock=NanClock()) as trail, pytest.raises(AuditError, match="non-finite"):
        trail.append("policy_applied")


# --- persistence and lifecycle -------------------------------------------------------------------------


def test_persistence_across_reopen(built: tuple[Path, AuditHead], clock: ManualClock) -> None:
    db, head = built
    with AuditTrail(db, clock=clock) as trail:
        before = list(trail.entries())
        assert trail.head() == head
    with AuditTrail(db, clock=clock) as trail:
        assert list(trail.entries()) == before
        clock.advance(5.0)
        e = trail.append("policy_applied", version=2)
        assert e.index == N
        assert e.prev_hash == head.last_hash
        assert trail.verify(expected_head=head).ok
    with AuditTrail(db, clock=clock) as trail:
        assert trail.head() == (N + 1, e.entry_hash)
        assert list(trail.entries())[-1] == e


def test_two_handles_on_one_file_keep_one_chain(db: Path) -> None:
    clock = ManualClock()
    with AuditTrail(db, clock=clock) as a, AuditTrail(db, clock=clock) as b:
        for i in range(10):
            (a if i % 2 else b).append("signature_added", seq=i)
        assert a.verify().ok
        assert [e.details["seq"] for e in b.entries()] == list(range(10))


def test_concurrent_appends_from_threads(db: Path) -> None:
    with AuditTrail(db, clock=ManualClock()) as trail:

        def work(t: int) -> None:
            for i in range(25):
                trail.append("signature_added", thread=t, seq=i)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert trail.head().count == 100
        assert trail.verify().ok


def test_closed_trail_refuses_use(db: Path) -> None:
    trail = AuditTrail(db)
    trail.close()
    trail.close()  # idempotent
    with pytest.raises(AuditError, match="closed"):
        trail.append("policy_applied")
    with pytest.raises(AuditError, match="closed"):
        trail.verify()


def test_opening_a_non_audit_file_fails(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database at all" * 10)
    with pytest.raises(AuditError):
        AuditTrail(junk)
    other = tmp_path / "other.sqlite"
    with contextlib.closing(sqlite3.connect(str(other))) as conn:
        conn.execute("CREATE TABLE audit_head (id INTEGER PRIMARY KEY, format TEXT, count INTEGER, last_hash TEXT)")
        conn.execute("INSERT INTO audit_head VALUES (0, 'something-else', 0, '')")
        conn.commit()
    with pytest.raises(AuditError, match="not a"):
        AuditTrail(other)


def test_entries_raises_on_a_malformed_row(built: tuple[Path, AuditHead]) -> None:
    db, _ = built
    with raw_db(db) as conn:
        conn.execute("UPDATE audit_entries SET details = 'oops' WHERE seq = 2")
    with AuditTrail(db) as trail, pytest.raises(AuditError, match="entry 2"):
        list(trail.entries())
