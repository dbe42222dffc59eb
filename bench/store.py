"""Store cost benchmark: the embedded store's durable writes and start-up, measured side by side.

Two ratios against a reference measured in the same run, and one printed start-up figure (no
absolute time is ever asserted; the script exits 0 unless it fails itself):

1. Consent grant + revoke round trip, durable: ``ledger.grant`` + ``ledger.revoke`` of a ledger
   from ``durable_ledger(store, ...)`` (each change one transaction: the consent row, the signed
   receipt, the audit entry) vs the same two ``INSERT``s of the consent row done with bare
   ``sqlite3`` on a database of the same schema, at the same durability settings (WAL,
   ``synchronous=FULL``, one ``BEGIN IMMEDIATE ... COMMIT`` each).            target <= 1.5x
2. Audit append: ``store.audit(...)`` vs a bare ``sqlite3`` insert of the same row (same event,
   details text and hash columns) at the same settings, one transaction each.  target <= 1.5x
3. Shield start-up from a store holding 10,000 consent records and 100,000 audit entries:
   ``SqliteStore(dir)`` + ``open_shield(store)``, warm page cache.           printed, < 1 s

Both databases of 1 and 2 live in one temporary directory (the filesystem of /tmp), so both
sides pay the same fsync. The store for 3 is populated through the store's own code paths (the
consent journal the ledger writes through, ``store.audit``) with ``synchronous=OFF`` for the
population only; its audit chain is verified before the start-up is timed.

Info rows say where a difference comes from: this thread's CPU per operation (fsync waits
excluded) and the WAL pages each operation writes (what its fsync must flush), and a probe of
this filesystem's write + fsync of 1 and 8 pages, before and after the timed rows (a virtual
disk's fsync can switch between ~0.2 ms and ~4 ms during a run: read the ratios across runs).

Usage:  .venv/bin/python bench/store.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _timing import Timing, ratio_text, verdict

ROUND_TRIP_TARGET = 1.5
AUDIT_TARGET = 1.5
STARTUP_TARGET_S = 1.0
STARTUP_RECORDS = 10_000
STARTUP_AUDIT = 100_000

APP = "bench-app"
PURPOSE = "focus feedback"
REASON = "withdrawn"
TTL_S = 3600.0
SUBJECTS = 256  # the round trips cycle over these pseudonymous subjects (16 hex each)


def _clock_pair(ours: Any, ref: Any, rounds: int, number: int) -> tuple[Timing, Timing]:
    """Run ``ours(n)`` / ``ref(n)`` ``rounds`` times each, alternating which goes first.

    Returns the wall-clock timing (what a caller waits: the ratio judged) and this thread's CPU
    timing (the work done in the process, fsync waits excluded: where the difference comes from),
    both per operation in microseconds.
    """

    def timed(fn: Any, n: int) -> tuple[float, float]:
        w0, c0 = time.perf_counter(), time.thread_time()
        fn(n)
        c1, w1 = time.thread_time(), time.perf_counter()
        return (w1 - w0) / n * 1e6, (c1 - c0) / n * 1e6

    timed(ours, max(1, number // 10))  # warm up: statement caches, the WAL's first frames
    timed(ref, max(1, number // 10))
    wall: dict[str, list[float]] = {"ours": [], "ref": []}
    cpu: dict[str, list[float]] = {"ours": [], "ref": []}
    for i in range(rounds):
        order = (("ours", ours), ("ref", ref)) if i % 2 == 0 else (("ref", ref), ("ours", ours))
        for side, fn in order:
            w, c = timed(fn, number)
            wall[side].append(w)
            cpu[side].append(c)
    return Timing(wall["ours"], wall["ref"]), Timing(cpu["ours"], cpu["ref"])


def _bare_connection(directory: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection to a database of the store's schema, at the store's durability settings."""
    from cortex_sal.store.sqlite import DATABASE_FILE, SqliteStore

    SqliteStore(directory).close()  # creates the schema (tables, indexes, triggers) and nothing else
    conn = sqlite3.connect(str(directory / DATABASE_FILE), isolation_level=None)
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    conn.execute("PRAGMA synchronous = FULL")
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    if str(mode).lower() != "wal" or sync != 2:
        raise RuntimeError(f"the reference database is not WAL + synchronous=FULL ({mode!r}, {sync!r})")
    return conn


def _check_store_settings(store: Any) -> None:
    mode = store._db().execute("PRAGMA journal_mode").fetchone()[0]
    sync = store._db().execute("PRAGMA synchronous").fetchone()[0]
    if str(mode).lower() != "wal" or sync != 2:
        raise RuntimeError(f"the store is not WAL + synchronous=FULL ({mode!r}, {sync!r}): not a like-for-like run")


def _wal_pages(side: Any, conn: sqlite3.Connection, wal: Path, n: int) -> float:
    """Database pages ``side(n)`` appends to the WAL, per operation (what each fsync has to write)."""
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        side(n)
        frames = max(0, wal.stat().st_size - 32) / (24 + page)  # WAL header, then (frame header + page) each
    finally:
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
    return frames / n


@dataclass
class Figure:
    wall: Timing  # what a caller waits per operation: the ratio judged
    cpu: Timing  # this thread's CPU per operation (fsync waits excluded)
    pages: tuple[float, float]  # WAL pages written per operation: ours, reference


# --------------------------------------------------------------------------- 1. round trip

_CONSENT_INSERT = (
    "INSERT OR REPLACE INTO consent (subject, app, scopes, purpose, granted_at, expires_at, capacity, revoked_at,"
    " revocation_reason, receipt_id, revocation_receipt_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)


def bench_round_trip(root: Path, rounds: int, number: int) -> tuple[Figure, dict[str, int]]:
    from cortex_sal.governance import DEFAULT_THRESHOLDS
    from cortex_sal.store.runtime import durable_ledger
    from cortex_sal.store.sqlite import SqliteStore

    store = SqliteStore(root / "ours-consent", exclusive=True)
    _check_store_settings(store)
    ledger = durable_ledger(store, DEFAULT_THRESHOLDS)
    bare = _bare_connection(root / "bare-consent")
    subjects = [f"{i:016x}" for i in range(SUBJECTS)]
    turn = {"ours": 0, "bare": 0}

    def ours(n: int) -> None:
        k = turn["ours"]
        for i in range(n):
            subject = subjects[(k + i) % SUBJECTS]
            ledger.grant(subject, ("biometric",), TTL_S, app=APP, purpose=PURPOSE)
            ledger.revoke(subject, REASON, app=APP)
        turn["ours"] = k + n

    def ref(n: int) -> None:
        k = turn["bare"]
        for i in range(n):
            subject = subjects[(k + i) % SUBJECTS]
            now = time.time()
            receipt = str(uuid.uuid4())
            bare.execute("BEGIN IMMEDIATE")  # the grant
            bare.execute(
                _CONSENT_INSERT,
                (subject, APP, "biometric", PURPOSE, now, now + TTL_S, "FULL", None, None, receipt, None),
            )
            bare.execute("COMMIT")
            revoked = time.time()
            bare.execute("BEGIN IMMEDIATE")  # the revocation
            bare.execute(
                _CONSENT_INSERT,
                (subject, APP, "biometric", PURPOSE, now, now + TTL_S, "FULL", revoked, REASON, receipt,
                 str(uuid.uuid4())),
            )  # fmt: skip
            bare.execute("COMMIT")
        turn["bare"] = k + n

    try:
        wall, cpu = _clock_pair(ours, ref, rounds, number)
        pages = (
            _wal_pages(ours, store._db(), store.path.with_name(store.path.name + "-wal"), 20),
            _wal_pages(ref, bare, root / "bare-consent" / "cortex-sal.db-wal", 20),
        )
        counts = store.check().counts
        if not store.verify_audit().ok:
            raise RuntimeError("the store's audit chain does not verify after the round trips")
        bare_rows = bare.execute("SELECT COUNT(*) FROM consent WHERE revoked_at IS NOT NULL").fetchone()[0]
        if bare_rows != min(SUBJECTS, turn["bare"]):
            raise RuntimeError(f"the reference wrote {bare_rows} revoked rows, expected {min(SUBJECTS, turn['bare'])}")
        return Figure(wall, cpu, pages), {"receipts": counts["receipts"], "audit_entries": counts["audit_entries"]}
    finally:
        bare.close()
        store.close()


# --------------------------------------------------------------------------- 2. audit append

AUDIT_EVENT = "sensor_admitted"
AUDIT_DETAILS = {"subject_hash": "0123456789abcdef", "model_hash": "fedcba9876543210", "snr_db": 35.0, "bits": 16}


def bench_audit(root: Path, rounds: int, number: int) -> Figure:
    from cortex_sal.governance.audit import dumps_details
    from cortex_sal.store.sqlite import SqliteStore

    store = SqliteStore(root / "ours-audit", exclusive=True)
    _check_store_settings(store)
    bare = _bare_connection(root / "bare-audit")
    entry = store.audit(AUDIT_EVENT, **AUDIT_DETAILS)  # the row the reference inserts, column for column
    details_text = dumps_details(entry.details)
    seq = {"next": 1}

    def ours(n: int) -> None:
        for _ in range(n):
            store.audit(AUDIT_EVENT, **AUDIT_DETAILS)

    def ref(n: int) -> None:
        k = seq["next"]
        for i in range(k, k + n):
            bare.execute("BEGIN IMMEDIATE")
            bare.execute(
                "INSERT INTO audit_entries (seq, idx, timestamp, event, details, prev_hash, entry_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (i, i, time.time(), AUDIT_EVENT, details_text, entry.prev_hash, entry.entry_hash),
            )
            bare.execute("COMMIT")
        seq["next"] = k + n

    try:
        wall, cpu = _clock_pair(ours, ref, rounds, number)
        pages = (
            _wal_pages(ours, store._db(), store.path.with_name(store.path.name + "-wal"), 40),
            _wal_pages(ref, bare, root / "bare-audit" / "cortex-sal.db-wal", 40),
        )
        if not store.verify_audit().ok:
            raise RuntimeError("the store's audit chain does not verify after the appends")
        return Figure(wall, cpu, pages)
    finally:
        bare.close()
        store.close()


# --------------------------------------------------------------------------- the device


def fsync_probe(root: Path, repeats: int = 15) -> tuple[float, float]:
    """Median microseconds of appending 1 page and 8 pages (4 KiB each) to a file and fsync-ing it."""
    path = root / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        out = []
        for pages in (1, 8):
            block = os.urandom(4096 * pages)
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                os.write(fd, block)
                os.fsync(fd)
                samples.append((time.perf_counter() - t0) * 1e6)
            out.append(statistics.median(samples))
    finally:
        os.close(fd)
        path.unlink()
    return out[0], out[1]


# --------------------------------------------------------------------------- 3. start-up


def populate(directory: Path, records: int, audit_entries: int) -> dict[str, Any]:
    """A store of ``records`` consent records (each with its signed grant receipt and audit entry)
    and ``audit_entries`` audit entries in all, written by the store's own code."""
    from cortex_sal.sal.consent import ConsentRecord
    from cortex_sal.store.sqlite import SqliteStore

    t0 = time.perf_counter()
    store = SqliteStore(directory, exclusive=True)
    try:
        store._db().execute("PRAGMA synchronous = OFF")  # population only: the store reopens at FULL
        journal = store.consent_journal()
        now = time.time()
        chunk = 1000
        for start in range(0, records, chunk):
            batch = [
                ConsentRecord(
                    sensor_key=f"{i:016x}",
                    scopes=("biometric",) if i % 3 else ("biometric", "acolyte"),
                    granted_at=now,
                    expires_at=now + 30 * 86400.0,
                    app=APP,
                    purpose=PURPOSE,
                    receipt_id=str(uuid.uuid4()),
                )
                for i in range(start, min(records, start + chunk))
            ]
            journal.write("grant", batch)  # one transaction: rows, signed receipts, audit entries
        for i in range(audit_entries - store.audit_head().count):
            store.audit(AUDIT_EVENT, subject_hash=f"{i % records:016x}", model_hash="fedcba9876543210", bits=16)
        store._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        populated = time.perf_counter() - t0
        t1 = time.perf_counter()
        audit_ok = store.verify_audit()
        verified = time.perf_counter() - t1
        counts = store.check().counts
    finally:
        store.close()
    if not audit_ok.ok:
        raise RuntimeError(f"the populated store's audit chain does not verify: {audit_ok}")
    if counts["consent"] != records or counts["audit_entries"] != audit_entries:
        raise RuntimeError(f"the populated store holds {counts}, not {records} records / {audit_entries} entries")
    return {"populate_s": populated, "verify_s": verified, "counts": counts, "bytes": _db_bytes(directory)}


def _db_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.startswith("cortex-sal.db"))


def bench_startup(directory: Path, repeats: int) -> list[float]:
    from cortex_sal.store.runtime import open_shield
    from cortex_sal.store.sqlite import SqliteStore

    os.sync()  # the population's writeback is not the start-up's to wait for
    times = []
    for _ in range(repeats + 1):  # the first one warms the page cache and is not counted
        t0 = time.perf_counter()
        store = SqliteStore(directory, exclusive=True)
        shield = open_shield(store)
        elapsed = time.perf_counter() - t0
        try:
            held = len(shield._consent)
            if held != STARTUP_RECORDS:
                raise RuntimeError(f"the shield started with {held} consent records, not {STARTUP_RECORDS}")
        finally:
            shield.close()
            store.close()
        times.append(elapsed)
    return times[1:]


# --------------------------------------------------------------------------- report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (a smoke run, noisier)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    rounds, number = (5, 20) if args.quick else (15, 60)
    repeats = 3 if args.quick else 7
    console.print(
        f"[bold]cortex_sal store bench[/]  python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPU(s); timing: {rounds} interleaved rounds x {number} ops per side"
        + ("  [yellow](--quick)[/]" if args.quick else "")
    )

    with tempfile.TemporaryDirectory(prefix="cortex-sal-bench-") as tmp:
        root = Path(tmp)
        console.print(f"[dim]databases in {root} (filesystem of /tmp, device {os.stat(root).st_dev})[/]")
        fsync_before = fsync_probe(root)
        rt, rt_counts = bench_round_trip(root, rounds, number)
        au = bench_audit(root, rounds, number * 2)
        fsync_after = fsync_probe(root)
        pop = populate(root / "startup", STARTUP_RECORDS, STARTUP_AUDIT)
        starts = bench_startup(root / "startup", repeats)

    table = Table(title="store cost, side by side (same run)", show_lines=True)
    for col, just in (("figure", "left"), ("ours", "right"), ("reference", "right"),
                      ("ratio", "right"), ("target", "right"), ("result", "center")):  # fmt: skip
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for name, fig, target, unit in (
        ("consent grant + revoke, durable\ndurable_ledger vs 2 bare INSERTs", rt, ROUND_TRIP_TARGET, None),
        ("audit append, durable\nstore.audit vs 1 bare INSERT", au, AUDIT_TARGET, ("appends/s", "inserts/s")),
    ):
        ours_cell, ref_cell = f"{min(fig.wall.ours_us):,.0f} us", f"{min(fig.wall.ref_us):,.0f} us"
        if unit is not None:
            ours_cell += f"\n{1e6 / min(fig.wall.ours_us):,.0f} {unit[0]}"
            ref_cell += f"\n{1e6 / min(fig.wall.ref_us):,.0f} {unit[1]}"
        table.add_row(
            name,
            ours_cell,
            ref_cell,
            f"{fig.wall.min_ratio:.2f}x (min)\n{fig.wall.median_ratio:.2f}x (median)",
            f"<= {target}x",
            verdict(fig.wall.min_ratio <= target),
        )
        table.add_row(
            "  where it goes (info):\n  CPU of this thread\n  WAL pages written per op",
            f"{min(fig.cpu.ours_us):,.0f} us\n{fig.pages[0]:.1f} pages",
            f"{min(fig.cpu.ref_us):,.0f} us\n{fig.pages[1]:.1f} pages",
            f"+{min(fig.cpu.ours_us) - min(fig.cpu.ref_us):,.0f} us CPU\n"
            f"{ratio_text(fig.pages[0], fig.pages[1])} pages",
            "-",
            "info",
        )
    median_start = statistics.median(starts)
    table.add_row(
        f"shield start-up, {STARTUP_RECORDS:,} consent records\n+ {STARTUP_AUDIT:,} audit entries "
        "(warm cache)\nSqliteStore(dir) + open_shield",
        f"{median_start * 1000:,.0f} ms (median)\n{min(starts) * 1000:,.0f}-{max(starts) * 1000:,.0f} ms",
        "-",
        "-",
        f"< {STARTUP_TARGET_S:.0f} s",
        verdict(median_start < STARTUP_TARGET_S),
    )
    console.print(table)
    console.print(
        f"[bold]round trips:[/] the store wrote {rt_counts['receipts']:,} signed receipts and "
        f"{rt_counts['audit_entries']:,} audit entries (chain verified); "
        f"[bold]audit:[/] {1e6 / statistics.median(au.wall.ours_us):,.0f} appends/s median."
    )
    console.print(
        f"[bold]start-up store:[/] {pop['counts']['consent']:,} consent records, "
        f"{pop['counts']['receipts']:,} receipts, "
        f"{pop['counts']['audit_entries']:,} audit entries, {pop['bytes'] / 2**20:.1f} MiB; populated in "
        f"{pop['populate_s']:.1f} s, audit chain verified in {pop['verify_s']:.2f} s (not part of start-up); "
        f"{repeats} start-ups: " + ", ".join(f"{t * 1000:.0f}" for t in starts) + " ms."
    )
    console.print(
        "[bold]this filesystem's write + fsync[/] (median, before / after the timed rows): "
        f"1 page {fsync_before[0]:,.0f} / {fsync_after[0]:,.0f} us, "
        f"8 pages {fsync_before[1]:,.0f} / {fsync_after[1]:,.0f} us."
    )
    console.print(
        "[dim]Ratios are judged on min-per-side timings (noise only adds time); the median of per-round ratios is "
        "shown as a cross-check. Both sides fsync on the same device; where fsync's cost grows with the pages "
        "written, the store's extra pages (receipt, its indexes, audit entry and head) weigh in the ratio. "
        "PASS/MISS is informational: the exit status is 0 either way.[/]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
